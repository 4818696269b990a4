/**
 * Strided perplexity scores every evaluation token exactly once with the left context Hugging Face's
 * strided rule gives it; the WGSL forward pass gives the CPU reference's perplexity over several windows; and
 * the distances to the FP32 model are sound: KL of a model against itself is 0 with full top-1 agreement,
 * KL of an INT4 model is positive, KL is never negative.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import { cpuWindowLogits, gpuWindowLogits, klDivergence, logSumExp, scoreWindows, strideWindows, windowInput } from '../../src/eval/perplexity.ts';
import { EvalError } from '../../src/eval/types.ts';
import { LlamaCpu } from '../../src/model/llama/forward-cpu.ts';
import { LlamaGpu } from '../../src/model/llama/forward-gpu.ts';
import { CancelledError } from '../../src/gpu/errors.ts';
import { fakeQuantizeRef, qparamsRef } from '../../src/quant/reference/quantize.ts';
import { groupStatsRef } from '../../src/quant/reference/stats.ts';
import { makeGroupLayout } from '../../src/quant/layout.ts';
import { linearTensorNames } from '../../src/model/llama/model.ts';
import { gpuContext } from '../helpers/gpu.ts';
import { gaussian, rng } from '../helpers/random.ts';
import { randomLlama } from '../helpers/random-llama.ts';
import { tinyConfig } from '../model/tiny-llama.ts';

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await gpuContext();
});

const BOS = 1;
const cfg = tinyConfig({ seqLen: 16, vocabSize: 40 });
const model = randomLlama(cfg, 7);
const r = rng(3);
const TOKENS = Array.from({ length: 37 }, () => 3 + Math.floor(r() * 37));

describe('windows', () => {
  test('every token is scored once, by the first window that reaches it; windows start every stride tokens', () => {
    for (const [n, context, stride] of [
      [10, 4, 2],
      [10, 4, 4],
      [10, 4, 1],
      [3, 8, 4],
      [37, 8, 3],
      [16, 16, 8],
    ]) {
      const ws = strideWindows(n, context, stride);
      const scoredBy = new Array<number>(n).fill(-1);
      ws.forEach((w, i) => {
        expect(w.begin).toBe(i * stride);
        expect(w.end - w.begin).toBeLessThanOrEqual(context);
        for (let t = w.scoreFrom; t < w.end; t++) {
          expect(scoredBy[t]).toBe(-1);
          scoredBy[t] = i;
        }
      });
      expect(scoredBy.every((i) => i >= 0)).toBe(true);
      expect(ws[ws.length - 1].end).toBe(n);
    }
    expect(strideWindows(10, 4, 2)).toEqual([
      { begin: 0, end: 4, scoreFrom: 0 },
      { begin: 2, end: 6, scoreFrom: 4 },
      { begin: 4, end: 8, scoreFrom: 6 },
      { begin: 6, end: 10, scoreFrom: 8 },
    ]);
    const { ids, skip } = windowInput([10, 11, 12, 13, 14, 15], { begin: 2, end: 6, scoreFrom: 4 }, BOS);
    expect(ids).toEqual([BOS, 12, 13, 14]);
    expect(skip).toBe(2);
  });

  test('bad settings are refused', () => {
    expect(() => strideWindows(0, 4, 2)).toThrow(EvalError);
    expect(() => strideWindows(10, 4, 5)).toThrow(/stride/);
    expect(() => strideWindows(10, 4, 0)).toThrow(/stride/);
    expect(() => strideWindows(10, 0, 1)).toThrow(/context/);
  });
});

/** Naive: each token t scored alone from a fresh CPU run over BOS + its window's tokens before t. */
async function naivePerplexity(tokens: number[], context: number, stride: number): Promise<number> {
  const cpu = LlamaCpu.fromWeights(cfg, model.weights);
  // Hugging Face's loop: begin_loc steps by stride, trg_len = end_loc - prev_end_loc.
  const start = new Array<number>(tokens.length);
  let prevEnd = 0;
  for (let begin = 0; begin < tokens.length; begin += stride) {
    const end = Math.min(begin + context, tokens.length);
    for (let t = prevEnd; t < end; t++) start[t] = begin;
    prevEnd = end;
    if (end === tokens.length) break;
  }
  let nll = 0;
  for (let t = 0; t < tokens.length; t++) {
    const prefix = [BOS, ...tokens.slice(start[t], t)];
    cpu.reset();
    let logits: Float32Array = new Float32Array(0);
    prefix.forEach((id, pos) => (logits = cpu.forward(id, pos)));
    let m = -Infinity;
    for (const v of logits) m = Math.max(m, v);
    let s = 0;
    for (const v of logits) s += Math.exp(v - m);
    nll -= logits[tokens[t]] - m - Math.log(s);
  }
  return Math.exp(nll / tokens.length);
}

describe('perplexity', () => {
  test('CPU windows equal the naive per-token computation of the strided rule', async () => {
    const tokens = TOKENS.slice(0, 13);
    const want = await naivePerplexity(tokens, 5, 2);
    const got = await scoreWindows(cpuWindowLogits(LlamaCpu.fromWeights(cfg, model.weights)), cfg.vocabSize, tokens, strideWindows(13, 5, 2), BOS);
    expect(got.tokens).toBe(13);
    expect(Math.abs(got.perplexity - want) / want).toBeLessThan(1e-9);
    // A different stride changes the contexts, and so the result: the test can tell the rules apart.
    const other = await naivePerplexity(tokens, 5, 5);
    expect(Math.abs(other - want) / want).toBeGreaterThan(1e-6);
  });

  test('WGSL equals the CPU reference over several windows (rel 1e-4)', async () => {
    const windows = strideWindows(TOKENS.length, 12, 5);
    expect(windows.length).toBeGreaterThan(3);
    const cpu = await scoreWindows(cpuWindowLogits(LlamaCpu.fromWeights(cfg, model.weights)), cfg.vocabSize, TOKENS, windows, BOS);
    const llm = await LlamaGpu.load(ctx, model.checkpoint());
    try {
      const gpu = await scoreWindows(gpuWindowLogits(llm), cfg.vocabSize, TOKENS, windows, BOS);
      expect(gpu.tokens).toBe(TOKENS.length);
      expect(Math.abs(gpu.perplexity - cpu.perplexity) / cpu.perplexity).toBeLessThan(1e-4);
      expect(gpu.perplexity).toBeGreaterThan(1);
    } finally {
      llm.dispose();
    }
  });
});

function int4Weights(): Map<string, Float32Array> {
  const q = { bits: 4, granularity: 'group' as const, groupSize: 8, scheme: 'asym' as const };
  const over = new Map<string, Float32Array>();
  for (const name of linearTensorNames(cfg)) {
    const w = model.weights.get(name)!;
    const layout = makeGroupLayout([w.length / cfg.dim, cfg.dim], 'group', 8);
    over.set(name, fakeQuantizeRef(w, layout, qparamsRef(groupStatsRef(w, layout), q), q));
  }
  return over;
}

describe('KL divergence and top-1 agreement', () => {
  test('FP32 against itself: KL 0, top-1 1; INT4 weights: KL > 0, top-1 <= 1', async () => {
    const windows = strideWindows(TOKENS.length, 12, 6);
    const ref = await LlamaGpu.load(ctx, model.checkpoint());
    const q4 = await LlamaGpu.load(ctx, model.checkpoint(int4Weights()));
    try {
      const cache: Float32Array[] = [];
      const base = await scoreWindows(gpuWindowLogits(ref), cfg.vocabSize, TOKENS, windows, BOS, { keep: (i, l) => (cache[i] = l) });
      expect(base.kl).toBe(0);
      expect(base.top1).toBe(1);
      const self = await scoreWindows(gpuWindowLogits(ref), cfg.vocabSize, TOKENS, windows, BOS, { reference: (i) => cache[i] });
      expect(self.kl).toBe(0);
      expect(self.top1).toBe(1);
      expect(self.perplexity).toBe(base.perplexity);
      const quant = await scoreWindows(gpuWindowLogits(q4), cfg.vocabSize, TOKENS, windows, BOS, { reference: (i) => cache[i] });
      expect(quant.kl).toBeGreaterThan(1e-4);
      expect(quant.top1).toBeLessThanOrEqual(1);
      expect(quant.top1).toBeGreaterThan(0);
      expect(quant.perplexity).not.toBe(base.perplexity);
    } finally {
      ref.dispose();
      q4.dispose();
    }
  });

  test('KL >= 0 on random, equal, shifted and extreme logit rows; equals the float64 definition', () => {
    for (let s = 0; s < 50; s++) {
      const p = gaussian(64, 100 + s, s % 5 === 0 ? 30 : 2);
      const q = s % 7 === 0 ? p.map((v) => v + 3) : gaussian(64, 200 + s, 2);
      const kl = klDivergence(p, q, 0, 64);
      expect(kl).toBeGreaterThanOrEqual(0);
      if (s % 7 === 0) expect(kl).toBeLessThan(1e-12);
    }
    const p = Float32Array.from([1, 2, 3]);
    const q = Float32Array.from([3, 2, 1]);
    const lp = Array.from(p, (v) => v - logSumExp(p, 0, 3));
    const lq = Array.from(q, (v) => v - logSumExp(q, 0, 3));
    const want = lp.reduce((a, v, i) => a + Math.exp(v) * (v - lq[i]), 0);
    expect(klDivergence(p, q, 0, 3)).toBeCloseTo(want, 14);
    expect(logSumExp(Float32Array.from([1000, 1000]), 0, 2)).toBeCloseTo(1000 + Math.log(2), 10);
  });

  test('an aborted signal stops scoring with CancelledError', async () => {
    const ac = new AbortController();
    const cpu = LlamaCpu.fromWeights(cfg, model.weights);
    const run = scoreWindows(cpuWindowLogits(cpu), cfg.vocabSize, TOKENS, strideWindows(TOKENS.length, 8, 4), BOS, {
      signal: ac.signal,
      onProgress: (p) => p.done === 2 && ac.abort(),
    });
    await expect(run).rejects.toBeInstanceOf(CancelledError);
  });
});
