/** The CPU reference forward pass behaves as the Llama spec says: grouped-query attention equals multi-head attention with repeated KV heads, tied classifiers, KV-cache positions, weight substitution and activation hooks. */
import { describe, expect, test } from 'vitest';
import { argmax, LlamaCpu, matvec, rmsnorm } from '../../src/model/llama/forward-cpu.ts';
import { maxAbsDiff, tinyConfig, tinyWeights } from './tiny-llama.ts';

const tokens = [1, 5, 9, 33, 2, 17];
const run = (m: LlamaCpu, ids = tokens) => {
  m.reset();
  return ids.map((t) => m.forwardNext(t));
};

describe('LlamaCpu', () => {
  test('GQA (2 KV heads for 4 query heads) equals MHA with each KV head repeated for its query heads', () => {
    const cfg = tinyConfig({ nHeads: 4, nKvHeads: 2 });
    const w = tinyWeights(cfg, 21);
    const mha = tinyConfig({ nHeads: 4, nKvHeads: 4 });
    const wm = new Map(w);
    const hd = cfg.headDim;
    for (let l = 0; l < cfg.nLayers; l++) {
      for (const t of ['wk', 'wv']) {
        const src = w.get(`layers.${l}.${t}`)!;
        const out = new Float32Array(4 * hd * cfg.dim);
        // query head h reads KV head floor(h / 2)
        for (let h = 0; h < 4; h++) out.set(src.subarray(Math.floor(h / 2) * hd * cfg.dim, (Math.floor(h / 2) + 1) * hd * cfg.dim), h * hd * cfg.dim);
        wm.set(`layers.${l}.${t}`, out);
      }
    }
    const a = run(LlamaCpu.fromWeights(cfg, w));
    const b = run(LlamaCpu.fromWeights(mha, wm));
    for (let i = 0; i < a.length; i++) expect(maxAbsDiff(a[i], b[i])).toBeLessThan(1e-5);
  });

  test('a tied classifier is the embedding matrix', () => {
    const tied = tinyConfig({ tiedEmbeddings: true });
    const w = tinyWeights(tied, 22);
    const untied = new Map(w).set('output', w.get('tok_embeddings')!);
    const a = run(LlamaCpu.fromWeights(tied, w));
    const b = run(LlamaCpu.fromWeights({ ...tied, tiedEmbeddings: false }, untied));
    for (let i = 0; i < a.length; i++) expect(a[i]).toEqual(b[i]);
  });

  test('position 0 is attention over itself only: the first logits follow from one token', () => {
    const cfg = tinyConfig();
    const w = tinyWeights(cfg, 23);
    const m = LlamaCpu.fromWeights(cfg, w);
    const seq = run(m);
    // Recompute by hand: at pos 0 softmax is 1, so attention output = v; RoPE is the identity.
    const x = w.get('tok_embeddings')!.slice(tokens[0] * cfg.dim, (tokens[0] + 1) * cfg.dim);
    const xb = new Float32Array(cfg.dim);
    for (let l = 0; l < cfg.nLayers; l++) {
      const g = (n: string) => w.get(`layers.${l}.${n}`)!;
      rmsnorm(xb, x, g('attention_norm'), cfg.normEps);
      const v = new Float32Array(cfg.nKvHeads * cfg.headDim);
      matvec(v, xb, g('wv'));
      const att = new Float32Array(cfg.dim);
      for (let h = 0; h < cfg.nHeads; h++) att.set(v.subarray(Math.floor(h / 2) * cfg.headDim, (Math.floor(h / 2) + 1) * cfg.headDim), h * cfg.headDim);
      const o = new Float32Array(cfg.dim);
      matvec(o, att, g('wo'));
      for (let i = 0; i < cfg.dim; i++) x[i] += o[i];
      rmsnorm(xb, x, g('ffn_norm'), cfg.normEps);
      const h1 = new Float32Array(cfg.hiddenDim);
      const h3 = new Float32Array(cfg.hiddenDim);
      matvec(h1, xb, g('w1'));
      matvec(h3, xb, g('w3'));
      for (let i = 0; i < cfg.hiddenDim; i++) h1[i] = (h1[i] / (1 + Math.exp(-h1[i]))) * h3[i];
      matvec(o, h1, g('w2'));
      for (let i = 0; i < cfg.dim; i++) x[i] += o[i];
    }
    rmsnorm(xb, x, w.get('norm')!, cfg.normEps);
    const logits = new Float32Array(cfg.vocabSize);
    matvec(logits, xb, w.get('output')!);
    expect(maxAbsDiff(seq[0], logits)).toBeLessThan(1e-5);
  });

  test('forward(token, pos) over the KV cache matches forwardNext; generate returns only new tokens', () => {
    const cfg = tinyConfig();
    const m = LlamaCpu.fromWeights(cfg, tinyWeights(cfg, 24));
    const a = run(m);
    m.reset();
    const b = tokens.map((t, p) => m.forward(t, p));
    expect(b).toEqual(a);
    const gen = m.generate([1, 5], 4);
    expect(gen).toHaveLength(4);
    m.reset();
    m.forwardNext(1);
    expect(gen[0]).toBe(argmax(m.forwardNext(5)));
    expect(m.generate([1, 5], 4, { stopTokens: [gen[1]] })).toEqual(gen.slice(0, 2));
    expect(() => m.forward(cfg.vocabSize, 0)).toThrow(/outside the vocabulary/);
    expect(() => m.forward(1, cfg.seqLen)).toThrow(/outside the KV cache/);
  });

  test('setLinearWeight substitutes a weight (e.g. fake-quantized) and restoring it restores the logits', () => {
    const cfg = tinyConfig();
    const w = tinyWeights(cfg, 25);
    const m = LlamaCpu.fromWeights(cfg, w);
    const before = run(m);
    const orig = m.getWeight('layers.1.w2');
    m.setLinearWeight('layers.1.w2', orig.map((v) => Math.round(v * 4) / 4));
    const after = run(m);
    expect(maxAbsDiff(before[3], after[3])).toBeGreaterThan(1e-4);
    m.setLinearWeight('layers.1.w2', orig);
    expect(run(m)).toEqual(before);
    expect(() => m.setLinearWeight('layers.1.w2', new Float32Array(3))).toThrow(/has shape \[16, 40\]/);
    expect(() => m.setLinearWeight('layers.1.ffn_norm', new Float32Array(16))).toThrow(/not a linear layer/);
  });

  test('the linear-input hook sees each linear input once per token', () => {
    const cfg = tinyConfig();
    const w = tinyWeights(cfg, 26);
    const m = LlamaCpu.fromWeights(cfg, w);
    const seen: string[] = [];
    let first: Float32Array | undefined;
    m.setLinearInputHook((name, x, pos) => {
      seen.push(`${pos}:${name}`);
      if (pos === 0 && name === 'layers.0.wq') first = x.slice();
    });
    run(m, [3, 4]);
    m.setLinearInputHook(undefined);
    expect(seen.slice(0, 9)).toEqual(['0:layers.0.wq', '0:layers.0.wo', '0:layers.0.w1', '0:layers.0.w2', '0:layers.1.wq', '0:layers.1.wo', '0:layers.1.w1', '0:layers.1.w2', '0:output']);
    expect(seen).toHaveLength(18);
    const want = new Float32Array(cfg.dim);
    rmsnorm(want, w.get('tok_embeddings')!.slice(3 * cfg.dim, 4 * cfg.dim), w.get('layers.0.attention_norm')!, cfg.normEps);
    expect(first).toEqual(want);
  });
});
