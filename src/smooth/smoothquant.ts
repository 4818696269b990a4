/**
 * SmoothQuant (Xiao et al. 2023; mit-han-lab/smoothquant smooth.py, REFERENCE.md section 3), CPU reference.
 *
 * Per input channel j of a norm -> linears group:
 *   s_j = max(max|X_j|^alpha / max(max|W_j|, 1e-5)^(1 - alpha), 1e-5)
 * where max|W_j| is the largest |W[:, j]| over every linear of the group (q, k, v together; gate and up
 * together). Folding divides the norm's weight (and bias) by s and multiplies every linear's input column j
 * by s_j, so X W^T = (X / s)(W * s)^T exactly in real arithmetic: the quantization difficulty migrates
 * from the activations to the weights.
 *
 * Evaluated as W8A8 (the paper's setting): weights INT8 symmetric per output channel, activations INT8
 * symmetric per token (dynamic) or per tensor (static, amax from calibration), narrow range [-127, 127],
 * with the rounding and scale rules of the quantizer reference (quant/reference/quantize.ts), so the GPU
 * path (smoothquant-gpu.ts) computes the same codes.
 * No Node imports: the browser bundles this file.
 */
import { F32_MIN_NORMAL, fround, roundHalfEven } from '../quant/reference/f32.ts';

/** smooth.py clamps both the weight maxima and the factors at this value. */
export const SMOOTH_CLAMP = 1e-5;

/** The sweep's default alphas: 0, 0.05, ..., 1. */
export const DEFAULT_ALPHAS: readonly number[] = Array.from({ length: 21 }, (_, i) => Math.round(i * 5) / 100);

export type ActQuant = 'per-token' | 'per-tensor';

/** Bad SmoothQuant inputs (alpha out of range, mismatched shapes); the message says what. */
export class SmoothQuantError extends Error {
  override name = 'SmoothQuantError';
}

export function checkAlpha(alpha: number): void {
  if (!(typeof alpha === 'number' && alpha >= 0 && alpha <= 1)) throw new SmoothQuantError(`alpha must be a number in [0, 1], got ${String(alpha)}`);
}

/** A linear of a group: the weight as [out, in] row-major. */
export interface LinearWeight {
  name: string;
  /** [out, in] row-major. */
  weight: Float32Array;
  out: number;
}

/** Per input channel max |W[:, j]| over every linear of a group (each weight [out, in] with `channels` columns). */
export function weightColumnAbsmax(linears: readonly LinearWeight[], channels: number): Float32Array {
  const m = new Float32Array(channels);
  for (const l of linears) {
    if (l.weight.length !== l.out * channels) throw new SmoothQuantError(`${l.name}: ${l.weight.length} values is not [${l.out}, ${channels}]`);
    const w = l.weight;
    for (let o = 0; o < l.out; o++) {
      const row = o * channels;
      for (let j = 0; j < channels; j++) {
        const a = Math.abs(w[row + j]);
        if (a > m[j]) m[j] = a;
      }
    }
  }
  return m;
}

/**
 * The smoothing factors s_j = max|X_j|^alpha / max|W_j|^(1 - alpha), with max|W_j| and s clamped at 1e-5
 * as smooth.py does: a channel that never fires (max|X_j| = 0) or a column of zeros (max|W_j| = 0) gives a
 * finite factor. Non-finite activation maxima are refused (calibration refuses them earlier).
 */
export function smoothingFactors(actAbsmax: Float32Array, weightColAbsmax: Float32Array, alpha: number): Float32Array {
  checkAlpha(alpha);
  if (actAbsmax.length !== weightColAbsmax.length) {
    throw new SmoothQuantError(`activation maxima have ${actAbsmax.length} channels, the weights ${weightColAbsmax.length} input channels`);
  }
  const s = new Float32Array(actAbsmax.length);
  for (let j = 0; j < s.length; j++) {
    const a = actAbsmax[j];
    if (!Number.isFinite(a) || a < 0) throw new SmoothQuantError(`activation max of channel ${j} is ${a}: SmoothQuant needs finite statistics`);
    const w = Math.max(Math.abs(weightColAbsmax[j]), SMOOTH_CLAMP);
    // 0^0 = 1 in both JavaScript and torch.pow, so alpha = 0 gives s = 1 / max|W_j|.
    const v = Math.pow(a, alpha) / Math.pow(w, 1 - alpha);
    s[j] = Math.max(Number.isFinite(v) ? v : 3.4e38, SMOOTH_CLAMP);
  }
  return s;
}

/** How hard a set of per-channel maxima is to quantize per tensor: the largest, and how far it stands out. */
export interface Difficulty {
  /** max over channels. */
  max: number;
  median: number;
  /** max / median (Infinity when the median is 0). */
  spread: number;
}

export function difficulty(channelAbsmax: ArrayLike<number>): Difficulty {
  const v = Float64Array.from(channelAbsmax).sort();
  const n = v.length;
  if (n === 0) return { max: 0, median: 0, spread: 0 };
  const median = n % 2 ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  const max = v[n - 1];
  return { max, median, spread: median > 0 ? max / median : max > 0 ? Infinity : 1 };
}

/** Activation and weight difficulty of a group before and after smoothing with factors s. */
export function difficultyMigration(actAbsmax: Float32Array, weightColAbsmax: Float32Array, s: Float32Array): { activation: { before: Difficulty; after: Difficulty }; weight: { before: Difficulty; after: Difficulty } } {
  const actAfter = actAbsmax.map((a, j) => a / s[j]);
  const wAfter = weightColAbsmax.map((w, j) => w * s[j]);
  return {
    activation: { before: difficulty(actAbsmax), after: difficulty(actAfter) },
    weight: { before: difficulty(weightColAbsmax), after: difficulty(wAfter) },
  };
}

// ---------------------------------------------------------------------------------------------
// W8A8 fake quantization (symmetric INT8, narrow range), as quant/reference/quantize.ts does it.

const QMAX = 127;

/** Scale and inverse scale of a symmetric INT8 group with this absmax (qparamsOfGroup, sym, 8 bits). */
export function int8Scale(absmax: number): { scale: number; invScale: number } {
  const scale = fround(fround(absmax) / QMAX);
  if (!(scale >= F32_MIN_NORMAL)) return { scale: 1, invScale: 1 };
  return { scale, invScale: fround(1 / scale) };
}

function fakeQuantRun(x: Float32Array, out: Float32Array, start: number, end: number, scale: number, invScale: number): void {
  for (let i = start; i < end; i++) {
    const v = x[i];
    let q = Number.isNaN(v) ? 0 : !Number.isFinite(v) ? (v > 0 ? QMAX : -QMAX) : roundHalfEven(fround(v * invScale));
    if (q > QMAX) q = QMAX;
    else if (q < -QMAX) q = -QMAX;
    out[i] = fround(q * scale);
  }
}

/** Fake-quantize each row of x [rows, cols] with its own scale (per-token activations, per-channel weights). */
export function fakeQuantInt8Rows(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let amax = 0;
    for (let i = r * cols; i < (r + 1) * cols; i++) {
      const a = Math.abs(x[i]);
      if (a > amax && Number.isFinite(a)) amax = a;
    }
    const { scale, invScale } = int8Scale(amax);
    fakeQuantRun(x, out, r * cols, (r + 1) * cols, scale, invScale);
  }
  return out;
}

/** Fake-quantize all of x with one scale from `amax` (static per-tensor activations). */
export function fakeQuantInt8Tensor(x: Float32Array, amax: number): Float32Array {
  const out = new Float32Array(x.length);
  const { scale, invScale } = int8Scale(amax);
  fakeQuantRun(x, out, 0, x.length, scale, invScale);
  return out;
}

/** y [rows, out] = x [rows, in] . w [out, in]^T, sums in double, stored as f32. */
export function matmulXWt(x: Float32Array, rows: number, inn: number, w: Float32Array, out: number): Float32Array {
  const y = new Float32Array(rows * out);
  for (let r = 0; r < rows; r++) {
    const xo = r * inn;
    for (let o = 0; o < out; o++) {
      const wo = o * inn;
      let acc = 0;
      for (let k = 0; k < inn; k++) acc += x[xo + k] * w[wo + k];
      y[r * out + o] = acc;
    }
  }
  return y;
}

/**
 * x [rows, cols] with every column j multiplied by s_j (mode 'mul') or by fround(1 / s_j) (mode 'div'), in f32.
 * Dividing through the f32 reciprocal keeps the GPU (smooth-scale-columns.wgsl multiplies only) bit-exact.
 */
export function scaleColumns(x: Float32Array, cols: number, s: Float32Array, mode: 'mul' | 'div'): Float32Array {
  const f = mode === 'mul' ? s : reciprocals(s);
  const y = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = fround(x[i] * f[i % cols]);
  return y;
}

/** fround(1 / s_j) for every factor. */
export function reciprocals(s: Float32Array): Float32Array {
  return s.map((v) => fround(1 / v));
}

/** Output error of one quantized linear layer. */
export interface LayerError {
  name: string;
  /** Mean squared error of the layer output Y against the FP32 output. */
  mse: number;
  /** SQNR of the output, dB: 10 log10(sum Y^2 / sum (Y - Yq)^2). */
  sqnr: number;
}

export interface W8A8Options {
  act: ActQuant;
  /**
   * Static per-tensor amax of the smoothed activation: max_j(max|X_j| / s_j) from the calibration
   * statistics. Without it, the absmax of the sampled rows.
   */
  actAmax?: number;
}

/** One group's evaluation inputs: sampled rows of the shared input and the linears' weights. */
export interface GroupSample {
  channels: number;
  /** Sampled activation rows [rows, channels] of the norm's output (the linears' input). */
  x: Float32Array;
  rows: number;
  linears: readonly LinearWeight[];
}

export function errorOf(name: string, y: Float32Array, yq: Float32Array): LayerError {
  let sse = 0;
  let ss = 0;
  for (let i = 0; i < y.length; i++) {
    const d = y[i] - yq[i];
    sse += d * d;
    ss += y[i] * y[i];
  }
  return { name, mse: y.length ? sse / y.length : 0, sqnr: sse === 0 ? Infinity : 10 * Math.log10(ss / sse) };
}

/** Static amax of the smoothed activation from calibration maxima: max_j(max|X_j| / s_j). */
export function smoothedActAmax(actAbsmax: Float32Array, s: Float32Array): number {
  let m = 0;
  for (let j = 0; j < s.length; j++) m = Math.max(m, fround(actAbsmax[j] / s[j]));
  return m;
}

/**
 * W8A8 output error of every linear of a group for smoothing factors s: Y = X W^T against
 * Q_a(X / s) Q_w(W * s)^T (s = all ones is no smoothing). The CPU reference of SmoothQuantKernels.groupError.
 */
export function groupErrorRef(g: GroupSample, s: Float32Array, opts: W8A8Options): LayerError[] {
  const { channels: c, rows } = g;
  if (g.x.length !== rows * c) throw new SmoothQuantError(`activation rows: ${g.x.length} values is not [${rows}, ${c}]`);
  if (s.length !== c) throw new SmoothQuantError(`${s.length} smoothing factors for ${c} channels`);
  const xs = scaleColumns(g.x, c, s, 'div');
  let amax = opts.actAmax;
  if (opts.act === 'per-tensor' && amax === undefined) {
    amax = 0;
    for (const v of xs) if (Math.abs(v) > amax) amax = Math.abs(v);
  }
  const xq = opts.act === 'per-token' ? fakeQuantInt8Rows(xs, rows, c) : fakeQuantInt8Tensor(xs, amax!);
  return g.linears.map((l) => {
    const y = matmulXWt(g.x, rows, c, l.weight, l.out);
    const wq = fakeQuantInt8Rows(scaleColumns(l.weight, c, s, 'mul'), l.out, c);
    return errorOf(l.name, y, matmulXWt(xq, rows, c, wq, l.out));
  });
}

/** Evaluates the W8A8 error of a group for given factors: the CPU reference, or the GPU. */
export type GroupErrorFn = (s: Float32Array, opts: W8A8Options) => Promise<LayerError[]>;

export interface SweepPoint {
  alpha: number;
  activation: Difficulty;
  weight: Difficulty;
  layers: LayerError[];
  /** Sum of the linears' output MSE. */
  mse: number;
}

export interface GroupSweep {
  group: string;
  linears: string[];
  points: SweepPoint[];
  /** Without smoothing (s = 1): the baseline every alpha is compared with. */
  baseline: { activation: Difficulty; weight: Difficulty; layers: LayerError[]; mse: number };
  bestAlpha: number;
}

export interface SweepGroupInput {
  /** The norm whose weight the factors fold into. */
  group: string;
  linears: string[];
  actAbsmax: Float32Array;
  weightColAbsmax: Float32Array;
  error: GroupErrorFn;
}

function sumMse(layers: LayerError[]): number {
  return layers.reduce((a, l) => a + l.mse, 0);
}

/**
 * For each alpha: the factors, the difficulty after smoothing, the W8A8 error of the group's linears;
 * plus the unsmoothed baseline and the alpha with the least summed error (the smaller alpha on ties).
 */
export async function alphaSweepGroup(input: SweepGroupInput, alphas: readonly number[], act: ActQuant): Promise<GroupSweep> {
  if (alphas.length === 0) throw new SmoothQuantError('the alpha sweep needs at least one alpha');
  for (const a of alphas) checkAlpha(a);
  const ones = new Float32Array(input.actAbsmax.length).fill(1);
  const base = await input.error(ones, { act, actAmax: smoothedActAmax(input.actAbsmax, ones) });
  const points: SweepPoint[] = [];
  for (const alpha of alphas) {
    const s = smoothingFactors(input.actAbsmax, input.weightColAbsmax, alpha);
    const m = difficultyMigration(input.actAbsmax, input.weightColAbsmax, s);
    const layers = await input.error(s, { act, actAmax: smoothedActAmax(input.actAbsmax, s) });
    points.push({ alpha, activation: m.activation.after, weight: m.weight.after, layers, mse: sumMse(layers) });
  }
  const best = points.reduce((b, p) => (p.mse < b.mse ? p : b), points[0]);
  return {
    group: input.group,
    linears: input.linears,
    points,
    baseline: { activation: difficulty(input.actAbsmax), weight: difficulty(input.weightColAbsmax), layers: base, mse: sumMse(base) },
    bestAlpha: best.alpha,
  };
}

/** The alpha minimising the error summed over all groups (every sweep must use the same alphas). */
export function bestModelAlpha(sweeps: readonly GroupSweep[]): { alpha: number; mse: number } {
  if (sweeps.length === 0) throw new SmoothQuantError('no group to choose an alpha for');
  const alphas = sweeps[0].points.map((p) => p.alpha);
  let best = { alpha: alphas[0], mse: Infinity };
  alphas.forEach((alpha, k) => {
    const mse = sweeps.reduce((a, s) => {
      if (s.points[k]?.alpha !== alpha) throw new SmoothQuantError('the group sweeps used different alphas');
      return a + s.points[k].mse;
    }, 0);
    if (mse < best.mse) best = { alpha, mse };
  });
  return best;
}

/** A CPU GroupErrorFn over sampled rows. */
export function cpuGroupError(g: GroupSample): GroupErrorFn {
  return async (s, opts) => groupErrorRef(g, s, opts);
}
