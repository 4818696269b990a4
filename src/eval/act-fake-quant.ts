/**
 * Activation fake-quantization at the inputs of the linear layers (the "A8" of W8A8, SmoothQuant's
 * evaluation): symmetric narrow range, `s = amax / (2^(b-1) - 1)`, `x' = clamp(round(x * (1/s)), -qmax, qmax) * s`
 * (round half to even, both quotients correctly rounded in f32, as quant/reference/quantize.ts and
 * smooth/smoothquant.ts fakeQuantInt8Rows do it). amax is each row's max |x| over its finite values
 * (dynamic per-token) or a static per-tensor amax from calibration. A zero range gives s = 1; NaN becomes 0
 * and +-Inf saturate. actFakeQuantRef is the spec of shaders/act-fake-quant.wgsl (actFakeQuantSteps).
 * No Node imports.
 */
import type { GpuContext, Step } from '../gpu/context.ts';
import { grid } from '../gpu/context.ts';
import { F32_MIN_NORMAL, fround, roundHalfEven } from '../quant/reference/f32.ts';

export type ActQuantGranularity = 'per-token' | 'per-tensor';

/** Fake-quantized activations at the four linear-input points of every block (attn_in, attn_out, mlp_in, mlp_mid). */
export interface ActQuantOptions {
  /** Integer bits, 2 to 8 (8 for W8A8). */
  bits: number;
  granularity: ActQuantGranularity;
  /**
   * Per-tensor amax by capture point name (`layers.3.attn_in`, as LlamaGpu.enableCapture names them);
   * required for every point with per-tensor granularity.
   */
  amax?: ReadonlyMap<string, number>;
}

export class ActQuantError extends Error {
  override name = 'ActQuantError';
}

/** The capture points of block `l` whose rows the linears read, in forward order. */
export const ACT_QUANT_POINTS = ['attn_in', 'attn_out', 'mlp_in', 'mlp_mid'] as const;

/** Throws ActQuantError on a bit width outside 2..8 or a missing / non-finite per-tensor amax. */
export function checkActQuant(q: ActQuantOptions, nLayers: number): void {
  if (!Number.isInteger(q.bits) || q.bits < 2 || q.bits > 8) throw new ActQuantError(`activation bits must be an integer from 2 to 8, got ${q.bits}`);
  if (q.granularity !== 'per-token' && q.granularity !== 'per-tensor') throw new ActQuantError(`activation granularity must be per-token or per-tensor, got ${String(q.granularity)}`);
  if (q.granularity === 'per-tensor') {
    for (let l = 0; l < nLayers; l++) {
      for (const p of ACT_QUANT_POINTS) {
        const a = q.amax?.get(`layers.${l}.${p}`);
        if (a === undefined || !(a >= 0 && Number.isFinite(a))) throw new ActQuantError(`per-tensor activation quantization needs a finite amax for layers.${l}.${p}, got ${a}`);
      }
    }
  }
}

/** Scale and inverse scale for this amax (qparamsOfGroup, symmetric). */
export function actScale(amax: number, bits: number): { scale: number; invScale: number } {
  const qmax = 2 ** (bits - 1) - 1;
  const scale = fround(fround(amax) / qmax);
  if (!(scale >= F32_MIN_NORMAL)) return { scale: 1, invScale: 1 };
  return { scale, invScale: fround(1 / scale) };
}

/** CPU reference: fake-quantize x [rows, cols] (a new array); `amax` is the static amax for per-tensor. */
export function actFakeQuantRef(x: Float32Array, rows: number, cols: number, bits: number, granularity: ActQuantGranularity, amax = 0): Float32Array {
  if (x.length < rows * cols) throw new RangeError(`activation has ${x.length} values, expected ${rows} x ${cols}`);
  const out = new Float32Array(rows * cols);
  const qmax = 2 ** (bits - 1) - 1;
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let a = amax;
    if (granularity === 'per-token') {
      a = 0;
      for (let i = o; i < o + cols; i++) {
        const v = Math.abs(x[i]);
        if (v > a && Number.isFinite(v)) a = v;
      }
    }
    const { scale, invScale } = actScale(a, bits);
    for (let i = o; i < o + cols; i++) {
      const v = x[i];
      let q = Number.isNaN(v) ? 0 : !Number.isFinite(v) ? (v > 0 ? qmax : -qmax) : roundHalfEven(fround(v * invScale));
      if (q > qmax) q = qmax;
      else if (q < -qmax) q = -qmax;
      out[i] = fround(q * scale);
    }
  }
  return out;
}

/**
 * The compute step fake-quantizing `x` [rows, cols] in place (shaders/act-fake-quant.wgsl), with its
 * uniform parameter buffer; release the buffer after the run.
 */
export function actFakeQuantStep(ctx: GpuContext, x: GPUBuffer, rows: number, cols: number, bits: number, granularity: ActQuantGranularity, amax = 0): { step: Step; params: GPUBuffer } {
  const ab = new ArrayBuffer(16);
  new Uint32Array(ab).set([rows, cols, 0, 0]);
  new Float32Array(ab)[2] = amax;
  const params = ctx.uniform(ab);
  return {
    params,
    step: { shader: 'act-fake-quant.wgsl', constants: { WG: 64, BITS: bits, PER_TOKEN: granularity === 'per-token' }, bindings: [params, x], workgroups: grid(rows) },
  };
}

/** Fake-quantize x [rows, cols] on the GPU (the kernel alone, for tests and benchmarks). */
export async function actFakeQuantGpu(ctx: GpuContext, x: Float32Array, rows: number, cols: number, bits: number, granularity: ActQuantGranularity, amax = 0): Promise<Float32Array> {
  if (x.length < rows * cols) throw new RangeError(`activation has ${x.length} values, expected ${rows} x ${cols}`);
  const buf = ctx.upload(x.subarray(0, rows * cols), 'activations');
  const { step, params } = actFakeQuantStep(ctx, buf, rows, cols, bits, granularity, amax);
  try {
    await ctx.run([step]);
    return await ctx.readF32(buf, rows * cols);
  } finally {
    ctx.pool.releaseAll([buf, params]);
  }
}
