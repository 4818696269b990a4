/**
 * Group layout: how a tensor is cut into the runs of elements that share one scale.
 *
 * A tensor is viewed as 2-D [rows, cols] (a PyTorch weight [out, in]: channels are rows, groups run
 * along the last axis; higher-rank weights flatten their trailing axes). Every group is a contiguous
 * run of the flat array: per-tensor is one run of all elements, per-channel one run per row, per-group
 * runs of `groupSize` inside each row, the last one partial when cols is not a multiple of groupSize.
 */
import { QuantConfigError, type Granularity } from './config.ts';

export interface GroupLayout {
  /** Total elements. */
  n: number;
  /** Length of a "row" in the flat array (cols; n for per-tensor). */
  rowLen: number;
  /** Nominal group length inside a row (rowLen for per-tensor and per-channel). */
  groupSize: number;
  groupsPerRow: number;
  numGroups: number;
}

export function makeGroupLayout(shape: readonly number[], granularity: Granularity, groupSize = 0): GroupLayout {
  if (shape.length === 0) throw new QuantConfigError('cannot quantize a scalar tensor (shape [])');
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 1) throw new QuantConfigError(`bad tensor shape [${shape.join(', ')}]: every dimension must be a positive integer`);
  }
  const n = shape.reduce((a, b) => a * b, 1);
  const rows = shape.length === 1 ? 1 : shape[0];
  const cols = n / rows;
  switch (granularity) {
    case 'tensor':
      return { n, rowLen: n, groupSize: n, groupsPerRow: 1, numGroups: 1 };
    case 'channel':
      return { n, rowLen: cols, groupSize: cols, groupsPerRow: 1, numGroups: rows };
    case 'group': {
      if (!Number.isInteger(groupSize) || groupSize < 1) throw new QuantConfigError(`group size must be a positive integer, got ${groupSize}`);
      const g = Math.min(groupSize, cols);
      const groupsPerRow = Math.ceil(cols / g);
      return { n, rowLen: cols, groupSize: g, groupsPerRow, numGroups: rows * groupsPerRow };
    }
  }
}

/** Group index of flat element i. */
export function groupOf(layout: GroupLayout, i: number): number {
  const row = Math.floor(i / layout.rowLen);
  const col = i - row * layout.rowLen;
  return row * layout.groupsPerRow + Math.floor(col / layout.groupSize);
}

/** [start, end) of group g in the flat array. */
export function groupRange(layout: GroupLayout, g: number): [number, number] {
  const row = Math.floor(g / layout.groupsPerRow);
  const gi = g - row * layout.groupsPerRow;
  const start = row * layout.rowLen + gi * layout.groupSize;
  const end = Math.min(start + layout.groupSize, (row + 1) * layout.rowLen);
  return [start, end];
}
