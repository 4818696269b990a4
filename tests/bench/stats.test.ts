/** The benchmark's arithmetic: sizes read from the command line, medians, repetition counts, units and the 70%-of-copy verdict. */
import { describe, expect, test } from 'vitest';
import { fmt, formatSize, formatTable, gbPerSecond, gelemPerSecond, median, needsWarmUp, parseSize, parseSizes, planReps, predictMs, verdict, type VerdictRow } from '../../bench/stats.ts';

describe('sizes', () => {
  test('binary suffixes, plain counts and round trips', () => {
    expect(parseSize('16M')).toBe(16 * 2 ** 20);
    expect(parseSize('64k')).toBe(65536);
    expect(parseSize('1048576')).toBe(2 ** 20);
    expect(parseSize(' 0.5M ')).toBe(2 ** 19);
    expect(parseSizes('1M,4M,16M')).toEqual([2 ** 20, 4 * 2 ** 20, 16 * 2 ** 20]);
    for (const s of ['16K', '1M', '16M', '1G', '1000']) expect(formatSize(parseSize(s))).toBe(s);
  });

  test('bad sizes are rejected with the reason', () => {
    expect(() => parseSize('16MB')).toThrow(/cannot read/);
    expect(() => parseSize('0')).toThrow(/positive/);
    expect(() => parseSize('1.5')).toThrow(/whole/);
    expect(() => parseSizes('1M,5000', 4096)).toThrow(/multiple of 4096/);
    expect(() => parseSizes(',')).toThrow(/no sizes/);
  });
});

test('median of odd and even counts, NaN for none', () => {
  expect(median([3, 1, 2])).toBe(2);
  expect(median([4, 1, 3, 2])).toBe(2.5);
  expect(median([])).toBeNaN();
});

describe('repetitions', () => {
  const plan = { targetMs: 500, minReps: 3, maxReps: 200, slowMs: 2000 };
  test('about targetMs of runs, at least minReps, at most maxReps, one when slow', () => {
    expect(planReps(10, plan)).toBe(50);
    expect(planReps(300, plan)).toBe(3);
    expect(planReps(1999, plan)).toBe(3);
    expect(planReps(2001, plan)).toBe(1);
    expect(planReps(0.001, plan)).toBe(200);
    expect(planReps(0, plan)).toBe(200);
  });

  test('the warm-up is skipped only when the previous size predicts a slow run', () => {
    expect(needsWarmUp(undefined, 2 ** 24, plan)).toBe(true);
    expect(needsWarmUp({ n: 2 ** 20, wallMs: 100 }, 2 ** 22, plan)).toBe(true);
    expect(needsWarmUp({ n: 2 ** 20, wallMs: 600 }, 2 ** 22, plan)).toBe(false);
  });
});

test('units: GB/s is 1e9 bytes per second, Gelem/s 1e9 elements per second', () => {
  expect(gbPerSecond(8e9, 1000)).toBe(8);
  expect(gelemPerSecond(2 ** 24, 1)).toBeCloseTo(16.777216, 9);
  expect(gbPerSecond(1, 0)).toBeNaN();
});

test('verdict: memory-bound kernels at the target size, split at the threshold', () => {
  const row = (kernel: string, n: number, ratioToCopy: number, bound: VerdictRow['bound'] = 'memory'): VerdictRow => ({ kernel, config: 'c', n, bound, ratioToCopy });
  const rows = [row('copy', 16, 1, 'baseline'), row('a', 16, 0.9), row('b', 16, 0.5), row('c', 16, 0.1, 'compute'), row('b', 4, 0.95)];
  expect(verdict(rows, 16)).toEqual({ n: 16, threshold: 0.7, reached: ['a c (90%)'], below: ['b c (50%)'] });
  // Without the target size, the largest size measured is judged.
  expect(verdict(rows.filter((r) => r.n === 4), 16)).toEqual({ n: 4, threshold: 0.7, reached: ['b c (95%)'], below: [] });
});

test('table and number formatting', () => {
  expect(formatTable(['k', 'ms'], [['copy', '1.5'], ['quantize', '12']], 1)).toBe('k          ms\n--------  ---\ncopy      1.5\nquantize   12');
  expect(fmt(0.012345)).toBe('0.0123');
  expect(fmt(12.345)).toBe('12.3');
  expect(fmt(12345)).toBe('12345');
  expect(fmt(NaN)).toBe('-');
});

test('run time predicted linearly from the previous size', () => {
  expect(predictMs(undefined, 2 ** 24)).toBeUndefined();
  expect(predictMs({ n: 2 ** 22, wallMs: 15_000 }, 2 ** 24)).toBe(60_000);
});
