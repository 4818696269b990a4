/**
 * CPU reference for the statistics kernels: per-group (per-tensor / per-channel / per-group) min, max,
 * absmax and mean |x|; per-column statistics of an activation matrix; per-token absmax.
 * NaN and +-Inf are not part of any statistic; they are counted in `nonFinite`.
 */
import { groupRange, type GroupLayout } from '../layout.ts';

export interface GroupStats {
  min: Float32Array;
  max: Float32Array;
  absmax: Float32Array;
  /** Mean of |x| over the finite elements of the group (0 when there are none). */
  meanAbs: Float32Array;
  /** Finite elements per group. */
  count: Uint32Array;
  /** NaN/Inf elements per group. */
  nonFinite: Uint32Array;
}

export function allocGroupStats(numGroups: number): GroupStats {
  return {
    min: new Float32Array(numGroups),
    max: new Float32Array(numGroups),
    absmax: new Float32Array(numGroups),
    meanAbs: new Float32Array(numGroups),
    count: new Uint32Array(numGroups),
    nonFinite: new Uint32Array(numGroups),
  };
}

function reduceRun(x: ArrayLike<number>, indices: Iterable<number>, out: GroupStats, g: number): void {
  let mn = Infinity;
  let mx = -Infinity;
  let sumAbs = 0;
  let count = 0;
  let bad = 0;
  for (const i of indices) {
    const v = x[i];
    if (!Number.isFinite(v)) {
      bad++;
      continue;
    }
    if (v < mn) mn = v;
    if (v > mx) mx = v;
    sumAbs += Math.abs(v);
    count++;
  }
  if (count === 0) mn = mx = 0;
  out.min[g] = mn;
  out.max[g] = mx;
  out.absmax[g] = Math.max(-mn, mx);
  out.meanAbs[g] = count ? sumAbs / count : 0;
  out.count[g] = count;
  out.nonFinite[g] = bad;
}

function* span(start: number, end: number, step = 1): Generator<number> {
  for (let i = start; i < end; i += step) yield i;
}

export function groupStatsRef(x: Float32Array, layout: GroupLayout): GroupStats {
  const out = allocGroupStats(layout.numGroups);
  for (let g = 0; g < layout.numGroups; g++) {
    const [s, e] = groupRange(layout, g);
    reduceRun(x, span(s, e), out, g);
  }
  return out;
}

/** Statistics of each column of x [rows, cols]: the per-input-channel view of an activation matrix [tokens, channels]. */
export function columnStatsRef(x: Float32Array, rows: number, cols: number): GroupStats {
  const out = allocGroupStats(cols);
  for (let c = 0; c < cols; c++) reduceRun(x, span(c, rows * cols, cols), out, c);
  return out;
}

/** Absmax of each row of an activation matrix [tokens, channels]: the dynamic per-token scale's input. */
export function perTokenAbsmaxRef(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = allocGroupStats(rows);
  for (let r = 0; r < rows; r++) reduceRun(x, span(r * cols, (r + 1) * cols), out, r);
  return out.absmax;
}
