/**
 * Evaluation results: one row per evaluated configuration (FP32 reference, FP16, RTN, AWQ, SmoothQuant
 * W8A8, ...), with the size of its quantized representation and its metrics as named numbers, so the same
 * row type carries language-model metrics (perplexity, KL divergence to FP32, top-1 agreement) and, later,
 * those of ONNX models (accuracy, output SQNR). No Node imports.
 */
import type { QuantConfig } from '../quant/config.ts';
import type { ActQuantGranularity } from './act-fake-quant.ts';

export type EvalMethod = 'fp32' | 'fp16' | 'rtn' | 'awq' | 'smoothquant';

/** A configuration parsed from its label (configs.ts). */
export interface EvalConfig {
  /** As the user wrote it (lower case), e.g. `rtn-int4-g32`, `smoothquant-w8a8-a0.65`. */
  label: string;
  method: EvalMethod;
  /** The weight quantizer of the linear layers (rtn, awq, smoothquant). */
  quant?: Required<QuantConfig>;
  /** SmoothQuant migration strength. */
  alpha?: number;
  /** Activation fake-quantization at the linear inputs (smoothquant). */
  act?: { bits: number; granularity: ActQuantGranularity };
}

/** Metric names of language-model rows. */
export interface LlamaMetrics {
  /** exp(mean NLL) over the scored tokens. */
  perplexity: number;
  /** Mean negative log-likelihood per scored token (nats). */
  nll: number;
  /** Mean KL(P_fp32 || P_config) over the scored positions (nats); 0 for the FP32 row. */
  kl: number;
  /** Fraction of scored positions where the next-token argmax equals the FP32 model's. */
  top1: number;
  /** Tokens scored. */
  tokens: number;
}

export interface EvalRow {
  /** The configuration's label. */
  config: string;
  method: EvalMethod | string;
  /** Bits per quantized weight, scale and zero-point overhead included (32 for FP32). */
  bitsPerWeight: number;
  /** Bytes of the model in this representation (quantized linears + the tensors kept in float). */
  sizeBytes: number;
  /** Named metrics (LlamaMetrics for language models). */
  metrics: Record<string, number>;
  /** Wall-clock seconds for this row: preparing the weights (AWQ, SmoothQuant included) and evaluating. */
  seconds: number;
  /** Greedy continuation of the prompt (language models), when asked for. */
  generation?: string;
  notes: string[];
}

/** What a whole evaluation ran on, with its rows. */
export interface EvalReport {
  format: 'quantlab-eval';
  version: 1;
  model: string;
  data: {
    source: string;
    /** Tokens scored (the text's first tokens, without BOS). */
    tokens: number;
    /** Positions per window (BOS included), the stride between windows, and the number of windows. */
    context: number;
    stride: number;
    windows: number;
  };
  /** Calibration data of the configs that need it (AWQ, SmoothQuant). */
  calibration?: { source: string; samples: number; seqLen: number };
  prompt?: string;
  rows: EvalRow[];
  /** FP32 perplexity from the CPU reference forward pass (--cpu-check). */
  cpuCheck?: { perplexity: number; gpuPerplexity: number; relDiff: number; seconds: number };
  seconds: number;
}

/** Progress of a long evaluation: `done` of `total` units of the current stage `label`. */
export interface EvalProgress {
  done: number;
  total: number;
  label: string;
}

/** A bad configuration label or evaluation setting; the message says what to change. */
export class EvalError extends Error {
  override name = 'EvalError';
}
