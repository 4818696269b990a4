/**
 * A histogram of |x| that grows with the data, batch by batch, always 2048 bins (CPU reference of
 * GpuGrowingHistogram in gpu-calib.ts).
 *  - The range is set by the first batch whose absmax is nonzero; zeros seen before land in bin 0 anyway.
 *  - When a batch's absmax exceeds the range, the range doubles (as often as needed) and bins merge pairwise,
 *    new[k] = old[2k] + old[2k+1], before the batch is added. Merging is exact.
 *  - A batch is binned like absHistogramRef: bin = min(floor(|x| * f32(bins / range)), bins - 1) in f32;
 *    NaN / Inf are counted apart.
 *
 * Relation to a one-shot histogram of all the values at the final range R: because R = 2^m * R_old and
 * f32(bins / R) = f32(bins / R_old) / 2^m exactly, |x| * inv lands in old bin b exactly when it lands in new
 * bin floor(b / 2^m) - except for values whose |x| * f32(bins / R_old) reached `bins` (a value equal to the
 * range of its time), which were clamped into that range's last bin: they stay one bin below where the
 * one-shot histogram puts them. See tests/calib/calibrators.test.ts for the exact check.
 * pytorch-quantization's HistogramCalibrator grows differently (it appends bins of the same width); doubling
 * keeps a fixed bin count, which the 2048-bin calibrators and a fixed GPU buffer need.
 */
import { fround } from '../quant/reference/f32.ts';
import { absHistogramRef, HISTOGRAM_BINS } from '../quant/reference/histogram.ts';

/** Ranges below this are raised to it, so that bins / range stays a finite f32. */
export const MIN_HISTOGRAM_RANGE = 2 ** -100;

/** Largest range the doubling can reach without overflowing f32. */
const MAX_HISTOGRAM_RANGE = 2 ** 127;

/** The range after growing `range` (> 0) until it covers `absmax`, and the number of doublings. */
export function grownRange(range: number, absmax: number): { range: number; doublings: number } {
  let r = range;
  let doublings = 0;
  while (r < absmax) {
    if (r >= MAX_HISTOGRAM_RANGE) throw new RangeError(`histogram range cannot grow beyond ${MAX_HISTOGRAM_RANGE} (batch absmax ${absmax})`);
    r *= 2;
    doublings++;
  }
  return { range: r, doublings };
}

/** The first range of a growing histogram, from the absmax of the first batch that is not all zeros. */
export function initialRange(absmax: number): number {
  return fround(Math.max(absmax, MIN_HISTOGRAM_RANGE));
}

/** Merge bins by 2^doublings in place: new[k] = sum of old[k * 2^d .. (k + 1) * 2^d). */
export function mergeBins(counts: Uint32Array, doublings: number): void {
  if (doublings <= 0) return;
  const bins = counts.length;
  const f = 2 ** Math.min(doublings, Math.log2(bins));
  for (let k = 0; k < bins; k++) {
    let s = 0;
    if (k * f < bins) for (let t = 0; t < f; t++) s += counts[k * f + t];
    counts[k] = s;
  }
}

export class GrowingHistogram {
  readonly counts = new Uint32Array(HISTOGRAM_BINS);
  /** 0 until a batch with a nonzero value arrives. */
  range = 0;
  nonFinite = 0;
  batches = 0;

  /** Adds a batch; `batchAbsmax` (max |x| over its finite values) is computed here when not given. */
  add(x: Float32Array, batchAbsmax?: number): void {
    let absmax = batchAbsmax;
    if (absmax === undefined) {
      absmax = 0;
      for (let i = 0; i < x.length; i++) if (Number.isFinite(x[i])) absmax = Math.max(absmax, Math.abs(x[i]));
    }
    if (!(Number.isFinite(absmax) && absmax >= 0)) throw new RangeError(`batch absmax must be a finite number >= 0, got ${absmax}`);
    if (this.range === 0) {
      if (absmax > 0) this.range = initialRange(absmax);
    } else if (absmax > this.range) {
      const g = grownRange(this.range, absmax);
      mergeBins(this.counts, g.doublings);
      this.range = g.range;
    }
    // Before the range is set every finite value is 0, and 0 falls in bin 0 whatever the range.
    const h = absHistogramRef(x, this.range || 1, HISTOGRAM_BINS);
    for (let k = 0; k < HISTOGRAM_BINS; k++) this.counts[k] += h.counts[k];
    this.nonFinite += h.nonFinite;
    this.batches++;
  }

  /** Values counted in bins (finite ones). */
  get total(): number {
    let s = 0;
    for (let k = 0; k < this.counts.length; k++) s += this.counts[k];
    return s;
  }
}
