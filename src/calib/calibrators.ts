/**
 * The activation calibrators of REFERENCE.md section 2, on a histogram of |x| (CPU, double precision;
 * this is the spec the GPU sweeps in gpu-calib.ts are tested against). They follow pytorch-quantization
 * calib/histogram.py (_compute_amax_percentile, _compute_amax_mse, _compute_amax_entropy), quirks included:
 *  - percentile returns the LEFT edge of the bin where the CDF reaches p;
 *  - MSE tries the centres of bins 128..bins-1 and fake-quantizes bin centres weighted by counts;
 *  - entropy (TensorRT EntropyCalibration2) sets bins[0] = bins[1] before anything else, tries stop bins
 *    128..bins inclusive and keeps the LAST minimum of KL(P || Q).
 * Max and moving-average min/max (onnxruntime calibrate.py MinMaxCalibrater, averaging constant 0.01) work on
 * exact running statistics, not on the histogram. No Node imports: the browser bundles this file.
 */
import { roundHalfEven } from '../quant/reference/f32.ts';
import { CALIB_METHODS, type CalibMethod, type ClipRoundError, type HistogramData, type SweepPoint } from './types.ts';

/** First candidate bin of the MSE and entropy sweeps (histogram.py start_bin). */
export const SWEEP_START_BIN = 128;

/** ORT MinMaxCalibrater's averaging_constant. */
export const MOVING_AVERAGE_CONSTANT = 0.01;

/** Largest integer level of symmetric signed b-bit quantization (narrow range, 127 for INT8). */
export function symmetricQmax(bits: number): number {
  if (!Number.isInteger(bits) || bits < 2 || bits > 16) throw new RangeError(`bits must be an integer from 2 to 16, got ${bits}`);
  return 2 ** (bits - 1) - 1;
}

/** Checks a histogram's shape and returns the total count; throws a RangeError naming the problem. */
export function validateHistogram(h: HistogramData): number {
  const bins = h.counts.length;
  if (bins < 1) throw new RangeError('histogram has no bins');
  if (!(Number.isFinite(h.range) && h.range >= 0)) throw new RangeError(`histogram range must be a finite number >= 0, got ${h.range}`);
  let total = 0;
  for (let k = 0; k < bins; k++) {
    const c = h.counts[k];
    if (!(Number.isFinite(c) && c >= 0)) throw new RangeError(`histogram bin ${k} holds ${c}; counts must be finite and >= 0`);
    total += c;
  }
  if (total === 0) throw new RangeError('histogram is empty: no values were counted, so there is no data to calibrate on');
  return total;
}

function requireSweepBins(h: HistogramData, what: string): void {
  const bins = h.counts.length;
  if (bins <= SWEEP_START_BIN) {
    throw new RangeError(`the ${what} calibrator needs more than ${SWEEP_START_BIN} histogram bins (it starts at bin ${SWEEP_START_BIN}), got ${bins}`);
  }
}

/** Left edge of bin k: k * (range / bins), as numpy's linspace edges compute it. */
export function binEdge(h: HistogramData, k: number): number {
  return k * (h.range / h.counts.length);
}

export function binCentre(h: HistogramData, k: number): number {
  return (binEdge(h, k) + binEdge(h, k + 1)) / 2;
}

/** amax at the p-th percentile of |x|: the left edge of the first bin whose CDF reaches p / 100. */
export function percentileAmax(h: HistogramData, percentile: number): number {
  if (!(percentile >= 0 && percentile <= 100)) throw new RangeError(`percentile must be in [0, 100], got ${percentile}`);
  const total = validateHistogram(h);
  const target = percentile / 100;
  // np.cumsum(hist / total): divide each bin first, then sum in order (the rounding matches numpy's).
  let cdf = 0;
  const bins = h.counts.length;
  for (let k = 0; k < bins; k++) {
    cdf += h.counts[k] / total;
    if (cdf >= target) return binEdge(h, k);
  }
  // np.searchsorted returns len(cdf) when rounding leaves the CDF just below the target.
  return binEdge(h, bins);
}

/**
 * Clipping and rounding error of symmetric b-bit quantization with threshold amax, from bin centres:
 * centres beyond amax are clipped (error c - amax), the others rounded to the grid of step amax / qmax.
 * amax <= 0 maps everything to 0 (all nonzero centres count as clipped).
 */
export function clipRoundError(h: HistogramData, amax: number, bits: number): ClipRoundError {
  const qmax = symmetricQmax(bits);
  const scale = amax / qmax;
  let clipSse = 0;
  let roundSse = 0;
  for (let k = 0; k < h.counts.length; k++) {
    const n = h.counts[k];
    if (n === 0) continue;
    const c = binCentre(h, k);
    if (c > amax) {
      clipSse += n * (c - amax) ** 2;
    } else if (amax > 0) {
      const q = Math.min(Math.max(roundHalfEven(c / scale), -qmax), qmax) * scale;
      roundSse += n * (c - q) ** 2;
    }
  }
  return { amax, clipSse, roundSse };
}

/** SQNR (dB) of the histogram's values quantized with amax: 10 log10(sum n c^2 / (clipSse + roundSse)). */
export function histogramSqnrDb(h: HistogramData, amax: number, bits: number): number {
  const e = clipRoundError(h, amax, bits);
  const err = e.clipSse + e.roundSse;
  if (err === 0) return Infinity;
  let signal = 0;
  for (let k = 0; k < h.counts.length; k++) signal += h.counts[k] * binCentre(h, k) ** 2;
  return 10 * Math.log10(signal / err);
}

/** MSE calibrator's value for candidate bin i: mean over all bins of count * (q(c) - c)^2 with amax = centre i. */
export function mseAt(h: HistogramData, i: number, bits: number): number {
  const e = clipRoundError(h, binCentre(h, i), bits);
  return (e.clipSse + e.roundSse) / h.counts.length;
}

/** The MSE calibrator's whole sweep: one point per candidate bin 128..bins-1 (amax = that bin's centre). */
export function mseSweep(h: HistogramData, bits: number): SweepPoint[] {
  validateHistogram(h);
  requireSweepBins(h, 'MSE');
  symmetricQmax(bits);
  const out: SweepPoint[] = [];
  for (let i = SWEEP_START_BIN; i < h.counts.length; i++) out.push({ index: i, amax: binCentre(h, i), value: mseAt(h, i, bits) });
  return out;
}

/** Counts with EntropyCalibration2's quirk bins[0] = bins[1] applied (histogram.py does it on the data). */
function entropyBins(h: HistogramData): Float64Array {
  const b = Float64Array.from(h.counts as ArrayLike<number>);
  if (b.length > 1) b[0] = b[1];
  return b;
}

/**
 * KL(P || Q) of the entropy calibrator for stop bin i, given the quirk-adjusted bins and their suffix sums.
 * Source bin j < i belongs to quantized level floor(j * nq / i). histogram.py finds the level with
 * np.digitize(j, np.linspace(0, i, nq + 1)) - 1; the exact integer floor gives the same level here because
 * nq is a power of two, so every linspace point k * (i / nq) is exact in binary floating point.
 */
function klForStop(b: Float64Array, suffix: Float64Array, i: number, nq: number): number {
  const total = suffix[0];
  if (total === 0) return 0; // nothing outside bin 0: P and Q are both empty, nothing to choose
  const tail = suffix[i];
  const inside = total - tail; // sum of Q: each level's mass is spread over its nonzero source bins
  let kl = 0;
  let j = 0;
  for (let level = 0; level < nq; level++) {
    const end = Math.ceil(((level + 1) * i) / nq);
    let mass = 0;
    let nonzero = 0;
    for (let t = j; t < end; t++) {
      if (b[t] > 0) {
        mass += b[t];
        nonzero++;
      }
    }
    for (let t = j; t < end; t++) {
      const p = t === i - 1 ? b[t] + tail : b[t];
      if (p === 0) continue;
      if (b[t] === 0) return Infinity; // the tail lands on an empty last bin: P > 0 where Q = 0
      const q = mass / nonzero;
      const pn = p / total;
      kl += pn * Math.log(pn / (q / inside));
    }
    j = end;
  }
  return kl;
}

function entropyState(h: HistogramData, bits: number): { b: Float64Array; suffix: Float64Array; nq: number } {
  validateHistogram(h);
  requireSweepBins(h, 'entropy');
  symmetricQmax(bits);
  const b = entropyBins(h);
  const suffix = new Float64Array(b.length + 1);
  for (let k = b.length - 1; k >= 0; k--) suffix[k] = suffix[k + 1] + b[k];
  return { b, suffix, nq: 2 ** (bits - 1) };
}

/** KL divergence of the entropy calibrator for one stop bin i in [128, bins]. */
export function entropyAt(h: HistogramData, i: number, bits: number): number {
  const { b, suffix, nq } = entropyState(h, bits);
  return klForStop(b, suffix, i, nq);
}

/**
 * The entropy calibrator's sweep: one point per stop bin i = 128..bins (amax = edge i = i * range / bins),
 * value KL(P || Q) as scipy.stats.entropy computes it after normalising P and Q to sum 1. Degenerate cases
 * the reference turns into NaN are defined here: Q empty while P is not gives +Infinity; a histogram whose
 * only mass sits in bin 0 gives KL 0 everywhere (so the last candidate, the full range, is chosen).
 */
export function entropySweep(h: HistogramData, bits: number): SweepPoint[] {
  const { b, suffix, nq } = entropyState(h, bits);
  const out: SweepPoint[] = [];
  for (let i = SWEEP_START_BIN; i <= b.length; i++) out.push({ index: i, amax: binEdge(h, i), value: klForStop(b, suffix, i, nq) });
  return out;
}

/** The best point of a sweep: the first minimum (np.argmin, MSE) or the last one (entropy). */
export function pickBest(points: readonly SweepPoint[], rule: 'first' | 'last'): SweepPoint {
  if (points.length === 0) throw new RangeError('cannot pick the best of an empty sweep');
  let best = points[0];
  for (const p of points) {
    if (Number.isNaN(p.value)) continue;
    if (p.value < best.value || Number.isNaN(best.value) || (rule === 'last' && p.value === best.value)) best = p;
  }
  return best;
}

/**
 * Re-decide a sweep computed in lower precision (the f32 GPU sweeps): every candidate whose value lies within
 * the tolerance of the sweep's minimum is re-scored with `exact` (the double-precision CPU value) and the rule
 * is applied to those. The answer equals the CPU calibrator's whenever the sweep's error is below the tolerance.
 */
export function refineBest(
  points: readonly SweepPoint[],
  exact: (index: number) => number,
  rule: 'first' | 'last',
  tol: { rel: number; abs: number } = { rel: 1e-4, abs: 1e-6 },
): SweepPoint {
  const best = pickBest(points, rule);
  if (!Number.isFinite(best.value)) return best;
  const limit = best.value + tol.abs + tol.rel * Math.abs(best.value);
  const near = points.filter((p) => p.value <= limit).map((p) => ({ ...p, value: exact(p.index) }));
  return pickBest(near, rule);
}

/**
 * Clipping and rounding error as a function of amax over the candidate range of the MSE calibrator (the
 * centres of bins 128..bins-1), for a chart; `points` evenly spaced candidates (all of them by default).
 */
export function clipRoundCurve(h: HistogramData, bits: number, points?: number): ClipRoundError[] {
  validateHistogram(h);
  requireSweepBins(h, 'MSE');
  const first = SWEEP_START_BIN;
  const last = h.counts.length - 1;
  const n = Math.min(points ?? last - first + 1, last - first + 1);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`points must be a positive integer, got ${points}`);
  const out: ClipRoundError[] = [];
  for (let t = 0; t < n; t++) {
    const i = n === 1 ? last : first + Math.round((t * (last - first)) / (n - 1));
    out.push(clipRoundError(h, binCentre(h, i), bits));
  }
  return out;
}

/** ORT MinMaxCalibrater with moving_average: the first batch sets min/max, later ones move them by 1% of the gap. */
export class MovingAverageMinMax {
  min = NaN;
  max = NaN;
  batches = 0;

  constructor(readonly constant = MOVING_AVERAGE_CONSTANT) {}

  addBatch(batchMin: number, batchMax: number): void {
    if (!(Number.isFinite(batchMin) && Number.isFinite(batchMax) && batchMin <= batchMax)) {
      throw new RangeError(`a batch needs finite min <= max, got min ${batchMin}, max ${batchMax}`);
    }
    if (this.batches === 0) {
      this.min = batchMin;
      this.max = batchMax;
    } else {
      this.min += this.constant * (batchMin - this.min);
      this.max += this.constant * (batchMax - this.max);
    }
    this.batches++;
  }

  /** Adds a batch of values; non-finite values are skipped, a batch without finite values is ignored. */
  addValues(x: ArrayLike<number>): void {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      if (!Number.isFinite(v)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (lo <= hi) this.addBatch(lo, hi);
  }

  get amax(): number {
    if (this.batches === 0) throw new RangeError('moving-average min/max has seen no batch');
    return Math.max(Math.abs(this.min), Math.abs(this.max));
  }
}

/** The percentile of a `percentile-99.99` style method. */
export function methodPercentile(m: CalibMethod): number | undefined {
  return m.startsWith('percentile-') ? Number(m.slice('percentile-'.length)) : undefined;
}

export interface TensorStats {
  /** Exact running max |x|. */
  absmax: number;
  movingMin: number;
  movingMax: number;
}

export interface CalibrateOptions {
  /** Sweeps computed elsewhere (the GPU), used instead of the CPU ones; their best points are taken as given. */
  mseSweep?: readonly SweepPoint[];
  entropySweep?: readonly SweepPoint[];
}

export interface CalibrationChoice {
  amax: Record<CalibMethod, number>;
  sqnrDb: Record<CalibMethod, number>;
  /** Highest SQNR; ties go to the method listed first in CALIB_METHODS. */
  best: CalibMethod;
}

/** Every calibrator's amax for one tensor, with the SQNR each gives on the histogram. */
export function calibrateTensor(h: HistogramData, stats: TensorStats, bits: number, opts: CalibrateOptions = {}): CalibrationChoice {
  validateHistogram(h);
  symmetricQmax(bits);
  const amax = {} as Record<CalibMethod, number>;
  if (h.range === 0) {
    // Every value was 0: any threshold reproduces them, and 0 is the only one the data supports.
    for (const m of CALIB_METHODS) amax[m] = 0;
  } else {
    for (const m of CALIB_METHODS) {
      const p = methodPercentile(m);
      if (p !== undefined) amax[m] = percentileAmax(h, p);
    }
    amax.max = stats.absmax;
    amax['ma-minmax'] = Math.max(Math.abs(stats.movingMin), Math.abs(stats.movingMax));
    amax.mse = pickBest(opts.mseSweep ?? mseSweep(h, bits), 'first').amax;
    amax.entropy = pickBest(opts.entropySweep ?? entropySweep(h, bits), 'last').amax;
    // A grown histogram's range exceeds the largest value seen (up to 2x): a threshold above that value
    // only widens the quantization step, so every histogram method is capped at the running absmax.
    if (stats.absmax > 0) for (const m of CALIB_METHODS) amax[m] = Math.min(amax[m], stats.absmax);
  }
  const sqnrDb = {} as Record<CalibMethod, number>;
  let best: CalibMethod = CALIB_METHODS[0];
  for (const m of CALIB_METHODS) {
    sqnrDb[m] = histogramSqnrDb(h, amax[m], bits);
    if (sqnrDb[m] > sqnrDb[best]) best = m;
  }
  return { amax, sqnrDb, best };
}
