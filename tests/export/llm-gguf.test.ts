/** A GGUF Q8_0 / Q4_0 export holds, per a header and block parser written here from the GGUF spec, llama.cpp's block scales and integers (Q8_0's equal to the lab's symmetric INT8 per-32 codes), reads back through the lab's GGUF loader, and stories15M exported as Q8_0 tells the same greedy story as its fake-quantized weights; tensors that cannot hold blocks of 32 are refused by name. */
import { beforeAll, describe, expect, test } from 'vitest';
import { exportGguf } from '../../src/export/llm-gguf.ts';
import { LlmExportError } from '../../src/export/llm-int4.ts';
import { bytesByteSource } from '../../src/model/formats/byte-source.ts';
import { nodeFileByteSource } from '../../src/model/formats/byte-source-node.ts';
import { dequantizeQ8_0, quantizeQ8_0 } from '../../src/model/formats/ggml-quants.ts';
import { openGguf } from '../../src/model/formats/gguf.ts';
import { BUNDLED_STORIES15M_PATH, openBundledStories15M } from '../../src/model/formats/llama2c.ts';
import { LlamaCpu } from '../../src/model/llama/forward-cpu.ts';
import type { LlamaCheckpoint, LlamaConfig } from '../../src/model/llama/model.ts';
import { makeGroupLayout } from '../../src/quant/layout.ts';
import { groupStatsRef } from '../../src/quant/reference/stats.ts';
import { qparamsRef, quantizeRef } from '../../src/quant/reference/quantize.ts';
import { randomLlama } from '../helpers/random-llama.ts';

const cfg: LlamaConfig = {
  dim: 64, hiddenDim: 96, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 40, seqLen: 32, normEps: 1e-5, ropeTheta: 10000,
  headDim: 16, tiedEmbeddings: false, arch: 'llama', ropeLayout: 'interleaved',
};

// ---- a minimal GGUF parser from ggml/docs/gguf.md: header, metadata (skipped by type), tensor infos ----

interface Info { name: string; ne: number[]; type: number; offset: number }

function parseGguf(b: Uint8Array): { version: number; meta: Map<string, unknown>; infos: Info[]; dataStart: number } {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let p = 0;
  const u32 = () => ((p += 4), dv.getUint32(p - 4, true));
  const u64 = () => ((p += 8), Number(dv.getBigUint64(p - 8, true)));
  const str = () => {
    const n = u64();
    p += n;
    return new TextDecoder().decode(b.subarray(p - n, p));
  };
  const sizes: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
  const value = (t: number): unknown => {
    if (t === 8) return str();
    if (t === 9) {
      const it = u32();
      const n = u64();
      const out: unknown[] = [];
      for (let i = 0; i < n; i++) out.push(value(it));
      return out;
    }
    const at = p;
    p += sizes[t];
    return t === 4 ? dv.getUint32(at, true) : t === 6 ? dv.getFloat32(at, true) : t === 5 ? dv.getInt32(at, true) : t === 7 ? b[at] === 1 : undefined;
  };
  expect(new TextDecoder().decode(b.subarray(0, 4))).toBe('GGUF');
  p = 4;
  const version = u32();
  const nT = u64();
  const nKv = u64();
  const meta = new Map<string, unknown>();
  for (let i = 0; i < nKv; i++) {
    const k = str();
    meta.set(k, value(u32()));
  }
  const infos: Info[] = [];
  for (let i = 0; i < nT; i++) {
    const name = str();
    const nd = u32();
    const ne = Array.from({ length: nd }, u64);
    infos.push({ name, ne, type: u32(), offset: u64() });
  }
  const align = (meta.get('general.alignment') as number | undefined) ?? 32;
  return { version, meta, infos, dataStart: Math.ceil(p / align) * align };
}

const halfToFloat = (h: number) => {
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  const v = e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15);
  return h & 0x8000 ? -v : v;
};

/** Q8_0 and Q4_0 blocks as the spec lays them out: fp16 d, then 32 int8 / 16 bytes of nibbles (j low, j + 16 high). */
function readBlocks(b: Uint8Array, at: number, count: number, type: 'Q8_0' | 'Q4_0'): { d: number[]; q: number[] } {
  const d: number[] = [];
  const q: number[] = [];
  const bytes = type === 'Q8_0' ? 34 : 18;
  for (let blk = 0; blk < count / 32; blk++) {
    const o = at + blk * bytes;
    d.push(halfToFloat(b[o] | (b[o + 1] << 8)));
    if (type === 'Q8_0') for (let j = 0; j < 32; j++) q.push((b[o + 2 + j] << 24) >> 24);
    else {
      const lo: number[] = [];
      const hi: number[] = [];
      for (let j = 0; j < 16; j++) {
        lo.push(b[o + 2 + j] & 0xf);
        hi.push(b[o + 2 + j] >> 4);
      }
      q.push(...lo, ...hi);
    }
  }
  return { d, q };
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

const ggufName = (canonical: string) => {
  const m = /^layers\.(\d+)\.(\w+)$/.exec(canonical)!;
  const local: Record<string, string> = { wq: 'attn_q', wk: 'attn_k', wv: 'attn_v', wo: 'attn_output', w1: 'ffn_gate', w2: 'ffn_down', w3: 'ffn_up' };
  return `blk.${m[1]}.${local[m[2]]}.weight`;
};

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

describe('GGUF export', () => {
  const model = randomLlama(cfg, 21);

  test('Q8_0: every linear\'s blocks hold d = amax/127 and the lab\'s symmetric INT8 codes of each run of 32', async () => {
    const out = await exportGguf(model.checkpoint(), { type: 'Q8_0' });
    const file = concat(out.chunks);
    expect(file.length).toBe(out.bytes);
    const g = parseGguf(file);
    expect(g.version).toBe(3);
    expect(g.meta.get('general.architecture')).toBe('llama');
    expect(g.meta.get('general.file_type')).toBe(7);
    expect(g.meta.get('general.quantization_version')).toBe(2);
    const byName = new Map(g.infos.map((i) => [i.name, i]));
    expect(byName.get('token_embd.weight')!.type).toBe(8);
    expect(byName.get('output.weight')!.type).toBe(8);
    expect(byName.get('blk.0.attn_norm.weight')!.type).toBe(0);
    const qc = { bits: 8, granularity: 'group' as const, groupSize: 32, scheme: 'sym' as const };
    let ties = 0;
    for (let l = 0; l < 2; l++) {
      for (const s of ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3']) {
        const name = `layers.${l}.${s}`;
        const w = model.weights.get(name)!;
        const info = byName.get(ggufName(name))!;
        expect(info.type).toBe(8);
        const shape = [info.ne[1], info.ne[0]];
        expect(shape[0] * shape[1]).toBe(w.length);
        const { d, q } = readBlocks(file, g.dataStart + info.offset, w.length, 'Q8_0');
        const layout = makeGroupLayout(shape, 'group', 32);
        const qp = qparamsRef(groupStatsRef(w, layout), qc);
        const lab = quantizeRef(w, layout, qp, qc);
        // equal to the lab's codes except at exact f32 ties x/s = n + 0.5, which llama.cpp's roundf takes away from zero (the lab: to even)
        for (let i = 0; i < w.length; i++) {
          const y = Math.fround(w[i] * qp.invScale[Math.floor(i / 32)]);
          const tie = Math.abs(y - Math.trunc(y)) === 0.5;
          if (tie) ties++;
          expect(q[i], `${name}[${i}]`).toBe(tie ? Math.sign(y) * Math.floor(Math.abs(y) + 0.5) : lab[i]);
        }
        // the scale is the lab's amax/127, stored as fp16
        let worst = 0;
        for (let i = 0; i < d.length; i++) worst = Math.max(worst, Math.abs(d[i] - qp.scale[i]) / qp.scale[i]);
        expect(worst).toBeLessThan(2 ** -11);
      }
    }
    expect(ties).toBeLessThan(10); // seed 21 has one, in layers.0.w3
  });

  test('Q4_0: nibbles and scales are llama.cpp\'s (d = m / -8 for the value m of largest magnitude), and the loader reads the file back', async () => {
    const out = await exportGguf(model.checkpoint(), { type: 'Q4_0' });
    const file = concat(out.chunks);
    const g = parseGguf(file);
    expect(g.meta.get('general.file_type')).toBe(2);
    const info = g.infos.find((i) => i.name === 'blk.1.ffn_down.weight')!;
    expect(info.type).toBe(2);
    const w = model.weights.get('layers.1.w2')!;
    const { d, q } = readBlocks(file, g.dataStart + info.offset, w.length, 'Q4_0');
    for (let blk = 0; blk < w.length / 32; blk++) {
      const run = Array.from(w.subarray(blk * 32, blk * 32 + 32));
      const m = run.reduce((a, v) => (Math.abs(v) > Math.abs(a) ? v : a), 0);
      const dd = Math.fround(m / -8);
      expect(Math.abs(d[blk] - dd) / Math.abs(dd)).toBeLessThanOrEqual(2 ** -11); // fp16 storage
      const id = dd ? Math.fround(1 / dd) : 0;
      for (let j = 0; j < 32; j++) expect(q[blk * 32 + j]).toBe(Math.min(15, Math.trunc(Math.fround(Math.fround(run[j] * id) + 8.5))));
    }
    expect(g.infos.find((i) => i.name === 'output.weight')!.type).toBe(8); // classifier kept at Q8_0
    const ckpt = await openGguf(bytesByteSource(file, 'tiny-q4_0.gguf'));
    expect(ckpt.config).toEqual(cfg);
    const back = await ckpt.loadTensor('layers.1.w2');
    for (let i = 0; i < 64; i++) expect(back[i]).toBe((q[i] - 8) * d[Math.floor(i / 32)]);
    // q rows come back in the lab's interleaved order
    const wq = await ckpt.loadTensor('layers.0.wq');
    const orig = model.weights.get('layers.0.wq')!;
    let err = 0;
    for (let i = 0; i < orig.length; i++) err = Math.max(err, Math.abs(wq[i] - orig[i]));
    expect(err).toBeLessThan(0.25);
  });

  test('tensors whose rows are not a multiple of 32 are refused by name, or stored as F16 when asked', async () => {
    const odd = randomLlama({ ...cfg, hiddenDim: 80 }, 4);
    const e = await refused(exportGguf(odd.checkpoint(), { type: 'Q8_0' }));
    expect(e).toBeInstanceOf(LlmExportError);
    expect(e.problems).toEqual([
      "layers.0.w2 ([64, 80]): rows of 80 values are not a multiple of 32, which Q8_0 needs (export it as F16 with incompatible: 'F16')",
      "layers.1.w2 ([64, 80]): rows of 80 values are not a multiple of 32, which Q8_0 needs (export it as F16 with incompatible: 'F16')",
    ]);
    const ok = await exportGguf(odd.checkpoint(), { type: 'Q8_0', incompatible: 'F16' });
    expect(ok.types.get('layers.0.w2')).toBe('F16');
    expect(ok.types.get('layers.0.w1')).toBe('Q8_0');
    const ckpt = await openGguf(bytesByteSource(concat(ok.chunks), 'odd.gguf'));
    expect(ckpt.tensors.find((t) => t.name === 'layers.0.w2')!.dtype).toBe('f16');
    const e2 = await refused(exportGguf(odd.checkpoint(), { type: 'Q8_0', incompatible: 'F16', replaced: new Map([['layers.9.wq', new Float32Array(1)]]) }));
    expect(e2.problems).toEqual(['layers.9.wq: a replacement tensor was given for it, but the model has no such tensor']);
  });
});

describe('stories15M as GGUF Q8_0', () => {
  let stories: LlamaCheckpoint;
  beforeAll(async () => {
    stories = await openBundledStories15M(await nodeFileByteSource(BUNDLED_STORIES15M_PATH));
  });

  test('loads back into the lab with its vocabulary and tells the fake-quantized model\'s greedy story', async () => {
    const t0 = performance.now();
    const out = await exportGguf(stories, { type: 'Q8_0' });
    const exportMs = performance.now() - t0;
    const file = concat(out.chunks);
    const ckpt = await openGguf(bytesByteSource(file, 'stories15M-q8_0.gguf'));
    expect(ckpt.config).toEqual(stories.config);
    expect(ckpt.tensors.map((t) => t.dtype)).toEqual(stories.tensors.map((t) => (/norm$/.test(t.name) ? 'f32' : 'q8_0')));
    const tok = ckpt.tokenizer!;
    expect(tok.vocabSize).toBe(32000);
    const prompt = tok.encode('Once upon a time');
    expect(prompt).toEqual(stories.tokenizer!.encode('Once upon a time'));
    for (const id of [0, 1, 2, 3, 13, 259, 9038, 31999]) expect(tok.piece(id)).toBe(stories.tokenizer!.piece(id));

    const steps = 12;
    const fromFile = (await LlamaCpu.load(ckpt, { maxSeqLen: 32 })).generate(prompt, steps);
    const fake = await LlamaCpu.load(stories, {
      maxSeqLen: 32,
      transformWeight: (name, data) => (/norm$/.test(name) ? data : dequantizeQ8_0(quantizeQ8_0(data), 0, data.length)),
    });
    const fromFake = fake.generate(prompt, steps);
    console.log(`stories15M Q8_0 GGUF: ${file.length} bytes (llama2.c fp32 ${stories.sizeBytes}), exported in ${exportMs.toFixed(0)} ms; greedy from the file: ${JSON.stringify(tok.decode([...prompt, ...fromFile]))}`);
    expect(fromFile).toHaveLength(steps);
    expect(fromFile).toEqual(fromFake);
  });
});
