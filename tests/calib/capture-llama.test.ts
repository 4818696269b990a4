/**
 * Llama activation capture: the statistics accumulated on the GPU from the WGSL forward pass equal the
 * same statistics computed from the CPU reference forward pass's linear inputs (LlamaCpu's hook), for a
 * random GQA model whose sequences span several forward chunks.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import { LlamaCpu } from '../../src/model/llama/forward-cpu.ts';
import { LlamaGpu } from '../../src/model/llama/forward-gpu.ts';
import type { LlamaCheckpoint, LlamaConfig } from '../../src/model/llama/model.ts';
import { captureLlamaStats } from '../../src/calib/capture-llama.ts';
import { gpuContext } from '../helpers/gpu.ts';
import { randomLlama } from '../helpers/random-llama.ts';

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await gpuContext();
});

function randomModel(): LlamaCheckpoint {
  const config: LlamaConfig = {
    dim: 40, hiddenDim: 72, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 97, seqLen: 32, normEps: 1e-5,
    ropeTheta: 10000, headDim: 10, tiedEmbeddings: true, arch: 'llama', ropeLayout: 'interleaved',
  };
  const m = randomLlama(config, 300);
  // An outlier channel in the first attention norm: channel 7 of layers.0.attn_in is ~20x larger.
  m.weights.get('layers.0.attention_norm')![7] = 25;
  return m.checkpoint();
}

/** Per capture point, the rows the CPU forward hands to the first linear reading it. */
async function cpuRows(ckpt: LlamaCheckpoint, seqs: number[][]): Promise<Map<string, Float32Array[]>> {
  const cpu = await LlamaCpu.load(ckpt);
  const point: Record<string, string> = { wq: 'attn_in', wo: 'attn_out', w1: 'mlp_in', w2: 'mlp_mid' };
  const rows = new Map<string, Float32Array[]>();
  cpu.setLinearInputHook((linear, x) => {
    const m = /^layers\.(\d+)\.(\w+)$/.exec(linear);
    if (!m || !point[m[2]]) return;
    const key = `layers.${m[1]}.${point[m[2]]}`;
    if (!rows.has(key)) rows.set(key, []);
    rows.get(key)!.push(x.slice());
  });
  for (const s of seqs) {
    cpu.reset();
    s.forEach((id, pos) => cpu.forward(id, pos));
  }
  return rows;
}

describe('captureLlamaStats', () => {
  test('GPU statistics of every linear input equal the CPU forward pass', async () => {
    const ckpt = randomModel();
    const seqs = [
      [1, 5, 9, 33, 2, 96, 40, 7, 7, 8, 11, 3, 60, 61, 62, 1, 0, 4, 5, 20, 21],
      [1, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 90],
    ];
    const want = await cpuRows(ckpt, seqs);
    const gpu = await LlamaGpu.load(ctx, ckpt, { maxBatch: 8 });
    let lastProgress = 0;
    try {
      const got = await captureLlamaStats(gpu, seqs, { snapshotTokens: 5, onProgress: (p) => (lastProgress = p.done) });
      expect(lastProgress).toBe(seqs[0].length + seqs[1].length);
      expect(got.map((s) => s.name).sort()).toEqual([...want.keys()].sort());
      for (const s of got) {
        const rows = want.get(s.name)!;
        expect(s.tokens).toBe(rows.length);
        expect(s.channels).toBe(rows[0].length);
        expect(s.layers.length).toBeGreaterThan(0);
        // Chunks of 8 tokens: 3 + 2 batches.
        expect(s.batches).toBe(5);
        const absmax = new Float32Array(s.channels);
        const sum = new Float64Array(s.channels);
        let lo = Infinity;
        let hi = -Infinity;
        for (const r of rows) {
          r.forEach((v, c) => {
            absmax[c] = Math.max(absmax[c], Math.abs(v));
            sum[c] += Math.abs(v);
            lo = Math.min(lo, v);
            hi = Math.max(hi, v);
          });
        }
        const tol = 1e-4 * Math.max(1, hi - lo);
        for (let c = 0; c < s.channels; c++) {
          expect(Math.abs(s.channelAbsmax[c] - absmax[c])).toBeLessThan(tol);
          expect(Math.abs(s.channelMeanAbs[c] - sum[c] / rows.length)).toBeLessThan(tol);
        }
        expect(s.min).toBeCloseTo(lo, 3);
        expect(s.max).toBeCloseTo(hi, 3);
        expect(s.nonFinite).toBe(0);
        // Per-token absmax in order, and the snapshot holds |x| of the first tokens.
        rows.forEach((r, t) => expect(Math.abs(s.tokenAbsmax[t] - Math.max(...Array.from(r, Math.abs)))).toBeLessThan(tol));
        expect(s.snapshot!.tokens).toBe(5);
        for (let t = 0; t < 5; t++) for (let c = 0; c < s.channels; c++) expect(Math.abs(s.snapshot!.data[t * s.channels + c] - Math.abs(rows[t][c]))).toBeLessThan(tol);
        // Every finite value is in the histogram.
        const total = s.histogram.counts.reduce((a, b) => a + b, 0);
        expect(total).toBe(rows.length * s.channels);
        expect(s.histogram.range).toBeGreaterThanOrEqual(s.absmax);
      }
      // The planted outlier channel is the attention input's largest.
      const attn0 = got.find((s) => s.name === 'layers.0.attn_in')!;
      const top = Array.from(attn0.channelAbsmax).indexOf(Math.max(...attn0.channelAbsmax));
      expect(top).toBe(7);
      // Capture leaves the model usable: same logits as before capture.
      gpu.reset();
      const a = await gpu.forward([1, 5, 9]);
      gpu.reset();
      const cpu = await LlamaCpu.load(ckpt);
      const b = [1, 5, 9].map((id, pos) => cpu.forward(id, pos)).at(-1)!;
      let d = 0;
      for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
      expect(d).toBeLessThan(1e-4);
    } finally {
      gpu.dispose();
    }
  });

  test('a sequence longer than the context is refused', async () => {
    const ckpt = randomModel();
    const gpu = await LlamaGpu.load(ctx, ckpt, { maxBatch: 8 });
    try {
      await expect(captureLlamaStats(gpu, [Array.from({ length: 40 }, (_, i) => i % 90)])).rejects.toThrow(/context is 32/);
    } finally {
      gpu.dispose();
    }
  });
});
