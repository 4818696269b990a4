/** Smoke: the full Playground analysis on the GPU agrees with the CPU reference. */
import { expect, test } from 'vitest';
import { gpuContext } from './helpers/gpu.ts';
import { QuantKernels } from '../src/quant/gpu-kernels.ts';
import { analyzeTensor, analyzeTensorRef } from '../src/quant/analyze.ts';
import { syntheticTensor } from '../src/quant/synthetic.ts';

test('analyzeTensor equals analyzeTensorRef on an LLM-like tensor', async () => {
  const k = new QuantKernels(await gpuContext());
  const x = syntheticTensor({ kind: 'llm', rows: 24, cols: 100, seed: 7 });
  const cfg = { bits: 4, granularity: 'group' as const, groupSize: 32, scheme: 'asym' as const };
  const g = await analyzeTensor(k, x, [24, 100], cfg);
  const c = analyzeTensorRef(x, [24, 100], cfg);
  expect(g.metrics.mse).toBeCloseTo(c.metrics.mse, 6);
  expect(g.firstGroups).toEqual(c.firstGroups);
  expect(Array.from(g.histogram.counts)).toEqual(Array.from(c.histogram.counts));
  expect(Array.from(g.colAbsmax)).toEqual(Array.from(c.colAbsmax));
  for (let i = 0; i < g.sweep.length; i++) expect(g.sweep[i].mse).toBeCloseTo(c.sweep[i].mse, 5);
  expect(k.ctx.pool.liveCount).toBe(0);
});
