/** The CPU reference (the spec every kernel is tested against) reproduces hand-computed cases from REFERENCE.md section 1. */
import { describe, expect, test } from 'vitest';
import { QuantConfigError, validateQuantConfig, type QuantConfig } from '../../src/quant/config.ts';
import { groupOf, groupRange, makeGroupLayout } from '../../src/quant/layout.ts';
import { e4m3Decode, e4m3Encode, roundHalfEven } from '../../src/quant/reference/f32.ts';
import { absHistogramRef } from '../../src/quant/reference/histogram.ts';
import { clipSweepRef, errorMetricsRef } from '../../src/quant/reference/metrics.ts';
import { dequantizeRef, fakeQuantizeRef, qparamsOfGroup, qparamsRef, quantizeRef } from '../../src/quant/reference/quantize.ts';
import { columnStatsRef, groupStatsRef, perTokenAbsmaxRef } from '../../src/quant/reference/stats.ts';

const f32 = (a: number[]) => new Float32Array(a);
const tensor = (bits: number, scheme: 'sym' | 'asym', extra: Partial<QuantConfig> = {}): QuantConfig => ({ bits, granularity: 'tensor', scheme, ...extra });

describe('rounding', () => {
  test('half to even, unlike Math.round', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999, 2.5001].map(roundHalfEven)).toEqual([0, 2, 2, 0, -2, -2, 2, 3]);
    expect(Math.round(2.5)).toBe(3);
  });
});

describe('layout', () => {
  test('per-group with a partial last group', () => {
    const l = makeGroupLayout([2, 5], 'group', 2);
    expect(l).toMatchObject({ n: 10, rowLen: 5, groupSize: 2, groupsPerRow: 3, numGroups: 6 });
    expect(groupRange(l, 2)).toEqual([4, 5]);
    expect(groupRange(l, 3)).toEqual([5, 7]);
    expect([0, 1, 2, 4, 5, 9].map((i) => groupOf(l, i))).toEqual([0, 0, 1, 2, 3, 5]);
  });
  test('per-tensor, per-channel, group larger than the row, N-D flattening', () => {
    expect(makeGroupLayout([4, 3], 'tensor')).toMatchObject({ numGroups: 1, groupSize: 12 });
    expect(makeGroupLayout([4, 3], 'channel')).toMatchObject({ numGroups: 4, groupSize: 3 });
    expect(makeGroupLayout([4, 3], 'group', 128)).toMatchObject({ numGroups: 4, groupSize: 3 });
    expect(makeGroupLayout([8, 3, 3, 3], 'channel')).toMatchObject({ numGroups: 8, rowLen: 27 });
    expect(makeGroupLayout([7], 'channel')).toMatchObject({ numGroups: 1, rowLen: 7 });
  });
  test('bad shapes and group sizes are refused with a clear message', () => {
    expect(() => makeGroupLayout([4, 0], 'tensor')).toThrow(/positive integer/);
    expect(() => makeGroupLayout([4, 4], 'group', 0)).toThrow(/group size/);
    expect(() => makeGroupLayout([], 'tensor')).toThrow(/scalar/);
  });
});

describe('config validation', () => {
  test.each([
    [{ bits: 9 }, /bits must be an integer from 2 to 8, got 9/],
    [{ bits: 1 }, /got 1/],
    [{ bits: 4.5 }, /got 4.5/],
    [{ granularity: 'group', groupSize: 0 }, /group size must be a positive integer/],
    [{ granularity: 'group', groupSize: 2.5 }, /group size/],
    [{ clipRatio: 0 }, /clip ratio/],
    [{ clipRatio: 1.5 }, /clip ratio/],
    [{ format: 'fp8-e4m3', scheme: 'asym' }, /symmetric only/],
  ])('%o is refused', (patch, msg) => {
    expect(() => validateQuantConfig({ ...tensor(8, 'sym'), ...(patch as Partial<QuantConfig>) })).toThrow(QuantConfigError);
    expect(() => validateQuantConfig({ ...tensor(8, 'sym'), ...(patch as Partial<QuantConfig>) })).toThrow(msg);
  });
});

describe('statistics', () => {
  test('min, max, absmax, mean |x| per group; negative-only rows; non-finite excluded and counted', () => {
    const x = f32([-3, -1, -2, 4, NaN, Infinity, 0, 0]);
    const s = groupStatsRef(x, makeGroupLayout([2, 4], 'group', 3));
    // groups: [-3,-1,-2] [4] [NaN,Inf,0] [0]
    expect(Array.from(s.min)).toEqual([-3, 4, 0, 0]);
    expect(Array.from(s.max)).toEqual([-1, 4, 0, 0]);
    expect(Array.from(s.absmax)).toEqual([3, 4, 0, 0]);
    expect(Array.from(s.meanAbs)).toEqual([2, 4, 0, 0]);
    expect(Array.from(s.count)).toEqual([3, 1, 1, 1]);
    expect(Array.from(s.nonFinite)).toEqual([0, 0, 2, 0]);
  });
  test('a group with no finite values has a zero range', () => {
    const s = groupStatsRef(f32([NaN, NaN]), makeGroupLayout([2], 'tensor'));
    expect([s.min[0], s.max[0], s.absmax[0], s.count[0], s.nonFinite[0]]).toEqual([0, 0, 0, 0, 2]);
  });
  test('per-column statistics and per-token absmax of an activation matrix', () => {
    const x = f32([1, -5, 2, -3, 4, -6]); // [2 tokens, 3 channels]
    const c = columnStatsRef(x, 2, 3);
    expect(Array.from(c.absmax)).toEqual([3, 5, 6]);
    expect(Array.from(c.meanAbs)).toEqual([2, 4.5, 4]);
    expect(Array.from(perTokenAbsmaxRef(x, 2, 3))).toEqual([5, 6]);
  });
});

describe('quantization parameters and codes', () => {
  test('symmetric INT8: s = amax/127, ties round to even, narrow range', () => {
    const x = f32([127, -3.5, 2.5, 0.5, -0.5, 1.5, -127]);
    const cfg = tensor(8, 'sym');
    const l = makeGroupLayout([x.length], 'tensor');
    const qp = qparamsRef(groupStatsRef(x, l), cfg);
    expect([qp.scale[0], qp.invScale[0], qp.zero[0]]).toEqual([1, 1, 0]);
    expect(Array.from(quantizeRef(x, l, qp, cfg))).toEqual([127, -4, 2, 0, 0, 2, -127]);
  });
  test('asymmetric INT4 (llm-awq formula): s = (max-min)/15, z = -round(min/s)', () => {
    const x = f32([-1, 2, 0.1, 0]);
    const cfg = tensor(4, 'asym');
    const l = makeGroupLayout([4], 'tensor');
    const qp = qparamsRef(groupStatsRef(x, l), cfg);
    expect(qp.scale[0]).toBe(Math.fround(0.2));
    expect(qp.zero[0]).toBe(5);
    // 0.1 / 0.2 = 0.5 is a tie: rounds to 0, so q = z and x' = 0.
    expect(Array.from(quantizeRef(x, l, qp, cfg))).toEqual([0, 15, 5, 5]);
    expect(Array.from(dequantizeRef(quantizeRef(x, l, qp, cfg), l, qp, cfg))).toEqual([Math.fround(-1), Math.fround(2), 0, 0]);
  });
  test('asymmetric range always holds zero: a negative-only group maps its max to 0', () => {
    const p = qparamsOfGroup({ min: -3, max: -1, absmax: 3 }, tensor(4, 'asym'));
    expect(p.scale).toBe(Math.fround(0.2));
    expect(p.zero).toBe(15);
  });
  test('all-zero group: scale 1, codes 0, exact zeros back', () => {
    for (const scheme of ['sym', 'asym'] as const) {
      const x = f32([0, 0, 0]);
      const l = makeGroupLayout([3], 'tensor');
      const qp = qparamsRef(groupStatsRef(x, l), tensor(4, scheme));
      expect([qp.scale[0], qp.zero[0]]).toEqual([1, 0]);
      expect(Array.from(fakeQuantizeRef(x, l, qp, tensor(4, scheme)))).toEqual([0, 0, 0]);
    }
  });
  test('constant group keeps its value', () => {
    const x = f32([2, 2, 2]);
    const l = makeGroupLayout([3], 'tensor');
    for (const scheme of ['sym', 'asym'] as const) {
      const y = fakeQuantizeRef(x, l, qparamsRef(groupStatsRef(x, l), tensor(8, scheme)), tensor(8, scheme));
      for (const v of y) expect(v).toBeCloseTo(2, 5);
    }
  });
  test('clipping at ratio * absmax saturates the outlier', () => {
    const x = f32([254, 100, -10]);
    const cfg = tensor(8, 'sym', { clipRatio: 0.5 });
    const l = makeGroupLayout([3], 'tensor');
    const qp = qparamsRef(groupStatsRef(x, l), cfg);
    expect(qp.scale[0]).toBe(1);
    expect(Array.from(quantizeRef(x, l, qp, cfg))).toEqual([127, 100, -10]);
  });
  test('NaN goes to the zero point, infinities saturate', () => {
    const x = f32([NaN, Infinity, -Infinity, 1]);
    const l = makeGroupLayout([4], 'tensor');
    const sym = qparamsRef(groupStatsRef(x, l), tensor(4, 'sym'));
    expect(Array.from(quantizeRef(x, l, sym, tensor(4, 'sym')))).toEqual([0, 7, -7, 7]);
    const asym = qparamsRef(groupStatsRef(x, l), tensor(4, 'asym'));
    expect(Array.from(quantizeRef(x, l, asym, tensor(4, 'asym')))).toEqual([0, 15, 0, 15]);
  });
  test('a scale below the normal f32 range counts as a zero range', () => {
    expect(qparamsOfGroup({ min: -1e-37, max: 1e-37, absmax: 1e-37 }, tensor(8, 'sym'))).toEqual({ scale: 1, invScale: 1, zero: 0 });
  });
  test('per-group INT3: each group its own scale', () => {
    const x = f32([1, -2, 3, 30, -60, 90]);
    const cfg: QuantConfig = { bits: 3, granularity: 'group', groupSize: 3, scheme: 'sym' };
    const l = makeGroupLayout([1, 6], 'group', 3);
    const qp = qparamsRef(groupStatsRef(x, l), cfg);
    expect(Array.from(qp.scale)).toEqual([1, 30]);
    expect(Array.from(quantizeRef(x, l, qp, cfg))).toEqual([1, -2, 3, 1, -2, 3]);
  });
});

describe('FP8 E4M3', () => {
  test('encoding of exact, tie and saturating values', () => {
    expect(e4m3Encode(1)).toBe(0x38);
    expect(e4m3Encode(0.5)).toBe(0x30);
    expect(e4m3Encode(448)).toBe(0x7e);
    expect(e4m3Encode(1000)).toBe(0x7e);
    expect(e4m3Encode(-448)).toBe(0xfe);
    expect(e4m3Encode(2 ** -9)).toBe(0x01);
    expect(e4m3Encode(2 ** -6)).toBe(0x08);
    expect(e4m3Encode(1.0625)).toBe(0x38); // tie between 1 and 1.125 -> even mantissa
    expect(e4m3Encode(1.1875)).toBe(0x3a); // tie between 1.125 and 1.25 -> even mantissa
    expect(e4m3Encode(2 ** -10)).toBe(0x00); // tie between 0 and 2^-9 -> 0
    expect(e4m3Encode(3 * 2 ** -10)).toBe(0x02);
  });
  test('decode inverts encode on all 254 finite codes', () => {
    for (let c = 0; c < 256; c++) {
      if ((c & 0x7f) === 0x7f) continue;
      const v = e4m3Decode(c);
      if (c === 0x80) expect(Object.is(v, -0)).toBe(true);
      else expect(e4m3Encode(v)).toBe(c);
    }
    expect(e4m3Decode(0x7e)).toBe(448);
  });
  test('per-tensor FP8: scale = amax / 448', () => {
    const x = f32([896, 2, -1]);
    const cfg: QuantConfig = { bits: 8, granularity: 'tensor', scheme: 'sym', format: 'fp8-e4m3' };
    const l = makeGroupLayout([3], 'tensor');
    const qp = qparamsRef(groupStatsRef(x, l), cfg);
    expect(qp.scale[0]).toBe(2);
    expect(Array.from(fakeQuantizeRef(x, l, qp, cfg))).toEqual([896, 2, -1]);
  });
});

describe('error metrics', () => {
  test('MSE and SQNR = 10 log10(sum x^2 / sum e^2)', () => {
    const m = errorMetricsRef(f32([3, 4]), f32([3, 3]));
    expect(m.mse).toBe(0.5);
    expect(m.sqnr).toBeCloseTo(10 * Math.log10(25), 12);
    expect(m.maxAbsError).toBe(1);
    expect(errorMetricsRef(f32([1, 2]), f32([1, 2])).sqnr).toBe(Infinity);
  });
  test('clip sweep splits the error into clipping and rounding', () => {
    const x = f32([10, 1]);
    const l = makeGroupLayout([2], 'tensor');
    const [pt] = clipSweepRef(x, l, groupStatsRef(x, l), tensor(8, 'sym'), [0.5]);
    const s = Math.fround(5 / 127);
    expect(pt.clipSse).toBeCloseTo((10 - Math.fround(127 * s)) ** 2, 4);
    const q1 = roundHalfEven(Math.fround(1 * Math.fround(1 / s)));
    expect(pt.roundSse).toBeCloseTo((1 - Math.fround(q1 * s)) ** 2, 10);
    expect(pt.mse).toBeCloseTo((pt.clipSse + pt.roundSse) / 2, 12);
  });
});

describe('histogram', () => {
  test('bins of |x| over [0, range], overflow into the last bin, non-finite apart', () => {
    const h = absHistogramRef(f32([1, -1, 2, 5, 0, NaN, 0.0009765625]), 2);
    expect(h.counts[1024]).toBe(2);
    expect(h.counts[2047]).toBe(2);
    expect(h.counts[0]).toBe(1);
    expect(h.counts[1]).toBe(1); // 2^-10 * 1024 = 1
    expect(h.nonFinite).toBe(1);
    expect(h.counts.reduce((a, b) => a + b, 0)).toBe(6);
  });
});
