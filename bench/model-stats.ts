/**
 * Pure helpers of the model benchmark (bench/model.ts): which cases a command line selects, the prompt,
 * the work a Llama forward pass does (weight bytes read, matmul FLOPs) and the throughput units
 * (tokens/s, GFLOP/s, GPU/CPU ratios). No GPU and no I/O here, so tests/bench/model-stats.test.ts can check
 * them directly.
 */
import { median } from './stats.ts';

/** The model cases, named like kernels so that `--only` picks them by a word of their name. */
export const MODEL_CASES = ['model-forward', 'model-rtn'] as const;
export type ModelCase = (typeof MODEL_CASES)[number];

/**
 * The calibration cases (bench/calib.ts): statistics throughput and the histogram sweeps on synthetic data,
 * then calibration time of stories15M and of the PP-OCRv4 recogniser. No name contains "model", so
 * `--only model` keeps meaning the two model cases above.
 */
export const CALIB_CASES = ['calib-stats', 'calib-sweeps', 'calib-llama', 'calib-ocr'] as const;
export type CalibCase = (typeof CALIB_CASES)[number];
/** The calibration cases that load a model: `--no-model` turns them off. */
export const CALIB_MODEL_CASES: readonly CalibCase[] = ['calib-llama', 'calib-ocr'];

/**
 * The AWQ and SmoothQuant cases (bench/awq.ts): the AWQ loss evaluation (Gram form against direct) and one whole
 * layer on a synthetic linear, AWQ on stories15M, and the SmoothQuant alpha sweep of one synthetic group. No name
 * contains "model" (the stories15M case is awq-llama, as calib-llama), so `--only model` keeps its meaning.
 */
export const AWQ_CASES = ['awq-loss', 'awq-layer', 'awq-llama', 'smoothquant-sweep'] as const;
export type AwqCase = (typeof AWQ_CASES)[number];
/** The AWQ cases that load a model: `--no-model` turns them off. */
export const AWQ_MODEL_CASES: readonly AwqCase[] = ['awq-llama'];

export interface AwqSelection {
  loss: boolean;
  layer: boolean;
  llama: boolean;
  sweep: boolean;
}

export interface CalibSelection {
  stats: boolean;
  sweeps: boolean;
  llama: boolean;
  ocr: boolean;
}

export interface Selection {
  /** Kernels to run (copy always runs: every GB/s is compared with it). */
  kernels: string[];
  /** Whether any kernel besides copy runs (else the fixtures need no prepared inputs). */
  kernelsBeyondCopy: boolean;
  forward: boolean;
  rtn: boolean;
}

/**
 * What `--only WORDS` (a case runs when its name contains one of the words; none given: every case)
 * and `--no-model` select among `kernels` and the model cases. A word that names no case is an error,
 * so a typo does not silently benchmark nothing.
 */
export function selectCases(kernels: readonly string[], only: readonly string[], opts: { model: boolean } = { model: true }): Selection {
  const all = [...kernels, ...MODEL_CASES, ...CALIB_CASES, ...AWQ_CASES];
  for (const w of only) {
    if (!all.some((name) => name.includes(w))) {
      throw new RangeError(
        `--only ${w} matches no case (kernels: ${kernels.join(', ')}; model cases: ${MODEL_CASES.join(', ')}; calibration cases: ${CALIB_CASES.join(', ')}; AWQ / SmoothQuant cases: ${AWQ_CASES.join(', ')})`,
      );
    }
  }
  const wanted = (name: string) => only.length === 0 || only.some((w) => name.includes(w));
  const picked = kernels.filter((k) => k === 'copy' || wanted(k));
  return {
    kernels: picked,
    kernelsBeyondCopy: picked.some((k) => k !== 'copy'),
    forward: opts.model && wanted('model-forward'),
    rtn: opts.model && wanted('model-rtn'),
  };
}

/**
 * The calibration cases `--only WORDS` selects (by the same substring rule as selectCases, which also rejects
 * words that name no case); `--no-model` leaves out the ones that load a model.
 */
export function selectCalibCases(only: readonly string[], opts: { model: boolean } = { model: true }): CalibSelection {
  const wanted = (name: CalibCase) => (only.length === 0 || only.some((w) => name.includes(w))) && (opts.model || !CALIB_MODEL_CASES.includes(name));
  return { stats: wanted('calib-stats'), sweeps: wanted('calib-sweeps'), llama: wanted('calib-llama'), ocr: wanted('calib-ocr') };
}

/** The AWQ / SmoothQuant cases `--only WORDS` selects (the substring rule of selectCases); `--no-model` leaves out awq-llama. */
export function selectAwqCases(only: readonly string[], opts: { model: boolean } = { model: true }): AwqSelection {
  const wanted = (name: AwqCase) => (only.length === 0 || only.some((w) => name.includes(w))) && (opts.model || !AWQ_MODEL_CASES.includes(name));
  return { loss: wanted('awq-loss'), layer: wanted('awq-layer'), llama: wanted('awq-llama'), sweep: wanted('smoothquant-sweep') };
}

/** A prompt of exactly n tokens: the encoded text (BOS first) repeated after its BOS as often as needed. */
export function fitPrompt(encoded: readonly number[], n: number): number[] {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`the prompt needs at least one token, got ${n}`);
  if (encoded.length === 0) throw new RangeError('the encoded prompt text is empty');
  const body = encoded.length > 1 ? encoded.slice(1) : encoded;
  const out = [encoded[0]];
  for (let i = 0; out.length < n; i++) out.push(body[i % body.length]);
  return out;
}

/** Prompt and decode lengths must fit the model's context (the KV cache). */
export function checkForwardPlan(promptTokens: number, decodeTokens: number, seqLen: number): void {
  if (!Number.isInteger(promptTokens) || promptTokens < 1) throw new RangeError(`--prompt-tokens must be a whole number >= 1, got ${promptTokens}`);
  if (!Number.isInteger(decodeTokens) || decodeTokens < 1) throw new RangeError(`--decode-tokens must be a whole number >= 1, got ${decodeTokens}`);
  if (promptTokens + decodeTokens > seqLen) {
    throw new RangeError(`--prompt-tokens ${promptTokens} + --decode-tokens ${decodeTokens} is over the model's context of ${seqLen} tokens`);
  }
}

export interface TensorShape {
  name: string;
  shape: readonly number[];
}

const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const LINEAR = /^layers\.\d+\.w[qkvo123]$/;

/** The matmul weights of a Llama forward pass, from the checkpoint's tensor list. */
export interface ForwardWork {
  /** Parameters of the 7 linear layers of every block (biases not counted). */
  linearParams: number;
  /** Parameters of the classifier (tok_embeddings when tied). */
  classifierParams: number;
  /**
   * Weight bytes one forward call reads, each byte once: every linear, norm and bias, the classifier,
   * and one embedding row per token (counted once; with tied embeddings the classifier read covers it).
   */
  weightBytesPerCall: number;
}

export function forwardWork(tensors: readonly TensorShape[], cfg: { dim: number; tiedEmbeddings: boolean }, bytesPerParam = 4): ForwardWork {
  let linearParams = 0;
  let classifierParams = 0;
  let params = 0;
  for (const t of tensors) {
    const n = numel(t.shape);
    if (t.name === 'tok_embeddings') {
      if (cfg.tiedEmbeddings) classifierParams += n;
      params += cfg.tiedEmbeddings ? n : cfg.dim;
      continue;
    }
    if (t.name === 'output') classifierParams += n;
    else if (LINEAR.test(t.name)) linearParams += n;
    params += n;
  }
  return { linearParams, classifierParams, weightBytesPerCall: params * bytesPerParam };
}

/**
 * Matmul FLOPs of one forward call of `tokens` tokens that computes `logitRows` rows of logits (LlamaGpu.forward
 * computes only the last token's unless asked for all): 2 per multiply-add, attention and norms left out.
 */
export function forwardFlops(work: Pick<ForwardWork, 'linearParams' | 'classifierParams'>, tokens: number, logitRows = 1): number {
  return 2 * (work.linearParams * tokens + work.classifierParams * logitRows);
}

/** Tokens processed in `ms` milliseconds, per second. */
export function tokensPerSecond(tokens: number, ms: number): number {
  return ms > 0 ? (1000 * tokens) / ms : NaN;
}

/** FLOPs done in `ms` milliseconds, in 1e9 per second. */
export function gflopPerSecond(flops: number, ms: number): number {
  return ms > 0 ? flops / ms / 1e6 : NaN;
}

/** Throughput of the GPU over that of the CPU (> 1: the GPU is faster); null when either is missing. */
export function throughputRatio(gpu: number | undefined, cpu: number | undefined): number | null {
  if (gpu === undefined || cpu === undefined || !(gpu > 0) || !(cpu > 0) || !Number.isFinite(gpu) || !Number.isFinite(cpu)) return null;
  return gpu / cpu;
}

/** The copy kernel's GB/s at the largest size it ran at: the device's practical bandwidth in this run. */
export function copyReference(rows: readonly { bound: string; n: number; gbps: number }[]): { n: number; gbps: number } | null {
  let best: { n: number; gbps: number } | null = null;
  for (const r of rows) if (r.bound === 'baseline' && Number.isFinite(r.gbps) && (!best || r.n > best.n)) best = { n: r.n, gbps: r.gbps };
  return best;
}

/** GPU time per kernel file (GpuContext.gpuTimeMs), largest first, with each one's share of the total. */
export function kernelShares(gpuTimeMs: ReadonlyMap<string, number> | Iterable<[string, number]>): { shader: string; ms: number; share: number }[] {
  const entries = [...gpuTimeMs].filter(([, ms]) => Number.isFinite(ms) && ms >= 0);
  const total = entries.reduce((a, [, ms]) => a + ms, 0);
  return entries.map(([shader, ms]) => ({ shader, ms, share: total > 0 ? ms / total : 0 })).sort((a, b) => b.ms - a.ms);
}

/** "matvec.wgsl 71%, attention.wgsl 12%, ..." (the `top` largest, the rest summed as "other"). */
export function formatShares(shares: readonly { shader: string; share: number }[], top = 4): string {
  if (shares.length === 0) return '-';
  const pct = (s: number) => `${Math.round(100 * s)}%`;
  const head = shares.slice(0, top).map((s) => `${s.shader.replace(/\.wgsl$/, '')} ${pct(s.share)}`);
  const rest = shares.slice(top).reduce((a, s) => a + s.share, 0);
  return head.join(', ') + (shares.length > top ? `, other ${pct(rest)}` : '');
}

/** Median and spread of timed samples, as the JSON stores them. */
export function summarize(samplesMs: readonly number[]): { ms: number; minMs: number; maxMs: number; samples: number } {
  if (samplesMs.length === 0) return { ms: NaN, minMs: NaN, maxMs: NaN, samples: 0 };
  return { ms: median(samplesMs), minMs: Math.min(...samplesMs), maxMs: Math.max(...samplesMs), samples: samplesMs.length };
}
