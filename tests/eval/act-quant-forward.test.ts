/**
 * The WGSL forward pass with activation fake-quantization at every linear input (LlamaGpuOptions.actQuant)
 * gives the logits of the CPU reference forward pass with the same option, per token and per tensor, and
 * the quantization visibly changes the logits (so the comparison can fail).
 */
import { beforeAll, describe, expect, test } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import type { ActQuantOptions } from '../../src/eval/act-fake-quant.ts';
import { LlamaCpu } from '../../src/model/llama/forward-cpu.ts';
import { LlamaGpu } from '../../src/model/llama/forward-gpu.ts';
import { gpuContext } from '../helpers/gpu.ts';
import { rng } from '../helpers/random.ts';
import { randomLlama } from '../helpers/random-llama.ts';
import { tinyConfig } from '../model/tiny-llama.ts';

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await gpuContext();
});

const cfg = tinyConfig({ seqLen: 16, vocabSize: 40 });
const model = randomLlama(cfg, 11);
const r = rng(5);
const IDS = [1, ...Array.from({ length: 11 }, () => 3 + Math.floor(r() * 37))];

function cpuLogits(cpu: LlamaCpu): Float32Array {
  const v = cfg.vocabSize;
  const out = new Float32Array(IDS.length * v);
  cpu.reset();
  IDS.forEach((id, pos) => out.set(cpu.forward(id, pos), pos * v));
  return out;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const amax = new Map<string, number>();
for (let l = 0; l < cfg.nLayers; l++) for (const p of ['attn_in', 'attn_out', 'mlp_in', 'mlp_mid']) amax.set(`layers.${l}.${p}`, 2 + l + p.length / 10);

describe('LlamaGpu actQuant against LlamaCpu actQuant', () => {
  const cases: [string, ActQuantOptions][] = [
    ['per-token INT8', { bits: 8, granularity: 'per-token' }],
    ['per-token INT4', { bits: 4, granularity: 'per-token' }],
    ['per-tensor INT8 (static amax)', { bits: 8, granularity: 'per-tensor', amax }],
  ];
  const plain = cpuLogits(LlamaCpu.fromWeights(cfg, model.weights));
  for (const [name, actQuant] of cases) {
    test(name, async () => {
      const want = cpuLogits(LlamaCpu.fromWeights(cfg, model.weights, { actQuant }));
      // The quantization changes the logits far beyond the tolerance below.
      const effect = maxAbsDiff(want, plain);
      expect(effect).toBeGreaterThan(1e-2);
      for (const maxBatch of [64, 4]) {
        const gpu = await LlamaGpu.load(ctx, model.checkpoint(), { actQuant, maxBatch });
        try {
          const got = await gpu.forward(IDS, { allLogits: true });
          // Float summation order differs before each rounding; a rare flip moves a value by one step.
          const d = maxAbsDiff(got, want);
          expect(d, `${name}, maxBatch ${maxBatch}: GPU-CPU ${d}, quantization effect ${effect}`).toBeLessThan(Math.min(2e-3, effect / 20));
        } finally {
          gpu.dispose();
        }
      }
    });
  }

  test('a per-tensor option without amax is refused by both', async () => {
    await expect(LlamaGpu.load(ctx, model.checkpoint(), { actQuant: { bits: 8, granularity: 'per-tensor' } })).rejects.toThrow(/amax for layers.0.attn_in/);
    expect(() => LlamaCpu.fromWeights(cfg, model.weights, { actQuant: { bits: 8, granularity: 'per-tensor' } })).toThrow(/amax/);
  });
});
