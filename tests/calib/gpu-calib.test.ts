/**
 * The GPU calibrator sweeps agree with the double-precision CPU calibrators (MSE to ~1e-5 relative with the
 * same split into clipping and rounding error, KL to ~1e-5 absolute, the same chosen candidate after
 * refineBest), and the GPU growing histogram equals the CPU GrowingHistogram bin for bin.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import { clipRoundError, entropyAt, entropySweep, mseAt, mseSweep, pickBest, refineBest } from '../../src/calib/calibrators.ts';
import { CalibKernels, GpuGrowingHistogram } from '../../src/calib/gpu-calib.ts';
import { GrowingHistogram } from '../../src/calib/histogram.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import { absHistogramRef, HISTOGRAM_BINS } from '../../src/quant/reference/histogram.ts';
import { gpuContext } from '../helpers/gpu.ts';
import { gaussian, rng } from '../helpers/random.ts';

let ctx: GpuContext;
let k: CalibKernels;
beforeAll(async () => {
  ctx = await gpuContext();
  k = new CalibKernels(ctx);
});

function absmaxOf(x: Float32Array): number {
  let m = 0;
  for (const v of x) if (Number.isFinite(v)) m = Math.max(m, Math.abs(v));
  return m;
}

/** Histograms with different shapes and count magnitudes (up to ~1e9 per bin). */
function histograms(): [string, { counts: Uint32Array; range: number }][] {
  const g = gaussian(50000, 3);
  g[17] = 9; // one outlier stretches the range
  const gauss = absHistogramRef(g, absmaxOf(g));
  const lap = new Float32Array(50000);
  const r = rng(8);
  for (let i = 0; i < lap.length; i++) lap[i] = -Math.log(Math.max(r(), 1e-12)) * (r() < 0.5 ? -1 : 1);
  const laplace = absHistogramRef(lap, absmaxOf(lap));
  // Large counts: a smooth decaying density scaled to ~1e9 in the first bins, with some empty bins.
  const big = new Uint32Array(HISTOGRAM_BINS);
  for (let j = 0; j < HISTOGRAM_BINS; j++) big[j] = j % 97 === 50 ? 0 : Math.round(1e9 * Math.exp(-j / 150) + 3);
  return [
    ['gaussian + outlier', gauss],
    ['laplace', laplace],
    ['exponential counts up to 1e9', { counts: big, range: 2.5 }],
  ];
}

describe('MSE sweep on the GPU equals the CPU sweep', () => {
  test.each(histograms())('%s', async (_name, h) => {
    for (const bits of [8, 4]) {
      const t0 = performance.now();
      const gpu = await k.mseSweep(h, bits);
      const ms = performance.now() - t0;
      const cpu = mseSweep(h, bits);
      expect(gpu.length).toBe(cpu.length);
      let worst = 0;
      for (let c = 0; c < cpu.length; c++) {
        expect(gpu[c].index).toBe(cpu[c].index);
        expect(gpu[c].amax).toBe(cpu[c].amax);
        const e = clipRoundError(h, cpu[c].amax, bits);
        worst = Math.max(worst, Math.abs(gpu[c].mse - cpu[c].value) / cpu[c].value);
        expect(Math.abs(gpu[c].clipSse - e.clipSse)).toBeLessThanOrEqual(1e-5 * (e.clipSse + e.roundSse));
        expect(Math.abs(gpu[c].roundSse - e.roundSse)).toBeLessThanOrEqual(1e-5 * (e.clipSse + e.roundSse));
      }
      expect(worst).toBeLessThan(1e-5);
      const gpuPoints = gpu.map((p) => ({ index: p.index, amax: p.amax, value: p.mse }));
      const cpuBest = pickBest(cpu, 'first');
      // The GPU's own argmin is at most f32 noise away from the CPU minimum; refined, it is the CPU's choice.
      expect(mseAt(h, pickBest(gpuPoints, 'first').index, bits)).toBeLessThanOrEqual(cpuBest.value * (1 + 1e-5));
      expect(refineBest(gpuPoints, (i) => mseAt(h, i, bits), 'first').index).toBe(cpuBest.index);
      console.log(`mse sweep ${bits} bits: ${cpu.length} candidates in ${ms.toFixed(0)} ms, worst rel error ${worst.toExponential(2)}`);
    }
  });
});

describe('entropy sweep on the GPU equals the CPU sweep', () => {
  test.each(histograms())('%s', async (_name, h) => {
    for (const bits of [8, 6]) {
      const t0 = performance.now();
      const gpu = await k.entropySweep(h, bits);
      const ms = performance.now() - t0;
      const cpu = entropySweep(h, bits);
      expect(gpu.length).toBe(cpu.length);
      let worst = 0;
      for (let c = 0; c < cpu.length; c++) {
        expect(gpu[c].index).toBe(cpu[c].index);
        expect(gpu[c].amax).toBe(cpu[c].amax);
        if (!Number.isFinite(cpu[c].value)) {
          expect(gpu[c].value).toBe(cpu[c].value);
          continue;
        }
        worst = Math.max(worst, Math.abs(gpu[c].value - cpu[c].value));
      }
      expect(worst).toBeLessThan(1e-5);
      const cpuBest = pickBest(cpu, 'last');
      expect(refineBest(gpu, (i) => entropyAt(h, i, bits), 'last', { rel: 1e-4, abs: 1e-5 }).index).toBe(cpuBest.index);
      console.log(`entropy sweep ${bits} bits: ${cpu.length} candidates in ${ms.toFixed(0)} ms, worst |KL error| ${worst.toExponential(2)}`);
    }
  });

  test('a clear minimum is found by the GPU alone (no refinement)', async () => {
    // Two-level data: most mass below bin 300, a thin tail to 2048. The minimum is sharp.
    const counts = new Uint32Array(HISTOGRAM_BINS);
    const r = rng(5);
    for (let j = 0; j < HISTOGRAM_BINS; j++) counts[j] = j < 300 ? 1000 + Math.floor(200 * r()) : r() < 0.05 ? 1 : 0;
    const h = { counts, range: 4 };
    const gpu = await k.entropySweep(h, 8);
    const cpu = entropySweep(h, 8);
    expect(pickBest(gpu, 'last').index).toBe(pickBest(cpu, 'last').index);
    expect(gpu.some((p) => p.value === Infinity)).toBe(true); // empty last bins under a nonzero tail
  });
});

describe('GpuGrowingHistogram equals the CPU GrowingHistogram', () => {
  test('zeros first, then growing batches, NaN and Inf, a batch equal to the range', async () => {
    const batches: Float32Array[] = [new Float32Array(300), gaussian(3000, 1, 0.5), gaussian(2000, 2, 0.4), gaussian(3000, 3, 3), gaussian(1000, 4, 200)];
    batches[1][5] = NaN;
    batches[3][7] = Infinity;
    batches[3][9] = -Infinity;
    batches[2][0] = absmaxOf(batches[1]); // exactly on the range: clamped into the last bin
    const cpu = new GrowingHistogram();
    const g = new GpuGrowingHistogram(ctx);
    try {
      for (const b of batches) {
        const am = absmaxOf(b);
        cpu.add(b, am);
        const t = { buffer: ctx.upload(b), length: b.length };
        try {
          await g.add(t, am);
        } finally {
          ctx.pool.release(t.buffer);
        }
        const got = await g.read();
        expect(got.range).toBe(cpu.range);
        expect(got.nonFinite).toBe(cpu.nonFinite);
        expect(Array.from(got.counts)).toEqual(Array.from(cpu.counts));
      }
      expect(cpu.range).toBeGreaterThan(absmaxOf(batches[1]) * 100);
      expect(cpu.total).toBe(9300 - 3);
    } finally {
      g.dispose();
    }
  });
});
