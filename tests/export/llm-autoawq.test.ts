/** An AutoAWQ GEMM export, read back by a safetensors reader and an unpacker written here from AutoAWQ's spec, holds exactly the lab's INT4 codes, zero points and (fp16) scales in Hugging Face names and row order, with a config.json transformers recognises, and layers that cannot be packed are refused by name. */
import { describe, expect, test } from 'vitest';
import { exportAutoAwq } from '../../src/export/llm-autoawq.ts';
import { LlmExportError, type LinearInt4 } from '../../src/export/llm-int4.ts';
import { bytesByteSource } from '../../src/model/formats/byte-source.ts';
import { readSafetensorsHeader } from '../../src/model/formats/safetensors.ts';
import { expectedTensors, type LlamaConfig } from '../../src/model/llama/model.ts';
import { makeGroupLayout } from '../../src/quant/layout.ts';
import { groupStatsRef } from '../../src/quant/reference/stats.ts';
import { qparamsRef, quantizeRef, type QParams } from '../../src/quant/reference/quantize.ts';
import { quantizeScaledRef } from '../../src/awq/reference.ts';
import { nodeFileByteSource } from '../../src/model/formats/byte-source-node.ts';
import { roundToF16 } from '../../src/model/formats/half.ts';
import { BUNDLED_STORIES15M_PATH, openBundledStories15M } from '../../src/model/formats/llama2c.ts';
import { LlamaCpu } from '../../src/model/llama/forward-cpu.ts';
import { randomLlama } from '../helpers/random-llama.ts';
import { gaussian } from '../helpers/random.ts';

const cfg: LlamaConfig = {
  dim: 64, hiddenDim: 96, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 40, seqLen: 32, normEps: 1e-5, ropeTheta: 10000,
  headDim: 16, tiedEmbeddings: false, arch: 'llama', ropeLayout: 'interleaved',
};
const G = 32;

// ---- an independent reader, from the safetensors README and AutoAWQ's WQLinear_GEMM ----

interface StTensor { dtype: string; shape: number[]; bytes: Uint8Array }

function readSafetensors(file: Uint8Array): { tensors: Map<string, StTensor>; metadata: Record<string, string> } {
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + n))) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const tensors = new Map<string, StTensor>();
  let covered = 0;
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [b, en] = e.data_offsets;
    covered += en - b;
    tensors.set(name, { dtype: e.dtype, shape: e.shape, bytes: file.slice(8 + n + b, 8 + n + en) });
  }
  expect(8 + n + covered).toBe(file.length); // no holes, nothing after the data
  return { tensors, metadata: (header.__metadata__ ?? {}) as unknown as Record<string, string> };
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

const i32 = (t: StTensor) => Array.from({ length: t.bytes.length / 4 }, (_, i) => new DataView(t.bytes.buffer).getInt32(4 * i, true));
const f16 = (t: StTensor) => Array.from({ length: t.bytes.length / 2 }, (_, i) => halfToFloat(new DataView(t.bytes.buffer).getUint16(2 * i, true)));

/** AutoAWQ: qweight[:, col] |= intweight[:, col*8 + order_map[i]] << (4i), order_map = [0,2,4,6,1,3,5,7]; returns [rows, cols*8]. */
function unpackAwq(words: number[], rows: number, packedCols: number): number[][] {
  const orderMap = [0, 2, 4, 6, 1, 3, 5, 7];
  const out = Array.from({ length: rows }, () => new Array<number>(packedCols * 8).fill(-1));
  for (let r = 0; r < rows; r++) {
    for (let col = 0; col < packedCols; col++) {
      for (let i = 0; i < 8; i++) out[r][col * 8 + orderMap[i]] = (words[r * packedCols + col] >>> (4 * i)) & 0xf;
    }
  }
  return out;
}

/** transformers convert_llama_weights_to_hf.py permute: w.view(heads, hd/2, 2, in).transpose(1, 2).reshape(out, in). */
function hfPermute(w: Float32Array, heads: number, inDim: number): Float32Array {
  const out = w.length / inDim;
  const hd = out / heads;
  const y = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) for (let a = 0; a < 2; a++) for (let b = 0; b < hd / 2; b++) {
    const src = h * hd + b * 2 + a; // view index (h, b, a)
    const dst = h * hd + a * (hd / 2) + b; // after the transpose: (h, a, b)
    y.set(w.subarray(src * inDim, (src + 1) * inDim), dst * inDim);
  }
  return y;
}

/** The lab's quantizer (CPU reference), asymmetric INT4, groups of G along the input axis. */
function labInt4(w: Float32Array, shape: [number, number], g = G): { codes: Uint8Array; qp: QParams } {
  const qc = { bits: 4, granularity: 'group' as const, groupSize: g, scheme: 'asym' as const };
  const layout = makeGroupLayout(shape, 'group', g);
  const qp = qparamsRef(groupStatsRef(w, layout), qc);
  return { codes: quantizeRef(w, layout, qp, qc) as Uint8Array, qp };
}

const f16Round = (x: number) => {
  const a = new Float32Array([x]);
  // the nearest fp16 (ties to even), by brute force over the two neighbours the spec allows
  const e = Math.floor(Math.log2(Math.abs(a[0]) || 1));
  const ulp = 2 ** (Math.max(e, -14) - 10);
  const lo = Math.floor(a[0] / ulp) * ulp;
  const hi = lo + ulp;
  if (a[0] - lo < hi - a[0]) return lo;
  if (a[0] - lo > hi - a[0]) return hi;
  return (lo / ulp) % 2 === 0 ? lo : hi;
};

const hfLinear: Record<string, string> = { wq: 'self_attn.q_proj', wk: 'self_attn.k_proj', wv: 'self_attn.v_proj', wo: 'self_attn.o_proj', w1: 'mlp.gate_proj', w2: 'mlp.down_proj', w3: 'mlp.up_proj' };

/** The error an export was refused with (fails when it was not). */
async function refused(p: Promise<unknown>): Promise<LlmExportError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(LlmExportError);
    return e as LlmExportError;
  }
  throw new Error('the export was not refused');
}

describe('AutoAWQ GEMM export', () => {
  const model = randomLlama(cfg, 11);

  test('qweight, qzeros and scales unpack to the lab\'s codes, zero points and fp16 scales, q/k in rotate-half order', async () => {
    const { files, linears } = await exportAutoAwq(model.checkpoint(), { groupSize: G });
    expect(files.map((f) => f.name)).toEqual(['config.json', 'model.safetensors']);
    const bytes = concat(files[1].chunks);
    const { tensors } = readSafetensors(bytes);
    await readSafetensorsHeader(bytesByteSource(bytes, 'model.safetensors')); // the lab's own reader accepts the layout
    let checked = 0;
    for (let l = 0; l < cfg.nLayers; l++) {
      for (const [short, hf] of Object.entries(hfLinear)) {
        const name = `layers.${l}.${short}`;
        const shape = expectedTensors(cfg).find((e) => e.name === name)!.shape as [number, number];
        const [n, k] = shape;
        let w = model.weights.get(name)!;
        if (short === 'wq') w = hfPermute(w, cfg.nHeads, k);
        if (short === 'wk') w = hfPermute(w, cfg.nKvHeads, k);
        const lab = labInt4(w, shape);
        const p = `model.layers.${l}.${hf}`;
        const qw = tensors.get(`${p}.qweight`)!;
        const qz = tensors.get(`${p}.qzeros`)!;
        const sc = tensors.get(`${p}.scales`)!;
        expect([qw.dtype, qw.shape]).toEqual(['I32', [k, n / 8]]);
        expect([qz.dtype, qz.shape]).toEqual(['I32', [k / G, n / 8]]);
        expect([sc.dtype, sc.shape]).toEqual(['F16', [k / G, n]]);
        const q = unpackAwq(i32(qw), k, n / 8);
        const z = unpackAwq(i32(qz), k / G, n / 8);
        const s = f16(sc);
        let mism = 0;
        for (let o = 0; o < n; o++) {
          for (let c = 0; c < k; c++) if (q[c][o] !== lab.codes[o * k + c]) mism++;
          for (let g = 0; g < k / G; g++) {
            if (z[g][o] !== lab.qp.zero[o * (k / G) + g]) mism++;
            if (s[g * n + o] !== f16Round(lab.qp.scale[o * (k / G) + g])) mism++;
          }
        }
        expect(mism, name).toBe(0);
        // dequantized as AutoAWQ does, (q - z) * s, it is the lab's fake-quantized weight up to the fp16 scale
        let err = 0;
        for (let o = 0; o < n; o++) for (let c = 0; c < k; c++) {
          const g = Math.floor(c / G);
          const labValue = (lab.codes[o * k + c] - lab.qp.zero[o * (k / G) + g]) * lab.qp.scale[o * (k / G) + g];
          err = Math.max(err, Math.abs((q[c][o] - z[g][o]) * s[g * n + o] - labValue));
        }
        expect(err).toBeLessThan(2e-3);
        expect(linears.get(name)!.shape).toEqual(shape);
        checked++;
      }
    }
    expect(checked).toBe(14);
    // the float tensors: fp16, HF names, no leftovers
    const emb = tensors.get('model.embed_tokens.weight')!;
    expect([emb.dtype, emb.shape]).toEqual(['F16', [40, 64]]);
    expect(f16(emb).slice(0, 8)).toEqual(Array.from(model.weights.get('tok_embeddings')!.subarray(0, 8), f16Round));
    expect(f16(tensors.get('model.layers.1.post_attention_layernorm.weight')!)).toEqual(Array.from(model.weights.get('layers.1.ffn_norm')!, f16Round));
    expect(tensors.has('lm_head.weight') && tensors.has('model.norm.weight')).toBe(true);
    expect(tensors.size).toBe(14 * 3 + 2 * 2 + 3);
  });

  test('config.json is transformers\' LlamaForCausalLM with AutoAWQ\'s quantization_config', async () => {
    const { files } = await exportAutoAwq(model.checkpoint(), { groupSize: G });
    const c = JSON.parse(new TextDecoder().decode(concat(files[0].chunks)));
    expect(c).toMatchObject({
      architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2,
      num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 40, max_position_embeddings: 32, rms_norm_eps: 1e-5, rope_theta: 10000,
      tie_word_embeddings: false, torch_dtype: 'float16',
      quantization_config: { quant_method: 'awq', zero_point: true, group_size: 32, bits: 4, version: 'gemm' },
    });
  });

  test('AWQ plugs in: given codes of scaled weights and a divided norm are written as they are', async () => {
    const shape: [number, number] = [32, 64];
    const s = gaussian(64, 5, 0.2).map((v) => Math.exp(v));
    const wv = model.weights.get('layers.0.wv')!;
    const aq = quantizeScaledRef(wv, shape, s, { bits: 4, granularity: 'group', groupSize: G, scheme: 'asym' });
    const lin: LinearInt4 = { shape, groupSize: G, codes: aq.codes as Uint8Array, scales: aq.qparams.scale, zeros: aq.qparams.zero };
    const norm = model.weights.get('layers.0.attention_norm')!.map((v, i) => v / s[i]);
    const { files } = await exportAutoAwq(model.checkpoint(), { groupSize: G, linears: new Map([['layers.0.wv', lin]]), replaced: new Map([['layers.0.attention_norm', norm]]) });
    const { tensors } = readSafetensors(concat(files[1].chunks));
    const q = unpackAwq(i32(tensors.get('model.layers.0.self_attn.v_proj.qweight')!), 64, 4);
    let mism = 0;
    for (let o = 0; o < 32; o++) for (let c = 0; c < 64; c++) if (q[c][o] !== aq.codes[o * 64 + c]) mism++;
    expect(mism).toBe(0);
    expect(f16(tensors.get('model.layers.0.input_layernorm.weight')!)).toEqual(Array.from(norm, f16Round));
  });

  test('layers that cannot be packed are refused, each by name, before any work', async () => {
    const odd = randomLlama({ ...cfg, hiddenDim: 100 }, 3);
    const err = await refused(exportAutoAwq(odd.checkpoint(), { groupSize: G }));
    expect(err).toBeInstanceOf(LlmExportError);
    const lines = (err as LlmExportError).problems;
    expect(lines).toContain('layers.0.w1 (model.layers.0.mlp.gate_proj, [100, 64]): N = 100 output channels is not a multiple of 8 (AutoAWQ packs 8 output columns per int32)');
    expect(lines).toContain('layers.1.w2 (model.layers.1.mlp.down_proj, [64, 100]): K = 100 input channels is not a multiple of the group size 32');
    expect(lines).toHaveLength(3 * 2);
    expect((err as Error).message).toMatch(/^cannot export AutoAWQ GEMM:\n {2}layers\.0\.w1/);

    const g48 = await refused(exportAutoAwq(model.checkpoint(), { groupSize: 48 }));
    expect(g48.problems).toContain('layers.0.wq (model.layers.0.self_attn.q_proj, [64, 64]): K = 64 input channels is not a multiple of the group size 48');
  });

  test('names that collide or name nothing are refused', async () => {
    const ckpt = model.checkpoint();
    const dup = { ...ckpt, tensors: [...ckpt.tensors, { ...ckpt.tensors[1] }] };
    const e1 = await refused(exportAutoAwq(dup, { groupSize: G }));
    expect(e1.problems).toContain('layers.0.attention_norm: its name model.layers.0.input_layernorm.weight collides with layers.0.attention_norm\'s');
    const stray: LinearInt4 = { shape: [64, 64], groupSize: G, codes: new Uint8Array(4096), scales: new Float32Array(128), zeros: new Float32Array(128) };
    const e2 = await refused(exportAutoAwq(ckpt, { groupSize: G, linears: new Map([['layers.5.wq', stray]]) }));
    expect(e2.problems).toEqual(['layers.5.wq: a quantized linear was given for it, but the model has no such linear']);
  });
});

describe('stories15M as AutoAWQ GEMM, g32', () => {
  test('dequantized from the file as AutoAWQ does and un-permuted, it tells the lab\'s RTN INT4 greedy story', async () => {
    const stories = await openBundledStories15M(await nodeFileByteSource(BUNDLED_STORIES15M_PATH));
    const c = stories.config;
    const t0 = performance.now();
    const { files } = await exportAutoAwq(stories, { groupSize: G });
    const ms = performance.now() - t0;
    const file = concat(files[1].chunks);
    const { tensors } = readSafetensors(file);
    const weights = new Map<string, Float32Array>();
    for (const t of stories.tensors) {
      const m = /^layers\.(\d+)\.(\w+)$/.exec(t.name);
      if (m && hfLinear[m[2]]) {
        const [n, k] = t.shape;
        const p = `model.layers.${m[1]}.${hfLinear[m[2]]}`;
        const q = unpackAwq(i32(tensors.get(`${p}.qweight`)!), k, n / 8);
        const z = unpackAwq(i32(tensors.get(`${p}.qzeros`)!), k / G, n / 8);
        const s = f16(tensors.get(`${p}.scales`)!);
        let w: Float32Array = new Float32Array(n * k);
        for (let o = 0; o < n; o++) for (let col = 0; col < k; col++) {
          const g = Math.floor(col / G);
          w[o * k + col] = (q[col][o] - z[g][o]) * s[g * n + o];
        }
        if (m[2] === 'wq' || m[2] === 'wk') w = hfUnpermute(w, m[2] === 'wq' ? c.nHeads : c.nKvHeads, k);
        weights.set(t.name, w);
      } else {
        const hf = t.name === 'tok_embeddings' ? 'model.embed_tokens.weight' : t.name === 'norm' ? 'model.norm.weight'
          : `model.layers.${m![1]}.${m![2] === 'attention_norm' ? 'input_layernorm' : 'post_attention_layernorm'}.weight`;
        weights.set(t.name, Float32Array.from(f16(tensors.get(hf)!)));
      }
    }
    const prompt = stories.tokenizer!.encode('Once upon a time');
    const fromFile = LlamaCpu.fromWeights(c, weights, { maxSeqLen: 32 }).generate(prompt, 12);
    const lab = await LlamaCpu.load(stories, {
      maxSeqLen: 32,
      transformWeight: (name, data, shape) => {
        if (shape.length === 1 || name === 'tok_embeddings') return roundToF16(data);
        const { codes, qp } = labInt4(data, shape as [number, number]);
        const s16 = roundToF16(qp.scale);
        return data.map((_, i) => (codes[i] - qp.zero[Math.floor(i / G)]) * s16[Math.floor(i / G)]);
      },
    });
    const fromLab = lab.generate(prompt, 12);
    console.log(`stories15M AutoAWQ g32: model.safetensors ${file.length} bytes, exported in ${ms.toFixed(0)} ms; greedy: ${JSON.stringify(stories.tokenizer!.decode([...prompt, ...fromFile]))}`);
    expect(fromFile).toEqual(fromLab);
  });
});

/** Undoes hfPermute. */
function hfUnpermute(w: Float32Array, heads: number, inDim: number): Float32Array {
  const out = w.length / inDim;
  const hd = out / heads;
  const y = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) for (let a = 0; a < 2; a++) for (let b = 0; b < hd / 2; b++) {
    const inter = h * hd + b * 2 + a;
    const rot = h * hd + a * (hd / 2) + b;
    y.set(w.subarray(rot * inDim, (rot + 1) * inDim), inter * inDim);
  }
  return y;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}
