/**
 * LlamaGpu.moduleForward (AWQ's inspected module): one block's attention or MLP alone on given inputs equals
 * what the CPU reference forward pass computes inside that block (wo . att and w2 . hidden, from the linear
 * inputs its hook hands out), for sequences longer than one GPU batch; a swapped weight changes the output.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import { LlamaCpu } from '../../src/model/llama/forward-cpu.ts';
import { LlamaGpu } from '../../src/model/llama/forward-gpu.ts';
import type { LlamaConfig } from '../../src/model/llama/model.ts';
import { gpuContext } from '../helpers/gpu.ts';
import { matmulRows, randomLlama } from '../helpers/random-llama.ts';

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await gpuContext();
});

const config: LlamaConfig = {
  dim: 40, hiddenDim: 72, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 97, seqLen: 32, normEps: 1e-5,
  ropeTheta: 10000, headDim: 10, tiedEmbeddings: true, arch: 'qwen2', ropeLayout: 'interleaved',
};
const model = randomLlama(config, 500, { biases: true });
const weights = model.weights;
const ckpt = model.checkpoint();

describe('moduleForward', () => {
  test('attention and MLP of each block equal the CPU forward pass; setWeight swaps the module weights', async () => {
    const ids = [1, 5, 9, 33, 2, 96, 40, 7, 7, 8, 11, 3, 60, 61, 62, 1, 0, 4, 5, 20];
    const inputs = new Map<string, Float32Array[]>();
    const cpu = await LlamaCpu.load(ckpt);
    cpu.setLinearInputHook((linear, x) => {
      if (!inputs.has(linear)) inputs.set(linear, []);
      inputs.get(linear)!.push(x.slice());
    });
    ids.forEach((id, pos) => cpu.forward(id, pos));
    const gpu = await LlamaGpu.load(ctx, ckpt, { maxBatch: 8 });
    const T = ids.length;
    const inBuf = ctx.storage(T * config.dim * 4, 'module input');
    const outBuf = ctx.storage((T + 3) * config.dim * 4, 'module output');
    try {
      for (let l = 0; l < config.nLayers; l++) {
        for (const [module, inName, midName, wName] of [
          ['attention', 'wq', 'wo', 'wo'],
          ['mlp', 'w1', 'w2', 'w2'],
        ] as const) {
          const x = inputs.get(`layers.${l}.${inName}`)!;
          ctx.device.queue.writeBuffer(inBuf, 0, Float32Array.from(x.flatMap((r) => Array.from(r))));
          await gpu.moduleForward(l, module, inBuf, T, outBuf, { outOffset: 3 * config.dim });
          const got = (await ctx.readF32(outBuf, (T + 3) * config.dim)).subarray(3 * config.dim);
          const want = matmulRows(inputs.get(`layers.${l}.${midName}`)!, weights.get(`layers.${l}.${wName}`)!, config.dim);
          let d = 0;
          let m = 0;
          for (let i = 0; i < want.length; i++) {
            d = Math.max(d, Math.abs(got[i] - want[i]));
            m = Math.max(m, Math.abs(want[i]));
          }
          expect(d / m, `layer ${l} ${module}`).toBeLessThan(1e-5);
        }
      }
      // A different w2 gives a different MLP output; restoring it gives the original back.
      const x = inputs.get('layers.1.w1')!;
      ctx.device.queue.writeBuffer(inBuf, 0, Float32Array.from(x.flatMap((r) => Array.from(r))));
      await gpu.moduleForward(1, 'mlp', inBuf, T, outBuf);
      const before = await ctx.readF32(outBuf, T * config.dim);
      gpu.setWeight('layers.1.w2', weights.get('layers.1.w2')!.map((v) => v * 2));
      await gpu.moduleForward(1, 'mlp', inBuf, T, outBuf);
      const doubled = await ctx.readF32(outBuf, T * config.dim);
      for (let i = 0; i < before.length; i += 37) expect(doubled[i]).toBeCloseTo(2 * before[i], 4);
      await expect(gpu.moduleForward(5, 'mlp', inBuf, T, outBuf)).rejects.toThrow(/layer 5/);
    } finally {
      ctx.pool.releaseAll([inBuf, outBuf]);
      gpu.dispose();
    }
  });
});
