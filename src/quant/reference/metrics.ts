/**
 * CPU reference for the error metrics: MSE, SQNR = 10 log10(sum x^2 / sum (x - x')^2) (the same as
 * 20 log10(||x|| / ||x - x'||), onnxruntime qdq_loss_debug.py), and the split of the squared error into
 * clipping error (elements with |x| beyond the group's threshold t) and rounding error (the rest),
 * for a sweep of clip ratios. Non-finite elements are left out of every sum.
 */
import type { QuantConfig } from '../config.ts';
import { groupOf, type GroupLayout } from '../layout.ts';
import { fround } from './f32.ts';
import { dequantizeValue, qparamsOfGroup, quantizeValue } from './quantize.ts';
import type { GroupStats } from './stats.ts';

export interface ErrorMetrics {
  /** Elements compared (finite in both tensors). */
  count: number;
  sse: number;
  sumSq: number;
  mse: number;
  /** dB; Infinity when the error is exactly zero. */
  sqnr: number;
  maxAbsError: number;
}

export function finishMetrics(count: number, sse: number, sumSq: number, maxAbsError: number): ErrorMetrics {
  return {
    count,
    sse,
    sumSq,
    mse: count ? sse / count : 0,
    sqnr: sse === 0 ? Infinity : 10 * Math.log10(sumSq / sse),
    maxAbsError,
  };
}

export function errorMetricsRef(x: Float32Array, xq: Float32Array): ErrorMetrics {
  if (x.length !== xq.length) throw new RangeError(`length mismatch: ${x.length} vs ${xq.length}`);
  let sse = 0;
  let sumSq = 0;
  let maxAbs = 0;
  let count = 0;
  for (let i = 0; i < x.length; i++) {
    const a = x[i];
    const b = xq[i];
    if (!Number.isFinite(a) || !Number.isFinite(b)) continue;
    const d = fround(a - b);
    sse += d * d;
    sumSq += a * a;
    maxAbs = Math.max(maxAbs, Math.abs(d));
    count++;
  }
  return finishMetrics(count, sse, sumSq, maxAbs);
}

export interface ClipSweepPoint {
  ratio: number;
  /** Sum of squared error over clipped elements (|x| > t). */
  clipSse: number;
  /** Sum of squared error over the elements inside [-t, t]. */
  roundSse: number;
  /** (clipSse + roundSse) / count. */
  mse: number;
}

export function clipSweepRef(x: Float32Array, layout: GroupLayout, stats: GroupStats, cfg: QuantConfig, ratios: readonly number[]): ClipSweepPoint[] {
  let count = 0;
  for (let i = 0; i < x.length; i++) if (Number.isFinite(x[i])) count++;
  return ratios.map((ratio) => {
    const c = { ...cfg, clipRatio: ratio };
    const params = Array.from({ length: layout.numGroups }, (_, g) => {
      const p = qparamsOfGroup({ min: stats.min[g], max: stats.max[g], absmax: stats.absmax[g] }, c);
      return { ...p, t: fround(fround(ratio) * stats.absmax[g]) };
    });
    let clipSse = 0;
    let roundSse = 0;
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      if (!Number.isFinite(v)) continue;
      const p = params[groupOf(layout, i)];
      const d = fround(v - dequantizeValue(quantizeValue(v, p.invScale, p.zero, c), p.scale, p.zero, c));
      if (Math.abs(v) > p.t) clipSse += d * d;
      else roundSse += d * d;
    }
    return { ratio, clipSse, roundSse, mse: count ? (clipSse + roundSse) / count : 0 };
  });
}
