/**
 * Float32 arithmetic as the GPU does it. Every WGSL f32 `+ - *` is correctly rounded, and the kernels
 * divide with an exact integer routine, so a JavaScript double operation on f32 operands followed by
 * Math.fround gives the same bits (double has more than 2*24+2 bits, so the double rounding is harmless).
 */
export const fround = Math.fround;

/** Smallest normal f32; scales below it are treated as a zero range (the GPU may flush subnormals). */
export const F32_MIN_NORMAL = 2 ** -126;

/** Round half to even, like WGSL round() and torch.round (JavaScript Math.round rounds half up). */
export function roundHalfEven(y: number): number {
  const f = Math.floor(y);
  const d = y - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** f32 quotient a / b rounded to nearest even, as the kernels' exact division computes it. */
export function divF32(a: number, b: number): number {
  return fround(fround(a) / fround(b));
}

/** Encode a finite value (already divided by the scale) as an FP8 E4M3FN byte: round to nearest even, saturate at 448. */
export function e4m3Encode(y: number): number {
  if (Number.isNaN(y)) return 0;
  const sign = y < 0 || Object.is(y, -0) ? 0x80 : 0;
  const a = Math.abs(y);
  if (a >= 448) return sign | 0x7e;
  // Subnormals: exponent field 0, value m * 2^-9; m = 8 rolls over into the first normal (0x08) exactly.
  if (a < 2 ** -6) return sign | roundHalfEven(a * 512);
  const e = Math.floor(Math.log2(a));
  // Guard against log2 imprecision at exact powers of two.
  const exp = a >= 2 ** (e + 1) ? e + 1 : a < 2 ** e ? e - 1 : e;
  const mant = a / 2 ** exp - 1; // in [0, 1), exact for f32 inputs
  let m = roundHalfEven(mant * 8);
  let ex = exp;
  if (m === 8) {
    m = 0;
    ex += 1;
  }
  const code = ((ex + 7) << 3) | m;
  return sign | Math.min(code, 0x7e);
}

export function e4m3Decode(code: number): number {
  const sign = code & 0x80 ? -1 : 1;
  const e = (code >> 3) & 0xf;
  const m = code & 7;
  if (e === 0) return sign * m * 2 ** -9;
  if (e === 15 && m === 7) return NaN;
  return sign * (1 + m / 8) * 2 ** (e - 7);
}
