/** A TinyChat v2 export holds, per an unpacker written here by replaying llm-awq's pack_intweight (reshape / transpose on index arrays), exactly the lab's INT4 codes in int16 [N/4, K], and scales and scaled_zeros (= -scale * zero) transposed and padded as calculate_zeros_width says; layers that cannot be packed are refused by name. */
import { describe, expect, test } from 'vitest';
import { exportTinyChat, tinyChatScaleRows } from '../../src/export/llm-tinychat.ts';
import { LlmExportError } from '../../src/export/llm-int4.ts';
import { expectedTensors, type LlamaConfig } from '../../src/model/llama/model.ts';
import { makeGroupLayout } from '../../src/quant/layout.ts';
import { groupStatsRef } from '../../src/quant/reference/stats.ts';
import { qparamsRef, quantizeRef, type QParams } from '../../src/quant/reference/quantize.ts';
import { randomLlama } from '../helpers/random-llama.ts';

const cfg: LlamaConfig = {
  dim: 64, hiddenDim: 128, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 40, seqLen: 32, normEps: 1e-5, ropeTheta: 10000,
  headDim: 16, tiedEmbeddings: true, arch: 'llama', ropeLayout: 'interleaved',
};

// ---- numpy's reshape/transpose on flat C-order arrays, to replay pack_intweight literally ----

function transpose(data: number[], shape: number[], perm: number[]): number[] {
  const out = new Array<number>(data.length);
  const newShape = perm.map((p) => shape[p]);
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const idx = new Array<number>(newShape.length).fill(0);
  for (let o = 0; o < data.length; o++) {
    let src = 0;
    for (let d = 0; d < idx.length; d++) src += idx[d] * strides[perm[d]];
    out[o] = data[src];
    for (let d = idx.length - 1; d >= 0; d--) {
      if (++idx[d] < newShape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

/** llm-awq pack_intweight up to the packing: returns, for every (row of N/4, 64-run e, nibble f), the flat [N, K] index it holds. */
function packOrder(n: number, k: number): number[] {
  let a = Array.from({ length: n * k }, (_, i) => i);
  a = transpose(a, [n, k / 32, 4, 4, 2], [0, 1, 3, 2, 4]); // [0, 1, 8, 9, 16, 17, 24, 25, ...]
  a = transpose(a, [n, k / 32, 4, 4, 2], [0, 1, 2, 4, 3]); // each 8 -> [0, 2, 4, 6, 1, 3, 5, 7]
  a = transpose(a, [n / 4, 4, k / 64, 64], [0, 2, 1, 3]); // then reshaped (N/4, K/64, 64, 4): four nibbles per int16
  return a;
}

interface StTensor { dtype: string; shape: number[]; bytes: Uint8Array }

function readSafetensors(file: Uint8Array): Map<string, StTensor> {
  const n = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + n))) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, StTensor>();
  for (const [name, e] of Object.entries(header)) if (name !== '__metadata__') out.set(name, { dtype: e.dtype, shape: e.shape, bytes: file.slice(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]) });
  return out;
}

const halfToFloat = (h: number) => {
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  const v = e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15);
  return h & 0x8000 ? -v : v;
};
const f16 = (t: StTensor) => Array.from({ length: t.bytes.length / 2 }, (_, i) => halfToFloat(new DataView(t.bytes.buffer).getUint16(2 * i, true)));
const u16 = (t: StTensor) => Array.from({ length: t.bytes.length / 2 }, (_, i) => new DataView(t.bytes.buffer).getUint16(2 * i, true));

/** transformers' permute of q/k rows: view(heads, hd/2, 2, in).transpose(1, 2). */
function hfPermute(w: Float32Array, heads: number, inDim: number): Float32Array {
  const rows = w.length / inDim;
  const order = transpose(Array.from({ length: rows }, (_, i) => i), [heads, rows / heads / 2, 2], [0, 2, 1]);
  const y = new Float32Array(w.length);
  order.forEach((src, dst) => y.set(w.subarray(src * inDim, (src + 1) * inDim), dst * inDim));
  return y;
}

function labInt4(w: Float32Array, shape: [number, number], g: number): { codes: Uint8Array; qp: QParams } {
  const qc = { bits: 4, granularity: 'group' as const, groupSize: g, scheme: 'asym' as const };
  const layout = makeGroupLayout(shape, 'group', g);
  const qp = qparamsRef(groupStatsRef(w, layout), qc);
  return { codes: quantizeRef(w, layout, qp, qc) as Uint8Array, qp };
}

const concat = (chunks: Uint8Array[]) => {
  const out = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let o = 0;
  for (const c of chunks) (out.set(c, o), (o += c.length));
  return out;
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

describe('TinyChat v2 export', () => {
  const model = randomLlama(cfg, 31);

  test('scale rows follow calculate_zeros_width', () => {
    expect(tinyChatScaleRows(4096, 128)).toBe(32);
    expect(tinyChatScaleRows(11008, 128)).toBe(88);
    expect(tinyChatScaleRows(64, 32)).toBe(32);
    expect(tinyChatScaleRows(128, 64)).toBe(16);
    expect(tinyChatScaleRows(4096, 64)).toBe(64);
  });

  for (const g of [32, 64]) {
    test(`group ${g}: qweight unpacks to the lab's codes, scales and scaled_zeros are the lab's, transposed and zero-padded`, async () => {
      const { files } = await exportTinyChat(model.checkpoint(), { groupSize: g });
      expect(files.map((f) => f.name)).toEqual(['config.json', `model-w4-g${g}-awq-v2.safetensors`]);
      const tensors = readSafetensors(concat(files[1].chunks));
      for (let l = 0; l < cfg.nLayers; l++) {
        for (const [short, hf] of Object.entries(hfLinear)) {
          const name = `layers.${l}.${short}`;
          const shape = expectedTensors(cfg).find((e) => e.name === name)!.shape as [number, number];
          const [n, k] = shape;
          let w = model.weights.get(name)!;
          if (short === 'wq') w = hfPermute(w, cfg.nHeads, k);
          if (short === 'wk') w = hfPermute(w, cfg.nKvHeads, k);
          const lab = labInt4(w, shape, g);
          const p = `model.layers.${l}.${hf}`;
          const qw = tensors.get(`${p}.qweight`)!;
          const rows = tinyChatScaleRows(k, g);
          expect([qw.dtype, qw.shape]).toEqual(['I16', [n / 4, k]]);
          expect([tensors.get(`${p}.scales`)!.shape, tensors.get(`${p}.scaled_zeros`)!.shape]).toEqual([[rows, n], [rows, n]]);
          const words = u16(qw);
          const order = packOrder(n, k);
          const unpacked = new Array<number>(n * k).fill(-1);
          for (let i = 0; i < n * k; i++) unpacked[order[i]] = (words[Math.floor(i / 4)] >> (4 * (i % 4))) & 0xf;
          expect(unpacked).toEqual(Array.from(lab.codes));
          const s = f16(tensors.get(`${p}.scales`)!);
          const sz = f16(tensors.get(`${p}.scaled_zeros`)!);
          const kg = k / g;
          let mism = 0;
          for (let r = 0; r < rows; r++) {
            for (let o = 0; o < n; o++) {
              if (r >= kg) {
                if (s[r * n + o] !== 0 || sz[r * n + o] !== 0) mism++;
                continue;
              }
              const ls = lab.qp.scale[o * kg + r];
              const z = lab.qp.zero[o * kg + r];
              if (Math.abs(s[r * n + o] - ls) > ls * 2 ** -11) mism++;
              // scaled_zeros = -(fp16 scale * zero), rounded to fp16
              if (Math.abs(sz[r * n + o] + s[r * n + o] * z) > Math.abs(s[r * n + o] * z) * 2 ** -11) mism++;
              // what the kernel computes, q * s + scaled_zero, is the lab's (q - z) * s
            }
          }
          expect(mism, name).toBe(0);
        }
      }
      expect(tensors.has('lm_head.weight')).toBe(false); // tied
      expect(tensors.get('model.embed_tokens.weight')!.dtype).toBe('F16');
    });
  }

  test('layers that cannot be packed are refused, each by name', async () => {
    const odd = randomLlama({ ...cfg, dim: 96, nHeads: 6, nKvHeads: 2 }, 2);
    const e = await refused(exportTinyChat(odd.checkpoint(), { groupSize: 32 }));
    expect(e).toBeInstanceOf(LlmExportError);
    expect(e.problems).toContain('layers.0.wq (model.layers.0.self_attn.q_proj, [96, 96]): K = 96 input channels is not a multiple of 64 (TinyChat\'s kstride)');
    expect(e.problems.filter((p) => p.startsWith('layers.1.'))).toHaveLength(6); // all but down_proj (K = 128)
    const g16 = await refused(exportTinyChat(model.checkpoint(), { groupSize: 16 }));
    expect(g16.problems[0]).toBe('layers.0.wq (model.layers.0.self_attn.q_proj, [64, 64]): group size 16 is not one TinyChat supports (32, 64, or 128 and more)');
  });
});
