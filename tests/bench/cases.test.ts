/** The benchmark uploads CPU-reference statistics in the kernels' GroupStats layout; the GPU decoder reads back the same values. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { DISPATCH, encodeGroupStats, partials } from '../../bench/cases.ts';
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

/** The bench's byte models mirror QuantKernels' dispatch constants; read them from the source so a kernel change that is not mirrored fails here. */
describe('dispatch mirrors match src/quant/gpu-kernels.ts', () => {
  const src = readFileSync(fileURLToPath(new URL('../../src/quant/gpu-kernels.ts', import.meta.url)), 'utf8');
  const one = (re: RegExp, what: string): number[] => {
    const m = re.exec(src);
    if (!m) throw new Error(`gpu-kernels.ts no longer has ${what} in the form the bench mirrors (${re}); update bench/cases.ts DISPATCH and this test`);
    return m.slice(1).map(Number);
  };

  test('workgroup size, elements per workgroup, sweep elements per thread', () => {
    expect(one(/^const WG = (\d+);/m, 'WG')).toEqual([DISPATCH.WG]);
    expect(one(/^const ELEMS_PER_WG = (\d+);/m, 'ELEMS_PER_WG')).toEqual([DISPATCH.ELEMS_PER_WG]);
    expect(one(/^const SWEEP_EPT = (\d+);/m, 'SWEEP_EPT')).toEqual([DISPATCH.SWEEP_EPT]);
  });

  test('chunked group statistics and column-statistics chunks', () => {
    expect(one(/const chunked = layout\.groupSize > (\d+) && layout\.numGroups < (\d+);/, 'the chunked-statistics condition')).toEqual([DISPATCH.STATS_CHUNK, DISPATCH.STATS_CHUNK_MAX_GROUPS]);
    expect(one(/const chunkLen = chunked \? (\d+) :/, 'the statistics chunk length')).toEqual([DISPATCH.STATS_CHUNK]);
    expect(one(/const rowsPerChunk = Math\.max\((\d+), Math\.ceil\(rows \/ (\d+)\)\);/, 'the column-statistics chunking')).toEqual([DISPATCH.COL_MIN_ROWS, DISPATCH.COL_MAX_CHUNKS]);
  });
});

test('partial buffers at the benchmark sizes', () => {
  const n16 = 16 * 2 ** 20;
  // 16M elements as [4096, 4096]: 1024 statistics chunks of 16384, 512 error-metric workgroups, 2048 sweep blocks of 8192.
  expect(partials(n16)).toEqual({ statsChunked: true, statsChunks: 1024, colRowsPerChunk: 64, colChunks: 64, metricWgs: 512, sweepBlocks: 2048 });
  // 16K elements as [4, 4096]: one statistics group short enough for one pass, one of everything else.
  expect(partials(4 * 4096)).toEqual({ statsChunked: false, statsChunks: 1, colRowsPerChunk: 64, colChunks: 1, metricWgs: 1, sweepBlocks: 2 });
  // A tall tensor: column chunks grow past 64 rows once there are over 65536 rows.
  expect(partials(2 ** 17 * 4096, 2 ** 17).colRowsPerChunk).toBe(128);
});
