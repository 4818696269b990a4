/**
 * Quantization needs finite inputs: a NaN or infinity has no place on the grid and poisons the
 * scale of its group. Commands refuse such tensors up front, naming how many and where the first is.
 */
import { InputError } from './cli-errors.ts';
import type { TensorFile } from './read-tensor-file.ts';

/** Index of flat element i of a C-order array of this shape, e.g. [3, 17]. */
export function unravelIndex(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let ax = shape.length - 1; ax >= 0; ax--) {
    idx[ax] = i % shape[ax];
    i = Math.floor(i / shape[ax]);
  }
  return idx;
}

export function requireFinite(t: TensorFile): void {
  let count = 0;
  let first = -1;
  for (let i = 0; i < t.data.length; i++) {
    if (!Number.isFinite(t.data[i])) {
      if (first < 0) first = i;
      count++;
    }
  }
  if (count === 0) return;
  const v = t.data[first];
  const what = Number.isNaN(v) ? 'NaN' : v > 0 ? 'Inf' : '-Inf';
  const original = t.source.data[first];
  const why = Number.isFinite(original) ? ` (the ${t.source.dtype} value ${original} is beyond the float32 range)` : '';
  throw new InputError(
    `${t.path} contains ${count} non-finite value${count === 1 ? '' : 's'} (NaN or Inf), ` +
      `the first at index [${unravelIndex(first, t.shape).join(', ')}] (flat ${first}): ${what}${why}; quantization needs finite inputs`,
  );
}
