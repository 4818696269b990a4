/**
 * The CPU activation calibrators choose the amax a user expects on data whose answer is known (Gaussian with an
 * outlier, uniform, Laplace against its analytic MSE optimum, percentiles against sorted samples), the entropy
 * calibrator equals an independent naive transcription of EntropyCalibration2, the growing histogram relates
 * exactly to a one-shot histogram, and degenerate inputs give defined results or clear errors.
 */
import { describe, expect, test } from 'vitest';
import {
  binCentre,
  calibrateTensor,
  clipRoundCurve,
  clipRoundError,
  entropyAt,
  entropySweep,
  histogramSqnrDb,
  MovingAverageMinMax,
  mseSweep,
  percentileAmax,
  pickBest,
  refineBest,
} from '../../src/calib/calibrators.ts';
import { GrowingHistogram, mergeBins } from '../../src/calib/histogram.ts';
import { CALIB_METHODS, type HistogramData, type SweepPoint } from '../../src/calib/types.ts';
import { fround } from '../../src/quant/reference/f32.ts';
import { absHistogramRef, histogramInvBinWidth, HISTOGRAM_BINS } from '../../src/quant/reference/histogram.ts';
import { gaussian, rng } from '../helpers/random.ts';

function absmaxOf(x: Float32Array): number {
  let m = 0;
  for (const v of x) if (Number.isFinite(v)) m = Math.max(m, Math.abs(v));
  return m;
}

function oneShot(x: Float32Array): HistogramData {
  return absHistogramRef(x, absmaxOf(x));
}

const entropyAmax = (h: HistogramData, bits = 8) => pickBest(entropySweep(h, bits), 'last').amax;
const mseAmax = (h: HistogramData, bits = 8) => pickBest(mseSweep(h, bits), 'first').amax;

describe('calibrators on distributions with a known answer', () => {
  test('Gaussian plus one far outlier: max is the outlier, the histogram calibrators stay at a few sigma', () => {
    // Enough values that keeping the outlier's clipping error (30 - a)^2 costs MSE less than coarser rounding of
    // all the others, n (a / 127)^2 / 12: the MSE optimum is then a few sigma.
    const x = gaussian(1_000_000, 42);
    x[1234] = -30; // 30 sigma
    const h = oneShot(x);
    const c = calibrateTensor(h, { absmax: absmaxOf(x), movingMin: -30, movingMax: 4.5 }, 8);
    expect(c.amax.max).toBe(30);
    expect(c.amax['ma-minmax']).toBe(30);
    for (const m of ['percentile-99.9', 'percentile-99.99', 'percentile-99.999', 'entropy', 'mse'] as const) {
      expect(c.amax[m]).toBeGreaterThan(2.5);
      expect(c.amax[m]).toBeLessThan(6.5);
    }
    // The 99.9th percentile of |N(0,1)| is 3.29; the histogram's bins are 30/2048 = 0.015 wide.
    expect(Math.abs(c.amax['percentile-99.9'] - 3.29)).toBeLessThan(0.03);
    // Every histogram method beats max by far; the best one has the highest SQNR.
    expect(c.best).not.toBe('max');
    for (const m of CALIB_METHODS) expect(c.sqnrDb[c.best]).toBeGreaterThanOrEqual(c.sqnrDb[m]);
    expect(c.sqnrDb.mse).toBeGreaterThan(c.sqnrDb.max + 5);
  });

  test('uniform on [0, 1]: percentile 99.99 within a bin of 0.9999, MSE and entropy at the top of the range', () => {
    // Exactly 50 values per bin: (i + 0.5) / N.
    const n = HISTOGRAM_BINS * 50;
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = (i + 0.5) / n;
    const h = absHistogramRef(x, 1);
    expect(Array.from(h.counts).every((c) => c === 50)).toBe(true);
    expect(Math.abs(percentileAmax(h, 99.99) - 0.9999)).toBeLessThanOrEqual(1 / HISTOGRAM_BINS);
    // P = Q exactly at the full range (every level's bins are equal and nonzero): KL 0 there.
    expect(entropyAmax(h)).toBe(1);
    expect(entropyAt(h, HISTOGRAM_BINS, 8)).toBeCloseTo(0, 12);
    expect(mseAmax(h)).toBeGreaterThan(0.97);
  });

  test('Laplace(b): the MSE calibrator lands within 2% of the analytic optimum', () => {
    const b = 0.7;
    // Stratified samples of |x| ~ Exponential(b): the histogram is the distribution, without sampling noise.
    const n = 1_000_000;
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = (i % 2 ? 1 : -1) * -b * Math.log(1 - (i + 0.5) / n);
    const h = oneShot(x);
    // Expected squared error per value of clipping at a: 2 b^2 e^(-a/b) beyond a, step^2 / 12 inside.
    const expected = (a: number) => 2 * b * b * Math.exp(-a / b) + ((a / 127) ** 2 / 12) * (1 - Math.exp(-a / b));
    let best = b;
    for (let a = b; a < 20 * b; a += b / 10000) if (expected(a) < expected(best)) best = a;
    expect(best / b).toBeGreaterThan(8); // about 9.9 b for INT8
    expect(Math.abs(mseAmax(h) - best) / best).toBeLessThan(0.02);
  });

  test('percentile equals the sorted samples within one bin width', () => {
    // n such that p * n / 100 is never an integer: at an exact boundary the float CDF (np.cumsum of
    // counts / total, as the reference computes it) may fall a hair short and move to the next nonempty bin.
    const x = gaussian(100003, 7, 2);
    const h = oneShot(x);
    const sorted = Float64Array.from(x, Math.abs).sort();
    const w = h.range / HISTOGRAM_BINS;
    for (const p of [50, 90, 99, 99.9, 99.99, 99.999]) {
      const v = sorted[Math.ceil((p / 100) * sorted.length) - 1];
      const a = percentileAmax(h, p);
      // amax is the left edge of the bin holding that sample.
      expect(v - a).toBeGreaterThanOrEqual(-1e-6 * w);
      expect(v - a).toBeLessThan(w * (1 + 1e-6));
    }
    expect(percentileAmax(h, 0)).toBe(0);
    // The left edge of the bin, not its right edge or centre (histogram.py's quirk): CDF 0.25, 0.5, 1.
    const small = { counts: [1, 1, 2], range: 3 };
    expect([percentileAmax(small, 25), percentileAmax(small, 50), percentileAmax(small, 50.1), percentileAmax(small, 100)]).toEqual([0, 1, 2, 2]);
  });
});

/** EntropyCalibration2 as histogram.py writes it, transcribed loop by loop (float linspace + digitize). */
function naiveEntropyIndex(countsIn: ArrayLike<number>, bits: number): { index: number; kl: number[] } {
  const bins = Array.from(countsIn);
  bins[0] = bins[1];
  const nbins = 1 << (bits - 1);
  const divergences: number[] = [];
  const args: number[] = [];
  for (let i = 128; i <= bins.length; i++) {
    const step = i / nbins;
    const space: number[] = [];
    for (let k = 0; k <= nbins; k++) space.push(k * step);
    space[nbins] = i;
    const digitized: number[] = [];
    for (let j = 0; j < i; j++) {
      // np.digitize (right=False): number of edges <= j, minus one.
      let lo = 0;
      let hi = space.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (space[mid] <= j) lo = mid + 1;
        else hi = mid;
      }
      digitized.push(bins[j] === 0 ? -1 : lo - 1);
    }
    const newDensityCounts = new Array<number>(nbins).fill(0);
    const counter = new Map<number, number>();
    digitized.forEach((d, idx) => {
      if (d !== -1) newDensityCounts[d] += bins[idx];
      counter.set(d, (counter.get(d) ?? 0) + 1);
    });
    for (const [key, val] of counter) if (key !== -1) newDensityCounts[key] /= val;
    const q = digitized.map((d) => (d === -1 ? 0 : newDensityCounts[d]));
    const p = bins.slice(0, i);
    p[i - 1] += bins.slice(i).reduce((a, v) => a + v, 0);
    const sp = p.reduce((a, v) => a + v, 0);
    const sq = q.reduce((a, v) => a + v, 0);
    let ent = 0;
    for (let j = 0; j < i; j++) {
      const pj = p[j] / sp;
      const qj = q[j] / sq;
      if (pj > 0) ent += qj > 0 ? pj * Math.log(pj / qj) : Infinity;
    }
    divergences.push(ent);
    args.push(i);
  }
  let last = 0;
  for (let k = 0; k < divergences.length; k++) if (divergences[k] <= divergences[last]) last = k;
  return { index: args[last], kl: divergences };
}

describe('entropy calibrator against a naive transcription', () => {
  const cases: [string, number, number][] = [
    ['600 bins, Gaussian-like with holes', 600, 1],
    ['600 bins, sparse spikes', 600, 2],
    ['2048 bins, heavy tail', 2048, 3],
    ['600 bins, 4 bits', 600, 4],
  ];
  test.each(cases)('%s', (name, bins, seed) => {
    const r = rng(seed);
    const counts = new Uint32Array(bins);
    for (let j = 0; j < bins; j++) {
      if (name.includes('sparse')) counts[j] = r() < 0.15 ? Math.floor(1000 * r()) : 0;
      else if (name.includes('heavy')) counts[j] = Math.floor(1e6 / (1 + j / 20) ** 2 + 3 * r());
      else counts[j] = r() < 0.1 ? 0 : Math.floor(5000 * Math.exp(-((j / 120) ** 2)) + 20 * r());
    }
    const bits = name.includes('4 bits') ? 4 : 8;
    const h = { counts, range: 3 };
    const naive = naiveEntropyIndex(counts, bits);
    const sweep = entropySweep(h, bits);
    expect(pickBest(sweep, 'last').index).toBe(naive.index);
    sweep.forEach((p, k) => {
      if (Number.isFinite(naive.kl[k])) expect(Math.abs(p.value - naive.kl[k])).toBeLessThan(1e-9);
      else expect(p.value).toBe(naive.kl[k]);
    });
    expect(pickBest(sweep, 'last').amax).toBeCloseTo((naive.index * 3) / bins, 12);
  });
});

describe('growing histogram', () => {
  test('equals a one-shot histogram at the final range, except values that sat exactly on an earlier range', () => {
    const batches: Float32Array[] = [new Float32Array(100), gaussian(5000, 1, 0.3), gaussian(5000, 2, 0.25), gaussian(5000, 3, 2), gaussian(5000, 4, 0.1), gaussian(5000, 5, 40)];
    batches[2][10] = absmaxOf(batches[1]); // exactly on the range set by batch 1
    batches[1][3] = NaN;
    batches[4][3] = -Infinity;
    const g = new GrowingHistogram();
    let exceptions: number[] = [];
    for (const b of batches) {
      const before = g.range;
      g.add(b);
      if (g.range !== before) exceptions = exceptions.concat(pendingAtRange.splice(0));
      // Values clamped into the last bin at this range (|x| * inv reaches 2048) move if the range grows later.
      if (g.range > 0) {
        const inv = histogramInvBinWidth(g.range);
        for (const v of b) if (Number.isFinite(v) && fround(Math.abs(v) * inv) >= HISTOGRAM_BINS) pendingAtRange.push(Math.abs(v));
      }
    }
    const all = new Float32Array(batches.reduce((a, b) => a + b.length, 0));
    let o = 0;
    for (const b of batches) {
      all.set(b, o);
      o += b.length;
    }
    const shot = absHistogramRef(all, g.range);
    expect(g.nonFinite).toBe(2);
    expect(shot.nonFinite).toBe(2);
    expect(g.range).toBeGreaterThanOrEqual(absmaxOf(all));
    expect(g.range / absmaxOf(batches[1])).toBe(2 ** Math.round(Math.log2(g.range / absmaxOf(batches[1]))));
    expect(exceptions.length).toBeGreaterThanOrEqual(2);
    expect(Array.from(g.counts)).not.toEqual(Array.from(shot.counts));
    const expected = Uint32Array.from(shot.counts);
    const inv = histogramInvBinWidth(g.range);
    for (const v of exceptions) {
      const k = Math.min(Math.floor(fround(v * inv)), HISTOGRAM_BINS - 1);
      expected[k]--;
      expected[k - 1]++;
    }
    expect(Array.from(g.counts)).toEqual(Array.from(expected));
    expect(g.counts[0]).toBeGreaterThanOrEqual(100); // the leading zeros
  });
  const pendingAtRange: number[] = [];

  test('bins merge exactly, also beyond 2048x growth', () => {
    const c = Uint32Array.from({ length: 16 }, (_, k) => k + 1);
    mergeBins(c, 1);
    expect(Array.from(c)).toEqual([3, 7, 11, 15, 19, 23, 27, 31, 0, 0, 0, 0, 0, 0, 0, 0]);
    mergeBins(c, 2);
    expect(Array.from(c)).toEqual([3 + 7 + 11 + 15, 19 + 23 + 27 + 31, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const g = new GrowingHistogram();
    g.add(Float32Array.of(1, 0.5, 0.25));
    g.add(Float32Array.of(1e5));
    expect(g.range).toBe(2 ** 17);
    expect(g.counts[0]).toBe(3);
    expect(g.counts[Math.floor(1e5 * (2048 / 2 ** 17))]).toBe(1);
  });
});

describe('moving-average min/max (ORT MinMaxCalibrater, constant 0.01)', () => {
  test('first batch sets, later batches move 1% of the way', () => {
    const m = new MovingAverageMinMax();
    m.addValues(Float32Array.of(-1, 2, 0.5));
    expect([m.min, m.max]).toEqual([-1, 2]);
    m.addBatch(-3, 1);
    m.addValues(Float32Array.of(0.5, 5, NaN));
    // min: -1 -> -1 + 0.01 * (-3 + 1) = -1.02 -> -1.02 + 0.01 * (0.5 + 1.02) = -1.0048
    // max:  2 ->  2 + 0.01 * (1 - 2) = 1.99 -> 1.99 + 0.01 * (5 - 1.99) = 2.0201
    expect(m.min).toBeCloseTo(-1.0048, 12);
    expect(m.max).toBeCloseTo(2.0201, 12);
    expect(m.amax).toBeCloseTo(2.0201, 12);
    expect(m.batches).toBe(3);
  });
});

describe('error split and SQNR from the histogram', () => {
  test('SQNR from the histogram matches quantizing the samples themselves', () => {
    const x = gaussian(100000, 9);
    const h = oneShot(x);
    for (const amax of [1, 2.5, 4]) {
      const scale = amax / 127;
      let sig = 0;
      let err = 0;
      for (const v of x) {
        const q = Math.max(-127, Math.min(127, Math.round(v / scale))) * scale;
        sig += v * v;
        err += (v - q) ** 2;
      }
      expect(Math.abs(histogramSqnrDb(h, amax, 8) - 10 * Math.log10(sig / err))).toBeLessThan(0.3);
    }
  });

  test('the curve trades clipping for rounding as amax grows', () => {
    const h = oneShot(gaussian(20000, 10));
    const curve = clipRoundCurve(h, 8, 10);
    expect(curve.length).toBe(10);
    expect(curve[0].amax).toBe(binCentre(h, 128));
    expect(curve[9].amax).toBe(binCentre(h, HISTOGRAM_BINS - 1));
    for (let t = 1; t < 10; t++) {
      expect(curve[t].clipSse).toBeLessThanOrEqual(curve[t - 1].clipSse);
      expect(curve[t].roundSse).toBeGreaterThan(curve[t - 1].roundSse);
      expect(curve[t]).toEqual(clipRoundError(h, curve[t].amax, 8));
    }
    expect(clipRoundCurve(h, 8).length).toBe(HISTOGRAM_BINS - 128);
  });
});

describe('sweep selection', () => {
  const pts = (vals: number[]): SweepPoint[] => vals.map((value, index) => ({ index, amax: index, value }));
  test('first versus last minimum, NaN ignored', () => {
    expect(pickBest(pts([3, 1, 2, 1, 5]), 'first').index).toBe(1);
    expect(pickBest(pts([3, 1, 2, 1, 5]), 'last').index).toBe(3);
    expect(pickBest(pts([NaN, 2, NaN, 1]), 'first').index).toBe(3);
  });
  test('refineBest re-decides near-ties with the exact values', () => {
    const exact = [3, 1.00001, 2, 1.0, 5];
    expect(refineBest(pts([3, 1, 2, 1.000001, 5]), (i) => exact[i], 'first').index).toBe(3);
  });
});

describe('degenerate inputs', () => {
  test('an empty histogram is refused: there is no data', () => {
    const h = { counts: new Uint32Array(2048), range: 1 };
    for (const f of [() => percentileAmax(h, 99), () => mseSweep(h, 8), () => entropySweep(h, 8), () => calibrateTensor(h, { absmax: 0, movingMin: 0, movingMax: 0 }, 8)]) {
      expect(f).toThrow(RangeError);
      expect(f).toThrow(/no data/);
    }
  });

  test('all zeros (range 0): every amax is 0, the SQNR infinite', () => {
    const g = new GrowingHistogram();
    g.add(new Float32Array(500));
    expect(g.range).toBe(0);
    expect(g.counts[0]).toBe(500);
    const c = calibrateTensor(g, { absmax: 0, movingMin: 0, movingMax: 0 }, 8);
    for (const m of CALIB_METHODS) {
      expect(c.amax[m]).toBe(0);
      expect(c.sqnrDb[m]).toBe(Infinity);
    }
    expect(c.best).toBe('max');
  });

  test('too few bins, bad percentile, bad bits, bad counts', () => {
    const small = { counts: [1, 2, 3], range: 1 };
    expect(() => mseSweep(small, 8)).toThrow(/more than 128 histogram bins/);
    expect(() => entropySweep(small, 8)).toThrow(/more than 128 histogram bins/);
    expect(percentileAmax(small, 50)).toBeCloseTo(1 / 3, 12);
    expect(() => percentileAmax(small, 101)).toThrow(/percentile must be in \[0, 100\]/);
    expect(() => mseSweep({ counts: new Uint32Array(300).fill(1), range: 1 }, 1)).toThrow(/bits must be an integer/);
    expect(() => percentileAmax({ counts: [1, -1], range: 1 }, 50)).toThrow(/bin 1 holds -1/);
    expect(() => percentileAmax({ counts: [1, 1], range: NaN }, 50)).toThrow(/range/);
    expect(() => pickBest([], 'first')).toThrow(/empty sweep/);
    expect(() => new MovingAverageMinMax().amax).toThrow(/no batch/);
    expect(() => new GrowingHistogram().add(Float32Array.of(1), NaN)).toThrow(/absmax/);
  });

  test('mass only in bin 0 with a positive range: entropy keeps the full range', () => {
    const counts = new Uint32Array(2048);
    counts[0] = 10;
    const h = { counts, range: 2 };
    expect(entropySweep(h, 8).every((p) => p.value === 0)).toBe(true);
    expect(entropyAmax(h)).toBe(2);
  });
});
