/**
 * Pure helpers that turn an analysis into what the charts draw: the representable magnitudes of a group's
 * grid, histogram bins merged for display, absmax arrays reduced to a drawable number of bars (keeping the
 * maximum so outliers survive), and the largest channels by name.
 */
import type { QuantConfig } from '../quant/config.ts';
import { E4M3_MAX } from '../quant/config.ts';
import { e4m3Decode } from '../quant/reference/f32.ts';

/**
 * The distinct magnitudes |x'| a group can reproduce: k*s for symmetric INT (k = 0..2^(b-1)-1), |q - z|*s
 * for affine INT (both sides of the zero point), and every finite E4M3 value times s for FP8.
 */
export function gridMagnitudes(cfg: Required<QuantConfig>, scale: number, zero: number): number[] {
  const set = new Set<number>();
  if (cfg.format === 'fp8-e4m3') {
    for (let code = 0; code < 0x7f; code++) set.add(Math.fround(e4m3Decode(code) * scale));
  } else if (cfg.scheme === 'sym') {
    const qmax = 2 ** (cfg.bits - 1) - 1;
    for (let k = 0; k <= qmax; k++) set.add(Math.fround(k * scale));
  } else {
    const qmax = 2 ** cfg.bits - 1;
    for (let q = 0; q <= qmax; q++) set.add(Math.fround(Math.abs(q - zero) * scale));
  }
  return [...set].filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
}

/** Largest magnitude on the grid: where the group clips. */
export function gridTop(cfg: Required<QuantConfig>, scale: number, zero: number): number {
  if (cfg.format === 'fp8-e4m3') return E4M3_MAX * scale;
  if (cfg.scheme === 'sym') return (2 ** (cfg.bits - 1) - 1) * scale;
  return Math.max(zero, 2 ** cfg.bits - 1 - zero) * scale;
}

/** Merge `factor` adjacent bins; x is the centre of each merged bin. */
export function mergeBins(counts: Uint32Array, range: number, factor: number): { x: number[]; y: number[]; width: number } {
  const n = Math.ceil(counts.length / factor);
  const width = (range / counts.length) * factor;
  const x: number[] = [];
  const y: number[] = [];
  for (let i = 0; i < n; i++) {
    let c = 0;
    for (let j = i * factor; j < Math.min((i + 1) * factor, counts.length); j++) c += counts[j];
    x.push((i + 0.5) * width);
    y.push(c);
  }
  return { x, y, width };
}

/** At most `maxBars` bars, each the max of a run of channels, starting at channel index x. */
export function maxPool(values: Float32Array, maxBars: number): { x: number[]; y: number[]; stride: number } {
  const stride = Math.max(1, Math.ceil(values.length / maxBars));
  const x: number[] = [];
  const y: number[] = [];
  for (let i = 0; i < values.length; i += stride) {
    let m = 0;
    for (let j = i; j < Math.min(i + stride, values.length); j++) m = Math.max(m, values[j]);
    x.push(i);
    y.push(m);
  }
  return { x, y, stride };
}

export function topK(values: Float32Array, k: number): { index: number; value: number }[] {
  const idx = Array.from(values.keys());
  idx.sort((a, b) => values[b] - values[a]);
  return idx.slice(0, k).map((index) => ({ index, value: values[index] }));
}

export function median(values: Float32Array): number {
  if (values.length === 0) return 0;
  const s = Float32Array.from(values).sort();
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Vertical segments at each x from y0 to y1, as one scatter trace's x/y (null breaks the line). */
export function verticalSegments(xs: number[], y0: number, y1: number): { x: (number | null)[]; y: (number | null)[] } {
  const x: (number | null)[] = [];
  const y: (number | null)[] = [];
  for (const v of xs) {
    x.push(v, v, null);
    y.push(y0, y1, null);
  }
  return { x, y };
}
