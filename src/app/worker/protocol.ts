/**
 * The typed message protocol between the UI thread (GpuClient) and the GPU worker. Every request carries an
 * id; the worker answers it with progress messages and exactly one result or error. Large arrays in a result
 * travel as transferables, so they are moved, not copied.
 */
import type { DeviceDescription } from '../../gpu/context.ts';
import type { QuantConfig } from '../../quant/config.ts';
import type { TensorAnalysis } from '../../quant/analyze.ts';
import type { ClipSweepPoint } from '../../quant/reference/metrics.ts';
import type { SyntheticSpec } from '../../quant/synthetic.ts';
import type { BundledModelId } from '../../model/bundled.ts';
import type { ModelDescription, QuantPlan } from '../../model/workspace.ts';
import type { ModelQuantReport } from '../../quant/model-rtn.ts';
import type { CalibDataSource, CalibrateRequest, CalibrationRun } from '../../calib/types.ts';
import type { AwqBlockReport, AwqGroupReport, AwqLinearReport } from '../../awq/awq-llama.ts';
import type { SmoothQuantReport } from '../../smooth/smooth-model.ts';
import type { ActQuant, GroupSweep } from '../../smooth/smoothquant.ts';
import type { EvalRow } from '../../eval/types.ts';

/** A seeded synthetic tensor: the worker generates it, so only the spec crosses the thread boundary. */
export interface SyntheticTensorSource {
  kind: 'synthetic';
  spec: SyntheticSpec;
}

/** The bytes of a .npy file, transferred to the worker, which parses and converts them to float32. */
export interface NpyTensorSource {
  kind: 'npy';
  name: string;
  bytes: ArrayBuffer;
}

export type TensorSource = SyntheticTensorSource | NpyTensorSource;

/** What the worker reports about the tensor it now holds. */
export interface TensorInfo {
  /** The 2-D view the analysis uses: [out, in] for a weight, [1, n] for a vector, trailing axes flattened. */
  shape: [number, number];
  /** The shape in the file (equals `shape` for synthetic tensors). */
  originalShape: number[];
  /** dtype in the file ('float32' for synthetic tensors). */
  dtype: string;
  absmax: number;
}

export interface AnalyzePayload {
  config: QuantConfig;
  ratios?: number[];
}

/** A model to open: a bundled one (the page resolves its URL) or the files the user picked or dropped. */
export type ModelSource = { kind: 'bundled'; id: BundledModelId; url: string } | { kind: 'files'; files: File[] };

export interface QuantizeModelRequest {
  plan: QuantPlan;
  /** Identifies the plan, so that results can say which plan they came from. */
  planKey: string;
}

export interface GenerateRequest {
  prompt: string;
  tokens: number;
  /** The checkpoint's, the Quantize page's RTN weights, or the last finished AWQ run's. */
  weights: 'original' | 'quantized' | 'awq';
}

export interface GenerationPartial {
  text: string;
  tokens: number;
}

export interface GenerationResult {
  weights: GenerateRequest['weights'];
  /** The plan of the quantized weights used. */
  planKey?: string;
  prompt: string;
  promptTokens: number;
  tokens: number[];
  /** The continuation (without the prompt). */
  text: string;
  prefillSeconds: number;
  decodeSeconds: number;
  prefillTokensPerSecond: number;
  /** Decode steps after the first token per second; 0 when only one token was generated. */
  decodeTokensPerSecond: number;
}

/** Calibration sequences of a language model: the source, how many, how long. */
export interface LlamaDataRequest {
  data: CalibDataSource;
  samples: number;
  seqLen?: number;
  /** The page's base URL, where the bundled text is served. */
  baseUrl: string;
}

export interface AwqRequest extends LlamaDataRequest {
  quant: QuantConfig;
  duo: boolean;
  clip: boolean;
  /** Keep the blocks an earlier, unfinished run with the same model, settings and data finished. */
  resume: boolean;
}

/** One finished block of an AWQ run, sent as soon as it is done. */
export interface AwqBlockPartial {
  block: AwqBlockReport;
  groups: AwqGroupReport[];
  linears: AwqLinearReport[];
  /** True when the block was kept from an earlier run (resume). */
  kept: boolean;
}

export interface AwqRun {
  /** The settings and data the run was made with (model, quantizer, duo, clip, data), as a key. */
  key: string;
  groups: AwqGroupReport[];
  linears: AwqLinearReport[];
  blocks: AwqBlockReport[];
  nLayers: number;
  /** Blocks kept from an earlier run. */
  resumedBlocks: number;
  data: { source: string; samples: number; seqLen: number; tokens: number; note?: string };
  seconds: number;
}

export interface SmoothRequest extends LlamaDataRequest {
  alpha: number | 'sweep';
  act: ActQuant;
  /** With a sweep: each group's best alpha instead of the model's. */
  perGroup: boolean;
  /** Activation rows kept per group for the W8A8 error. */
  maxRows: number;
}

export interface SmoothRun {
  report: SmoothQuantReport;
  /** Every alpha's factors' difficulty and W8A8 error, per group. */
  sweeps: GroupSweep[];
}

export interface EvaluateRequest {
  /** Configuration labels (eval/configs.ts). */
  configs: string[];
  /** Held-out text: the bundled chapters kept out of calibration, or the user's files. */
  data: { kind: 'bundled-text' } | { kind: 'text-files'; files: { name: string; bytes: Uint8Array }[] };
  /** Tokens scored (language models). */
  tokens: number;
  /** ONNX models: evaluation lines (OCR recogniser) or rendered pages besides the bundled photos. */
  samples: number;
  /** Positions per window; the stride is half of it. */
  context: number;
  /** Calibration sequences for AWQ and SmoothQuant (bundled calibration chapters). */
  calibSamples: number;
  calibSeqLen: number;
  prompt: string;
  genTokens: number;
  baseUrl: string;
}

export interface EvaluateResult {
  rows: EvalRow[];
  /** The held-out data, in words. */
  data: string;
  seconds: number;
}

/** Request kinds, with their payload, result and (for some) partial result types. */
export interface RequestMap {
  /** Create the GPU context (or return the existing one). */
  init: { payload: null; result: DeviceDescription };
  /** Dispose the context, whatever its state, and create a new one; the tensor stays. */
  restart: { payload: null; result: DeviceDescription };
  /** Replace the worker's tensor. The old tensor stays when the new one is rejected. */
  setTensor: { payload: TensorSource; result: TensorInfo };
  /**
   * Analyze the current tensor; a newer analyze cancels an older one. Arrives in two parts: everything but the
   * clipping sweep as a partial result (its `sweep` is empty), then the sweep, by far the slowest kernel.
   */
  analyze: { payload: AnalyzePayload; partial: TensorAnalysis; result: { sweep: ClipSweepPoint[] } };
  /** Open a model; the current one stays when this one fails. */
  openModel: { payload: ModelSource; result: ModelDescription };
  /** Whole-model RTN of the open model; progress per layer. The previous result stays when this one fails or is cancelled. */
  quantizeModel: { payload: QuantizeModelRequest; result: ModelQuantReport };
  /** Greedy generation with the original or the quantized weights; the text so far arrives as partial results. */
  generate: { payload: GenerateRequest; partial: GenerationPartial; result: GenerationResult };
  /**
   * Calibrate the open model: run the calibration data through it, accumulate every quantizable layer's
   * input statistics on the GPU, and choose each range with every calibrator. Nothing is kept in the worker.
   */
  calibrate: { payload: CalibrateRequest & { baseUrl: string }; result: CalibrationRun };
  /**
   * AWQ of the open Llama model: capture, then per block the scale searches, the clip search and the
   * quantization; each finished block arrives as a partial result. A cancelled run keeps its finished blocks
   * in the worker, for a resume with the same settings and data.
   */
  awq: { payload: AwqRequest; partial: AwqBlockPartial; result: AwqRun };
  /** SmoothQuant of the open Llama model: the alpha sweep (or one alpha) with the W8A8 error per group. */
  smoothquant: { payload: SmoothRequest; result: SmoothRun };
  /**
   * Evaluate configurations of the open Llama model against FP32 on held-out text: perplexity, KL, top-1,
   * greedy generations. Each finished row arrives as a partial result; a cancelled run returns none.
   */
  evaluate: { payload: EvaluateRequest; partial: EvalRow; result: EvaluateResult };
  /** Destroy the device as a driver reset would (for tests of the recovery path). */
  loseDevice: { payload: null; result: null };
}

export type RequestType = keyof RequestMap;

export type PartialOf<K extends RequestType> = RequestMap[K] extends { partial: infer P } ? P : never;

export type WorkerRequest = {
  [K in RequestType]: { type: 'request'; id: number; kind: K; payload: RequestMap[K]['payload'] };
}[RequestType];

export interface CancelMessage {
  type: 'cancel';
  id: number;
}

export type ToWorker = WorkerRequest | CancelMessage;

export interface Progress {
  /** What is running, in words ("fake-quantize", "clip sweep"). */
  stage: string;
  /** 0..1, or undefined when unknown. */
  fraction?: number;
}

/** An error as plain data: `name` keeps its class (CancelledError, GpuDeviceLostError, NpyError, ...). */
export interface ErrorData {
  name: string;
  message: string;
}

export type FromWorker =
  | { type: 'progress'; id: number; progress: Progress }
  | { type: 'partial'; id: number; partial: unknown }
  | { type: 'result'; id: number; result: unknown }
  | { type: 'error'; id: number; error: ErrorData }
  /** Sent unprompted when the device is lost between or during requests. */
  | { type: 'deviceLost'; message: string };
