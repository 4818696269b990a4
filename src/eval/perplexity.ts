/**
 * Perplexity with a sliding window (Hugging Face's strided perplexity, transformers docs "Perplexity of
 * fixed-length models"): windows of `context` positions start every `stride` tokens of the evaluation text,
 * and each window scores only the tokens the previous window did not score, so every token is scored once,
 * with up to context - stride tokens of left context after the first window. Each window is fed as BOS
 * followed by the text: the logits of position j predict the window's token j (the first one from BOS
 * alone), so a window of `context` positions predicts `context` text tokens.
 *
 * The same windows give the distance of a quantized model to the FP32 one at every scored position:
 * KL(P_fp32 || P_quant) and whether both argmaxes agree. Log-softmax runs in float64.
 * No Node imports.
 */
import { CancelledError } from '../gpu/errors.ts';
import type { LlamaCpu } from '../model/llama/forward-cpu.ts';
import type { LlamaGpu } from '../model/llama/forward-gpu.ts';
import { EvalError, type EvalProgress, type LlamaMetrics } from './types.ts';

export interface EvalWindow {
  /** Text tokens [begin, end) are this window's targets; the input is BOS + tokens [begin, end - 1). */
  begin: number;
  end: number;
  /** First target scored (tokens before it were scored by the previous window). */
  scoreFrom: number;
}

/** The strided windows over `n` text tokens; throws EvalError on a context or stride out of range. */
export function strideWindows(n: number, context: number, stride: number): EvalWindow[] {
  if (!(Number.isInteger(n) && n >= 1)) throw new EvalError(`the evaluation needs at least one token, got ${n}`);
  if (!(Number.isInteger(context) && context >= 1)) throw new EvalError(`the context must be a positive integer, got ${context}`);
  if (!(Number.isInteger(stride) && stride >= 1 && stride <= context)) throw new EvalError(`the stride must be an integer from 1 to the context (${context}), got ${stride}`);
  const out: EvalWindow[] = [];
  let prevEnd = 0;
  for (let begin = 0; ; begin += stride) {
    const end = Math.min(begin + context, n);
    out.push({ begin, end, scoreFrom: prevEnd });
    prevEnd = end;
    if (end === n) break;
  }
  return out;
}

/** Input ids of a window (BOS + its text) and how many leading positions are not scored. */
export function windowInput(tokens: readonly number[], w: EvalWindow, bos: number): { ids: number[]; skip: number } {
  return { ids: [bos, ...tokens.slice(w.begin, w.end - 1)], skip: w.scoreFrom - w.begin };
}

/** log(sum(exp(row))) of logits[offset .. offset + n) in float64. */
export function logSumExp(logits: Float32Array, offset: number, n: number): number {
  let max = -Infinity;
  for (let i = offset; i < offset + n; i++) if (logits[i] > max) max = logits[i];
  if (!Number.isFinite(max)) return max;
  let sum = 0;
  for (let i = offset; i < offset + n; i++) sum += Math.exp(logits[i] - max);
  return max + Math.log(sum);
}

/** KL(P || Q) in nats of the softmax distributions of two logit rows, in float64. */
export function klDivergence(p: Float32Array, q: Float32Array, offset: number, n: number): number {
  const lp = logSumExp(p, offset, n);
  const lq = logSumExp(q, offset, n);
  let kl = 0;
  for (let i = offset; i < offset + n; i++) {
    const a = p[i] - lp;
    const pi = Math.exp(a);
    if (pi > 0) kl += pi * (a - (q[i] - lq));
  }
  // Rounding can leave a tiny negative sum when P and Q (nearly) agree; KL itself is never negative.
  return Math.max(0, kl);
}

function argmaxRow(v: Float32Array, offset: number, n: number): number {
  let best = offset;
  for (let i = offset + 1; i < offset + n; i++) if (v[i] > v[best]) best = i;
  return best - offset;
}

/**
 * Logits of the scored rows of one window: `ids` run from position 0 of a fresh sequence, and the rows
 * from `skip` on come back, [ids.length - skip, vocab].
 */
export type WindowLogits = (ids: number[], skip: number, signal?: AbortSignal) => Promise<Float32Array>;

/** Window logits from the WGSL forward pass (allLogits after reset). */
export function gpuWindowLogits(llm: LlamaGpu): WindowLogits {
  return async (ids, skip, signal) => {
    llm.reset();
    const all = await llm.forward(ids, { allLogits: true, signal });
    return skip === 0 ? all : all.slice(skip * llm.config.vocabSize);
  };
}

/** Window logits from the CPU reference forward pass, one position at a time. */
export function cpuWindowLogits(cpu: LlamaCpu): WindowLogits {
  return async (ids, skip, signal) => {
    const v = cpu.config.vocabSize;
    const out = new Float32Array((ids.length - skip) * v);
    cpu.reset();
    for (let pos = 0; pos < ids.length; pos++) {
      if (signal?.aborted) throw new CancelledError('evaluation cancelled');
      const logits = cpu.forward(ids[pos], pos);
      if (pos >= skip) out.set(logits, (pos - skip) * v);
    }
    return out;
  };
}

export interface ScoreOptions {
  /** The FP32 logits of window i's scored rows; without it KL is 0 and top-1 agreement 1 (the reference itself). */
  reference?: (i: number, ids: number[], skip: number) => Promise<Float32Array> | Float32Array;
  /** Receives each window's scored logits (e.g. to keep the FP32 reference). */
  keep?: (i: number, logits: Float32Array) => void;
  signal?: AbortSignal;
  onProgress?: (p: EvalProgress) => void;
  /** Progress label prefix. */
  label?: string;
}

/** Perplexity (and KL / top-1 against the reference) of a model over the windows of `tokens`. */
export async function scoreWindows(logitsOf: WindowLogits, vocab: number, tokens: readonly number[], windows: readonly EvalWindow[], bos: number, opts: ScoreOptions = {}): Promise<LlamaMetrics> {
  let nll = 0;
  let kl = 0;
  let agree = 0;
  let count = 0;
  for (const [i, w] of windows.entries()) {
    if (opts.signal?.aborted) throw new CancelledError('evaluation cancelled');
    const { ids, skip } = windowInput(tokens, w, bos);
    const logits = await logitsOf(ids, skip, opts.signal);
    const rows = w.end - w.scoreFrom;
    if (logits.length !== rows * vocab) throw new EvalError(`window ${i}: ${logits.length} logits for ${rows} rows of ${vocab}`);
    const ref = opts.reference ? await opts.reference(i, ids, skip) : undefined;
    if (ref && ref.length !== logits.length) throw new EvalError(`window ${i}: the reference has ${ref.length} logits, the model ${logits.length}`);
    for (let r = 0; r < rows; r++) {
      const o = r * vocab;
      const target = tokens[w.scoreFrom + r];
      const lse = logSumExp(logits, o, vocab);
      const lp = logits[o + target] - lse;
      if (!Number.isFinite(lp)) throw new EvalError(`non-finite log-probability (${lp}) at token ${w.scoreFrom + r}: the model produced NaN or Inf logits`);
      nll -= lp;
      if (ref) {
        kl += klDivergence(ref, logits, o, vocab);
        if (argmaxRow(ref, o, vocab) === argmaxRow(logits, o, vocab)) agree++;
      } else {
        agree++;
      }
      count++;
    }
    opts.keep?.(i, logits);
    opts.onProgress?.({ done: i + 1, total: windows.length, label: `${opts.label ? `${opts.label}: ` : ''}window ${i + 1} of ${windows.length}` });
  }
  return { perplexity: Math.exp(nll / count), nll: nll / count, kl: kl / count, top1: agree / count, tokens: count };
}
