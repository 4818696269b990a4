/**
 * ggml tensor types: block sizes, and float32 <-> Q8_0 / Q4_0 conversion exactly as llama.cpp's
 * reference code does it (ggml/src/ggml-quants.c: quantize_row_q8_0_ref, quantize_row_q4_0_ref,
 * dequantize_row_q8_0, dequantize_row_q4_0).
 *
 *   Q8_0: blocks of 32 values, 34 bytes: f16 scale d, 32 x int8 q; value = q * d.
 *         Quantize: d = amax / 127, q = roundf(x / d) (half away from zero).
 *   Q4_0: blocks of 32 values, 18 bytes: f16 scale d, 16 bytes of nibbles; byte j holds element j in its
 *         low nibble and element j + 16 in its high nibble; value = (nibble - 8) * d.
 *         Quantize: m = the value of largest magnitude (sign kept), d = m / -8,
 *         nibble = min(15, trunc(x / d + 8.5)).
 */
import { decodeBf16, decodeF16, decodeF32, f16ToF32, f32ToBf16, f32ToF16 } from './half.ts';

/** ggml_type numbers (ggml.h enum ggml_type). */
export const GGML_TYPE = {
  F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q5_0: 6, Q5_1: 7, Q8_0: 8, Q8_1: 9, Q2_K: 10, Q3_K: 11, Q4_K: 12, Q5_K: 13,
  Q6_K: 14, Q8_K: 15, IQ2_XXS: 16, IQ2_XS: 17, IQ3_XXS: 18, IQ1_S: 19, IQ4_NL: 20, IQ3_S: 21, IQ2_S: 22, IQ4_XS: 23,
  I8: 24, I16: 25, I32: 26, I64: 27, F64: 28, IQ1_M: 29, BF16: 30, TQ1_0: 34, TQ2_0: 35, MXFP4: 39,
} as const;

export type GgmlTypeName = keyof typeof GGML_TYPE;

const NAMES = new Map<number, string>(Object.entries(GGML_TYPE).map(([k, v]) => [v, k]));

export function ggmlTypeName(type: number): string {
  return NAMES.get(type) ?? `unknown type ${type}`;
}

/** [values per block, bytes per block] for the types whose layout is simple to state; undefined otherwise. */
const BLOCKS: Partial<Record<number, [number, number]>> = {
  [GGML_TYPE.F32]: [1, 4], [GGML_TYPE.F16]: [1, 2], [GGML_TYPE.BF16]: [1, 2], [GGML_TYPE.F64]: [1, 8],
  [GGML_TYPE.I8]: [1, 1], [GGML_TYPE.I16]: [1, 2], [GGML_TYPE.I32]: [1, 4], [GGML_TYPE.I64]: [1, 8],
  [GGML_TYPE.Q4_0]: [32, 18], [GGML_TYPE.Q4_1]: [32, 20], [GGML_TYPE.Q5_0]: [32, 22], [GGML_TYPE.Q5_1]: [32, 24],
  [GGML_TYPE.Q8_0]: [32, 34], [GGML_TYPE.Q8_1]: [32, 36], [GGML_TYPE.Q2_K]: [256, 84], [GGML_TYPE.Q3_K]: [256, 110],
  [GGML_TYPE.Q4_K]: [256, 144], [GGML_TYPE.Q5_K]: [256, 176], [GGML_TYPE.Q6_K]: [256, 210], [GGML_TYPE.Q8_K]: [256, 292],
};

export function ggmlBlockInfo(type: number): { blockSize: number; blockBytes: number } | undefined {
  const b = BLOCKS[type];
  return b && { blockSize: b[0], blockBytes: b[1] };
}

/** The types QuantLab can turn into float32. */
export const READABLE_GGML_TYPES = [GGML_TYPE.F32, GGML_TYPE.F16, GGML_TYPE.BF16, GGML_TYPE.Q8_0, GGML_TYPE.Q4_0] as const;

export const QK = 32;

/** Float32 values of `count` elements of the given type stored at bytes[offset..]. */
export function dequantizeGgml(type: number, bytes: Uint8Array, offset: number, count: number): Float32Array {
  switch (type) {
    case GGML_TYPE.F32:
      return decodeF32(bytes, offset, count);
    case GGML_TYPE.F16:
      return decodeF16(bytes, offset, count);
    case GGML_TYPE.BF16:
      return decodeBf16(bytes, offset, count);
    case GGML_TYPE.Q8_0:
      return dequantizeQ8_0(bytes, offset, count);
    case GGML_TYPE.Q4_0:
      return dequantizeQ4_0(bytes, offset, count);
    default:
      throw new RangeError(`cannot dequantize ggml type ${ggmlTypeName(type)}`);
  }
}

function checkBlocks(count: number, what: string): void {
  if (count % QK !== 0) throw new RangeError(`${what} needs a multiple of ${QK} values, got ${count}`);
}

export function dequantizeQ8_0(bytes: Uint8Array, offset: number, count: number): Float32Array {
  checkBlocks(count, 'Q8_0');
  const out = new Float32Array(count);
  for (let b = 0, o = offset; b < count / QK; b++, o += 34) {
    const d = f16ToF32(bytes[o] | (bytes[o + 1] << 8));
    for (let j = 0; j < QK; j++) out[b * QK + j] = ((bytes[o + 2 + j] << 24) >> 24) * d;
  }
  return out;
}

export function dequantizeQ4_0(bytes: Uint8Array, offset: number, count: number): Float32Array {
  checkBlocks(count, 'Q4_0');
  const out = new Float32Array(count);
  for (let b = 0, o = offset; b < count / QK; b++, o += 18) {
    const d = f16ToF32(bytes[o] | (bytes[o + 1] << 8));
    for (let j = 0; j < QK / 2; j++) {
      const q = bytes[o + 2 + j];
      out[b * QK + j] = ((q & 0x0f) - 8) * d;
      out[b * QK + j + QK / 2] = ((q >> 4) - 8) * d;
    }
  }
  return out;
}

const fr = Math.fround;
/** C roundf: half away from zero. */
const roundf = (v: number) => Math.sign(v) * Math.floor(Math.abs(v) + 0.5);

export function quantizeQ8_0(x: Float32Array): Uint8Array {
  checkBlocks(x.length, 'Q8_0');
  const out = new Uint8Array((x.length / QK) * 34);
  for (let b = 0, o = 0; b < x.length / QK; b++, o += 34) {
    let amax = 0;
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(x[b * QK + j]));
    const d = fr(amax / 127);
    const id = d ? fr(1 / d) : 0;
    const h = f32ToF16(d);
    out[o] = h & 0xff;
    out[o + 1] = h >> 8;
    for (let j = 0; j < QK; j++) out[o + 2 + j] = roundf(fr(x[b * QK + j] * id)) & 0xff;
  }
  return out;
}

export function quantizeQ4_0(x: Float32Array): Uint8Array {
  checkBlocks(x.length, 'Q4_0');
  const out = new Uint8Array((x.length / QK) * 18);
  for (let b = 0, o = 0; b < x.length / QK; b++, o += 18) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK; j++) {
      const v = x[b * QK + j];
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = fr(max / -8);
    const id = d ? fr(1 / d) : 0;
    const h = f32ToF16(d);
    out[o] = h & 0xff;
    out[o + 1] = h >> 8;
    for (let j = 0; j < QK / 2; j++) {
      const q0 = Math.min(15, Math.trunc(fr(fr(x[b * QK + j] * id) + 8.5)));
      const q1 = Math.min(15, Math.trunc(fr(fr(x[b * QK + j + QK / 2] * id) + 8.5)));
      out[o + 2 + j] = q0 | (q1 << 4);
    }
  }
  return out;
}

/** Bytes of f16 / bf16 values (little-endian). */
export function encodeF16(x: Float32Array): Uint8Array {
  const out = new Uint8Array(x.length * 2);
  for (let i = 0; i < x.length; i++) {
    const h = f32ToF16(x[i]);
    out[2 * i] = h & 0xff;
    out[2 * i + 1] = h >> 8;
  }
  return out;
}

export function encodeBf16(x: Float32Array): Uint8Array {
  const out = new Uint8Array(x.length * 2);
  for (let i = 0; i < x.length; i++) {
    const h = f32ToBf16(x[i]);
    out[2 * i] = h & 0xff;
    out[2 * i + 1] = h >> 8;
  }
  return out;
}
