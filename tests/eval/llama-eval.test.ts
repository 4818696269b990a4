/**
 * evaluateLlama runs every kind of configuration on a random Llama model and reports rows a user can
 * compare: the FP32 row is the reference (KL 0, top-1 1), coarser weights drift further from it (KL of
 * INT4 > INT8 > FP16), sizes and bits per weight follow the quantizers, recomputing the FP32 logits gives
 * the cached result, and a cancelled run throws CancelledError with no table.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import { CancelledError } from '../../src/gpu/errors.ts';
import { parseEvalConfigs } from '../../src/eval/configs.ts';
import { evalTokens } from '../../src/eval/eval-text.ts';
import { evaluateLlama } from '../../src/eval/llama-eval.ts';
import { EvalError, type EvalRow } from '../../src/eval/types.ts';
import { Tokenizer } from '../../src/model/llama/tokenizer.ts';
import { gpuContext } from '../helpers/gpu.ts';
import { rng } from '../helpers/random.ts';
import { randomLlama } from '../helpers/random-llama.ts';
import { tinyConfig } from '../model/tiny-llama.ts';

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await gpuContext();
});

const cfg = tinyConfig({ seqLen: 16, vocabSize: 40 });
const model = randomLlama(cfg, 21);
const r = rng(8);
const TOKENS = Array.from({ length: 30 }, () => 3 + Math.floor(r() * 37));
const CALIB = [0, 1].map(() => [1, ...Array.from({ length: 15 }, () => 3 + Math.floor(r() * 37))]);
const PARAMS = [...model.weights.values()].reduce((a, w) => a + w.length, 0);
const LINEAR_PARAMS = [...model.weights].filter(([n]) => /\.w[qkvo123]$/.test(n)).reduce((a, [, w]) => a + w.length, 0);

describe('evaluateLlama on a random model', () => {
  let rows: EvalRow[];
  const progress: string[] = [];

  beforeAll(async () => {
    const res = await evaluateLlama(ctx, model.checkpoint(), {
      configs: parseEvalConfigs('fp32,fp16,rtn-int8,rtn-int4-g8,smoothquant-w8a8,smoothquant-w8a8-a0.8-pt,awq-int4-g8'),
      tokens: TOKENS,
      context: 12,
      stride: 5,
      calibration: CALIB,
      prompt: [1, 5, 6],
      genTokens: 4,
      awq: { grid: 2 },
      onProgress: (p) => progress.push(`${p.done}/${p.total} ${p.label}`),
    });
    rows = res.rows;
    expect(res.windows.length).toBeGreaterThan(2);
  });

  test('the FP32 row is the reference; the quantized rows drift from it in order of precision', () => {
    const by = (label: string) => rows.find((x) => x.config === label)!;
    expect(rows.map((x) => x.config)).toEqual(['fp32', 'fp16', 'rtn-int8', 'rtn-int4-g8', 'smoothquant-w8a8', 'smoothquant-w8a8-a0.8-pt', 'awq-int4-g8']);
    expect(by('fp32').metrics).toMatchObject({ kl: 0, top1: 1, tokens: 30 });
    const kl = (label: string) => by(label).metrics.kl;
    expect(kl('fp16')).toBeGreaterThan(0);
    expect(kl('fp16')).toBeLessThan(kl('rtn-int8'));
    expect(kl('rtn-int8')).toBeLessThan(kl('rtn-int4-g8'));
    for (const x of rows) {
      expect(x.metrics.kl).toBeGreaterThanOrEqual(0);
      expect(x.metrics.top1).toBeGreaterThan(0);
      expect(x.metrics.top1).toBeLessThanOrEqual(1);
      expect(Number.isFinite(x.metrics.perplexity)).toBe(true);
      expect(x.metrics.perplexity).toBeCloseTo(Math.exp(x.metrics.nll), 10);
      expect(x.generation).toMatch(/^\d+ \d+ \d+ \d+$/);
      expect(x.seconds).toBeGreaterThan(0);
    }
    // W8A8 adds activation error on top of INT8 weights; AWQ and SmoothQuant ran (non-zero drift).
    expect(kl('smoothquant-w8a8')).toBeGreaterThan(0);
    expect(kl('smoothquant-w8a8-a0.8-pt')).toBeGreaterThan(0);
    expect(kl('awq-int4-g8')).toBeGreaterThan(0);
    expect(by('smoothquant-w8a8').notes.join(' ')).toMatch(/alpha 0.5 .*INT8 activations per token/);
    expect(by('smoothquant-w8a8-a0.8-pt').notes.join(' ')).toMatch(/alpha 0.8 .*per tensor/);
    expect(progress[progress.length - 1]).toMatch(/^(\d+)\/\1 awq-int4-g8: window/);
  });

  test('sizes and bits per weight', () => {
    const by = (label: string) => rows.find((x) => x.config === label)!;
    expect(by('fp32')).toMatchObject({ bitsPerWeight: 32, sizeBytes: 4 * PARAMS });
    expect(by('fp16')).toMatchObject({ bitsPerWeight: 16, sizeBytes: 4 * (PARAMS - LINEAR_PARAMS) + 2 * LINEAR_PARAMS });
    // INT4 groups of 8, asymmetric: 4 bits + an fp16 scale and a 4-bit zero point per 8 weights.
    expect(by('rtn-int4-g8').bitsPerWeight).toBe(4 + 16 / 8 + 4 / 8);
    expect(by('awq-int4-g8').bitsPerWeight).toBe(6.5);
    expect(by('rtn-int8').sizeBytes).toBeLessThan(by('fp16').sizeBytes);
  });
});

describe('reference logits, errors, cancellation', () => {
  test('recomputing the FP32 logits (no cache) gives the cached result', async () => {
    const run = (maxCacheBytes?: number) =>
      evaluateLlama(ctx, model.checkpoint(), { configs: parseEvalConfigs('rtn-int4-g8'), tokens: TOKENS, context: 10, stride: 4, maxCacheBytes });
    const [a, b] = [await run(), await run(0)];
    expect(b.rows[0].metrics).toEqual(a.rows[0].metrics);
    expect(a.rows[0].metrics.kl).toBeGreaterThan(0);
  });

  test('settings and missing calibration are refused', async () => {
    const base = { configs: parseEvalConfigs('fp32'), tokens: TOKENS };
    await expect(evaluateLlama(ctx, model.checkpoint(), { ...base, context: 17 })).rejects.toThrow(/context must be from 1 to the model's 16/);
    await expect(evaluateLlama(ctx, model.checkpoint(), { ...base, context: 8, stride: 9 })).rejects.toThrow(EvalError);
    await expect(evaluateLlama(ctx, model.checkpoint(), { ...base, tokens: [1, 2, 99] })).rejects.toThrow(/token 99 is outside/);
    await expect(evaluateLlama(ctx, model.checkpoint(), { configs: parseEvalConfigs('awq-int4'), tokens: TOKENS })).rejects.toThrow(/calibration/);
  });

  test('a cancelled run throws CancelledError and returns no rows', async () => {
    const ac = new AbortController();
    const got: EvalRow[] = [];
    const run = evaluateLlama(ctx, model.checkpoint(), {
      configs: parseEvalConfigs('fp32,rtn-int8,rtn-int4-g8'),
      tokens: TOKENS,
      context: 10,
      signal: ac.signal,
      onRow: (row) => got.push(row),
      onProgress: (p) => p.label.startsWith('rtn-int8') && ac.abort(),
    });
    await expect(run).rejects.toBeInstanceOf(CancelledError);
    const pre = new AbortController();
    pre.abort();
    await expect(evaluateLlama(ctx, model.checkpoint(), { configs: parseEvalConfigs('fp32'), tokens: TOKENS, signal: pre.signal })).rejects.toBeInstanceOf(CancelledError);
  });
});

test('evaluation text: --tokens caps it; less than the minimum is an error naming the source and both counts', () => {
  const pieces = ['<unk>', '<s>', '</s>', ...Array.from({ length: 256 }, (_, i) => `<0x${i.toString(16).toUpperCase().padStart(2, '0')}>`)].map((p) => new TextEncoder().encode(p));
  const tok = new Tokenizer({ pieces, scores: new Float32Array(pieces.length) });
  // ' abc' and ' de': the dummy-prefix space is a byte token too.
  expect(evalTokens(tok, ['abc', 'de'], 5, 'x.txt')).toHaveLength(5);
  expect(evalTokens(tok, ['abc', 'de'], 50, 'x.txt', undefined, 7)).toHaveLength(7);
  expect(() => evalTokens(tok, ['abc', 'de'], 50, 'x.txt')).toThrow(/x.txt gives 7 tokens; the evaluation needs at least 50. Give more text or lower --tokens/);
  expect(() => evalTokens(tok, ['abc', 'de'], 50, 'x.txt', undefined, 8)).toThrow(/x.txt gives 7 tokens; the evaluation needs at least 8. Give more text or a shorter --context/);
});
