/**
 * The GPU AWQ kernels equal the CPU reference: the Gram matrix accumulated over token batches, the
 * candidate weights Q(W*s)/s bit for bit, the loss of every ratio (Gram form and direct) to float32
 * summation tolerance with the same chosen ratio, the clip search, and the whole layer.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import { GpuAwq } from '../../src/awq/gpu-awq.ts';
import {
  awqClipRef,
  awqLayerRef,
  awqLossGram,
  awqScalesForRatio,
  awqSearchRef,
  divideColumns,
  fakeQuantizeScaledRef,
  gramMatrix,
  quantizeScaledRef,
  scaleColumns,
} from '../../src/awq/reference.ts';
import type { QuantConfig } from '../../src/quant/config.ts';
import { gpuContext } from '../helpers/gpu.ts';
import { syntheticLayer } from './synthetic.ts';

let awq: GpuAwq;
beforeAll(async () => {
  awq = new GpuAwq(await gpuContext());
});

const int4g32: QuantConfig = { bits: 4, granularity: 'group', groupSize: 32, scheme: 'asym' };

function expectRel(got: number, want: number, tol: number) {
  expect(Math.abs(got - want)).toBeLessThanOrEqual(tol * Math.abs(want));
}

test('Gram matrix over several token batches (sizes off the 64 / 16 tiles) equals X^T X', async () => {
  const { x } = syntheticLayer(1, 100, 300, 21);
  const g = await awq.gramMatrix(x, 300, 100, { batchTokens: 128 });
  const ref = gramMatrix(x, 300, 100);
  let scale = 0;
  for (const v of ref) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < ref.length; i++) expect(Math.abs(g[i] - ref[i])).toBeLessThanOrEqual(1e-5 * scale);
  // Exactly symmetric (each off-diagonal tile is written with its mirror).
  for (let i = 0; i < 100; i++) for (let j = 0; j < i; j++) expect(g[i * 100 + j]).toBe(g[j * 100 + i]);
});

describe('candidate weights Q(W*s)/s equal the reference bit for bit', () => {
  const configs: [string, QuantConfig][] = [
    ['int4 asym g32', int4g32],
    ['int3 sym g32, in 100 (partial group)', { bits: 3, granularity: 'group', groupSize: 32, scheme: 'sym' }],
    ['int8 asym per-channel', { bits: 8, granularity: 'channel', scheme: 'asym' }],
  ];
  test.each(configs)('%s', async (_n, cfg) => {
    const { w, shape, x, tokens } = syntheticLayer(20, 100, 64, 23);
    const xm = new Float32Array(100);
    for (let t = 0; t < tokens; t++) for (let j = 0; j < 100; j++) xm[j] += Math.abs(x[t * 100 + j]) / tokens;
    const ratios = [0, 0.35, 0.9];
    const s = new Float32Array(3 * 100);
    ratios.forEach((r, i) => s.set(awqScalesForRatio(xm, undefined, r, false), i * 100));
    const wb = awq.ctx.upload(w);
    const y = await awq.candidates(wb, shape, s, cfg);
    const got = await awq.ctx.readF32(y, 3 * 2000);
    awq.ctx.pool.releaseAll([wb, y]);
    ratios.forEach((_r, i) => {
      const want = fakeQuantizeScaledRef(w, shape, s.subarray(i * 100, (i + 1) * 100), cfg);
      expect(Array.from(got.subarray(i * 2000, (i + 1) * 2000))).toEqual(Array.from(want));
    });
  });
});

describe('scale search: GPU equals CPU', () => {
  const layer = syntheticLayer(48, 96, 200, 25);
  test.each([
    ['x-only, Gram loss', false, 'gram'],
    ['duo, Gram loss', true, 'gram'],
    ['duo, direct loss', true, 'direct'],
  ] as const)('%s', async (_n, duo, loss) => {
    const { w, shape, x, tokens } = layer;
    const cfg = { quant: int4g32, duo, loss };
    const ref = awqSearchRef(w, shape, x, tokens, cfg);
    // Small candidate batches exercise the batching of ratios.
    const gpu = await awq.search(w, shape, x, tokens, cfg, { batchTokens: 64, maxCandidateBytes: 7 * 48 * 96 * 4 });
    expect(gpu.bestIndex).toBe(ref.bestIndex);
    expect(gpu.bestRatio).toBe(ref.bestRatio);
    gpu.losses.forEach((l, i) => expectRel(l, ref.losses[i], 2e-4));
    expectRel(gpu.rtnLoss, ref.rtnLoss, 2e-4);
    gpu.scales.forEach((v, j) => expectRel(v, ref.scales[j], 1e-5));
    // The weight is exactly Q(W*s)/s of the GPU's own scales.
    expect(Array.from(gpu.quantizedWeight)).toEqual(Array.from(fakeQuantizeScaledRef(w, shape, gpu.scales, int4g32)));
  });

  test('Gram-form GPU loss equals the reference on a given candidate', async () => {
    const { w, shape, x, tokens } = layer;
    const wq = fakeQuantizeScaledRef(w, shape, new Float32Array(96).fill(1), int4g32);
    const st = await awq.activationStats(x, tokens, 96);
    const wb = awq.ctx.upload(w);
    const qb = awq.ctx.upload(wq);
    const [l] = await awq.gramLosses(wb, qb, 1, shape, st.gram, tokens);
    awq.ctx.pool.releaseAll([wb, qb, st.gram]);
    expectRel(l, awqLossGram(gramMatrix(x, tokens, 96), w, wq, shape, tokens), 1e-4);
  });
});

describe('clip search: GPU equals CPU', () => {
  test.each([
    ['int4 asym g32, 1100 tokens', int4g32, 1100],
    ['int4 sym per-channel, 150 tokens', { bits: 4, granularity: 'channel', scheme: 'sym' } as QuantConfig, 150],
    ['int3 asym g40 (partial group), 90 tokens', { bits: 3, granularity: 'group', groupSize: 40, scheme: 'asym' } as QuantConfig, 90],
  ])('%s', async (_n, cfg, tokens) => {
    const { w, shape, x } = syntheticLayer(12, 96, tokens, 27);
    const s = awqSearchRef(w, shape, x, tokens, { quant: cfg, duo: true }).scales;
    const ws = scaleColumns(w, shape, s);
    const xs = divideColumns(x, tokens, s);
    const ref = awqClipRef(ws, shape, xs, tokens, cfg);
    const gpu = await awq.clip(ws, shape, xs, tokens, cfg);
    expect(gpu.sampledTokens).toBe(ref.sampledTokens);
    expect(Array.from(gpu.origMax)).toEqual(Array.from(ref.origMax));
    for (let i = 0; i < ref.errors.length; i++) expect(Math.abs(gpu.errors[i] - ref.errors[i])).toBeLessThanOrEqual(1e-4 * ref.errors[i] + 1e-12);
    let same = 0;
    for (let g = 0; g < ref.maxVal.length; g++) {
      if (gpu.choice[g] === ref.choice[g]) {
        same++;
        expect(gpu.maxVal[g]).toBe(ref.maxVal[g]);
      } else {
        // Only a near tie may pick another candidate.
        expectRel(ref.errors[g * 10 + gpu.choice[g]], ref.errors[g * 10 + ref.choice[g]], 1e-4);
      }
    }
    expect(same).toBeGreaterThanOrEqual(ref.maxVal.length - 1);
    // The clipped weights are the quantizer applied with the GPU's thresholds.
    const one = new Float32Array(96).fill(1);
    expect(Array.from(gpu.clippedWeight)).toEqual(Array.from(quantizeScaledRef(ws, shape, one, cfg, gpu.maxVal).weight));
  });
});

test('whole layer (search, clip, final quantization) equals the reference', async () => {
  const { w, shape, x, tokens } = syntheticLayer(32, 64, 160, 29);
  const cfg = { quant: int4g32, duo: true };
  const ref = awqLayerRef(w, shape, x, tokens, cfg);
  const gpu = await awq.layer(w, shape, x, tokens, cfg);
  expect(gpu.search.bestIndex).toBe(ref.search.bestIndex);
  // The GPU's x_mean sums in float32, so its scales differ from the reference's in the last bits:
  // the clip thresholds are close to the reference's, and equal to the reference run on the GPU's scales.
  // (a near tie between two candidates may flip).
  const close = gpu.clip!.maxVal.filter((v, g) => Math.abs(v - ref.clip!.maxVal[g]) <= 1e-5 * ref.clip!.maxVal[g]).length;
  expect(close).toBeGreaterThanOrEqual(ref.clip!.maxVal.length - 2);
  const s = gpu.search.scales;
  const clipOnGpuScales = awqClipRef(scaleColumns(w, shape, s), shape, divideColumns(x, tokens, s), tokens, int4g32);
  expect(Array.from(gpu.clip!.choice)).toEqual(Array.from(clipOnGpuScales.choice));
  expect(Array.from(gpu.clip!.maxVal)).toEqual(Array.from(clipOnGpuScales.maxVal));
  // Final weight and codes from the GPU's scales and thresholds equal the reference applied to them.
  const want = quantizeScaledRef(w, shape, gpu.search.scales, int4g32, gpu.clip!.maxVal);
  expect(Array.from(gpu.quantized.weight)).toEqual(Array.from(want.weight));
  expect(Array.from(gpu.quantized.codes)).toEqual(Array.from(want.codes));
  expect(Array.from(gpu.quantized.qparams.scale)).toEqual(Array.from(want.qparams.scale));
  expectRel(gpu.finalLoss, awqLossGram(gramMatrix(x, tokens, 64), w, gpu.quantized.weight, shape, tokens), 2e-4);
  expectRel(gpu.finalLoss, ref.finalLoss, 1e-2);
  // Clipping lowers the loss below the scale-only weight here, and both are below RTN.
  expect(ref.finalLoss).toBeLessThanOrEqual(ref.search.losses[ref.search.bestIndex] * 1.0001);
  expect(ref.finalLoss).toBeLessThan(ref.search.rtnLoss);
});
