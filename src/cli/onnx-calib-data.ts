/**
 * Calibration batches for ONNX image models from the command line, shared by the commands that run data
 * through a graph: --data DIR|FILE (.jpg / .png) or the bundled data (rendered text lines for the OCR
 * recogniser, the bundled photos otherwise), --samples N, --preprocess PRESET, --det-side S; the images are
 * preprocessed for the model's input a batch at a time.
 */
import { resolve } from 'node:path';
import { bundledImagesNode, imagesFromPath } from '../calib/calibrate-onnx-node.ts';
import { imagesPerBatch, onnxImageInput } from '../calib/calibrate-onnx.ts';
import { IMAGE_PRESETS, preprocessBatch, type ImagePreset, type PreprocessOptions } from '../calib/image-preprocess.ts';
import type { CaptureBatch } from '../calib/onnx-capture.ts';
import type { OnnxModelHandle } from '../model/workspace.ts';
import { UsageError } from './cli-errors.ts';
import type { OptionSpec, ParsedOptions } from './options.ts';

/** --preprocess and --det-side (the ONNX-only data options; --data and --samples are shared with Llama models). */
export const ONNX_IMAGE_OPTIONS: OptionSpec[] = [
  { name: 'preprocess', value: 'PRESET', help: `image preprocessing of ONNX models: ${IMAGE_PRESETS.join(', ')} (default: what the model's input implies)` },
  { name: 'det-side', value: 'S', help: 'longer side of detector inputs (ppocr-det; default 960)' },
];

export interface OnnxCalibBatches {
  batches: Iterable<CaptureBatch>;
  totalBatches: number;
  source: string;
  samples: number;
  preset: ImagePreset;
}

/** The calibration images of --data (or the bundled ones), as preprocessed batches for the model's image input. */
export async function onnxBatchesFromArgs(h: OnnxModelHandle, opts: ParsedOptions): Promise<OnnxCalibBatches> {
  if (opts.has('seq-len')) throw new UsageError('--seq-len is for language models');
  const presetArg = opts.string('preprocess');
  if (presetArg !== undefined && !(IMAGE_PRESETS as readonly string[]).includes(presetArg)) throw new UsageError(`--preprocess must be one of ${IMAGE_PRESETS.join(', ')}, got ${presetArg}`);
  const side = opts.int('det-side', { min: 32, max: 4096 });
  const preprocess: PreprocessOptions | undefined = side ? { limitSideLen: side } : undefined;
  const samples = opts.int('samples', { min: 1, max: 100_000 });
  const data = opts.string('data');
  const input = onnxImageInput(h, presetArg as ImagePreset | undefined);
  const { images, source } = data ? await imagesFromPath(resolve(data), samples) : await bundledImagesNode(input.preset, samples);
  const per = imagesPerBatch(input.preset);
  const batches = {
    *[Symbol.iterator]() {
      for (let i = 0; i < images.length; i += per) yield { [input.name]: preprocessBatch(images.slice(i, i + per), input.preset, preprocess) };
    },
  };
  return { batches, totalBatches: Math.ceil(images.length / per), source, samples: images.length, preset: input.preset };
}
