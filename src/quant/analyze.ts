/**
 * One analysis of a tensor under one quantization config: everything the Playground shows, computed on
 * the GPU with the input uploaded once (statistics, parameters, fake-quantized values, error metrics,
 * |x| histogram, clipping-versus-rounding sweep, per-row and per-column absmax), and the same analysis
 * on the CPU reference for checking.
 */
import { validateQuantConfig, type QuantConfig } from './config.ts';
import { throwIfAborted, type QuantKernels } from './gpu-kernels.ts';
import { makeGroupLayout, type GroupLayout } from './layout.ts';
import { absHistogramRef, type AbsHistogram } from './reference/histogram.ts';
import { clipSweepRef, errorMetricsRef, type ClipSweepPoint, type ErrorMetrics } from './reference/metrics.ts';
import { fakeQuantizeRef, qparamsRef, type QParams } from './reference/quantize.ts';
import { columnStatsRef, groupStatsRef } from './reference/stats.ts';

export interface AnalysisOptions {
  /** Clip ratios for the sweep (default 0.05..1 in 40 steps). */
  ratios?: number[];
  signal?: AbortSignal;
}

export interface TensorAnalysis {
  shape: [number, number];
  config: Required<QuantConfig>;
  numGroups: number;
  metrics: ErrorMetrics;
  /** Bits per weight including one fp16 scale per group, and a `bits`-wide zero point per group for asym. */
  bitsPerWeight: number;
  /** Quantization parameters of the first groups (at most 64), for display. */
  firstGroups: { scale: number[]; zero: number[] };
  histogram: AbsHistogram;
  sweep: ClipSweepPoint[];
  /** absmax of each row (output channel of a weight / token of an activation). */
  rowAbsmax: Float32Array;
  /** absmax of each column (input channel). */
  colAbsmax: Float32Array;
  tensorAbsmax: number;
  nonFinite: number;
}

export function defaultSweepRatios(): number[] {
  return Array.from({ length: 40 }, (_, i) => Math.fround(0.05 + (0.95 * i) / 39));
}

export function bitsPerWeight(cfg: Required<QuantConfig>, numGroups: number, n: number): number {
  const overhead = 16 + (cfg.scheme === 'asym' ? cfg.bits : 0);
  return cfg.bits + (numGroups * overhead) / n;
}

function to2d(shape: readonly number[]): [number, number] {
  const rows = shape.length === 1 ? 1 : shape[0];
  return [rows, shape.reduce((a, b) => a * b, 1) / rows];
}

function summarize(
  shape: readonly number[],
  layout: GroupLayout,
  cfg: Required<QuantConfig>,
  parts: { metrics: ErrorMetrics; qp: QParams; histogram: AbsHistogram; sweep: ClipSweepPoint[]; rowAbsmax: Float32Array; colAbsmax: Float32Array; nonFinite: number },
): TensorAnalysis {
  const k = Math.min(64, layout.numGroups);
  let tensorAbsmax = 0;
  for (const v of parts.rowAbsmax) tensorAbsmax = Math.max(tensorAbsmax, v);
  return {
    shape: to2d(shape),
    config: cfg,
    numGroups: layout.numGroups,
    metrics: parts.metrics,
    bitsPerWeight: bitsPerWeight(cfg, layout.numGroups, layout.n),
    firstGroups: { scale: Array.from(parts.qp.scale.subarray(0, k)), zero: Array.from(parts.qp.zero.subarray(0, k)) },
    histogram: parts.histogram,
    sweep: parts.sweep,
    rowAbsmax: parts.rowAbsmax,
    colAbsmax: parts.colAbsmax,
    tensorAbsmax,
    nonFinite: parts.nonFinite,
  };
}

export async function analyzeTensor(k: QuantKernels, x: Float32Array, shape: readonly number[], cfgIn: QuantConfig, opts: AnalysisOptions = {}): Promise<TensorAnalysis> {
  const cfg = validateQuantConfig(cfgIn);
  const layout = makeGroupLayout(shape, cfg.granularity, cfg.groupSize);
  if (layout.n !== x.length) throw new RangeError(`shape [${shape.join(', ')}] holds ${layout.n} elements, the data has ${x.length}`);
  const [rows, cols] = to2d(shape);
  const ratios = opts.ratios ?? defaultSweepRatios();
  const t = k.upload(x, 'tensor');
  const held: GPUBuffer[] = [];
  try {
    throwIfAborted(opts.signal);
    const stats = await k.groupStatsBuffer(t, layout);
    held.push(stats);
    const qpBuf = await k.qparamsBuffer(stats, layout.numGroups, cfg);
    held.push(qpBuf);
    const y = await k.fakeQuantizeBuffer(t, layout, qpBuf, cfg);
    held.push(y);
    throwIfAborted(opts.signal);
    const metrics = await k.errorMetrics(t, { buffer: y, length: layout.n });
    const qp = await k.readQParams(qpBuf, layout.numGroups);
    const rowStats = await k.groupStats(t, makeGroupLayout([rows, cols], 'channel'));
    const colStats = await k.columnStats(t, rows, cols);
    let absmax = 0;
    let nonFinite = 0;
    for (let r = 0; r < rows; r++) {
      absmax = Math.max(absmax, rowStats.absmax[r]);
      nonFinite += rowStats.nonFinite[r];
    }
    throwIfAborted(opts.signal);
    const histogram = await k.absHistogram(t, absmax > 0 ? absmax : 1);
    throwIfAborted(opts.signal);
    const sweep = await k.clipSweepFromStats(t, layout, stats, cfg, ratios);
    return summarize(shape, layout, cfg, { metrics, qp, histogram, sweep, rowAbsmax: rowStats.absmax, colAbsmax: colStats.absmax, nonFinite });
  } finally {
    k.ctx.pool.releaseAll(held);
    k.release(t);
  }
}

/** The same analysis on the CPU reference (slow; for tests and checking). */
export function analyzeTensorRef(x: Float32Array, shape: readonly number[], cfgIn: QuantConfig, opts: AnalysisOptions = {}): TensorAnalysis {
  const cfg = validateQuantConfig(cfgIn);
  const layout = makeGroupLayout(shape, cfg.granularity, cfg.groupSize);
  const [rows, cols] = to2d(shape);
  const stats = groupStatsRef(x, layout);
  const qp = qparamsRef(stats, cfg);
  const y = fakeQuantizeRef(x, layout, qp, cfg);
  const rowStats = groupStatsRef(x, makeGroupLayout([rows, cols], 'channel'));
  const colStats = columnStatsRef(x, rows, cols);
  let absmax = 0;
  let nonFinite = 0;
  for (let r = 0; r < rows; r++) {
    absmax = Math.max(absmax, rowStats.absmax[r]);
    nonFinite += rowStats.nonFinite[r];
  }
  return summarize(shape, layout, cfg, {
    metrics: errorMetricsRef(x, y),
    qp,
    histogram: absHistogramRef(x, absmax > 0 ? absmax : 1),
    sweep: clipSweepRef(x, layout, stats, cfg, opts.ratios ?? defaultSweepRatios()),
    rowAbsmax: rowStats.absmax,
    colAbsmax: colStats.absmax,
    nonFinite,
  });
}
