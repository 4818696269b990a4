/** The linear-layer kernels (tiled for prompts, matvec for decode) compute X W^T (+ bias, += residual) like a plain CPU loop, for shapes that fit no tile. */
import { beforeAll, describe, expect, test } from 'vitest';
import type { Constants, GpuContext } from '../../src/gpu/context.ts';
import { gpuContext } from '../helpers/gpu.ts';
import { gaussian } from '../helpers/random.ts';

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await gpuContext();
});

function linearRef(x: Float32Array, w: Float32Array, bias: Float32Array | undefined, y0: Float32Array | undefined, m: number, n: number, k: number): Float32Array {
  const y = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let t = 0; t < k; t++) acc += x[i * k + t] * w[j * k + t];
      y[i * n + j] = acc + (bias ? bias[j] : 0) + (y0 ? y0[i * n + j] : 0);
    }
  }
  return y;
}

async function runLinear(shader: string, m: number, n: number, k: number, withBias: boolean, accumulate: boolean): Promise<void> {
  const x = gaussian(m * k, m + n + k);
  const w = gaussian(n * k, 2 * k + 1);
  const bias = withBias ? gaussian(n, 5) : undefined;
  const y0 = accumulate ? gaussian(m * n, 9) : undefined;
  const bufs = [ctx.upload(x), ctx.upload(w), ctx.upload(bias ?? new Float32Array(1)), ctx.upload(y0 ?? new Float32Array(m * n))];
  const params = ctx.uniform(new Uint32Array([m, n, k, 0]).buffer);
  const constants: Constants = shader === 'matvec.wgsl' ? { ACCUMULATE: accumulate, HAS_BIAS: withBias, ROWS: 8, LANES: 32, MAX_M: 8 } : { ACCUMULATE: accumulate, HAS_BIAS: withBias };
  const workgroups: [number, number] = shader === 'matvec.wgsl' ? [Math.ceil(n / 8), 1] : [Math.ceil(n / 64), Math.ceil(m / 64)];
  await ctx.run([{ shader, constants, bindings: [params, bufs[0], bufs[1], bufs[2], bufs[3]], workgroups }]);
  const got = await ctx.readF32(bufs[3], m * n);
  const want = linearRef(x, w, bias, y0, m, n, k);
  let maxErr = 0;
  for (let i = 0; i < want.length; i++) maxErr = Math.max(maxErr, Math.abs(got[i] - want[i]));
  expect(maxErr).toBeLessThan(1e-4 * Math.sqrt(k));
  ctx.pool.releaseAll([...bufs, params]);
}

describe('linear.wgsl (tiled)', () => {
  test.each([
    [1, 1, 1],
    [65, 70, 17],
    [130, 33, 100],
    [9, 200, 288],
  ])('M=%i N=%i K=%i with bias and accumulate', async (m, n, k) => {
    await runLinear('linear.wgsl', m, n, k, true, true);
    await runLinear('linear.wgsl', m, n, k, false, false);
  });
});

describe('matvec.wgsl (decode)', () => {
  test.each([
    [1, 300, 288],
    [3, 77, 65],
    [8, 5, 1000],
  ])('M=%i N=%i K=%i with bias and accumulate', async (m, n, k) => {
    await runLinear('matvec.wgsl', m, n, k, true, true);
    await runLinear('matvec.wgsl', m, n, k, false, false);
  });
});
