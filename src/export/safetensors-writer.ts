/**
 * A safetensors writer for tensors given as raw little-endian bytes of any dtype (the integer tensors of
 * quantized checkpoints: AutoAWQ's int32 qweight, TinyChat's int16 qweight), beside fp16 / fp32 ones
 * encoded from float32. Layout (huggingface/safetensors README): uint64 little-endian N, N bytes of JSON
 * {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}} padded with spaces
 * to a multiple of 8, then the data, relative offsets, no holes. Tensors are laid out by element size,
 * largest first (what the safetensors library does), so every tensor starts aligned to its element size.
 */
import { encodeF32 } from '../model/formats/half.ts';
import { encodeF16 } from '../model/formats/ggml-quants.ts';

export type SafetensorsRawDtype = 'F32' | 'F16' | 'BF16' | 'I32' | 'I16' | 'I8' | 'U8';

export const SAFETENSORS_DTYPE_BYTES: Record<SafetensorsRawDtype, number> = { F32: 4, F16: 2, BF16: 2, I32: 4, I16: 2, I8: 1, U8: 1 };

export interface SafetensorsRawTensor {
  name: string;
  dtype: SafetensorsRawDtype;
  shape: number[];
  /** Little-endian bytes, numel(shape) * element size of them. */
  bytes: Uint8Array;
}

/** An fp16 tensor from float32 values (round to nearest even). */
export function f16Tensor(name: string, shape: number[], data: Float32Array): SafetensorsRawTensor {
  return { name, dtype: 'F16', shape, bytes: encodeF16(data) };
}

export function f32Tensor(name: string, shape: number[], data: Float32Array): SafetensorsRawTensor {
  return { name, dtype: 'F32', shape, bytes: encodeF32(data) };
}

/** Bytes of an int32 array, little-endian whatever the platform. */
export function int32Bytes(v: Int32Array): Uint8Array {
  const out = new Uint8Array(v.length * 4);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < v.length; i++) dv.setInt32(4 * i, v[i], true);
  return out;
}

export function int16Bytes(v: Int16Array): Uint8Array {
  const out = new Uint8Array(v.length * 2);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < v.length; i++) dv.setInt16(2 * i, v[i], true);
  return out;
}

/** Encodes one .safetensors file as chunks to write one after another. Refuses duplicate names and sizes that do not match the shape. */
export function encodeSafetensorsRaw(tensors: SafetensorsRawTensor[], metadata: Record<string, string> = { format: 'pt' }): Uint8Array[] {
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === '__metadata__') throw new RangeError('a tensor cannot be named __metadata__');
    if (seen.has(t.name)) throw new RangeError(`duplicate tensor name ${t.name}`);
    seen.add(t.name);
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n * SAFETENSORS_DTYPE_BYTES[t.dtype] !== t.bytes.length) {
      throw new RangeError(`tensor ${t.name}: ${t.dtype} [${t.shape.join(', ')}] needs ${n * SAFETENSORS_DTYPE_BYTES[t.dtype]} bytes, got ${t.bytes.length}`);
    }
  }
  const ordered = [...tensors].sort((a, b) => SAFETENSORS_DTYPE_BYTES[b.dtype] - SAFETENSORS_DTYPE_BYTES[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of ordered) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  let json = JSON.stringify(header);
  const jsonBytesRaw = new TextEncoder().encode(json);
  json += ' '.repeat((8 - (jsonBytesRaw.length % 8)) % 8);
  const jsonBytes = new TextEncoder().encode(json);
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(jsonBytes.length), true);
  return [len, jsonBytes, ...ordered.map((t) => t.bytes)];
}
