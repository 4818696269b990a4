/**
 * Activation fake-quantization on the GPU (shaders/act-fake-quant.wgsl) equals its CPU reference bit for bit,
 * per token and per tensor, on Gaussian rows with outliers, rows of zeros, exact .5 ties, NaN and Inf, at
 * 8 and 4 bits; and the reference itself rounds half to even onto the symmetric grid.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import { actFakeQuantGpu, actFakeQuantRef, actScale, ActQuantError, checkActQuant } from '../../src/eval/act-fake-quant.ts';
import { gpuContext } from '../helpers/gpu.ts';
import { gaussian } from '../helpers/random.ts';

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await gpuContext();
});

/** Bit patterns, with -0 read as +0 (WGSL round(-0.3) is -0, the reference's +0; both dequantize to zero). */
function bits(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length), (v) => (v === 0x80000000 ? 0 : v));
}

/** Rows: Gaussian, Gaussian with an outlier, all zeros, exact ties at .5 of the scale, NaN/Inf, subnormal-only. */
function adversarial(cols: number): { x: Float32Array; rows: number } {
  const rows = 6;
  const x = new Float32Array(rows * cols);
  x.set(gaussian(cols, 1), 0);
  const r1 = gaussian(cols, 2);
  r1[3] = 40;
  x.set(r1, cols);
  // row 2 stays zero
  // row 3: amax 127 -> scale 1 at 8 bits, so k + 0.5 are exact ties
  for (let i = 0; i < cols; i++) x[3 * cols + i] = i === 0 ? 127 : ((i % 20) - 10) + 0.5;
  x.set(gaussian(cols, 4), 4 * cols);
  x[4 * cols + 1] = NaN;
  x[4 * cols + 2] = Infinity;
  x[4 * cols + 3] = -Infinity;
  for (let i = 0; i < cols; i++) x[5 * cols + i] = i % 2 ? 1e-40 : -1e-40;
  return { x, rows };
}

describe('GPU kernel against the CPU reference', () => {
  for (const b of [8, 4]) {
    for (const cols of [7, 64, 300]) {
      test(`per token, ${b} bits, ${cols} columns`, async () => {
        const { x, rows } = adversarial(cols);
        const want = actFakeQuantRef(x, rows, cols, b, 'per-token');
        const got = await actFakeQuantGpu(ctx, x, rows, cols, b, 'per-token');
        expect(bits(got)).toEqual(bits(want));
      });
    }
    test(`per tensor, ${b} bits, static amax`, async () => {
      const { x, rows } = adversarial(33);
      for (const amax of [0, 2.5, 127]) {
        const want = actFakeQuantRef(x, rows, 33, b, 'per-tensor', amax);
        const got = await actFakeQuantGpu(ctx, x, rows, 33, b, 'per-tensor', amax);
        expect(bits(got)).toEqual(bits(want));
      }
    });
  }
});

describe('reference', () => {
  test('round half to even on the grid; zero rows stay zero; NaN -> 0, Inf saturates', () => {
    const cols = 6;
    // amax 127 at 8 bits: scale 1.
    const x = Float32Array.from([127, 0.5, 1.5, 2.5, -2.5, -0.5, 0, 0, 0, 0, 0, 0, NaN, Infinity, -Infinity, 1, 2, 3]);
    const y = actFakeQuantRef(x, 3, cols, 8, 'per-token');
    expect(Array.from(y.subarray(0, 6))).toEqual([127, 0, 2, 2, -2, 0]);
    expect(Array.from(y.subarray(6, 12))).toEqual([0, 0, 0, 0, 0, 0]);
    const s = actScale(3, 8).scale;
    expect(Array.from(y.subarray(12))).toEqual([0, Math.fround(127 * s), Math.fround(-127 * s), Math.fround(42 * s), Math.fround(85 * s), Math.fround(127 * s)]);
  });

  test('4 bits: 7 levels each side; the row max maps to +-7', () => {
    const y = actFakeQuantRef(Float32Array.from([-7, 3.5, 1.2, 6.9]), 1, 4, 4, 'per-token');
    expect(Array.from(y)).toEqual([-7, 4, 1, 7]);
  });

  test('settings are checked', () => {
    expect(() => checkActQuant({ bits: 9, granularity: 'per-token' }, 1)).toThrow(ActQuantError);
    expect(() => checkActQuant({ bits: 8, granularity: 'per-tensor' }, 1)).toThrow(/amax for layers.0.attn_in/);
    const amax = new Map(['attn_in', 'attn_out', 'mlp_in', 'mlp_mid'].map((p) => [`layers.0.${p}`, 1]));
    expect(() => checkActQuant({ bits: 8, granularity: 'per-tensor', amax }, 1)).not.toThrow();
    amax.set('layers.0.mlp_mid', NaN);
    expect(() => checkActQuant({ bits: 8, granularity: 'per-tensor', amax }, 1)).toThrow(/mlp_mid/);
  });
});
