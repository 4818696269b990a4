/**
 * Calibration of an ONNX model: batches of preprocessed inputs run through onnxruntime (the node or web
 * runtime, see ort-runtime.ts) with every quantizable layer's input added as a graph output
 * (onnx-capture.ts); each captured activation goes to the GPU and into its ActivationStatsGpu as soon
 * as the runtime returns it, so no batch is kept. The image input and its preprocessing come from the
 * model's input shape (image-preprocess.ts presetForInput) unless the caller names a preset.
 * No Node imports: the browser worker uses this file.
 */
import type { GpuContext } from '../gpu/context.ts';
import type { OnnxModelHandle } from '../model/workspace.ts';
import { ActivationStatsGpu, type ActivationStatsOptions } from './activation-stats.ts';
import { captureActivations, planCapture, type CaptureBatch, type CaptureReport } from './onnx-capture.ts';
import { presetForInput, type ImagePreset } from './image-preprocess.ts';
import type { OrtRuntime } from './ort-runtime.ts';
import { ppocrAlphabet } from './ocr-decode.ts';
import { sampleTextLines } from './text-lines.ts';
import { renderTextLine, type OpenTypeFont, type RgbaImage } from './text-render.ts';
import { CalibDataError } from './text-data.ts';
import type { ActivationSummary, CalibProgress } from './types.ts';

export interface OnnxImageInput {
  name: string;
  shape: (number | string | null)[];
  preset: ImagePreset;
}

/** The model's one float image input [N, 3, H, W] and the preprocessing it implies. */
export function onnxImageInput(handle: OnnxModelHandle, preset?: ImagePreset): OnnxImageInput {
  const g = handle.model.graph;
  const inputs = g.inputs.filter((i) => !handle.index.constants.has(i.name));
  if (inputs.length !== 1) {
    throw new CalibDataError(`${handle.name} has ${inputs.length} inputs (${inputs.map((i) => i.name).join(', ')}): image calibration feeds models with one image input; give .npy batches instead`);
  }
  const input = inputs[0];
  const shape = input.type?.kind === 'tensor' ? (input.type.shape ?? []) : [];
  const p = preset ?? presetForInput({ name: input.name, shape });
  if (!p) {
    throw new CalibDataError(`${handle.name}: the input ${input.name} [${shape.join(', ')}] is not an image layout this lab recognises (PP-OCR recogniser [N,3,48,W], detector, ImageNet [N,3,224,224]); choose a preprocessing preset`);
  }
  return { name: input.name, shape, preset: p };
}

/** Statistics of every captured layer input over the batches. */
export async function captureOnnxStats(
  ctx: GpuContext,
  handle: OnnxModelHandle,
  runtime: OrtRuntime,
  batches: AsyncIterable<CaptureBatch> | Iterable<CaptureBatch>,
  opts: ActivationStatsOptions & { signal?: AbortSignal; onProgress?: (p: CalibProgress) => void; totalBatches?: number; maxBytesPerRun?: number } = {},
): Promise<{ summaries: ActivationSummary[]; report: CaptureReport }> {
  const plan = planCapture(handle);
  if (plan.targets.length === 0) throw new CalibDataError(`${handle.name} has no quantizable layer whose input can be captured`);
  const stats = new Map<string, ActivationStatsGpu>();
  try {
    const report = await captureActivations(
      handle,
      runtime,
      batches,
      async (t) => {
        let s = stats.get(t.name);
        if (!s) {
          s = new ActivationStatsGpu(ctx, t.name, t.layers, t.channels, opts);
          stats.set(t.name, s);
        }
        if (s.channels !== t.channels) throw new CalibDataError(`activation ${t.name} changed from ${s.channels} to ${t.channels} channels between batches`);
        const buf = ctx.upload(t.data, `activation ${t.name}`);
        try {
          await s.add({ buffer: buf, length: t.rows * t.channels }, t.rows);
        } finally {
          ctx.pool.release(buf);
        }
      },
      { signal: opts.signal, onProgress: opts.onProgress, totalBatches: opts.totalBatches, maxBytesPerRun: opts.maxBytesPerRun, plan },
    );
    const summaries: ActivationSummary[] = [];
    for (const t of plan.targets) {
      const s = stats.get(t.name);
      if (s) summaries.push(await s.summary());
    }
    return { summaries, report };
  } finally {
    for (const s of stats.values()) s.dispose();
  }
}

/** Images per batch: recogniser lines and classifier crops batch well; detector images differ in size. */
export function imagesPerBatch(preset: ImagePreset): number {
  return preset === 'ppocr-det' ? 1 : 8;
}

/** Default number of calibration images: every bundled photo, 32 rendered lines. */
export const DEFAULT_RENDERED_LINES = 32;

/** Seeds of the rendered lines: calibration and evaluation draw different lines from different chapters. */
export const CALIB_LINE_SEED = 1;

/**
 * Text lines for the OCR recogniser, rendered with the bundled font: `n` lines cut from `text` with only
 * characters the recogniser knows, with a little jitter of size and baseline.
 */
export function renderedLines(font: OpenTypeFont, text: string, keysText: string, n: number, seed = CALIB_LINE_SEED): { text: string; image: RgbaImage }[] {
  const allowed = ppocrAlphabet(keysText);
  const lines = sampleTextLines(text, n, { seed, allowed });
  return lines.map((l, i) => ({ text: l.text, image: renderTextLine(font, l.text, { height: 48, jitter: { seed: seed * 100_003 + i } }) }));
}
