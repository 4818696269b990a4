/**
 * CPU reference for the |x| histogram: `bins` equal bins over [0, range]; bin = floor(|x| * (bins / range))
 * in f32, values at or beyond `range` land in the last bin, NaN/Inf are counted apart.
 */
import { fround } from './f32.ts';

export const HISTOGRAM_BINS = 2048;

export interface AbsHistogram {
  counts: Uint32Array;
  range: number;
  nonFinite: number;
}

/** The f32 multiplier the kernel receives; range must be positive and finite. */
export function histogramInvBinWidth(range: number, bins = HISTOGRAM_BINS): number {
  if (!(range > 0 && Number.isFinite(range))) throw new RangeError(`histogram range must be a positive finite number, got ${range}`);
  return fround(bins / fround(range));
}

export function absHistogramRef(x: Float32Array, range: number, bins = HISTOGRAM_BINS): AbsHistogram {
  const inv = histogramInvBinWidth(range, bins);
  const counts = new Uint32Array(bins);
  let nonFinite = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (!Number.isFinite(v)) {
      nonFinite++;
      continue;
    }
    counts[Math.min(Math.floor(fround(Math.abs(v) * inv)), bins - 1)]++;
  }
  return { counts, range: fround(range), nonFinite };
}
