/** Hugging Face safetensors checkpoints (F32/F16/BF16, single and sharded) load into the same model as llama2.c files: q/k rows are un-permuted from rotate-half to interleaved, so the CPU forward logits agree. */
import { describe, expect, test } from 'vitest';
import { bytesByteSource, type ByteSource } from '../../src/model/formats/byte-source.ts';
import { roundToBf16, roundToF16 } from '../../src/model/formats/half.ts';
import { encodeLlama2c } from '../../src/model/formats/llama2c.ts';
import { openCheckpoint } from '../../src/model/formats/open-checkpoint.ts';
import { encodeHfCheckpoint, encodeSafetensors, openSafetensors, readSafetensorsHeader, type HfFile } from '../../src/model/formats/safetensors.ts';
import { LlamaCpu } from '../../src/model/llama/forward-cpu.ts';
import type { LlamaConfig } from '../../src/model/llama/model.ts';
import { interleavedToRotateHalf, rotateHalfToInterleaved } from '../../src/model/llama/rope-layout.ts';
import { gaussian } from '../helpers/random.ts';
import { concat, maxAbsDiff, tinyConfig, tinyWeights } from './tiny-llama.ts';

const sources = (files: HfFile[]): ByteSource[] => files.map((f) => bytesByteSource(concat(f.chunks), f.name));

/** transformers' permute, written literally: w.view(n_heads, hd/2, 2, in).transpose(1, 2).reshape(out, in). */
function hfPermute(w: Float32Array, nHeads: number, cols: number): Float32Array {
  const hd = w.length / cols / nHeads;
  const out = new Float32Array(w.length);
  // out[h][a][b][c] = w[h][b][a][c], with out viewed as (n_heads, 2, hd/2, cols) and w as (n_heads, hd/2, 2, cols).
  for (let h = 0; h < nHeads; h++)
    for (let a = 0; a < 2; a++)
      for (let b = 0; b < hd / 2; b++)
        for (let c = 0; c < cols; c++) out[((h * 2 + a) * (hd / 2) + b) * cols + c] = w[((h * (hd / 2) + b) * 2 + a) * cols + c];
  return out;
}

/** Logits of a few positions of a short token sequence. */
function logitsOf(m: LlamaCpu, tokens: number[]): Float32Array[] {
  m.reset();
  return tokens.map((t) => m.forwardNext(t));
}

describe('RoPE layouts', () => {
  test('interleavedToRotateHalf is transformers permute; rotateHalfToInterleaved undoes it', () => {
    const w = gaussian(4 * 8 * 5, 2);
    expect(interleavedToRotateHalf(w, 4, 5)).toEqual(hfPermute(w, 4, 5));
    expect(rotateHalfToInterleaved(hfPermute(w, 4, 5), 4, 5)).toEqual(w);
  });

  test('rotate-half RoPE on permuted q/k gives the same attention score as interleaved RoPE on the originals', () => {
    const hd = 8;
    const q = gaussian(hd, 3);
    const k = gaussian(hd, 4);
    const inv = Array.from({ length: hd / 2 }, (_, i) => 10000 ** (-(2 * i) / hd));
    const interleaved = (x: Float32Array, pos: number) => {
      const y = Float64Array.from(x);
      for (let i = 0; i < hd / 2; i++) {
        const [c, s] = [Math.cos(pos * inv[i]), Math.sin(pos * inv[i])];
        y[2 * i] = x[2 * i] * c - x[2 * i + 1] * s;
        y[2 * i + 1] = x[2 * i] * s + x[2 * i + 1] * c;
      }
      return y;
    };
    // transformers apply_rotary_pos_emb: x * cos + rotate_half(x) * sin, cos/sin = cat(freqs, freqs), rotate_half = cat(-x2, x1).
    const rotateHalf = (x: Float32Array, pos: number) => {
      const y = new Float64Array(hd);
      for (let j = 0; j < hd; j++) {
        const f = inv[j % (hd / 2)] * pos;
        const rot = j < hd / 2 ? -x[j + hd / 2] : x[j - hd / 2];
        y[j] = x[j] * Math.cos(f) + rot * Math.sin(f);
      }
      return y;
    };
    const dot = (a: Float64Array, b: Float64Array) => a.reduce((s, v, i) => s + v * b[i], 0);
    const qh = interleavedToRotateHalf(q, 1, 1);
    const kh = interleavedToRotateHalf(k, 1, 1);
    for (const [m, n] of [[0, 0], [5, 2], [17, 9]]) {
      expect(dot(rotateHalf(qh, m), rotateHalf(kh, n))).toBeCloseTo(dot(interleaved(q, m), interleaved(k, n)), 10);
    }
  });
});

describe('tiny random Llama: safetensors vs llama2.c', () => {
  const cfg = tinyConfig();
  const tokens = [1, 7, 30, 2, 45, 11, 0, 19];

  for (const [dtype, round] of [
    ['F32', (x: Float32Array) => x],
    ['F16', roundToF16],
    ['BF16', roundToBf16],
  ] as const) {
    test(`${dtype}, sharded into 2 files with an index: logits match the llama2.c file`, async () => {
      const w = tinyWeights(cfg, 11, { round });
      const bin = bytesByteSource(concat(encodeLlama2c(cfg, (n) => w.get(n)!)), 'tiny.bin');
      const files = encodeHfCheckpoint(cfg, (n) => w.get(n)!, { dtype, shards: 2 });
      expect(files.map((f) => f.name)).toEqual(['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']);
      const hf = await openCheckpoint(sources(files));
      const l2c = await openCheckpoint([bin]);
      expect(hf.format).toBe('safetensors');
      expect(l2c.format).toBe('llama2c');
      expect(hf.config).toEqual({ ...l2c.config, ropeLayout: 'rotate-half' });
      expect(hf.tensors.map((t) => [t.name, t.shape])).toEqual(l2c.tensors.map((t) => [t.name, t.shape]));
      expect(hf.tensors.find((t) => t.name === 'layers.1.wk')).toMatchObject({ dtype: dtype.toLowerCase(), sourceName: 'model.layers.1.self_attn.k_proj.weight' });
      // The file really holds HF-permuted rows, and loading undoes it.
      const shard1 = sources(files)[1];
      const q0 = (await readSafetensorsHeader(shard1)).tensors.find((t) => t.name === 'model.layers.0.self_attn.q_proj.weight')!;
      expect(q0.dtype).toBe(dtype);
      if (dtype === 'F32') {
        const raw = new Float32Array((await shard1.read(q0.begin, q0.end - q0.begin)).buffer);
        expect(raw).toEqual(hfPermute(w.get('layers.0.wq')!, cfg.nHeads, cfg.dim));
      }
      expect(await hf.loadTensor('layers.0.wq')).toEqual(w.get('layers.0.wq'));
      const a = logitsOf(await LlamaCpu.load(hf), tokens);
      const b = logitsOf(await LlamaCpu.load(l2c), tokens);
      for (let i = 0; i < tokens.length; i++) expect(maxAbsDiff(a[i], b[i])).toBeLessThanOrEqual(1e-5);
    });
  }

  test('without the un-permutation the logits would differ (the test can fail)', async () => {
    const w = tinyWeights(cfg, 12);
    const ref = LlamaCpu.fromWeights(cfg, w);
    const wrong = new Map(w);
    for (let l = 0; l < cfg.nLayers; l++) {
      wrong.set(`layers.${l}.wq`, interleavedToRotateHalf(w.get(`layers.${l}.wq`)!, cfg.nHeads, cfg.dim));
      wrong.set(`layers.${l}.wk`, interleavedToRotateHalf(w.get(`layers.${l}.wk`)!, cfg.nKvHeads, cfg.dim));
    }
    const bad = LlamaCpu.fromWeights(cfg, wrong);
    const a = logitsOf(ref, tokens);
    const b = logitsOf(bad, tokens);
    expect(maxAbsDiff(a[0], b[0])).toBeLessThan(1e-6); // position 0: RoPE is the identity
    expect(maxAbsDiff(a[5], b[5])).toBeGreaterThan(1e-3);
  });

  test('single file, tied embeddings (lm_head ignored), Qwen2 biases', async () => {
    const qcfg: LlamaConfig = tinyConfig({ arch: 'qwen2', ropeLayout: 'rotate-half', tiedEmbeddings: true, ropeTheta: 1e6, normEps: 1e-6 });
    const w = tinyWeights(qcfg, 13, { biases: true });
    const files = encodeHfCheckpoint(qcfg, (n) => w.get(n)!);
    expect(files.map((f) => f.name)).toEqual(['config.json', 'model.safetensors']);
    const hf = await openSafetensors(sources(files));
    expect(hf.config).toEqual(qcfg);
    expect(hf.tensors.some((t) => t.name === 'output')).toBe(false);
    expect(await hf.loadTensor('layers.1.bq')).toEqual(w.get('layers.1.bq'));
    const a = logitsOf(await LlamaCpu.load(hf), tokens);
    const b = logitsOf(LlamaCpu.fromWeights(qcfg, w), tokens);
    for (let i = 0; i < tokens.length; i++) expect(maxAbsDiff(a[i], b[i])).toBeLessThanOrEqual(1e-5);
  });

  test('several .safetensors files without an index also work', async () => {
    const w = tinyWeights(cfg, 14);
    const files = encodeHfCheckpoint(cfg, (n) => w.get(n)!, { shards: 3 }).filter((f) => !f.name.endsWith('.json') || f.name === 'config.json');
    const hf = await openCheckpoint(sources(files).reverse());
    expect(hf.tensors).toHaveLength(1 + 9 * cfg.nLayers + 2);
    expect(hf.tokenizerNote).toMatch(/no tokenizer\.model/);
  });
});

describe('damaged or incomplete safetensors checkpoints', () => {
  const cfg = tinyConfig();
  const w = tinyWeights(cfg, 15);
  const files = encodeHfCheckpoint(cfg, (n) => w.get(n)!, { shards: 2 });

  test('config.json is required', async () => {
    await expect(openCheckpoint(sources(files.filter((f) => f.name !== 'config.json')))).rejects.toThrow(
      'model-00001-of-00002.safetensors: a safetensors checkpoint needs its config.json (hidden_size, heads, ...) given alongside',
    );
  });

  test('a shard named in the index must be given', async () => {
    await expect(openCheckpoint(sources(files.filter((f) => f.name !== 'model-00002-of-00002.safetensors')))).rejects.toThrow(
      'shard model-00002-of-00002.safetensors, listed in model.safetensors.index.json, was not given',
    );
  });

  test('truncated data and unsupported dtypes are named', async () => {
    const shard = concat(files[1].chunks);
    const cut = [files[0], { name: files[1].name, chunks: [shard.slice(0, shard.length - 10)] }, files[2]];
    await expect(openCheckpoint(sources(cut))).rejects.toThrow(/^model-00001-of-00002\.safetensors is truncated: tensor model\.layers\.\d+\.\S+ needs bytes \d+\.\.\d+, file has \d+$/);
    const ints = encodeSafetensors([{ name: 'model.embed_tokens.weight', shape: [48, 16], dtype: 'F32', data: new Float32Array(768) }]);
    const text = new TextDecoder().decode(ints[1]).replace('"F32"', '"I32"');
    const odd = [files[0], { name: 'model.safetensors', chunks: [ints[0], new TextEncoder().encode(text), ints[2]] }];
    await expect(openCheckpoint(sources(odd))).rejects.toThrow('model.safetensors: tensor model.embed_tokens.weight has dtype I32, which is not supported (F32, F16, BF16 are)');
  });

  test('an unknown tensor or architecture is reported', async () => {
    const extra = encodeSafetensors([{ name: 'model.layers.0.self_attn.q_norm.weight', shape: [4], dtype: 'F32', data: new Float32Array(4) }]);
    await expect(openCheckpoint(sources([files[0], { name: 'model.safetensors', chunks: extra }]))).rejects.toThrow(
      'model.safetensors: tensor model.layers.0.self_attn.q_norm.weight is not part of the llama architecture QuantLab reads',
    );
    const gemma = { name: 'config.json', chunks: [new TextEncoder().encode(JSON.stringify({ architectures: ['GemmaForCausalLM'] }))] };
    await expect(openCheckpoint(sources([gemma, files[1]]))).rejects.toThrow('config.json: architecture GemmaForCausalLM is not supported');
  });
});
