/**
 * CPU reference for quantization parameters, quantize, dequantize and fake-quantize. This is the spec
 * the WGSL kernels are tested against (REFERENCE.md section 1):
 *
 *   symmetric:  s = amax / qmax,           q = clamp(round(x / s), -qmax, qmax),       x' = q * s
 *   asymmetric: s = (hi - lo) / (2^b - 1), z = clamp(round(-lo / s), 0, 2^b - 1),
 *               q = clamp(round(x / s) + z, 0, 2^b - 1),                               x' = (q - z) * s
 *
 * with round = half to even, and x / s evaluated as x * (1 / s) in f32, like PyTorch's fake_quantize.
 * Clipping at t = clipRatio * absmax: amax = t (symmetric); lo = max(min, -t), hi = min(max, t) (asymmetric).
 * The asymmetric range always contains 0 (lo <= 0 <= hi) so zero is exact and every value is in range;
 * this equals llm-awq / AutoAWQ whenever a group has both signs (every real weight group).
 * A zero range (all-zero group, or no finite values) gives s = 1, z = 0.
 * NaN quantizes to the zero point (dequantizes to 0); +-Inf saturate to the ends of the grid.
 * FP8 E4M3: s = amax / 448, code = E4M3(x / s) rounded to nearest even, saturating; x' = E4M3value * s.
 */
import { qmaxOf, validateQuantConfig, type QuantConfig } from '../config.ts';
import { groupOf, type GroupLayout } from '../layout.ts';
import { e4m3Decode, e4m3Encode, F32_MIN_NORMAL, fround, roundHalfEven } from './f32.ts';
import type { GroupStats } from './stats.ts';

export interface QParams {
  scale: Float32Array;
  invScale: Float32Array;
  /** Zero point per group (integer valued; 0 for symmetric and FP8). */
  zero: Float32Array;
}

export interface GroupRangeStats {
  min: number;
  max: number;
  absmax: number;
}

/** Scale, inverse scale and zero point of one group. */
export function qparamsOfGroup(st: GroupRangeStats, cfgIn: QuantConfig): { scale: number; invScale: number; zero: number } {
  const cfg = validateQuantConfig(cfgIn);
  const qmax = qmaxOf(cfg);
  const t = fround(fround(cfg.clipRatio) * fround(st.absmax));
  let range: number;
  let lo = 0;
  if (cfg.scheme === 'sym') {
    range = t;
  } else {
    lo = Math.min(Math.max(fround(st.min), -t), 0);
    const hi = Math.max(Math.min(fround(st.max), t), 0);
    range = fround(hi - lo);
  }
  const scale = fround(range / qmax);
  if (!(scale >= F32_MIN_NORMAL)) return { scale: 1, invScale: 1, zero: 0 };
  const invScale = fround(1 / scale);
  const zero = cfg.scheme === 'sym' ? 0 : Math.min(Math.max(roundHalfEven(fround(-lo * invScale)), 0), qmax);
  return { scale, invScale, zero };
}

export function qparamsRef(stats: GroupStats, cfg: QuantConfig): QParams {
  const n = stats.min.length;
  const out: QParams = { scale: new Float32Array(n), invScale: new Float32Array(n), zero: new Float32Array(n) };
  for (let g = 0; g < n; g++) {
    const p = qparamsOfGroup({ min: stats.min[g], max: stats.max[g], absmax: stats.absmax[g] }, cfg);
    out.scale[g] = p.scale;
    out.invScale[g] = p.invScale;
    out.zero[g] = p.zero;
  }
  return out;
}

/** Integer code (or E4M3 byte) of one value. */
export function quantizeValue(x: number, invScale: number, zero: number, cfgIn: QuantConfig): number {
  const cfg = validateQuantConfig(cfgIn);
  const qmax = qmaxOf(cfg);
  if (cfg.format === 'fp8-e4m3') {
    if (Number.isNaN(x)) return 0;
    if (!Number.isFinite(x)) return x > 0 ? 0x7e : 0xfe;
    return e4m3Encode(fround(x * invScale));
  }
  const lo = cfg.scheme === 'sym' ? -qmax : 0;
  if (Number.isNaN(x)) return zero;
  if (!Number.isFinite(x)) return x > 0 ? qmax : lo;
  const q = roundHalfEven(fround(x * invScale)) + zero;
  return Math.min(Math.max(q, lo), qmax);
}

export function dequantizeValue(code: number, scale: number, zero: number, cfgIn: QuantConfig): number {
  const cfg = validateQuantConfig(cfgIn);
  if (cfg.format === 'fp8-e4m3') return fround(e4m3Decode(code) * scale);
  return fround((code - zero) * scale);
}

/**
 * Codes as stored: Int8Array for symmetric integers, Uint8Array for asymmetric integers and for FP8
 * (the E4M3 bit pattern).
 */
export type Codes = Int8Array | Uint8Array;

export function allocCodes(n: number, cfg: QuantConfig): Codes {
  return cfg.scheme === 'sym' && (cfg.format ?? 'int') === 'int' ? new Int8Array(n) : new Uint8Array(n);
}

export function quantizeRef(x: Float32Array, layout: GroupLayout, qp: QParams, cfg: QuantConfig): Codes {
  const codes = allocCodes(x.length, cfg);
  for (let i = 0; i < x.length; i++) {
    const g = groupOf(layout, i);
    codes[i] = quantizeValue(x[i], qp.invScale[g], qp.zero[g], cfg);
  }
  return codes;
}

export function dequantizeRef(codes: Codes, layout: GroupLayout, qp: QParams, cfg: QuantConfig): Float32Array {
  const out = new Float32Array(codes.length);
  for (let i = 0; i < codes.length; i++) {
    const g = groupOf(layout, i);
    out[i] = dequantizeValue(codes[i], qp.scale[g], qp.zero[g], cfg);
  }
  return out;
}

export function fakeQuantizeRef(x: Float32Array, layout: GroupLayout, qp: QParams, cfg: QuantConfig): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const g = groupOf(layout, i);
    out[i] = dequantizeValue(quantizeValue(x[i], qp.invScale[g], qp.zero[g], cfg), qp.scale[g], qp.zero[g], cfg);
  }
  return out;
}
