/**
 * Calibration of an ONNX model in the lab's worker: images from the user's files (decoded with
 * createImageBitmap), the bundled photos, or text lines rendered with the bundled font for the OCR
 * recogniser (the same pixels as the CLI: our own rasteriser, not the browser's text engine), run
 * through onnxruntime-web (WebGPU, falling back to WebAssembly). Browser only.
 */
import type { GpuContext } from '../gpu/context.ts';
import type { OnnxModelHandle } from '../model/workspace.ts';
import { quantizableLayers } from '../model/workspace.ts';
import { BUNDLED_PHOTOS, PPOCR_KEYS, TEXT_FONT } from './bundled-data.ts';
import { captureOnnxStats, DEFAULT_RENDERED_LINES, imagesPerBatch, onnxImageInput, renderedLines } from './calibrate-onnx.ts';
import { preprocessBatch, type RgbaImage } from './image-preprocess.ts';
import { webOrtRuntime } from './ort-web.ts';
import { buildCalibrationResult, calibratorSweeps, weightChannelAbsmax } from './result.ts';
import { CalibDataError } from './text-data.ts';
import { loadMobyDickWeb } from './text-data-web.ts';
import { loadFont } from './text-render.ts';
import type { CalibProgress, CalibrateRequest, CalibrationRun } from './types.ts';

async function fetchBytes(base: string, url: string, what: string, signal?: AbortSignal): Promise<ArrayBuffer> {
  const href = new URL(url, base).href;
  let res: Response;
  try {
    res = await fetch(href, { signal });
  } catch (e) {
    throw new CalibDataError(`could not fetch ${what} (${href}): ${(e as Error).message}`);
  }
  if (!res.ok) throw new CalibDataError(`${what} is missing: the server answered ${res.status} for ${href}`);
  return res.arrayBuffer();
}

/** Decode an image file's bytes with the browser's decoder; a file that does not decode is named. */
export async function decodeImageWeb(name: string, bytes: ArrayBuffer | Uint8Array): Promise<RgbaImage> {
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(new Blob([bytes as BlobPart]));
  } catch (e) {
    throw new CalibDataError(`${name}: not an image this browser can decode (${(e as Error).message || 'decode failed'})`);
  }
  try {
    if (bitmap.width === 0 || bitmap.height === 0) throw new CalibDataError(`${name}: the image is empty`);
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const g = canvas.getContext('2d');
    if (!g) throw new CalibDataError('this browser has no 2D canvas in workers: images cannot be decoded');
    g.drawImage(bitmap, 0, 0);
    const d = g.getImageData(0, 0, bitmap.width, bitmap.height);
    return { width: d.width, height: d.height, data: d.data };
  } finally {
    bitmap.close();
  }
}

export async function calibrateOnnxWeb(
  ctx: GpuContext,
  h: OnnxModelHandle,
  req: CalibrateRequest & { baseUrl: string },
  opts: { signal?: AbortSignal; onProgress?: (p: CalibProgress) => void } = {},
): Promise<CalibrationRun> {
  const t0 = performance.now();
  const base = req.baseUrl;
  const input = onnxImageInput(h, req.preset);
  const report = (label: string, done = 0, total = 0) => opts.onProgress?.({ phase: 'data', done, total, label });
  let images: RgbaImage[];
  let source: string;
  const d = req.data;
  if (d.kind === 'image-files') {
    if (d.files.length === 0) throw new CalibDataError('no image files were given');
    images = [];
    for (const [i, f] of d.files.slice(0, req.samples).entries()) {
      report(`decoding ${f.name}`, i, d.files.length);
      images.push(await decodeImageWeb(f.name, f.bytes));
    }
    source = d.files.length === 1 ? d.files[0].name : `${images.length} of your images`;
  } else if (d.kind === 'bundled-images') {
    images = [];
    for (const p of BUNDLED_PHOTOS.slice(0, req.samples)) {
      report(`fetching ${p.title}`);
      images.push(await decodeImageWeb(p.title, await fetchBytes(base, p.file.url, p.title, opts.signal)));
    }
    source = `${images.length} bundled photos`;
  } else if (d.kind === 'rendered-lines') {
    if (input.preset !== 'ppocr-rec') throw new CalibDataError(`rendered text lines are for OCR recognisers (input [N,3,48,W]); ${h.name} takes ${input.name} [${input.shape.join(', ')}]`);
    report('rendering text lines');
    const [font, keys, text] = await Promise.all([
      fetchBytes(base, TEXT_FONT.url, 'the bundled font', opts.signal),
      fetchBytes(base, PPOCR_KEYS.url, 'the recogniser character list', opts.signal),
      loadMobyDickWeb(base, 200_000, 'calibration', opts.signal),
    ]);
    const n = req.samples || DEFAULT_RENDERED_LINES;
    images = renderedLines(loadFont(font), text.join('\n\n'), new TextDecoder().decode(keys), n).map((l) => l.image);
    source = `${n} text lines from Moby-Dick rendered in DejaVu Sans`;
  } else {
    throw new CalibDataError(`${h.name} is a vision model: calibrate it with images, not ${d.kind}`);
  }
  if (images.length === 0) throw new CalibDataError('no calibration images');
  const per = imagesPerBatch(input.preset);
  const batches = function* () {
    for (let i = 0; i < images.length; i += per) yield { [input.name]: preprocessBatch(images.slice(i, i + per), input.preset) };
  };
  // On a software adapter (SwiftShader) onnxruntime's WebAssembly CPU provider is far faster than its WebGPU
  // provider on the same emulated GPU (2 text lines: 167 s on WebGPU in Chromium on SwiftShader).
  const runtime = webOrtRuntime({ wasmOnly: ctx.isSoftware });
  const { summaries, report: cap } = await captureOnnxStats(ctx, h, runtime, batches(), {
    signal: opts.signal,
    snapshotTokens: req.snapshotTokens,
    totalBatches: Math.ceil(images.length / per),
    onProgress: (p) => opts.onProgress?.({ ...p, label: `capturing activations (${runtime.name}): batch ${p.done} of ${p.total}` }),
  });
  opts.onProgress?.({ phase: 'calibrate', done: 0, total: 1, label: 'choosing ranges' });
  const tokens = summaries.reduce((a, s) => Math.max(a, s.tokens), 0);
  const result = buildCalibrationResult(h.name, summaries, {
    sweeps: await calibratorSweeps(ctx, summaries, req.bits),
    bits: req.bits,
    method: req.method,
    data: { source, samples: images.length, tokens },
    seconds: (performance.now() - t0) / 1000,
  });
  result.data.note = `activations captured with ${cap.runtime}, ${cap.runs} runs`;
  return { result, summaries, weightChannelAbsmax: await weightChannelAbsmax(quantizableLayers(h), summaries) };
}
