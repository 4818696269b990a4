/**
 * Turning a tensor source into the float32 matrix the analysis runs on: synthetic tensors are generated from
 * their seed, .npy files are parsed and viewed as 2-D (a weight [out, in] as is, a vector as one row, higher
 * ranks with their trailing axes flattened, as PyTorch flattens conv weights). Non-finite values are rejected
 * here, with their count, because every scale computed from them would be meaningless.
 */
import { npyToFloat32, readNpy } from '../../io/npy.ts';
import { syntheticTensor } from '../../quant/synthetic.ts';
import { MAX_ELEMENTS, TensorInputError, validateSyntheticSpec } from '../engine/tensor-spec.ts';
import type { TensorInfo, TensorSource } from './protocol.ts';

export interface LoadedTensor {
  x: Float32Array;
  info: TensorInfo;
}

export function matrixShape(shape: readonly number[]): [number, number] {
  if (shape.length === 0) throw new TensorInputError('the array is a scalar (shape []); QuantLab needs a vector or a matrix');
  const n = shape.reduce((a, b) => a * b, 1);
  if (n === 0) throw new TensorInputError(`the array is empty (shape [${shape.join(', ')}])`);
  if (shape.length === 1) return [1, n];
  return [shape[0], n / shape[0]];
}

function absmaxOf(x: Float32Array): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    const a = Math.abs(x[i]);
    if (a > m) m = a;
  }
  return m;
}

function countNonFinite(x: Float32Array): number {
  let bad = 0;
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) bad++;
  return bad;
}

export function loadTensor(src: TensorSource): LoadedTensor {
  if (src.kind === 'synthetic') {
    validateSyntheticSpec(src.spec);
    const x = syntheticTensor(src.spec);
    const shape: [number, number] = [src.spec.rows, src.spec.cols];
    return { x, info: { shape, originalShape: [...shape], dtype: 'float32', absmax: absmaxOf(x) } };
  }
  const arr = readNpy(src.bytes);
  const shape = matrixShape(arr.shape);
  const n = shape[0] * shape[1];
  if (n > MAX_ELEMENTS) throw new TensorInputError(`${src.name} holds ${n} values, more than the ${MAX_ELEMENTS} this page handles`);
  const x = npyToFloat32(arr);
  const bad = countNonFinite(x);
  if (bad > 0) {
    throw new TensorInputError(
      `${src.name} holds ${bad} non-finite value${bad === 1 ? '' : 's'} (NaN or ±Inf) out of ${n}; ` +
        'scales computed from them would be meaningless. Replace them (e.g. numpy.nan_to_num) and load the file again.',
    );
  }
  return { x, info: { shape, originalShape: [...arr.shape], dtype: String(arr.dtype), absmax: absmaxOf(x) } };
}
