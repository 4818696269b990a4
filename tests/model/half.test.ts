/** f16 and bf16 conversions round float32 values to the nearest representable value, ties to even, like torch and ggml. */
import { describe, expect, test } from 'vitest';
import { decodeBf16, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/model/formats/half.ts';
import { gaussian, rng } from '../helpers/random.ts';

/** All finite non-negative halves in increasing order (bits 0x0000..0x7bff are already sorted). */
const halves = Array.from({ length: 0x7c00 }, (_, b) => f16ToF32(b));

/** Nearest half by search, ties to the even bit pattern; beyond 65520 infinity. */
function nearestF16(v: number): number {
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a >= 65520) return sign | 0x7c00;
  let lo = 0;
  let hi = halves.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (halves[mid] <= a) lo = mid;
    else hi = mid;
  }
  const dl = a - halves[lo];
  const dh = halves[hi] - a;
  const pick = dl < dh ? lo : dh < dl ? hi : lo % 2 === 0 ? lo : hi;
  return sign | pick;
}

describe('half precision', () => {
  test('f16 decoding of special patterns', () => {
    expect([0x0000, 0x8000, 0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x7c00, 0xfc00].map(f16ToF32)).toEqual([0, -0, 1, -2, 65504, 2 ** -24, 2 ** -14, Infinity, -Infinity]);
    expect(f16ToF32(0x7e00)).toBeNaN();
  });

  test('f32 -> f16 matches a nearest-value search (normals, subnormals, ties, overflow)', () => {
    const r = rng(3);
    const values = [
      ...gaussian(3000, 9, 3),
      ...Array.from({ length: 1000 }, () => (r() - 0.5) * 2 ** -13),
      ...Array.from({ length: 200 }, (_, i) => f16ToF32(i * 97) + f16ToF32(1) / 2), // ties between subnormals
      1 + 2 ** -11, 1 + 3 * 2 ** -11, 65504, 65519.99, 65520, 1e6, -1e-9, 2 ** -25, 3 * 2 ** -26, 2 ** -24 * 1.5,
    ].map(Math.fround);
    for (const v of values) expect(f32ToF16(v), `value ${v}`).toBe(nearestF16(v));
    expect(f32ToF16(NaN) & 0x7c00).toBe(0x7c00);
  });

  test('f32 -> bf16 rounds to nearest even on the dropped 16 bits', () => {
    const bits = (hex: number) => new Float32Array(new Uint32Array([hex]).buffer)[0];
    expect(f32ToBf16(bits(0x3f808000))).toBe(0x3f80); // tie, even stays
    expect(f32ToBf16(bits(0x3f818000))).toBe(0x3f82); // tie, odd rounds up
    expect(f32ToBf16(bits(0x3f808001))).toBe(0x3f81);
    expect(f32ToBf16(bits(0x7f7fffff))).toBe(0x7f80); // rounds up to infinity
    expect(f32ToBf16(NaN) & 0x7fc0).toBe(0x7fc0);
    const x = gaussian(100, 4);
    const enc = new Uint8Array(200);
    x.forEach((v, i) => {
      const h = f32ToBf16(v);
      enc[2 * i] = h & 0xff;
      enc[2 * i + 1] = h >> 8;
    });
    const back = decodeBf16(enc, 0, 100);
    for (let i = 0; i < 100; i++) expect(Math.abs(back[i] - x[i])).toBeLessThanOrEqual(Math.abs(x[i]) * 2 ** -8);
  });
});
