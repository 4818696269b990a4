/**
 * Read a .npy file named on the command line as a float32 tensor. File-system and format problems
 * become one-line InputErrors that name the file ("cannot read x.npy: no such file").
 */
import { readFileSync } from 'node:fs';
import { NpyError, npyToFloat32, readNpy, type NpyArray } from '../io/npy.ts';
import { InputError } from './cli-errors.ts';

export interface TensorFile {
  path: string;
  /** As stored in the file, before the conversion to float32. */
  source: NpyArray;
  shape: number[];
  data: Float32Array;
}

const FS_REASONS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EISDIR: 'it is a directory, not a .npy file',
};

export function readTensorFile(path: string): TensorFile {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new InputError(`cannot read ${path}: ${FS_REASONS[err.code ?? ''] ?? err.message}`);
  }
  let source: NpyArray;
  try {
    source = readNpy(bytes);
  } catch (e) {
    if (e instanceof NpyError) throw new InputError(`cannot read ${path}: ${e.message}`);
    throw e;
  }
  return { path, source, shape: source.shape, data: npyToFloat32(source) };
}
