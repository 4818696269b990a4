/**
 * ActivationStatsGpu against statistics computed here on the CPU from the same batches: per-channel
 * max|x| and mean|x|, per-token max|x|, min/max, NaN counts, the moving-average min/max, the growing
 * histogram (against the CPU GrowingHistogram) and the snapshot. Batches grow in range so the
 * histogram must rescale; one batch carries NaN/Inf.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import { ActivationStatsGpu } from '../../src/calib/activation-stats.ts';
import { GrowingHistogram } from '../../src/calib/histogram.ts';
import { buildCalibrationResult, calibratorSweeps, checkSummaries, weightInputChannelAbsmax } from '../../src/calib/result.ts';
import { gpuContext } from '../helpers/gpu.ts';
import { gaussian } from '../helpers/random.ts';

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await gpuContext();
});

const C = 37;

function batch(rows: number, seed: number, scale: number): Float32Array {
  const x = gaussian(rows * C, seed, scale);
  // Channel 5 is an outlier channel (x30), as in LLM activations.
  for (let r = 0; r < rows; r++) x[r * C + 5] *= 30;
  return x;
}

describe('ActivationStatsGpu', () => {
  test('equals the CPU statistics over batches of growing range, with NaN counted apart', async () => {
    const batches = [batch(70, 1, 0.5), batch(3, 2, 1), batch(130, 3, 4), batch(64, 4, 0.1)];
    batches[2][17] = NaN;
    batches[2][40] = Infinity;
    batches[2][41] = -Infinity;
    const stats = new ActivationStatsGpu(ctx, 't', ['a', 'b'], C, { snapshotTokens: 4, tokenLimit: 100 });
    const hist = new GrowingHistogram();
    try {
      for (const b of batches) {
        const buf = ctx.upload(b);
        try {
          await stats.add({ buffer: buf, length: b.length }, b.length / C);
        } finally {
          ctx.pool.release(buf);
        }
        hist.add(b);
      }
      const s = await stats.summary();
      const absmax = new Float64Array(C);
      const sum = new Float64Array(C);
      const cnt = new Float64Array(C);
      let lo = Infinity;
      let hi = -Infinity;
      let bad = 0;
      const tokenMax: number[] = [];
      let emaMin = NaN;
      let emaMax = NaN;
      batches.forEach((b, bi) => {
        let bl = Infinity;
        let bh = -Infinity;
        for (let r = 0; r < b.length / C; r++) {
          let tm = 0;
          for (let c = 0; c < C; c++) {
            const v = b[r * C + c];
            if (!Number.isFinite(v)) {
              bad++;
              continue;
            }
            absmax[c] = Math.max(absmax[c], Math.abs(v));
            sum[c] += Math.abs(v);
            cnt[c]++;
            bl = Math.min(bl, v);
            bh = Math.max(bh, v);
            tm = Math.max(tm, Math.abs(v));
          }
          tokenMax.push(tm);
        }
        lo = Math.min(lo, bl);
        hi = Math.max(hi, bh);
        if (bi === 0) {
          emaMin = bl;
          emaMax = bh;
        } else {
          emaMin += 0.01 * (bl - emaMin);
          emaMax += 0.01 * (bh - emaMax);
        }
      });
      expect(s.tokens).toBe(267);
      expect(s.batches).toBe(4);
      expect(s.nonFinite).toBe(3);
      expect(bad).toBe(3);
      for (let c = 0; c < C; c++) {
        expect(s.channelAbsmax[c]).toBeCloseTo(absmax[c], 5);
        expect(Math.abs(s.channelMeanAbs[c] - sum[c] / cnt[c]) / (sum[c] / cnt[c])).toBeLessThan(1e-5);
      }
      expect(Array.from(s.channelAbsmax).indexOf(Math.max(...s.channelAbsmax))).toBe(5);
      expect(s.min).toBeCloseTo(lo, 5);
      expect(s.max).toBeCloseTo(hi, 5);
      expect(s.absmax).toBeCloseTo(Math.max(-lo, hi), 5);
      expect(s.movingMin).toBeCloseTo(emaMin, 4);
      expect(s.movingMax).toBeCloseTo(emaMax, 4);
      expect(s.tokenAbsmax.length).toBe(100);
      for (let t = 0; t < 100; t++) expect(s.tokenAbsmax[t]).toBeCloseTo(tokenMax[t], 5);
      // The histogram grew with the batches and equals the CPU reference bin for bin.
      expect(s.histogram.range).toBe(hist.range);
      expect(s.histogram.range).toBeGreaterThanOrEqual(s.absmax);
      expect(Array.from(s.histogram.counts)).toEqual(Array.from(hist.counts));
      expect(s.snapshot!.tokens).toBe(4);
      for (let i = 0; i < 4 * C; i++) expect(s.snapshot!.data[i]).toBe(Math.abs(batches[0][i]));
      // NaN in the activations: no result is built from them.
      expect(() => checkSummaries([s])).toThrow(/activation t \(input of a, b\) contains 3 NaN\/Inf values/);
      expect(() => buildCalibrationResult('m', [s], { bits: 8, method: 'entropy', data: { source: 'x', samples: 1, tokens: 1 }, seconds: 0 })).toThrow(/NaN/);
    } finally {
      stats.dispose();
    }
  });

  test('a clean tensor calibrates: every method in range, the chosen method recorded', async () => {
    const stats = new ActivationStatsGpu(ctx, 'clean', ['l'], C);
    try {
      const b = batch(200, 9, 1);
      const buf = ctx.upload(b);
      await stats.add({ buffer: buf, length: b.length }, 200);
      ctx.pool.release(buf);
      const s = await stats.summary();
      const r = buildCalibrationResult('m', [s], { bits: 8, method: 'mse', data: { source: 'x', samples: 1, tokens: 200 }, seconds: 0 });
      const t = r.tensors[0];
      expect(r.method).toBe('mse');
      expect(t.amax.max).toBeCloseTo(s.absmax, 5);
      for (const v of Object.values(t.amax)) expect(v).toBeLessThanOrEqual(s.absmax * 1.0001);
      expect(t.topChannels[0].channel).toBe(5);
      expect(t.sqnrDb[t.best]).toBe(Math.max(...Object.values(t.sqnrDb)));
      expect(t.histogram.percentiles['99.99']).toBeGreaterThan(0);
      // The same result with the MSE and entropy sweeps run by the WGSL kernels.
      const sweeps = await calibratorSweeps(ctx, [s], 8, 'gpu');
      expect(sweeps!.get('clean')!.mseSweep).toHaveLength(2048 - 128);
      const g = buildCalibrationResult('m', [s], { bits: 8, method: 'mse', data: { source: 'x', samples: 1, tokens: 200 }, seconds: 0, sweeps }).tensors[0];
      expect(g.amax.mse).toBe(t.amax.mse);
      expect(g.amax.entropy).toBe(t.amax.entropy);
      expect(await calibratorSweeps(ctx, [s], 8, 'cpu')).toBeUndefined();
    } finally {
      stats.dispose();
    }
  });

  test('an empty calibration is refused', () => {
    expect(() => checkSummaries([])).toThrow(/no activation/);
  });
});

describe('weightInputChannelAbsmax', () => {
  test('linear columns, conv channel blocks, depthwise rows', () => {
    // Linear [2, 3].
    expect(Array.from(weightInputChannelAbsmax(Float32Array.from([1, -5, 2, -3, 4, 0]), [2, 3], 3)!)).toEqual([3, 5, 2]);
    // Conv [out 2, in 2 x 2 kernel positions]: channel 0 = columns 0-1, channel 1 = columns 2-3.
    expect(Array.from(weightInputChannelAbsmax(Float32Array.from([1, 2, 3, 4, -9, 0, 0, 1]), [2, 4], 2)!)).toEqual([9, 4]);
    // Depthwise [out 4, 1 x 3 kernel positions] over 4 channels: row r is channel r.
    expect(Array.from(weightInputChannelAbsmax(Float32Array.from([1, 0, 0, 0, 2, 0, 0, 0, -3, 4, 0, 0]), [4, 3], 4)!)).toEqual([1, 2, 3, 4]);
  });
});
