/**
 * Whole-model weight quantization by round-to-nearest (RTN): every quantizable layer through the GPU
 * quantizer with its own config (or excluded), with a per-layer report: shape, parameters, bits, bytes
 * before and after (fp16 scales and packed zero points counted), weight MSE and SQNR, and an outlier
 * score (peak-to-RMS ratio of the weight: large values mean a few weights dominate the range).
 */
import { CancelledError } from '../gpu/errors.ts';
import { validateQuantConfig, type QuantConfig } from './config.ts';
import type { QuantKernels } from './gpu-kernels.ts';
import { makeGroupLayout } from './layout.ts';

export interface QuantizableLayer {
  name: string;
  /** [out, in, ...]: rows are output channels, trailing axes flatten into the row. */
  shape: number[];
  kind: 'linear' | 'embedding' | 'classifier' | 'conv';
  load(): Promise<Float32Array>;
}

export interface LayerReport {
  name: string;
  kind: QuantizableLayer['kind'];
  shape: number[];
  params: number;
  /** Null when the layer is kept in its original precision. */
  config: Required<QuantConfig> | null;
  bits: number;
  /** Bytes at fp16 (the deployment baseline). */
  bytesBefore: number;
  bytesAfter: number;
  mse: number;
  sqnr: number;
  /** max |w| / rms(w). */
  outlierScore: number;
}

export interface ModelQuantReport {
  layers: LayerReport[];
  totalParams: number;
  bytesBefore: number;
  bytesAfter: number;
  /** Parameter-weighted mean bits per weight over all listed layers, overhead included. */
  bitsPerWeight: number;
  seconds: number;
}

/** Storage of one quantized tensor: packed codes, one fp16 scale per group, packed zero points for asym. */
export function quantizedBytes(cfg: Required<QuantConfig>, n: number, numGroups: number): number {
  const zeros = cfg.scheme === 'asym' ? Math.ceil((numGroups * cfg.bits) / 8) : 0;
  return Math.ceil((n * cfg.bits) / 8) + numGroups * 2 + zeros;
}

export async function quantizeLayersRtn(
  kernels: QuantKernels,
  layers: QuantizableLayer[],
  planFor: (layer: QuantizableLayer) => QuantConfig | null,
  opts: {
    signal?: AbortSignal;
    onProgress?: (done: number, total: number, name: string) => void;
    /** Receives each quantized layer's fake-quantized (dequantized) weight, e.g. to run the model with it. */
    onWeights?: (layer: QuantizableLayer, dequantized: Float32Array) => void | Promise<void>;
  } = {},
): Promise<ModelQuantReport> {
  const t0 = performance.now();
  const reports: LayerReport[] = [];
  for (const [i, layer] of layers.entries()) {
    if (opts.signal?.aborted) throw new CancelledError('quantization cancelled');
    const params = layer.shape.reduce((a, b) => a * b, 1);
    const cfgIn = planFor(layer);
    const w = await layer.load();
    if (w.length !== params) throw new RangeError(`layer ${layer.name}: shape [${layer.shape.join(', ')}] holds ${params} values, loaded ${w.length}`);
    let absmax = 0;
    let sumSq = 0;
    for (let j = 0; j < w.length; j++) {
      const v = w[j];
      if (!Number.isFinite(v)) throw new RangeError(`layer ${layer.name} has a non-finite weight at index ${j} (${v})`);
      absmax = Math.max(absmax, Math.abs(v));
      sumSq += v * v;
    }
    const rms = Math.sqrt(sumSq / Math.max(1, w.length));
    const outlierScore = rms > 0 ? absmax / rms : 0;
    if (!cfgIn) {
      reports.push({ name: layer.name, kind: layer.kind, shape: layer.shape, params, config: null, bits: 16, bytesBefore: params * 2, bytesAfter: params * 2, mse: 0, sqnr: Infinity, outlierScore });
    } else {
      const cfg = validateQuantConfig(cfgIn);
      let layout;
      try {
        layout = makeGroupLayout(layer.shape, cfg.granularity, cfg.groupSize);
      } catch (e) {
        throw new RangeError(`layer ${layer.name}: ${(e as Error).message}`);
      }
      const t = kernels.upload(w, layer.name);
      try {
        const deq = await kernels.fakeQuantize(t, layout, cfg);
        const m = await kernels.errorMetrics(t, deq);
        await opts.onWeights?.(layer, deq);
        reports.push({
          name: layer.name,
          kind: layer.kind,
          shape: layer.shape,
          params,
          config: cfg,
          bits: cfg.bits,
          bytesBefore: params * 2,
          bytesAfter: quantizedBytes(cfg, params, layout.numGroups),
          mse: m.mse,
          sqnr: m.sqnr,
          outlierScore,
        });
      } finally {
        kernels.release(t);
      }
    }
    opts.onProgress?.(i + 1, layers.length, layer.name);
  }
  const totalParams = reports.reduce((a, r) => a + r.params, 0);
  const bytesBefore = reports.reduce((a, r) => a + r.bytesBefore, 0);
  const bytesAfter = reports.reduce((a, r) => a + r.bytesAfter, 0);
  return { layers: reports, totalParams, bytesBefore, bytesAfter, bitsPerWeight: totalParams ? (8 * bytesAfter) / totalParams : 0, seconds: (performance.now() - t0) / 1000 };
}
