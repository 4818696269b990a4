/**
 * Model-level AWQ on a random Llama with outlier input channels: every block gets its four groups (v -> o
 * included, no grouped-query sharing), the chosen ratio is the grid's minimum, the module losses the GPU
 * reports equal an independent CPU computation (LlamaCpu with the candidate weights loaded: the attention
 * output is wo . (input of wo), the MLP's w2 . (input of w2)), and AWQ's summed layer output error is below
 * RTN's in every block.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import { awqCapturePlan, awqLlama } from '../../src/awq/awq-llama.ts';
import { awqLossDirect, awqScalesForRatio, fakeQuantizeScaledRef } from '../../src/awq/reference.ts';
import { LlamaCpu } from '../../src/model/llama/forward-cpu.ts';
import { LlamaGpu } from '../../src/model/llama/forward-gpu.ts';
import type { LlamaCheckpoint, LlamaConfig } from '../../src/model/llama/model.ts';
import { gpuContext } from '../helpers/gpu.ts';
import { matmulRows, randomLlama } from '../helpers/random-llama.ts';

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await gpuContext();
});

const config: LlamaConfig = {
  dim: 32, hiddenDim: 64, nLayers: 2, nHeads: 4, nKvHeads: 4, vocabSize: 61, seqLen: 32, normEps: 1e-5,
  ropeTheta: 10000, headDim: 8, tiedEmbeddings: true, arch: 'llama', ropeLayout: 'interleaved',
};
const model = randomLlama(config, 900);
const base = model.weights;
// Outlier input channels, as in real LLMs: a few norm weights far above the rest.
for (const l of [0, 1]) {
  for (const ch of [3, 17]) {
    base.get(`layers.${l}.attention_norm`)![ch] = 12;
    base.get(`layers.${l}.ffn_norm`)![ch + 5] = 10;
  }
}
const ckptWith = (over: Map<string, Float32Array>): LlamaCheckpoint => model.checkpoint(over);
const seqs = [
  [1, 5, 9, 33, 2, 60, 40, 7, 7, 8, 11, 3],
  [1, 50, 51, 52, 53, 54, 55, 56, 57, 58],
];

/** Inputs of every linear per position, from the CPU forward pass of a checkpoint. */
async function linearInputs(ckpt: LlamaCheckpoint): Promise<Map<string, Float32Array[]>> {
  const cpu = await LlamaCpu.load(ckpt);
  const rows = new Map<string, Float32Array[]>();
  cpu.setLinearInputHook((linear, x) => {
    if (!rows.has(linear)) rows.set(linear, []);
    rows.get(linear)!.push(x.slice());
  });
  for (const s of seqs) {
    cpu.reset();
    s.forEach((id, pos) => cpu.forward(id, pos));
  }
  return rows;
}

describe('awqLlama', () => {
  test('per-block groups, CPU-checked module losses, AWQ below RTN in every block', async () => {
    const quant = { bits: 4, granularity: 'group' as const, groupSize: 8, scheme: 'asym' as const };
    const gpu = await LlamaGpu.load(ctx, ckptWith(new Map()), { maxBatch: 8 });
    let res;
    try {
      res = await awqLlama(gpu, ckptWith(new Map()), seqs, { quant, duo: true, clip: true, compute: 'gpu' });
    } finally {
      gpu.dispose();
    }
    expect(res.tokens).toBe(22);
    expect(res.groups.map((g) => `${g.block}:${g.kind}`)).toEqual(['0:qkv', '0:v_o', '0:gate_up', '0:up_down', '1:qkv', '1:v_o', '1:gate_up', '1:up_down']);
    for (const g of res.groups) {
      expect(g.losses).toHaveLength(20);
      expect(g.losses[g.bestIndex]).toBe(Math.min(...g.losses));
      expect(g.bestRatio).toBeCloseTo(g.bestIndex / 20, 12);
    }
    // The outlier channels get the largest scales in the q/k/v group of block 0.
    const qkv0 = res.groups[0];
    const top = Array.from(qkv0.scales).map((v, j) => [v, j]).sort((a, b) => b[0] - a[0]).slice(0, 2).map((e) => e[1]).sort((a, b) => a - b);
    if (qkv0.bestRatio > 0) expect(top).toEqual([3, 17]);

    const orig = await linearInputs(ckptWith(new Map()));
    for (const g of res.groups.filter((x) => x.inspected !== 'linear')) {
      const p = `layers.${g.block}.`;
      const names = g.kind === 'qkv' ? ['wq', 'wk', 'wv'] : ['w1', 'w3'];
      const shapeOf = (n: string): [number, number] => (n === 'w1' || n === 'w3' ? [config.hiddenDim, config.dim] : [config.dim, config.dim]);
      const xMean = g.xMean;
      const stacked = names.map((n) => base.get(p + n)!);
      const wAll = new Float32Array(stacked.reduce((a, w) => a + w.length, 0));
      let off = 0;
      for (const w of stacked) {
        wAll.set(w, off);
        off += w.length;
      }
      const { wMeanOfWeight } = await import('../../src/awq/reference.ts');
      const wMean = wMeanOfWeight(wAll, [wAll.length / config.dim, config.dim], 8);
      const s = awqScalesForRatio(xMean, wMean, g.bestRatio, true);
      const over = new Map(names.map((n) => [p + n, fakeQuantizeScaledRef(base.get(p + n)!, shapeOf(n), s, quant)]));
      const cand = await linearInputs(ckptWith(over));
      const [mid, wOut, outDim] = g.kind === 'qkv' ? ['wo', base.get(p + 'wo')!, config.dim] : ['w2', base.get(p + 'w2')!, config.dim];
      const y0 = matmulRows(orig.get(p + mid)!, wOut, outDim);
      const y1 = matmulRows(cand.get(p + mid)!, wOut, outDim);
      let sse = 0;
      for (let i = 0; i < y0.length; i++) sse += (y0[i] - y1[i]) ** 2;
      const cpuLoss = sse / y0.length;
      expect(Math.abs(g.losses[g.bestIndex] - cpuLoss) / cpuLoss, `${g.block} ${g.kind}`).toBeLessThan(2e-3);
    }

    // Effective weights: each linear's reported AWQ error is X (W - W_eff)^T on its inputs, computed directly.
    for (const r of res.linears) {
      const n = r.name.split('.').pop()!;
      const shape: [number, number] = n === 'w1' || n === 'w3' ? [config.hiddenDim, config.dim] : n === 'w2' ? [config.dim, config.hiddenDim] : [config.dim, config.dim];
      const rows = orig.get(n === 'wk' || n === 'wv' ? r.name.replace(n, 'wq') : n === 'w3' ? r.name.replace('w3', 'w1') : r.name)!;
      const x = Float32Array.from(rows.flatMap((v) => Array.from(v)));
      const direct = awqLossDirect(x, rows.length, base.get(r.name)!, res.weights.get(r.name)!, shape);
      expect(Math.abs(direct - r.awqError) / r.awqError, r.name).toBeLessThan(5e-3);
    }
    expect(res.weights.size).toBe(14);
    for (const b of res.blocks) {
      expect(b.awqError, `block ${b.block}`).toBeLessThan(b.rtnError);
      expect(b.rtnError).toBeCloseTo(b.attention.rtn + b.mlp.rtn, 12);
      expect(b.linearAwqError).toBeCloseTo(res.linears.filter((r) => r.block === b.block).reduce((a, r) => a + r.awqError, 0), 12);
    }
  });

  test('a run cancelled after block 0 and resumed from its finished block equals an uninterrupted run', async () => {
    const quant = { bits: 4, granularity: 'group' as const, groupSize: 8, scheme: 'asym' as const };
    const ckpt = ckptWith(new Map());
    const gpu = await LlamaGpu.load(ctx, ckpt, { maxBatch: 8 });
    try {
      const full = await awqLlama(gpu, ckpt, seqs, { quant, compute: 'cpu' });
      const ctl = new AbortController();
      const partial = { blocks: [] as typeof full.blocks, groups: [] as typeof full.groups, linears: [] as typeof full.linears, weights: new Map<string, Float32Array>() };
      await expect(
        awqLlama(gpu, ckpt, seqs, {
          quant,
          compute: 'cpu',
          signal: ctl.signal,
          onBlock: (b, g, l, w) => {
            partial.blocks.push(b);
            partial.groups.push(...g);
            partial.linears.push(...l);
            for (const [k, v] of w) partial.weights.set(k, v);
            ctl.abort();
          },
        }),
      ).rejects.toThrow(/cancelled/);
      expect(partial.blocks.map((b) => b.block)).toEqual([0]);
      const labels: string[] = [];
      const resumed = await awqLlama(gpu, ckpt, seqs, { quant, compute: 'cpu', resume: partial, onProgress: (p) => labels.push(p.label) });
      expect(labels.some((x) => /block 0 done \(kept/.test(x))).toBe(true);
      expect(labels.some((x) => /block 0: wq/.test(x))).toBe(false);
      expect(resumed.blocks).toEqual(full.blocks);
      expect(resumed.groups.map((g) => [g.block, g.kind, g.bestIndex])).toEqual(full.groups.map((g) => [g.block, g.kind, g.bestIndex]));
      for (const [name, w] of full.weights) expect(resumed.weights.get(name), name).toEqual(w);
    } finally {
      gpu.dispose();
    }
  });

  test('NaN in the captured activations is refused with the capture point named', async () => {
    const emb = base.get('tok_embeddings')!.slice();
    emb.fill(Infinity, 5 * config.dim, 6 * config.dim);
    const ckpt = ckptWith(new Map([['tok_embeddings', emb]]));
    const gpu = await LlamaGpu.load(ctx, ckpt, { maxBatch: 8 });
    try {
      await expect(awqLlama(gpu, ckpt, seqs, { quant: { bits: 4, granularity: 'group', groupSize: 8, scheme: 'asym' }, compute: 'cpu' })).rejects.toThrow(/layers\.0\.attn_in contain NaN \(token 1,/);
    } finally {
      gpu.dispose();
    }
  });

  test('over the capture limit, one block at a time gives the same result; a block that alone does not fit is refused', async () => {
    const quant = { bits: 4, granularity: 'group' as const, groupSize: 8, scheme: 'asym' as const };
    // Per block and token: attn_in (32) + attn_out (32) + mlp_in (32) + mlp_mid (64) floats.
    const perBlock = 160 * 22 * 4;
    expect(awqCapturePlan(config, 22, 2 * perBlock)).toEqual({ mode: 'all', bytes: 2 * perBlock });
    expect(awqCapturePlan(config, 22, 2 * perBlock - 1)).toEqual({ mode: 'per-block', bytes: perBlock });
    expect(() => awqCapturePlan(config, 22, perBlock - 1)).toThrow(/one block's linears over 22 calibration tokens/);
    const ckpt = ckptWith(new Map());
    const gpu = await LlamaGpu.load(ctx, ckpt, { maxBatch: 8 });
    try {
      const all = await awqLlama(gpu, ckpt, seqs, { quant, compute: 'cpu' });
      const one = await awqLlama(gpu, ckpt, seqs, { quant, compute: 'cpu', maxCaptureBytes: perBlock });
      expect(all.capture).toBe('all');
      expect(one.capture).toBe('per-block');
      expect(one.blocks).toEqual(all.blocks);
      for (const [name, w] of all.weights) expect(one.weights.get(name), name).toEqual(w);
    } finally {
      gpu.dispose();
    }
  });
});
