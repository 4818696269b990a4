import { expect, test } from 'vitest';
import { gpuContext } from './helpers/gpu.ts';
import { QuantKernels } from '../src/quant/gpu-kernels.ts';
import { makeGroupLayout } from '../src/quant/layout.ts';
import { gaussian } from './helpers/random.ts';
import { groupStatsRef } from '../src/quant/reference/stats.ts';
import { qparamsRef, quantizeRef } from '../src/quant/reference/quantize.ts';

test('smoke', async () => {
  const k = new QuantKernels(await gpuContext());
  const x = gaussian(1000, 1);
  const layout = makeGroupLayout([10, 100], 'group', 32);
  const cfg = { bits: 4, granularity: 'group' as const, groupSize: 32, scheme: 'asym' as const };
  const r = await k.quantize(x, layout, cfg);
  const st = groupStatsRef(x, layout);
  const qp = qparamsRef(st, cfg);
  expect(Array.from(r.stats.min)).toEqual(Array.from(st.min));
  expect(Array.from(r.qparams.scale)).toEqual(Array.from(qp.scale));
  expect(Array.from(r.codes)).toEqual(Array.from(quantizeRef(x, layout, qp, cfg)));
});
