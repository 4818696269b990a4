/**
 * Half-precision conversions for checkpoint tensors: IEEE binary16 (f16) and bfloat16 (bf16), both
 * ways, on whole arrays. Encoding rounds to nearest, ties to even (as torch .half()/.bfloat16() and
 * ggml's GGML_FP32_TO_FP16 do); inputs are float32 values.
 */

/** Typed-array views use the host byte order; every file format here is little-endian. */
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

let f16Table: Float32Array | undefined;

/** All 65536 binary16 values, built once (decoding is then one lookup per element). */
function f16Values(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let bits = 0; bits < 65536; bits++) {
    const sign = bits & 0x8000 ? -1 : 1;
    const exp = (bits >> 10) & 0x1f;
    const mant = bits & 0x3ff;
    if (exp === 0) t[bits] = sign * mant * 2 ** -24;
    else if (exp === 0x1f) t[bits] = mant ? NaN : sign * Infinity;
    else t[bits] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  f16Table = t;
  return t;
}

export function f16ToF32(bits: number): number {
  return f16Values()[bits & 0xffff];
}

/** Decodes `count` little-endian f16 values starting at bytes[offset]. */
export function decodeF16(bytes: Uint8Array, offset: number, count: number, out = new Float32Array(count)): Float32Array {
  const t = f16Values();
  for (let i = 0, p = offset; i < count; i++, p += 2) out[i] = t[bytes[p] | (bytes[p + 1] << 8)];
  return out;
}

/** Decodes `count` little-endian bf16 values (the top 16 bits of a float32) starting at bytes[offset]. */
export function decodeBf16(bytes: Uint8Array, offset: number, count: number, out = new Float32Array(count)): Float32Array {
  const u = new Uint32Array(out.buffer, out.byteOffset, count);
  for (let i = 0, p = offset; i < count; i++, p += 2) u[i] = ((bytes[p] | (bytes[p + 1] << 8)) << 16) >>> 0;
  return out;
}

const scratchF = new Float32Array(1);
const scratchU = new Uint32Array(scratchF.buffer);

/** binary16 bits of the float32 value v, rounded to nearest even; overflow gives infinity, NaN stays NaN. */
export function f32ToF16(v: number): number {
  scratchF[0] = v;
  const x = scratchU[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): shift the mantissa with its implicit bit, round half to even.
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    const q = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    return sign | (rem > half || (rem === half && q & 1) ? q + 1 : q);
  }
  const q = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (and reaches infinity at the top).
  return sign | (rem > 0x1000 || (rem === 0x1000 && q & 1) ? q + 1 : q);
}

/** bfloat16 bits of the float32 value v, rounded to nearest even; NaN stays a quiet NaN. */
export function f32ToBf16(v: number): number {
  scratchF[0] = v;
  const x = scratchU[0];
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Rounds every element to the nearest f16 value (what storing and reloading as f16 gives). */
export function roundToF16(x: Float32Array): Float32Array {
  const t = f16Values();
  return x.map((v) => t[f32ToF16(v)]);
}

/** Rounds every element to the nearest bf16 value. */
export function roundToBf16(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < x.length; i++) u[i] = (f32ToBf16(x[i]) << 16) >>> 0;
  return out;
}

/** Little-endian f32 values from bytes[offset..], copied into a fresh array (any alignment). */
export function decodeF32(bytes: Uint8Array, offset: number, count: number): Float32Array {
  const out = new Float32Array(count);
  if (LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(bytes.subarray(offset, offset + count * 4));
  } else {
    const dv = new DataView(bytes.buffer, bytes.byteOffset + offset, count * 4);
    for (let i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, true);
  }
  return out;
}

/** Little-endian bytes of a float32 array. */
export function encodeF32(x: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(x.buffer.slice(x.byteOffset, x.byteOffset + x.byteLength));
  const out = new Uint8Array(x.length * 4);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < x.length; i++) dv.setFloat32(i * 4, x[i], true);
  return out;
}
