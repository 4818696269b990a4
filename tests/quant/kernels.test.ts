/**
 * Every WGSL quantization kernel equals its CPU reference: bit for bit for statistics extrema,
 * parameters, codes, dequantized values and histograms; to float-summation tolerance for sums
 * (mean |x|, MSE, SQNR, clipping/rounding split), on random and adversarial inputs.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import type { QuantConfig } from '../../src/quant/config.ts';
import { QuantKernels } from '../../src/quant/gpu-kernels.ts';
import { makeGroupLayout, type GroupLayout } from '../../src/quant/layout.ts';
import { absHistogramRef } from '../../src/quant/reference/histogram.ts';
import { clipSweepRef, errorMetricsRef } from '../../src/quant/reference/metrics.ts';
import { dequantizeRef, fakeQuantizeRef, qparamsRef, quantizeRef } from '../../src/quant/reference/quantize.ts';
import { columnStatsRef, groupStatsRef, perTokenAbsmaxRef, type GroupStats } from '../../src/quant/reference/stats.ts';
import { gpuContext } from '../helpers/gpu.ts';
import { gaussian, rng } from '../helpers/random.ts';

let k: QuantKernels;
beforeAll(async () => {
  k = new QuantKernels(await gpuContext());
});

/** Random tensor whose rows span six orders of magnitude, so scales cover a wide range. */
function wideRange(rows: number, cols: number, seed: number): Float32Array {
  const x = gaussian(rows * cols, seed);
  const r = rng(seed + 1);
  for (let i = 0; i < rows; i++) {
    const g = 10 ** (6 * r() - 3);
    for (let j = 0; j < cols; j++) x[i * cols + j] *= g;
  }
  return x;
}

/**
 * Adversarial rows (cols >= 16): exact .5 ties (scale a power of two), all zeros, a constant, one huge
 * outlier, negative only, NaN/Inf mixed in, tiny values whose scale underflows.
 */
function adversarial(cols: number): { x: Float32Array; rows: number } {
  const rows = 8;
  const x = new Float32Array(rows * cols);
  for (let j = 0; j < cols; j++) {
    // Row 0: absmax 127/8 -> int8 sym scale 1/8 exactly; entries (k + 0.5)/8 are ties.
    x[j] = j === 0 ? 127 / 8 : ((j % 40) - 20 + 0.5) / 8;
    x[cols + j] = 0;
    x[2 * cols + j] = 3.25;
    x[3 * cols + j] = j === 5 ? 1e30 : Math.sin(j);
    x[4 * cols + j] = -1 - (j % 7);
    x[5 * cols + j] = j % 5 === 0 ? NaN : j % 11 === 0 ? Infinity : j % 13 === 0 ? -Infinity : Math.cos(j);
    x[6 * cols + j] = 1e-37 * ((j % 3) - 1);
    x[7 * cols + j] = (j % 2 ? 1 : -1) * (j + 0.5);
  }
  return { x, rows };
}

function expectStatsEqual(gpu: GroupStats, cpu: GroupStats): void {
  expect(Array.from(gpu.min)).toEqual(Array.from(cpu.min));
  expect(Array.from(gpu.max)).toEqual(Array.from(cpu.max));
  expect(Array.from(gpu.absmax)).toEqual(Array.from(cpu.absmax));
  expect(Array.from(gpu.count)).toEqual(Array.from(cpu.count));
  expect(Array.from(gpu.nonFinite)).toEqual(Array.from(cpu.nonFinite));
  for (let g = 0; g < cpu.meanAbs.length; g++) {
    expect(Math.abs(gpu.meanAbs[g] - cpu.meanAbs[g])).toBeLessThanOrEqual(1e-5 * Math.abs(cpu.meanAbs[g]) + 1e-30);
  }
}

async function checkQuantize(x: Float32Array, layout: GroupLayout, cfg: QuantConfig): Promise<void> {
  const r = await k.quantize(x, layout, cfg);
  const stats = groupStatsRef(x, layout);
  expectStatsEqual(r.stats, stats);
  const qp = qparamsRef(stats, cfg);
  expect(Array.from(r.qparams.scale)).toEqual(Array.from(qp.scale));
  expect(Array.from(r.qparams.invScale)).toEqual(Array.from(qp.invScale));
  expect(Array.from(r.qparams.zero)).toEqual(Array.from(qp.zero));
  const codes = quantizeRef(x, layout, qp, cfg);
  expect(r.codes.constructor).toBe(codes.constructor);
  expect(Array.from(r.codes)).toEqual(Array.from(codes));
  const deq = dequantizeRef(codes, layout, qp, cfg);
  expect(Array.from(r.dequantized)).toEqual(Array.from(deq));
  // Fused fake-quantize equals dequantize(quantize(x)), and the reference's fused path.
  const fq = await k.fakeQuantize(x, layout, cfg);
  expect(Array.from(fq)).toEqual(Array.from(fakeQuantizeRef(x, layout, qp, cfg)));
  expect(Array.from(fq)).toEqual(Array.from(deq));
  // Dequantize kernel alone, from given codes and parameters.
  expect(Array.from(await k.dequantize(codes, layout, qp, cfg))).toEqual(Array.from(deq));
}

const configs: [string, QuantConfig][] = [
  ['int8 sym per-tensor', { bits: 8, granularity: 'tensor', scheme: 'sym' }],
  ['int8 asym per-channel', { bits: 8, granularity: 'channel', scheme: 'asym' }],
  ['int4 asym g32', { bits: 4, granularity: 'group', groupSize: 32, scheme: 'asym' }],
  ['int4 sym g128', { bits: 4, granularity: 'group', groupSize: 128, scheme: 'sym' }],
  ['int3 asym g7 (partial groups)', { bits: 3, granularity: 'group', groupSize: 7, scheme: 'asym' }],
  ['int2 sym per-channel', { bits: 2, granularity: 'channel', scheme: 'sym' }],
  ['int5 asym g1', { bits: 5, granularity: 'group', groupSize: 1, scheme: 'asym' }],
  ['int6 sym g64 clip 0.7', { bits: 6, granularity: 'group', groupSize: 64, scheme: 'sym', clipRatio: 0.7 }],
  ['int4 asym per-channel clip 0.55', { bits: 4, granularity: 'channel', scheme: 'asym', clipRatio: 0.55 }],
  ['fp8 e4m3 per-channel', { bits: 8, granularity: 'channel', scheme: 'sym', format: 'fp8-e4m3' }],
  ['fp8 e4m3 g32', { bits: 8, granularity: 'group', groupSize: 32, scheme: 'sym', format: 'fp8-e4m3' }],
];

describe('quantize / dequantize / fake-quantize on random tensors', () => {
  test.each(configs)('%s', async (_name, cfg) => {
    const [rows, cols] = [37, 100];
    await checkQuantize(wideRange(rows, cols, 11), makeGroupLayout([rows, cols], cfg.granularity, cfg.groupSize), cfg);
  });
});

describe('quantize on adversarial tensors (ties, zeros, constants, outliers, negative rows, NaN/Inf, underflow)', () => {
  test.each(configs)('%s', async (_name, cfg) => {
    const { x, rows } = adversarial(72);
    await checkQuantize(x, makeGroupLayout([rows, 72], cfg.granularity, cfg.groupSize), cfg);
  });
  test('ties at .5 really occur and round to even on the GPU', async () => {
    const { x } = adversarial(72);
    const row = x.slice(0, 72);
    const r = await k.quantize(row, makeGroupLayout([72], 'tensor'), { bits: 8, granularity: 'tensor', scheme: 'sym' });
    expect(r.qparams.scale[0]).toBe(0.125);
    // x = (m + 0.5)/8 with m = j%40 - 20: x / s = m + 0.5, rounds to the even neighbour.
    for (let j = 1; j < 72; j++) {
      const m = (j % 40) - 20;
      expect(r.codes[j]).toBe(m % 2 === 0 ? m : m + 1);
    }
  });
});

describe('long groups use the chunked two-pass reduction', () => {
  test('per-tensor over 70,000 elements and per-channel with 20,000-element rows', async () => {
    const x = wideRange(3, 23_400, 5);
    x[12345] = NaN;
    x[50000] = -7777;
    await checkQuantize(x, makeGroupLayout([x.length], 'tensor'), { bits: 8, granularity: 'tensor', scheme: 'sym' });
    await checkQuantize(x, makeGroupLayout([3, 23_400], 'channel'), { bits: 4, granularity: 'channel', scheme: 'asym' });
  });
});

describe('statistics kernels', () => {
  test('per-group statistics for every threads-per-segment width', async () => {
    const x = wideRange(9, 300, 3);
    for (const g of [1, 2, 3, 5, 16, 31, 32, 33, 100, 256, 300]) {
      const l = makeGroupLayout([9, 300], 'group', g);
      expectStatsEqual(await k.groupStats(x, l), groupStatsRef(x, l));
    }
  });
  test('per-column statistics and per-token absmax of activations', async () => {
    const { x, rows } = adversarial(40);
    expectStatsEqual(await k.columnStats(x, rows, 40), columnStatsRef(x, rows, 40));
    const big = wideRange(700, 33, 9);
    expectStatsEqual(await k.columnStats(big, 700, 33), columnStatsRef(big, 700, 33));
    expect(Array.from(await k.perTokenAbsmax(big, 700, 33))).toEqual(Array.from(perTokenAbsmaxRef(big, 700, 33)));
  });
});

describe('histogram kernel', () => {
  test('2048 bins of |x| equal the reference, including overflow and non-finite', async () => {
    const x = gaussian(300_000, 4); // several workgroups (131,072 values each)
    x[7] = NaN;
    x[8] = -Infinity;
    x[9] = 100;
    for (const range of [4, 1.5, 1e-3]) {
      const g = await k.absHistogram(x, range);
      const c = absHistogramRef(x, range);
      expect(Array.from(g.counts)).toEqual(Array.from(c.counts));
      expect(g.nonFinite).toBe(2);
    }
  });
  test('a non-positive range is refused', async () => {
    await expect(k.absHistogram(new Float32Array(4), 0)).rejects.toThrow(/positive/);
  });
});

describe('error metrics and clip sweep kernels', () => {
  test('MSE, SQNR and max error match the reference', async () => {
    const x = gaussian(100_000, 8); // several workgroups (32,768 values each)
    const y = x.map((v, i) => v + (i % 3 === 0 ? 0.01 : -0.002));
    y[100] = NaN;
    const g = await k.errorMetrics(x, y);
    const c = errorMetricsRef(x, y);
    expect(g.count).toBe(c.count);
    expect(g.mse).toBeCloseTo(c.mse, 9);
    expect(Math.abs(g.sqnr - c.sqnr)).toBeLessThan(1e-4);
    expect(g.maxAbsError).toBe(c.maxAbsError);
    expect((await k.errorMetrics(x, x)).sqnr).toBe(Infinity);
  });
  test.each(configs.filter(([n]) => !n.includes('g1')))('sweep of 9 clip ratios: %s', async (_n, cfg) => {
    const x = wideRange(120, 90, 21);
    x[17] = NaN;
    const l = makeGroupLayout([120, 90], cfg.granularity, cfg.groupSize);
    const ratios = [0.1, 0.2, 0.35, 0.5, 0.6, 0.75, 0.9, 0.95, 1].map(Math.fround);
    const g = await k.clipSweep(x, l, cfg, ratios);
    const c = clipSweepRef(x, l, groupStatsRef(x, l), cfg, ratios);
    for (let i = 0; i < ratios.length; i++) {
      for (const key of ['clipSse', 'roundSse', 'mse'] as const) {
        expect(Math.abs(g[i][key] - c[i][key])).toBeLessThanOrEqual(1e-5 * Math.abs(c[i][key]) + 1e-30);
      }
    }
    // With no clipping there is no clipping error; with strong clipping, clipping dominates.
    expect(g[ratios.length - 1].clipSse).toBe(0);
    expect(g[0].clipSse).toBeGreaterThan(g[0].roundSse);
  });
});

test('every buffer handed out was released', () => {
  expect(k.ctx.pool.liveCount).toBe(0);
});
