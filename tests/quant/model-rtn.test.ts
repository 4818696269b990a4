/** Whole-model RTN reports each layer's error as the CPU reference computes it, counts bytes as packed storage does, and the Jetson memory estimate adds up. */
import { beforeAll, describe, expect, test } from 'vitest';
import { estimateMemory, kvCacheBytes, RUNTIME_RESERVE_GIB } from '../../src/model/memory-estimate.ts';
import type { QuantConfig } from '../../src/quant/config.ts';
import { QuantKernels } from '../../src/quant/gpu-kernels.ts';
import { makeGroupLayout } from '../../src/quant/layout.ts';
import { quantizedBytes, quantizeLayersRtn, type QuantizableLayer } from '../../src/quant/model-rtn.ts';
import { errorMetricsRef } from '../../src/quant/reference/metrics.ts';
import { fakeQuantizeRef, qparamsRef } from '../../src/quant/reference/quantize.ts';
import { groupStatsRef } from '../../src/quant/reference/stats.ts';
import { gpuContext } from '../helpers/gpu.ts';
import { gaussian } from '../helpers/random.ts';

let k: QuantKernels;
beforeAll(async () => {
  k = new QuantKernels(await gpuContext());
});

const layer = (name: string, shape: number[], seed: number, kind: QuantizableLayer['kind'] = 'linear'): QuantizableLayer & { data: Float32Array } => {
  const data = gaussian(shape.reduce((a, b) => a * b, 1), seed);
  return { name, shape, kind, data, load: async () => data };
};

describe('quantizeLayersRtn', () => {
  test('per-layer MSE/SQNR equal the reference, excluded layers stay FP16, bytes are packed sizes', async () => {
    const layers = [layer('emb', [50, 16], 1, 'embedding'), layer('q', [24, 40], 2), layer('down', [16, 72], 3)];
    layers[2].data[5] = 40; // an outlier
    const cfg: QuantConfig = { bits: 4, granularity: 'group', groupSize: 32, scheme: 'asym' };
    const seen: string[] = [];
    const r = await quantizeLayersRtn(k, layers, (l) => (l.kind === 'embedding' ? null : cfg), { onWeights: (l) => void seen.push(l.name) });
    expect(seen).toEqual(['q', 'down']);
    expect(r.layers[0]).toMatchObject({ name: 'emb', config: null, bits: 16, bytesAfter: 50 * 16 * 2 });
    for (const [i, l] of layers.entries()) {
      if (i === 0) continue;
      const layout = makeGroupLayout(l.shape, 'group', 32);
      const want = errorMetricsRef(l.data, fakeQuantizeRef(l.data, layout, qparamsRef(groupStatsRef(l.data, layout), cfg), cfg));
      expect(Math.abs(r.layers[i].mse - want.mse)).toBeLessThan(1e-5 * want.mse);
      expect(r.layers[i].sqnr).toBeCloseTo(want.sqnr, 3);
    }
    // [24, 40] with g32: 2 groups per row (32 + 8), 48 groups: 480 code bytes + 96 scale bytes + 24 zero bytes.
    expect(r.layers[1].bytesAfter).toBe(480 + 96 + 24);
    expect(quantizedBytes({ ...cfg, format: 'int', clipRatio: 1, groupSize: 32 }, 24 * 40, 48)).toBe(600);
    expect(r.layers[2].outlierScore).toBeGreaterThan(r.layers[1].outlierScore);
    expect(r.bitsPerWeight).toBeCloseTo((8 * r.bytesAfter) / r.totalParams, 12);
  });
  test('a shape that does not hold the loaded data, or a NaN weight, names the layer', async () => {
    const bad = { ...layer('w', [4, 4], 1), shape: [4, 5] };
    await expect(quantizeLayersRtn(k, [bad], () => ({ bits: 8, granularity: 'channel', scheme: 'sym' }))).rejects.toThrow(/layer w: shape \[4, 5\]/);
    const nan = layer('v', [2, 2], 1);
    nan.data[3] = NaN;
    await expect(quantizeLayersRtn(k, [nan], () => ({ bits: 8, granularity: 'channel', scheme: 'sym' }))).rejects.toThrow(/layer v has a non-finite weight at index 3/);
  });
});

describe('Jetson memory estimate', () => {
  test('weights at FP16/INT8/INT4 plus the FP16 KV cache, against each module', () => {
    const m = { linearParams: 7e9, linearRows: 7e9 / 4096, otherParams: 2.6e8, nLayers: 32, kvDim: 4096, contextLength: 4096 };
    expect(kvCacheBytes(m)).toBe(2 * 32 * 4096 * 4096 * 2);
    const rows = estimateMemory(m);
    expect(rows.map((r) => r.weights)).toEqual(['FP16', 'INT8', 'INT4']);
    expect(rows[0].weightBytes).toBe(7e9 * 2 + 2.6e8 * 2);
    expect(rows[2].weightBytes).toBe(7e9 * 0.5 + (7e9 / 128) * 2.5 + 2.6e8 * 2);
    const nano = (r: (typeof rows)[number]) => r.fits.find((f) => f.device === 'Orin Nano 8GB')!;
    expect(nano(rows[0]).fits).toBe(false);
    expect(nano(rows[2]).headroomGiB).toBeCloseTo(8 - RUNTIME_RESERVE_GIB - rows[2].totalBytes / 2 ** 30, 9);
    expect(rows[0].fits.find((f) => f.device === 'AGX Orin 64GB')!.fits).toBe(true);
  });
});
