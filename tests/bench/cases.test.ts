/** The benchmark uploads CPU-reference statistics in the kernels' GroupStats layout; the GPU decoder reads back the same values. */
import { expect, test } from 'vitest';
import { encodeGroupStats } from '../../bench/cases.ts';
import { decodeGroupStats } from '../../src/quant/gpu-kernels.ts';
import { makeGroupLayout } from '../../src/quant/layout.ts';
import { groupStatsRef } from '../../src/quant/reference/stats.ts';
import { syntheticTensor } from '../../src/quant/synthetic.ts';

test('encodeGroupStats is the inverse of decodeGroupStats', () => {
  const x = syntheticTensor({ kind: 'llm', rows: 8, cols: 256, seed: 3 });
  x[5] = NaN;
  x[300] = Infinity;
  const s = groupStatsRef(x, makeGroupLayout([8, 256], 'group', 32));
  const d = decodeGroupStats(encodeGroupStats(s), s.min.length);
  expect(d.min).toEqual(s.min);
  expect(d.max).toEqual(s.max);
  expect(d.absmax).toEqual(s.absmax);
  expect(d.count).toEqual(s.count);
  expect(d.nonFinite).toEqual(s.nonFinite);
  for (let g = 0; g < s.min.length; g++) expect(d.meanAbs[g]).toBeCloseTo(s.meanAbs[g], 5);
});
