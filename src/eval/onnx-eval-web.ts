/**
 * ONNX evaluation in the lab's worker: the OCR recogniser reads text lines cut from the held-out Moby-Dick
 * chapters (EVAL_FIRST_CHAPTER..135, seed EVAL_LINE_SEED: the lines `quantlab eval` renders) with their text as
 * ground truth, and calibrates rtn-w8a8 / awq on lines from the calibration chapters; other image models
 * evaluate on the bundled photos and calibrate on pages rendered from the calibration chapters. Runs
 * evaluateOnnx on onnxruntime-web (WebAssembly on software adapters, as calibration does). Browser only.
 */
import { BUNDLED_PHOTOS, PPOCR_KEYS, TEXT_FONT } from '../calib/bundled-data.ts';
import { CALIB_LINE_SEED, imagesPerBatch, onnxImageInput, renderedLines } from '../calib/calibrate-onnx.ts';
import { decodeImageWeb } from '../calib/calibrate-onnx-web.ts';
import { preprocessBatch, type ImagePreset, type RgbaImage } from '../calib/image-preprocess.ts';
import type { CaptureBatch } from '../calib/onnx-capture.ts';
import { ppocrAlphabet, ppocrCharset } from '../calib/ocr-decode.ts';
import { webOrtRuntime } from '../calib/ort-web.ts';
import { CalibDataError, EVAL_FIRST_CHAPTER, MOBY_DICK_CHAPTERS } from '../calib/text-data.ts';
import { mobyDickPartWeb } from '../calib/text-data-web.ts';
import { sampleTextLines } from '../calib/text-lines.ts';
import { loadFont, type OpenTypeFont } from '../calib/text-render.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { OnnxModelHandle } from '../model/workspace.ts';
import { EVAL_LINE_SEED, evaluateOnnx, parseOnnxEvalConfigs, renderTextPage, type OnnxEvalReport } from './onnx-eval.ts';
import type { EvalProgress, EvalRow } from './types.ts';

async function fetchBytes(base: string, url: string, what: string, signal?: AbortSignal): Promise<ArrayBuffer> {
  const href = new URL(url, base).href;
  const res = await fetch(href, { signal }).catch((e: Error) => {
    throw new CalibDataError(`could not fetch ${what} (${href}): ${e.message}`);
  });
  if (!res.ok) throw new CalibDataError(`${what} is missing: the server answered ${res.status} for ${href}`);
  return res.arrayBuffer();
}

function pages(font: OpenTypeFont, text: string, keys: string, n: number, seed: number): RgbaImage[] {
  const lines = sampleTextLines(text, 16 * n, { seed: seed + 1000, allowed: ppocrAlphabet(keys), minChars: 6, maxChars: 36 }).map((l) => l.text);
  return Array.from({ length: n }, (_, i) => renderTextPage(font, lines.slice(16 * i, 16 * (i + 1)), { seed: seed * 7919 + i }).image);
}

export interface OnnxEvalWebOptions {
  configs: string;
  /** Evaluation lines (recogniser) or rendered pages besides the photos (other models). */
  samples: number;
  calibSamples: number;
  baseUrl: string;
  signal?: AbortSignal;
  onProgress?: (p: EvalProgress) => void;
  onRow?: (row: EvalRow) => void;
}

export async function evaluateOnnxWeb(ctx: GpuContext, h: OnnxModelHandle, opts: OnnxEvalWebOptions): Promise<OnnxEvalReport> {
  const t0 = performance.now();
  const configs = parseOnnxEvalConfigs(opts.configs);
  const input = onnxImageInput(h);
  const preset: ImagePreset = input.preset;
  const per = imagesPerBatch(preset);
  const base = opts.baseUrl;
  const say = (label: string) => opts.onProgress?.({ done: 0, total: 0, label });
  say('reading the bundled font and text');
  const [fontBytes, keyBytes] = await Promise.all([fetchBytes(base, TEXT_FONT.url, 'the bundled font', opts.signal), fetchBytes(base, PPOCR_KEYS.url, 'the recogniser character list', opts.signal)]);
  const font = loadFont(fontBytes);
  const keys = new TextDecoder().decode(keyBytes);
  // Every chapter of each part, as the CLI joins them, so the lab renders the CLI's lines.
  const [evalText, calibText] = await Promise.all([mobyDickPartWeb(base, 'evaluation', opts.signal), mobyDickPartWeb(base, 'calibration', opts.signal)]);
  let images: RgbaImage[];
  let truths: string[] | undefined;
  let source: string;
  if (preset === 'ppocr-rec') {
    say('rendering the evaluation lines');
    const lines = renderedLines(font, evalText, keys, opts.samples, EVAL_LINE_SEED);
    images = lines.map((l) => l.image);
    truths = lines.map((l) => l.text);
    source = `${lines.length} text lines from Moby-Dick chapters ${EVAL_FIRST_CHAPTER}-${MOBY_DICK_CHAPTERS} rendered in DejaVu Sans (ground truth known)`;
  } else {
    images = [];
    for (const p of BUNDLED_PHOTOS) images.push(await decodeImageWeb(p.title, await fetchBytes(base, p.file.url, p.title, opts.signal)));
    images.push(...pages(font, evalText, keys, opts.samples, EVAL_LINE_SEED));
    source = `${BUNDLED_PHOTOS.length} bundled photos and ${opts.samples} pages of held-out text`;
  }
  const batchesOf = (list: RgbaImage[]): CaptureBatch[] => {
    const out: CaptureBatch[] = [];
    for (let i = 0; i < list.length; i += per) out.push({ [input.name]: preprocessBatch(list.slice(i, i + per), preset) });
    return out;
  };
  const needsCalib = configs.some((c) => c.method === 'awq' || c.act);
  let calibration: CaptureBatch[] | undefined;
  if (needsCalib) {
    say('rendering the calibration data');
    const calib = preset === 'ppocr-rec' ? renderedLines(font, calibText, keys, opts.calibSamples, CALIB_LINE_SEED).map((l) => l.image) : pages(font, calibText, keys, opts.calibSamples, CALIB_LINE_SEED);
    calibration = batchesOf(calib);
  }
  const runtime = webOrtRuntime({ wasmOnly: ctx.isSoftware });
  const r = await evaluateOnnx(h, runtime, {
    configs,
    batches: batchesOf(images),
    truths,
    charset: preset === 'ppocr-rec' ? ppocrCharset(keys) : undefined,
    calibration,
    signal: opts.signal,
    onProgress: opts.onProgress,
    onRow: opts.onRow,
  });
  return {
    format: 'quantlab-eval',
    version: 1,
    model: h.name,
    runtime: r.runtime,
    task: r.task,
    data: { source, samples: r.samples },
    rows: r.rows,
    seconds: (performance.now() - t0) / 1000,
  };
}
