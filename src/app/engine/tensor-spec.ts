/** Limits on the tensors the page accepts, shared by the form validation (UI thread) and the worker. */
import type { SyntheticSpec } from '../../quant/synthetic.ts';

/** 2^26 float32 values = 256 MiB: beyond this the browser tab, not the GPU, becomes the limit. */
export const MAX_ELEMENTS = 2 ** 26;

export class TensorInputError extends Error {
  override name = 'TensorInputError';
}

/** Throws a TensorInputError naming the first bad field. */
export function validateSyntheticSpec(spec: SyntheticSpec): void {
  for (const [name, v] of [['rows', spec.rows], ['cols', spec.cols]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new TensorInputError(`${name} must be a positive integer, got ${String(v)}`);
  }
  if (spec.rows * spec.cols > MAX_ELEMENTS) {
    throw new TensorInputError(`${spec.rows} × ${spec.cols} = ${spec.rows * spec.cols} values is more than the ${MAX_ELEMENTS} this page handles`);
  }
  if (!Number.isInteger(spec.seed) || spec.seed < 0) throw new TensorInputError(`seed must be a non-negative integer, got ${String(spec.seed)}`);
}
