/**
 * The CPU AWQ reference does what llm-awq / AutoAWQ specify: scales from hand-computed examples, the
 * Gram-form loss equal to the directly computed output MSE, a search that puts the largest scales on
 * outlier input channels and beats round-to-nearest, and a clip search equal to a brute-force version
 * built on the plain quantizer.
 */
import { describe, expect, test } from 'vitest';
import {
  activationMeanAbs,
  awqClipRef,
  awqLayerRef,
  awqLossDirect,
  awqLossGram,
  awqScalesForRatio,
  awqSearchRef,
  clipSampleStep,
  clipSampleTokens,
  divideColumns,
  fakeQuantizeScaledRef,
  gramMatrix,
  scaleColumns,
  wMeanOfWeight,
} from '../../src/awq/reference.ts';
import type { QuantConfig } from '../../src/quant/config.ts';
import { makeGroupLayout } from '../../src/quant/layout.ts';
import { fakeQuantizeRef, qparamsRef } from '../../src/quant/reference/quantize.ts';
import { groupStatsRef } from '../../src/quant/reference/stats.ts';
import { gaussian } from '../helpers/random.ts';
import { syntheticLayer } from './synthetic.ts';

const int4g32: QuantConfig = { bits: 4, granularity: 'group', groupSize: 32, scheme: 'asym' };

function expectRel(got: number, want: number, tol: number) {
  expect(Math.abs(got - want)).toBeLessThanOrEqual(tol * Math.abs(want));
}

describe('scales', () => {
  test('x-only scales: x_mean^r clamped at 1e-4, normalised by sqrt(max * min)', () => {
    const xMean = new Float32Array([1, 4, 0, 16]);
    // r = 0.5: [1, 2, 1e-4, 4], sqrt(4 * 1e-4) = 0.02.
    const s = awqScalesForRatio(xMean, undefined, 0.5, false);
    [50, 100, 0.005, 200].forEach((v, j) => expectRel(s[j], v, 1e-6));
    // r = 0: 0^0 = 1 for the zero channel too, so s = 1 everywhere: plain RTN.
    expect(Array.from(awqScalesForRatio(xMean, undefined, 0, false))).toEqual([1, 1, 1, 1]);
  });

  test('duo scales: x_mean^r / (w_mean^(1-r) + 1e-4)', () => {
    const xMean = new Float32Array([1, 4, 9]);
    const wMean = new Float32Array([0.25, 1, 0]);
    const s = awqScalesForRatio(xMean, wMean, 0.5, true);
    const raw = [1 / (0.5 + 1e-4), 2 / (1 + 1e-4), 3 / 1e-4];
    const norm = Math.sqrt(Math.max(...raw) * Math.min(...raw));
    raw.forEach((v, j) => expectRel(s[j], v / norm, 1e-6));
  });

  test('w_mean: |W| over its group absmax (+1e-6), averaged over rows; partial last group', () => {
    // [2, 5], group 2: row 0 groups [1, -2] [4, 1] [3]; row 1 groups [0, 0] [-1, 1] [-5].
    const w = new Float32Array([1, -2, 4, 1, 3, 0, 0, -1, 1, -5]);
    const m = wMeanOfWeight(w, [2, 5], 2);
    const want = [(1 / (2 + 1e-6) + 0) / 2, (2 / (2 + 1e-6) + 0) / 2, (4 / (4 + 1e-6) + 1 / (1 + 1e-6)) / 2, (1 / (4 + 1e-6) + 1 / (1 + 1e-6)) / 2, (3 / (3 + 1e-6) + 5 / (5 + 1e-6)) / 2];
    want.forEach((v, j) => expectRel(m[j], v, 1e-6));
    // Per-channel (group 0): normalised by the row's absmax.
    const c = wMeanOfWeight(w, [2, 5], 0);
    expectRel(c[0], (1 / (4 + 1e-6) + 0) / 2, 1e-6);
  });

  test('x_mean is the mean of |x| per column', () => {
    const x = new Float32Array([1, -2, 0, -3, 4, 0]);
    expect(Array.from(activationMeanAbs(x, 2, 3))).toEqual([2, 3, 0]);
  });

  test('Q(W * 1) / 1 is the plain quantizer', () => {
    const w = gaussian(8 * 64, 3, 0.1);
    const layout = makeGroupLayout([8, 64], 'group', 32);
    const rtn = fakeQuantizeRef(w, layout, qparamsRef(groupStatsRef(w, layout), int4g32), int4g32);
    expect(Array.from(fakeQuantizeScaledRef(w, [8, 64], new Float32Array(64).fill(1), int4g32))).toEqual(Array.from(rtn));
  });
});

describe('loss', () => {
  test('Gram form equals the direct output MSE, and both equal a naive X W^T - X W\'^T', () => {
    const { w, shape, x, tokens } = syntheticLayer(24, 80, 150, 5);
    const wq = fakeQuantizeScaledRef(w, shape, new Float32Array(80).fill(1), int4g32);
    const direct = awqLossDirect(x, tokens, w, wq, shape);
    const gram = awqLossGram(gramMatrix(x, tokens, 80), w, wq, shape, tokens);
    let sse = 0;
    for (let t = 0; t < tokens; t++) {
      for (let o = 0; o < 24; o++) {
        let y = 0;
        let yq = 0;
        for (let j = 0; j < 80; j++) {
          y += x[t * 80 + j] * w[o * 80 + j];
          yq += x[t * 80 + j] * wq[o * 80 + j];
        }
        sse += (y - yq) ** 2;
      }
    }
    expect(direct).toBeGreaterThan(0);
    expectRel(direct, sse / (tokens * 24), 1e-9);
    expectRel(gram, direct, 1e-9);
  });

  test('Gram matrix is symmetric X^T X', () => {
    const x = new Float32Array([1, 2, 3, 4, 5, 6]);
    expect(Array.from(gramMatrix(x, 2, 3))).toEqual([17, 22, 27, 22, 29, 36, 27, 36, 45]);
  });
});

describe('scale search', () => {
  const layer = syntheticLayer(32, 128, 256, 7);
  test.each([
    ['x-only', false],
    ['duo', true],
  ])('%s: largest scales on the outlier channels; chosen loss is the grid minimum and below RTN', (_n, duo) => {
    const { w, shape, x, tokens, outliers } = layer;
    const r = awqSearchRef(w, shape, x, tokens, { quant: int4g32, duo });
    expect(r.ratios).toHaveLength(20);
    expect(r.losses).toHaveLength(20);
    expect(r.ratios[19]).toBeCloseTo(0.95, 12);
    expect(r.losses[r.bestIndex]).toBe(Math.min(...r.losses));
    expect(r.losses.indexOf(Math.min(...r.losses))).toBe(r.bestIndex);
    expect(r.bestRatio).toBeGreaterThan(0);
    expect(r.losses[r.bestIndex]).toBeLessThan(0.9 * r.rtnLoss);
    const top = Array.from(r.scales.keys()).sort((a, b) => r.scales[b] - r.scales[a]).slice(0, 4);
    expect(top.sort((a, b) => a - b)).toEqual([...outliers].sort((a, b) => a - b));
    // The reported weight is Q(W*s)/s for the reported scales.
    expect(Array.from(r.quantizedWeight)).toEqual(Array.from(fakeQuantizeScaledRef(w, shape, r.scales, int4g32)));
    if (!duo) expect(r.losses[0]).toBe(r.rtnLoss);
  });

  test('direct and Gram losses give the same search', () => {
    const { w, shape, x, tokens } = syntheticLayer(16, 64, 100, 9);
    const a = awqSearchRef(w, shape, x, tokens, { quant: int4g32, duo: true, loss: 'gram' });
    const b = awqSearchRef(w, shape, x, tokens, { quant: int4g32, duo: true, loss: 'direct' });
    expect(a.bestIndex).toBe(b.bestIndex);
    a.losses.forEach((l, i) => expectRel(l, b.losses[i], 1e-9));
  });

  test('a zero input channel (x_mean = 0) gives finite positive scales and a finite result', () => {
    const { w, shape, x, tokens } = syntheticLayer(16, 64, 100, 11);
    for (let t = 0; t < tokens; t++) x[t * 64 + 5] = 0;
    for (const duo of [false, true]) {
      const r = awqLayerRef(w, shape, x, tokens, { quant: int4g32, duo });
      for (const v of r.search.scales) expect(Number.isFinite(v) && v > 0).toBe(true);
      for (const v of r.quantized.weight) expect(Number.isFinite(v)).toBe(true);
      expect(r.search.losses.every(Number.isFinite)).toBe(true);
      expect(Number.isFinite(r.finalLoss)).toBe(true);
    }
  });
});

describe('clip search', () => {
  test('sample step is max(1, floor(tokens / 512))', () => {
    expect(clipSampleStep(100)).toBe(1);
    expect(clipSampleStep(1023)).toBe(1);
    expect(clipSampleStep(1024)).toBe(2);
    expect(clipSampleStep(4096)).toBe(8);
    const x = Float32Array.from({ length: 1100 * 2 }, (_, i) => i);
    const s = clipSampleTokens(x, 1100, 2);
    expect(s.count).toBe(550);
    expect(s.rows[2 * 3]).toBe(2 * 6);
  });

  /** Brute force on the plain quantizer: clamp one group, quantize it as a tensor, score on every sampled token. */
  function bruteForceGroup(ws: Float32Array, inDim: number, xs: Float32Array, tokens: number, row: number, c0: number, len: number, cfg: QuantConfig) {
    const grp = ws.slice(row * inDim + c0, row * inDim + c0 + len);
    const amax = Math.max(...Array.from(grp, Math.abs));
    const step = Math.max(1, Math.floor(tokens / 512));
    const errs: number[] = [];
    for (let i = 0; i < 10; i++) {
      const mv = Math.fround(amax * Math.fround(1 - i / 20));
      const cl = grp.map((v) => Math.min(Math.max(v, -mv), mv));
      const lay = makeGroupLayout([len], 'tensor');
      const fq = fakeQuantizeRef(cl, lay, qparamsRef(groupStatsRef(cl, lay), { ...cfg, granularity: 'tensor' }), { ...cfg, granularity: 'tensor' });
      let e = 0;
      let n = 0;
      for (let t = 0; t < tokens; t += step) {
        let a = 0;
        let b = 0;
        for (let k = 0; k < len; k++) {
          a += xs[t * inDim + c0 + k] * grp[k];
          b += xs[t * inDim + c0 + k] * fq[k];
        }
        e += (a - b) ** 2;
        n++;
      }
      errs.push(e / n);
    }
    return { errs, amax };
  }

  test.each([
    ['int4 asym g32, 1100 tokens (sampled every 2nd)', int4g32, 1100],
    ['int3 sym g24 (partial last group), 90 tokens', { bits: 3, granularity: 'group', groupSize: 24, scheme: 'sym' } as QuantConfig, 90],
  ])('%s: equals a brute-force search', (_n, cfg, tokens) => {
    const { w, shape, x } = syntheticLayer(6, 64, tokens, 13);
    const r0 = awqSearchRef(w, shape, x, tokens, { quant: cfg, duo: false });
    const ws = scaleColumns(w, shape, r0.scales);
    const xs = divideColumns(x, tokens, r0.scales);
    const c = awqClipRef(ws, shape, xs, tokens, cfg);
    const g = cfg.groupSize!;
    const gpr = Math.ceil(64 / g);
    expect(c.maxVal).toHaveLength(6 * gpr);
    let shrunk = 0;
    for (let row = 0; row < 6; row++) {
      for (let gi = 0; gi < gpr; gi++) {
        const len = Math.min(g, 64 - gi * g);
        const bf = bruteForceGroup(ws, 64, xs, tokens, row, gi * g, len, cfg);
        const idx = row * gpr + gi;
        bf.errs.forEach((e, i) => expectRel(c.errors[idx * 10 + i], e, 1e-6));
        let best = 0;
        bf.errs.forEach((e, i) => {
          if (e < bf.errs[best]) best = i;
        });
        expect(c.choice[idx]).toBe(best);
        expect(c.maxVal[idx]).toBe(Math.fround(bf.amax * Math.fround(1 - best / 20)));
        if (best > 0) shrunk++;
      }
    }
    // Real clipping happens on this data (otherwise the test would not check much).
    expect(shrunk).toBeGreaterThan(0);
  });
});
