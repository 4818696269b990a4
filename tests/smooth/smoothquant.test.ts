/**
 * SmoothQuant's CPU reference computes smooth.py's factors (hand-checked, clamps included), migrates the
 * quantization difficulty from activations to weights, and on activations with outlier channels lowers the
 * W8A8 output error; the alpha sweep picks the best alpha per group and per model.
 */
import { describe, expect, test } from 'vitest';
import {
  alphaSweepGroup,
  bestModelAlpha,
  cpuGroupError,
  difficulty,
  difficultyMigration,
  fakeQuantInt8Rows,
  groupErrorRef,
  smoothedActAmax,
  smoothingFactors,
  SmoothQuantError,
  weightColumnAbsmax,
  type GroupSweep,
} from '../../src/smooth/smoothquant.ts';
import { syntheticGroup } from './synthetic.ts';

describe('smoothing factors', () => {
  test('s_j = max|X_j|^alpha / max|W_j|^(1-alpha), with max|W_j| over all linears of the group', () => {
    const wq = { name: 'q', out: 2, weight: Float32Array.from([1, -4, 0.5, 2, 0.25, -1]) }; // [2, 3]
    const wk = { name: 'k', out: 1, weight: Float32Array.from([-3, 1, 0.5]) }; // [1, 3]
    const w = weightColumnAbsmax([wq, wk], 3);
    expect(Array.from(w)).toEqual([3, 4, 1]); // column 2: max(0.5, 1) over wq, 0.5 in wk
    const act = Float32Array.from([9, 1, 16]);
    const s = smoothingFactors(act, w, 0.5);
    expect(s[0]).toBeCloseTo(Math.sqrt(9) / Math.sqrt(3), 6);
    expect(s[1]).toBeCloseTo(1 / 2, 6);
    expect(s[2]).toBeCloseTo(4, 5);
    const s75 = smoothingFactors(act, w, 0.75);
    expect(s75[0]).toBeCloseTo(9 ** 0.75 / 3 ** 0.25, 5);
    // alpha 0: 1 / max|W_j|; alpha 1: max|X_j|.
    expect(Array.from(smoothingFactors(act, w, 0)).map((v) => +v.toFixed(5))).toEqual([0.33333, 0.25, 1]);
    expect(Array.from(smoothingFactors(act, w, 1))).toEqual([9, 1, 16]);
  });

  test('zero channels: a silent activation or an all-zero weight column stays finite (clamp at 1e-5)', () => {
    const s = smoothingFactors(Float32Array.from([0, 4, 0]), Float32Array.from([2, 0, 0]), 0.5);
    expect(s[0]).toBeCloseTo(1e-5, 10); // 0 / sqrt(2) -> clamped
    expect(s[1]).toBeCloseTo(2 / Math.sqrt(1e-5), 2); // weight max clamped at 1e-5
    expect(s[2]).toBeCloseTo(1e-5, 10);
    for (const v of s) expect(Number.isFinite(v) && v > 0).toBe(true);
    // The smoothed model's norm weight / s and W * s stay finite too.
    expect(Number.isFinite(1 / s[0])).toBe(true);
  });

  test('bad inputs: alpha outside [0, 1], NaN statistics, mismatched lengths', () => {
    const a = Float32Array.from([1, 2]);
    expect(() => smoothingFactors(a, a, 1.5)).toThrow(/alpha must be a number in \[0, 1\], got 1.5/);
    expect(() => smoothingFactors(a, a, -0.1)).toThrow(SmoothQuantError);
    expect(() => smoothingFactors(a, a, NaN)).toThrow(/alpha/);
    expect(() => smoothingFactors(Float32Array.from([1, NaN]), a, 0.5)).toThrow(/channel 1 is NaN/);
    expect(() => smoothingFactors(a, Float32Array.from([1]), 0.5)).toThrow(/2 channels.*1 input channels/);
  });
});

describe('difficulty migration and W8A8 error', () => {
  test('difficulty: max and max/median spread', () => {
    expect(difficulty([1, 2, 3, 10])).toEqual({ max: 10, median: 2.5, spread: 4 });
    expect(difficulty([0, 0, 0]).spread).toBe(1);
  });

  test('alpha 0.5 moves the outliers: activation spread down, weight spread up; X W^T is unchanged', () => {
    const g = syntheticGroup();
    const w = weightColumnAbsmax(g.linears, g.channels);
    const s = smoothingFactors(g.actAbsmax, w, 0.5);
    const m = difficultyMigration(g.actAbsmax, w, s);
    expect(m.activation.before.spread).toBeGreaterThan(15);
    expect(m.activation.after.spread).toBeLessThan(m.activation.before.spread / 3);
    expect(m.weight.after.spread).toBeGreaterThan(m.weight.before.spread);
    expect(m.activation.after.max).toBeLessThan(m.activation.before.max);
    // Without quantization the smoothing is exact: (X / s)(W * s)^T = X W^T.
    const none = groupErrorRef({ ...g, linears: g.linears }, s, { act: 'per-token' });
    expect(none.every((l) => Number.isFinite(l.sqnr))).toBe(true);
  });

  test('per-tensor W8A8: smoothing at alpha 0.5 beats no smoothing (alpha 0 and s = 1) on outlier channels', () => {
    const g = syntheticGroup();
    const w = weightColumnAbsmax(g.linears, g.channels);
    const ones = new Float32Array(g.channels).fill(1);
    const err = (s: Float32Array) => groupErrorRef(g, s, { act: 'per-tensor', actAmax: smoothedActAmax(g.actAbsmax, s) }).reduce((a, l) => a + l.mse, 0);
    const none = err(ones);
    const a0 = err(smoothingFactors(g.actAbsmax, w, 0));
    const a5 = err(smoothingFactors(g.actAbsmax, w, 0.5));
    expect(a5).toBeLessThan(none / 4);
    expect(a5).toBeLessThan(a0);
  });

  test('the error is zero-free and measures the quantization: identity factors with per-token activations', () => {
    const g = syntheticGroup(5);
    const ones = new Float32Array(g.channels).fill(1);
    const e = groupErrorRef(g, ones, { act: 'per-token' });
    expect(e.map((l) => l.name)).toEqual(['q', 'k']);
    for (const l of e) {
      expect(l.mse).toBeGreaterThan(0);
      expect(l.sqnr).toBeGreaterThan(5);
      expect(l.sqnr).toBeLessThan(60);
    }
  });

  test('INT8 rows: round half to even, narrow range, all-zero rows stay zero', () => {
    // amax 127 -> scale 1: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -127 stays.
    const q = fakeQuantInt8Rows(Float32Array.from([127, 0.5, 1.5, 2.5, -127, 0, 0, 0, 0, 0]), 2, 5);
    expect(Array.from(q)).toEqual([127, 0, 2, 2, -127, 0, 0, 0, 0, 0]);
  });
});

describe('alpha sweep', () => {
  test('per group and per model: the best alpha has the least summed error; the baseline is unsmoothed', async () => {
    const groups = [syntheticGroup(3), syntheticGroup(11)];
    const alphas = [0, 0.25, 0.5, 0.75, 1];
    const sweeps: GroupSweep[] = [];
    for (const [i, g] of groups.entries()) {
      const w = weightColumnAbsmax(g.linears, g.channels);
      sweeps.push(await alphaSweepGroup({ group: `g${i}`, linears: ['q', 'k'], actAbsmax: g.actAbsmax, weightColAbsmax: w, error: cpuGroupError(g) }, alphas, 'per-tensor'));
    }
    for (const sw of sweeps) {
      expect(sw.points.map((p) => p.alpha)).toEqual(alphas);
      const best = sw.points.find((p) => p.alpha === sw.bestAlpha)!;
      for (const p of sw.points) expect(best.mse).toBeLessThanOrEqual(p.mse);
      expect(best.mse).toBeLessThan(sw.baseline.mse);
      // Migration is monotone in alpha: the activation spread falls, the weight spread rises.
      expect(sw.points[4].activation.spread).toBeLessThan(sw.points[0].activation.spread);
      expect(sw.points[4].weight.spread).toBeGreaterThan(sw.points[0].weight.spread);
    }
    const model = bestModelAlpha(sweeps);
    const summed = alphas.map((_, k) => sweeps[0].points[k].mse + sweeps[1].points[k].mse);
    expect(model.mse).toBe(Math.min(...summed));
    expect(model.alpha).toBe(alphas[summed.indexOf(model.mse)]);
    await expect(alphaSweepGroup({ group: 'x', linears: [], actAbsmax: groups[0].actAbsmax, weightColAbsmax: groups[0].actAbsmax, error: cpuGroupError(groups[0]) }, [0.5, 2], 'per-token')).rejects.toThrow(/alpha/);
  });
});
