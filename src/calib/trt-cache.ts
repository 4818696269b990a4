/**
 * TensorRT calibration cache (implicit INT8 quantization, REFERENCE.md section 5): a header line
 * `TRT-<version>-EntropyCalibration2`, then one line per tensor `<name>: <hex>`, where hex is the
 * IEEE-754 bit pattern of the float32 scale amax / 127, lower-case, without 0x or leading zeros.
 * onnxruntime's TensorRT provider reads it back (ReadDynamicRange) and multiplies by 127.
 * The names are ONNX value names, so the cache is written for ONNX models only.
 */
import type { CalibrationResult } from './types.ts';

/** TensorRT 8.6.1 (JetPack 6's TensorRT is 8.6.2: the cache header is the same). */
export const DEFAULT_TRT_VERSION = '8601';

export class TrtCacheError extends Error {
  override name = 'TrtCacheError';
}

export function float32Hex(v: number): string {
  const f = new Float32Array([v]);
  return new Uint32Array(f.buffer)[0].toString(16);
}

export function hexFloat32(hex: string): number {
  if (!/^[0-9a-fA-F]{1,8}$/.test(hex)) throw new TrtCacheError(`not a float32 bit pattern in hex: ${hex}`);
  const u = new Uint32Array([parseInt(hex, 16)]);
  return new Float32Array(u.buffer)[0];
}

export function trtCalibrationCache(result: CalibrationResult, opts: { version?: string; kind?: 'onnx' | 'llama' } = {}): string {
  if (opts.kind === 'llama') {
    throw new TrtCacheError('a TensorRT calibration cache names ONNX tensors; this model is a Llama checkpoint (export it to ONNX first)');
  }
  const version = opts.version ?? DEFAULT_TRT_VERSION;
  if (!/^\d+$/.test(version)) throw new TrtCacheError(`TensorRT version must be digits such as 8601 or 100300, got ${version}`);
  const lines = [`TRT-${version}-EntropyCalibration2`];
  const seen = new Set<string>();
  for (const t of result.tensors) {
    if (seen.has(t.name)) throw new TrtCacheError(`tensor ${t.name} appears twice in the calibration`);
    if (t.name.includes('\n')) throw new TrtCacheError(`tensor name ${JSON.stringify(t.name)} contains a newline`);
    seen.add(t.name);
    const amax = t.amax[result.method];
    if (!(Number.isFinite(amax) && amax >= 0)) throw new TrtCacheError(`tensor ${t.name}: amax ${amax} of ${result.method} is not a finite non-negative number`);
    lines.push(`${t.name}: ${float32Hex(amax / 127)}`);
  }
  return lines.join('\n') + '\n';
}

/** Parse a cache back (as onnxruntime's ReadDynamicRange does): tensor name -> amax (scale * 127). */
export function parseTrtCalibrationCache(text: string): { header: string; amax: Map<string, number> } {
  const lines = text.split('\n').filter((l) => l.length > 0);
  if (lines.length === 0 || !/^TRT-\d+-\w+$/.test(lines[0])) throw new TrtCacheError('not a TensorRT calibration cache: the first line must be TRT-<version>-<calibrator>');
  const amax = new Map<string, number>();
  for (const line of lines.slice(1)) {
    const i = line.lastIndexOf(': ');
    if (i < 0) throw new TrtCacheError(`bad cache line: ${line}`);
    amax.set(line.slice(0, i), hexFloat32(line.slice(i + 2)) * 127);
  }
  return { header: lines[0], amax };
}
