/**
 * CPU reference for AWQ on one linear layer (REFERENCE.md section 4): the activation-aware scale search
 * and the weight clip search. This is the spec the WGSL kernels in shaders/awq-*.wgsl are tested against.
 *
 * Scale search (llm-awq auto_scale.py, AutoAWQ quantizer.py `_search_best_scale`), W [out, in], X [tokens, in]:
 *   x_mean[j] = mean_t |X[t, j]|
 *   x-only:  s = clamp(x_mean^r, min 1e-4)
 *   duo:     w_mean[j] = mean_o |W[o, j]| / (absmax of the group of row o holding j + 1e-6)
 *            s = clamp(x_mean^r / (w_mean^(1-r) + 1e-4), min 1e-4)
 *   s = s / sqrt(max(s) * min(s));  W' = Q(W * s) / s;  loss = mean_{t,o} (X W^T - X W'^T)^2
 * over r = i / 20, i = 0..19, keeping the first r of smallest loss. Because the inspected module is a
 * single linear, loss = sum_o dW_o G dW_o^T / (tokens * out) with G = X^T X, dW = W - W' (the Gram form).
 *
 * Clip search (llm-awq auto_clip.py), on the scaled weight W*s with X/s as input: per output row and
 * group, max_val = absmax * (1 - i/20), i = 0..9; the group is clamped to [-max_val, max_val] and
 * fake-quantized (its range taken after clamping); error = mean over sampled tokens of the squared
 * difference of the group's partial dot products with the original and the clipped-quantized weights.
 * Tokens are sampled every max(1, floor(tokens / 512)) rows; a strictly smaller error replaces the best.
 *
 * Arithmetic: W*s, X/s, Q(.) and the division by s are float32 operations (as the kernels do them);
 * means, dot products and losses accumulate in float64. No Node imports.
 */
import { validateQuantConfig, QuantConfigError, type QuantConfig } from '../quant/config.ts';
import { groupRange, makeGroupLayout, type GroupLayout } from '../quant/layout.ts';
import { fround } from '../quant/reference/f32.ts';
import { allocCodes, dequantizeValue, qparamsOfGroup, quantizeValue, type Codes, type QParams } from '../quant/reference/quantize.ts';

/** The ratio grid of the scale search: r = i / 20, i = 0..19 (auto_scale.py n_grid = 20). */
export const AWQ_SCALE_GRID = 20;
/** Clip candidates: max_val = absmax * (1 - i / 20) for i < 20 * 0.5 (auto_clip.py n_grid = 20, max_shrink = 0.5). */
export const AWQ_CLIP_GRID = 20;
export const AWQ_CLIP_MAX_SHRINK = 0.5;
export const AWQ_CLIP_CANDIDATES = Math.round(AWQ_CLIP_GRID * AWQ_CLIP_MAX_SHRINK);
/** auto_clip.py n_sample_token. */
export const AWQ_CLIP_SAMPLE_TOKENS = 512;

export type AwqLossForm = 'gram' | 'direct';

export interface AwqConfig {
  /** The weight quantizer: per-group or per-channel (per-tensor is refused); clipRatio is ignored (taken as 1). */
  quant: QuantConfig;
  /** AutoAWQ duo scaling (x_mean^r / w_mean^(1-r)); false: llm-awq's x_mean^r. */
  duo: boolean;
  /** Number of ratios, r = i / grid for i < grid (default 20). */
  grid?: number;
  /** How the output MSE is computed: via G = X^T X (default) or from X W^T directly. Both give the same number. */
  loss?: AwqLossForm;
}

/** Validated quantizer for AWQ: clip ratio 1 (AWQ clips explicitly), per-group or per-channel. */
export function awqQuantConfig(quant: QuantConfig): Required<QuantConfig> {
  const cfg = validateQuantConfig({ ...quant, clipRatio: 1 });
  if (cfg.granularity === 'tensor') throw new QuantConfigError('AWQ quantizes weights per group or per output channel, not per tensor');
  return cfg;
}

/** Group layout of a weight [out, in] for AWQ; partial last groups are allowed, as in the quantizer. */
export function awqLayout(shape: readonly number[], quant: QuantConfig): GroupLayout {
  if (shape.length !== 2) throw new QuantConfigError(`AWQ needs a 2-D weight [out, in], got shape [${shape.join(', ')}]`);
  const cfg = awqQuantConfig(quant);
  return makeGroupLayout(shape, cfg.granularity, cfg.groupSize);
}

/** The ratios searched: i / grid. */
export function awqRatios(grid = AWQ_SCALE_GRID): number[] {
  return Array.from({ length: grid }, (_, i) => i / grid);
}

/** x_mean[j] = mean over tokens of |X[t, j]|. */
export function activationMeanAbs(x: Float32Array, tokens: number, inDim: number): Float32Array {
  const sum = new Float64Array(inDim);
  for (let t = 0; t < tokens; t++) {
    const o = t * inDim;
    for (let j = 0; j < inDim; j++) sum[j] += Math.abs(x[o + j]);
  }
  return Float32Array.from(sum, (v) => (tokens ? v / tokens : 0));
}

/**
 * AutoAWQ's w_mean: every |W[o, j]| divided by the absmax of its group (+ 1e-6), averaged over the rows.
 * groupSize 0 (or >= in) normalises by the whole row (per-channel quantization).
 */
export function wMeanOfWeight(w: Float32Array, shape: readonly number[], groupSize: number): Float32Array {
  const [out, inDim] = shape;
  const g = groupSize > 0 ? Math.min(groupSize, inDim) : inDim;
  const sum = new Float64Array(inDim);
  for (let o = 0; o < out; o++) {
    for (let j0 = 0; j0 < inDim; j0 += g) {
      const j1 = Math.min(j0 + g, inDim);
      let amax = 0;
      for (let j = j0; j < j1; j++) amax = Math.max(amax, Math.abs(w[o * inDim + j]));
      const denom = amax + 1e-6;
      for (let j = j0; j < j1; j++) sum[j] += Math.abs(w[o * inDim + j]) / denom;
    }
  }
  return Float32Array.from(sum, (v) => v / out);
}

/**
 * AWQ scales for one ratio, normalised by sqrt(max * min). A zero x_mean gives 0^r = 0 (r > 0), clamped
 * to 1e-4, or 0^0 = 1; a zero w_mean gives 0^(1-r) + 1e-4 = 1e-4 in the denominator: never a division by 0.
 */
export function awqScalesForRatio(xMean: Float32Array, wMean: Float32Array | undefined, ratio: number, duo: boolean): Float32Array {
  if (duo && !wMean) throw new RangeError('duo scaling needs w_mean');
  const n = xMean.length;
  const s = new Float64Array(n);
  let mx = -Infinity;
  let mn = Infinity;
  for (let j = 0; j < n; j++) {
    let v = Math.pow(xMean[j], ratio);
    if (duo) v = v / (Math.pow(wMean![j], 1 - ratio) + 1e-4);
    v = Math.max(v, 1e-4);
    s[j] = v;
    if (v > mx) mx = v;
    if (v < mn) mn = v;
  }
  const norm = Math.sqrt(mx * mn);
  return Float32Array.from(s, (v) => v / norm);
}

/** W * s with s along the input axis (columns), in float32. */
export function scaleColumns(w: Float32Array, shape: readonly number[], s: Float32Array): Float32Array {
  const [out, inDim] = shape;
  const y = new Float32Array(out * inDim);
  for (let o = 0; o < out; o++) for (let j = 0; j < inDim; j++) y[o * inDim + j] = fround(w[o * inDim + j] * s[j]);
  return y;
}

/** X / s along the input axis, in float32 (the input the scaled weight sees: llm-awq apply_scale). */
export function divideColumns(x: Float32Array, rows: number, s: Float32Array): Float32Array {
  const inDim = s.length;
  const y = new Float32Array(rows * inDim);
  for (let t = 0; t < rows; t++) for (let j = 0; j < inDim; j++) y[t * inDim + j] = fround(x[t * inDim + j] / s[j]);
  return y;
}

/** Range statistics of a clamped run [start, end) of w: clamping is monotone, so min/max are clamped too. */
function rangeOf(w: Float32Array, start: number, end: number): { min: number; max: number; absmax: number } {
  let mn = Infinity;
  let mx = -Infinity;
  for (let i = start; i < end; i++) {
    mn = Math.min(mn, w[i]);
    mx = Math.max(mx, w[i]);
  }
  return { min: mn, max: mx, absmax: Math.max(-mn, mx) };
}

function clampedQParams(st: { min: number; max: number; absmax: number }, maxVal: number, cfg: Required<QuantConfig>) {
  const c = (v: number) => Math.min(Math.max(v, -maxVal), maxVal);
  return qparamsOfGroup({ min: c(st.min), max: c(st.max), absmax: Math.min(st.absmax, maxVal) }, cfg);
}

export interface AwqQuantized {
  /** Q(clamp(W*s)) / s: the fake-quantized weight in the original scale. */
  weight: Float32Array;
  /** Integer codes of clamp(W*s) (the scaled domain, where an AWQ checkpoint stores them). */
  codes: Codes;
  qparams: QParams;
}

/**
 * Quantize the scaled weight W*s (each group optionally clamped to [-maxVal, maxVal] first; the range
 * is taken after clamping) and divide the fake-quantized values by s. Codes and parameters are those
 * of the scaled domain.
 */
export function quantizeScaledRef(w: Float32Array, shape: readonly number[], s: Float32Array, quant: QuantConfig, maxVal?: Float32Array): AwqQuantized {
  const cfg = awqQuantConfig(quant);
  const layout = awqLayout(shape, cfg);
  const inDim = shape[1];
  const ws = scaleColumns(w, shape, s);
  const codes = allocCodes(layout.n, cfg);
  const qparams: QParams = { scale: new Float32Array(layout.numGroups), invScale: new Float32Array(layout.numGroups), zero: new Float32Array(layout.numGroups) };
  const weight = new Float32Array(layout.n);
  for (let g = 0; g < layout.numGroups; g++) {
    const [a, b] = groupRange(layout, g);
    const st = rangeOf(ws, a, b);
    const mv = maxVal ? maxVal[g] : Infinity;
    const p = clampedQParams(st, mv, cfg);
    qparams.scale[g] = p.scale;
    qparams.invScale[g] = p.invScale;
    qparams.zero[g] = p.zero;
    for (let i = a; i < b; i++) {
      const v = Math.min(Math.max(ws[i], -mv), mv);
      const q = quantizeValue(v, p.invScale, p.zero, cfg);
      codes[i] = q;
      weight[i] = fround(dequantizeValue(q, p.scale, p.zero, cfg) / s[i % inDim]);
    }
  }
  return { weight, codes, qparams };
}

/** Q(W * s) / s, the candidate weight of one ratio. */
export function fakeQuantizeScaledRef(w: Float32Array, shape: readonly number[], s: Float32Array, quant: QuantConfig): Float32Array {
  return quantizeScaledRef(w, shape, s, quant).weight;
}

/** mean over tokens and outputs of (X W^T - X W'^T)^2, accumulated in float64 as X (W - W')^T. */
export function awqLossDirect(x: Float32Array, tokens: number, w: Float32Array, wq: Float32Array, shape: readonly number[]): number {
  const [out, inDim] = shape;
  const dw = new Float64Array(out * inDim);
  for (let i = 0; i < dw.length; i++) dw[i] = w[i] - wq[i];
  let sse = 0;
  for (let t = 0; t < tokens; t++) {
    const xo = t * inDim;
    for (let o = 0; o < out; o++) {
      const wo = o * inDim;
      let d = 0;
      for (let j = 0; j < inDim; j++) d += x[xo + j] * dw[wo + j];
      sse += d * d;
    }
  }
  return sse / (tokens * out);
}

/** G = X^T X, [in, in], in float64. */
export function gramMatrix(x: Float32Array, tokens: number, inDim: number): Float64Array {
  const g = new Float64Array(inDim * inDim);
  for (let t = 0; t < tokens; t++) {
    const xo = t * inDim;
    for (let i = 0; i < inDim; i++) {
      const xi = x[xo + i];
      if (xi === 0) continue;
      const gi = i * inDim;
      for (let j = i; j < inDim; j++) g[gi + j] += xi * x[xo + j];
    }
  }
  for (let i = 0; i < inDim; i++) for (let j = 0; j < i; j++) g[i * inDim + j] = g[j * inDim + i];
  return g;
}

/** The same loss from the Gram matrix: sum_o dW_o G dW_o^T / (tokens * out). */
export function awqLossGram(g: Float64Array | Float32Array, w: Float32Array, wq: Float32Array, shape: readonly number[], tokens: number): number {
  const [out, inDim] = shape;
  const d = new Float64Array(inDim);
  let total = 0;
  for (let o = 0; o < out; o++) {
    for (let j = 0; j < inDim; j++) d[j] = w[o * inDim + j] - wq[o * inDim + j];
    for (let i = 0; i < inDim; i++) {
      if (d[i] === 0) continue;
      let gi = 0;
      const go = i * inDim;
      for (let j = 0; j < inDim; j++) gi += g[go + j] * d[j];
      total += d[i] * gi;
    }
  }
  return total / (tokens * out);
}

export interface AwqSearchResult {
  ratios: number[];
  /** Output MSE at every ratio. */
  losses: number[];
  bestRatio: number;
  bestIndex: number;
  /** The scales of the best ratio, float32 [in]. */
  scales: Float32Array;
  /** Q(W * s) / s at the best ratio (no clipping), float32 [out, in]. */
  quantizedWeight: Float32Array;
  /**
   * Output MSE of plain round-to-nearest, Q(W) with s = 1. For x-only scaling this equals losses[0]
   * (x_mean^0 = 1 for every channel, so s = 1 after normalisation); for duo scaling ratio 0 is not RTN.
   */
  rtnLoss: number;
  xMean: Float32Array;
  /** AutoAWQ's w_mean (duo scaling only). */
  wMean?: Float32Array;
}

/** Index of the smallest loss, the first one on ties (a strictly smaller loss replaces the best). */
export function argminFirst(losses: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < losses.length; i++) if (losses[i] < losses[best]) best = i;
  return best;
}

export function checkLayerShapes(w: Float32Array, shape: readonly number[], x: Float32Array, tokens: number): void {
  if (shape.length !== 2) throw new QuantConfigError(`AWQ needs a 2-D weight [out, in], got shape [${shape.join(', ')}]`);
  const [out, inDim] = shape;
  if (w.length !== out * inDim) throw new RangeError(`weight holds ${w.length} values, shape [${out}, ${inDim}] needs ${out * inDim}`);
  if (!(tokens >= 1) || x.length !== tokens * inDim) throw new RangeError(`activations hold ${x.length} values, [${tokens}, ${inDim}] needs ${tokens * inDim}`);
}

/** The scale search on the CPU. */
export function awqSearchRef(w: Float32Array, shape: readonly number[], x: Float32Array, tokens: number, cfg: AwqConfig): AwqSearchResult {
  checkLayerShapes(w, shape, x, tokens);
  const quant = awqQuantConfig(cfg.quant);
  const inDim = shape[1];
  const ratios = awqRatios(cfg.grid);
  const xMean = activationMeanAbs(x, tokens, inDim);
  const wMean = cfg.duo ? wMeanOfWeight(w, shape, quant.groupSize) : undefined;
  const gram = (cfg.loss ?? 'gram') === 'gram' ? gramMatrix(x, tokens, inDim) : undefined;
  const lossOf = (wq: Float32Array) => (gram ? awqLossGram(gram, w, wq, shape, tokens) : awqLossDirect(x, tokens, w, wq, shape));
  let best: { index: number; loss: number; scales: Float32Array; wq: Float32Array } | undefined;
  const losses = ratios.map((r, index) => {
    const scales = awqScalesForRatio(xMean, wMean, r, cfg.duo);
    const wq = fakeQuantizeScaledRef(w, shape, scales, quant);
    const loss = lossOf(wq);
    if (!best || loss < best.loss) best = { index, loss, scales, wq };
    return loss;
  });
  const rtnLoss = lossOf(fakeQuantizeScaledRef(w, shape, new Float32Array(inDim).fill(1), quant));
  const b = best!;
  return { ratios, losses, bestRatio: ratios[b.index], bestIndex: b.index, scales: b.scales, quantizedWeight: b.wq, rtnLoss, xMean, wMean };
}

/** Row step of the clip search's token sample: max(1, floor(tokens / 512)) (auto_clip.py input_feat[:, 0::step]). */
export function clipSampleStep(tokens: number): number {
  return Math.max(1, Math.floor(tokens / AWQ_CLIP_SAMPLE_TOKENS));
}

/** Rows t = 0, step, 2 step, ... of X [tokens, in]: at most 1023 rows. */
export function clipSampleTokens(x: Float32Array, tokens: number, inDim: number): { rows: Float32Array; count: number } {
  const step = clipSampleStep(tokens);
  const count = Math.ceil(tokens / step);
  const rows = new Float32Array(count * inDim);
  for (let k = 0; k < count; k++) rows.set(x.subarray(k * step * inDim, (k * step + 1) * inDim), k * inDim);
  return { rows, count };
}

/** The shrink factors of the clip candidates as float32: 1 - i/20, i = 0..9. */
export function clipFactors(): Float32Array {
  return Float32Array.from({ length: AWQ_CLIP_CANDIDATES }, (_, i) => 1 - i / AWQ_CLIP_GRID);
}

export interface AwqClipResult {
  /** The chosen clip threshold per (row, group), row-major [out, groupsPerRow]. */
  maxVal: Float32Array;
  /** The group's absmax before clipping, same layout. */
  origMax: Float32Array;
  /** Index of the chosen candidate (max_val = origMax * (1 - i/20)). */
  choice: Uint8Array;
  /** Error of every candidate, [numGroups, 10]. */
  errors: Float64Array;
  /** Q(clamp(W*s, -maxVal, maxVal)) in the scaled domain (not divided by s), [out, in]. */
  clippedWeight: Float32Array;
  sampledTokens: number;
}

/**
 * The clip search on the CPU. `ws` is the scaled weight W*s and `xs` the activations divided by s,
 * [tokens, in] (the sample is taken here).
 */
export function awqClipRef(ws: Float32Array, shape: readonly number[], xs: Float32Array, tokens: number, quant: QuantConfig): AwqClipResult {
  checkLayerShapes(ws, shape, xs, tokens);
  const cfg = awqQuantConfig(quant);
  const layout = awqLayout(shape, cfg);
  const inDim = shape[1];
  const { rows: xr, count } = clipSampleTokens(xs, tokens, inDim);
  const factors = clipFactors();
  const nc = factors.length;
  const maxVal = new Float32Array(layout.numGroups);
  const origMax = new Float32Array(layout.numGroups);
  const choice = new Uint8Array(layout.numGroups);
  const errors = new Float64Array(layout.numGroups * nc);
  const clippedWeight = new Float32Array(layout.n);
  const d = new Float64Array(layout.groupSize);
  const fq = new Float32Array(layout.groupSize);
  for (let g = 0; g < layout.numGroups; g++) {
    const [a, b] = groupRange(layout, g);
    const col0 = a % inDim;
    const st = rangeOf(ws, a, b);
    origMax[g] = st.absmax;
    let bestErr = Infinity;
    let bestC = 0;
    let bestFq: Float32Array | undefined;
    for (let c = 0; c < nc; c++) {
      const mv = fround(st.absmax * factors[c]);
      const p = clampedQParams(st, mv, cfg);
      for (let i = a; i < b; i++) {
        const v = Math.min(Math.max(ws[i], -mv), mv);
        fq[i - a] = dequantizeValue(quantizeValue(v, p.invScale, p.zero, cfg), p.scale, p.zero, cfg);
        d[i - a] = fround(ws[i] - fq[i - a]);
      }
      let err = 0;
      for (let t = 0; t < count; t++) {
        const xo = t * inDim + col0;
        let dot = 0;
        for (let k = 0; k < b - a; k++) dot += xr[xo + k] * d[k];
        err += dot * dot;
      }
      err /= count;
      errors[g * nc + c] = err;
      if (err < bestErr) {
        bestErr = err;
        bestC = c;
        bestFq = fq.slice(0, b - a);
      }
    }
    choice[g] = bestC;
    maxVal[g] = fround(st.absmax * factors[bestC]);
    clippedWeight.set(bestFq!, a);
  }
  return { maxVal, origMax, choice, errors, clippedWeight, sampledTokens: count };
}

export interface AwqLayerResult {
  search: AwqSearchResult;
  clip?: AwqClipResult;
  /** Final weight in the original scale, Q(clamp(W*s)) / s, with its codes and parameters (scaled domain). */
  quantized: AwqQuantized;
  /** Output MSE of the final weight (after clipping). */
  finalLoss: number;
}

/** Scale search, clip search (unless `clip` is false) and the final quantization, all on the CPU. */
export function awqLayerRef(w: Float32Array, shape: readonly number[], x: Float32Array, tokens: number, cfg: AwqConfig & { clip?: boolean }): AwqLayerResult {
  const search = awqSearchRef(w, shape, x, tokens, cfg);
  const clip = cfg.clip === false ? undefined : awqClipRef(scaleColumns(w, shape, search.scales), shape, divideColumns(x, tokens, search.scales), tokens, cfg.quant);
  const quantized = quantizeScaledRef(w, shape, search.scales, cfg.quant, clip?.maxVal);
  const finalLoss = (cfg.loss ?? 'gram') === 'gram' ? awqLossGram(gramMatrix(x, tokens, shape[1]), w, quantized.weight, shape, tokens) : awqLossDirect(x, tokens, w, quantized.weight, shape);
  return { search, clip, quantized, finalLoss };
}
