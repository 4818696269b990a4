/**
 * From accumulated activation statistics to the calibration result: every calibrator's amax and the
 * SQNR it gives per tensor (src/calib/calibrators.ts), a histogram summary, the top outlier channels,
 * and the per-input-channel weight magnitudes of the layers reading each tensor (the weight side of
 * the outlier view). The MSE and entropy sweeps run on the GPU (calibratorSweeps) unless the adapter is a
 * software one. Refuses statistics that saw NaN/Inf: no partial result passes for a calibration.
 * No Node imports.
 */
import type { GpuContext } from '../gpu/context.ts';
import type { QuantizableLayer } from '../quant/model-rtn.ts';
import { CalibKernels } from './gpu-calib.ts';
import { calibrateTensor, percentileAmax } from './calibrators.ts';
import { CALIB_METHODS, type ActivationSummary, type CalibMethod, type CalibrationResult, type SweepPoint } from './types.ts';

export class CalibrationError extends Error {
  override name = 'CalibrationError';
}

/** Throws when a tensor saw NaN/Inf or no data at all, naming the tensor. */
export function checkSummaries(summaries: ActivationSummary[]): void {
  if (summaries.length === 0) throw new CalibrationError('no activation was captured: the model has no quantizable layer with a float input');
  for (const s of summaries) {
    if (s.nonFinite > 0) {
      throw new CalibrationError(
        `activation ${s.name} (input of ${s.layers.join(', ')}) contains ${s.nonFinite} NaN/Inf values out of ${s.tokens * s.channels}: the model or the calibration data produce non-finite values, so no range can be chosen`,
      );
    }
    if (s.tokens === 0) throw new CalibrationError(`activation ${s.name} saw no data`);
  }
}

export function topChannels(absmax: Float32Array, k = 8): { channel: number; absmax: number }[] {
  return Array.from(absmax, (v, channel) => ({ channel, absmax: v }))
    .sort((a, b) => b.absmax - a.absmax || a.channel - b.channel)
    .slice(0, k);
}

/** The MSE and entropy sweeps of every tensor, computed by the WGSL kernels. */
export type TensorSweeps = Map<string, { mseSweep: SweepPoint[]; entropySweep: SweepPoint[] }>;

/**
 * The MSE and entropy sweeps of every tensor on the GPU (calib-mse.wgsl, calib-entropy.wgsl), or undefined
 * (the CPU reference in calibrators.ts then runs them) on a software adapter, where the CPU is faster
 * (2048 bins: ~20 ms per sweep in JS against ~2 s on SwiftShader), or when `mode` says so.
 */
export async function calibratorSweeps(ctx: GpuContext, summaries: ActivationSummary[], bits: number, mode: 'auto' | 'gpu' | 'cpu' = 'auto'): Promise<TensorSweeps | undefined> {
  if (mode === 'cpu' || (mode === 'auto' && ctx.isSoftware) || bits > 8) return undefined;
  const k = new CalibKernels(ctx);
  const out: TensorSweeps = new Map();
  for (const s of summaries) {
    const h = { counts: s.histogram.counts, range: s.histogram.range };
    if (s.histogram.range === 0 || s.tokens === 0) continue;
    const mse = await k.mseSweep(h, bits);
    out.set(s.name, { mseSweep: mse.map((p) => ({ index: p.index, amax: p.amax, value: p.mse })), entropySweep: await k.entropySweep(h, bits) });
  }
  return out;
}

export function buildCalibrationResult(
  model: string,
  summaries: ActivationSummary[],
  opts: { bits: number; method: CalibMethod; data: CalibrationResult['data']; seconds: number; sweeps?: TensorSweeps },
): CalibrationResult {
  checkSummaries(summaries);
  if (!CALIB_METHODS.includes(opts.method)) throw new CalibrationError(`unknown calibration method ${opts.method}`);
  const tensors = summaries.map((s) => {
    const h = { counts: s.histogram.counts, range: s.histogram.range };
    const c = calibrateTensor(h, { absmax: s.absmax, movingMin: s.movingMin, movingMax: s.movingMax }, opts.bits, opts.sweeps?.get(s.name));
    let nonzeroBins = 0;
    for (const v of s.histogram.counts) if (v > 0) nonzeroBins++;
    const percentiles: Record<string, number> = {};
    for (const p of [50, 99, 99.9, 99.99]) percentiles[String(p)] = s.histogram.range > 0 ? percentileAmax(h, p) : 0;
    return {
      name: s.name,
      layers: s.layers,
      bits: opts.bits,
      amax: c.amax,
      sqnrDb: c.sqnrDb,
      best: c.best,
      channels: s.channels,
      tokens: s.tokens,
      nonFinite: s.nonFinite,
      min: s.min,
      max: s.max,
      histogram: { bins: s.histogram.counts.length, range: s.histogram.range, percentiles, nonzeroBins },
      topChannels: topChannels(s.channelAbsmax),
    };
  });
  return { format: 'quantlab-calibration', version: 1, model, bits: opts.bits, method: opts.method, data: opts.data, seconds: opts.seconds, tensors };
}

/**
 * max |W| per input channel of a weight stored [out, rowLen]: a linear's columns; a convolution's
 * rows hold in_channels x kernel positions, so each input channel is a block of rowLen / channels
 * columns; a depthwise convolution (rowLen = kernel positions) maps output row r to channel r / (out / channels).
 */
export function weightInputChannelAbsmax(w: Float32Array, shape: readonly number[], channels: number): Float32Array | undefined {
  const out = shape[0];
  const rowLen = w.length / out;
  const res = new Float32Array(channels);
  if (rowLen % channels === 0) {
    const k = rowLen / channels;
    for (let r = 0; r < out; r++) {
      const base = r * rowLen;
      for (let j = 0; j < rowLen; j++) {
        const c = (j / k) | 0;
        const v = Math.abs(w[base + j]);
        if (v > res[c]) res[c] = v;
      }
    }
    return res;
  }
  if (out % channels === 0) {
    const m = out / channels;
    for (let r = 0; r < out; r++) {
      const c = (r / m) | 0;
      for (let j = 0; j < rowLen; j++) res[c] = Math.max(res[c], Math.abs(w[r * rowLen + j]));
    }
    return res;
  }
  return undefined;
}

/** Per-input-channel weight magnitudes of every layer reading a captured tensor. */
export async function weightChannelAbsmax(layers: QuantizableLayer[], summaries: ActivationSummary[]): Promise<Record<string, Float32Array>> {
  const byName = new Map(layers.map((l) => [l.name, l]));
  const out: Record<string, Float32Array> = {};
  for (const s of summaries) {
    for (const name of s.layers) {
      const l = byName.get(name);
      if (!l || out[name]) continue;
      const v = weightInputChannelAbsmax(await l.load(), l.shape, s.channels);
      if (v) out[name] = v;
    }
  }
  return out;
}
