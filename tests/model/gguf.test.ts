/** GGUF files written by our writer read back exactly (metadata of every type, F32/F16/BF16/Q8_0/Q4_0 tensors), quantized blocks decode per llama.cpp's layout, damaged files fail with clear errors, and stories260K.gguf runs. */
import { describe, expect, test } from 'vitest';
import { bytesByteSource } from '../../src/model/formats/byte-source.ts';
import { nodeFileByteSource } from '../../src/model/formats/byte-source-node.ts';
import { dequantizeGgml, GGML_TYPE, quantizeQ4_0, quantizeQ8_0 } from '../../src/model/formats/ggml-quants.ts';
import { openGguf, readGgufHeader, type GgufValue } from '../../src/model/formats/gguf.ts';
import { encodeGgufBytes, llamaGgufSpec, type GgufWriterTensor } from '../../src/model/formats/gguf-writer.ts';
import { roundToBf16, roundToF16 } from '../../src/model/formats/half.ts';
import { openCheckpoint } from '../../src/model/formats/open-checkpoint.ts';
import { LlamaCpu } from '../../src/model/llama/forward-cpu.ts';
import { CheckpointError } from '../../src/model/llama/model.ts';
import { gaussian } from '../helpers/random.ts';
import { hasStories260K, maxAbsDiff, STORIES260K_GGUF, tinyConfig, tinyWeights } from './tiny-llama.ts';

const allTypesMetadata: [string, GgufValue][] = [
  ['general.alignment', { type: 'uint32', value: 64 }],
  ['t.u8', { type: 'uint8', value: 255 }],
  ['t.i8', { type: 'int8', value: -128 }],
  ['t.u16', { type: 'uint16', value: 65535 }],
  ['t.i16', { type: 'int16', value: -32768 }],
  ['t.u32', { type: 'uint32', value: 4294967295 }],
  ['t.i32', { type: 'int32', value: -2147483648 }],
  ['t.f32', { type: 'float32', value: 1.5 }],
  ['t.bool', { type: 'bool', value: true }],
  ['t.string', { type: 'string', value: 'héllo ▁ wörld 🙂' }],
  ['t.u64', { type: 'uint64', value: 18446744073709551615n }],
  ['t.i64', { type: 'int64', value: -9223372036854775808n }],
  ['t.f64', { type: 'float64', value: Math.PI }],
  ['t.empty', { type: 'string', value: '' }],
  ['a.u8', { type: 'array', itemType: 'uint8', value: new Uint8Array([0, 1, 255]) }],
  ['a.i8', { type: 'array', itemType: 'int8', value: new Int8Array([-1, 2]) }],
  ['a.u16', { type: 'array', itemType: 'uint16', value: new Uint16Array([7, 65535]) }],
  ['a.i16', { type: 'array', itemType: 'int16', value: new Int16Array([-7]) }],
  ['a.u32', { type: 'array', itemType: 'uint32', value: new Uint32Array([1, 2, 3]) }],
  ['a.i32', { type: 'array', itemType: 'int32', value: new Int32Array([-1, 6]) }],
  ['a.f32', { type: 'array', itemType: 'float32', value: new Float32Array([0.25, -1e30]) }],
  ['a.f64', { type: 'array', itemType: 'float64', value: new Float64Array([1e300]) }],
  ['a.u64', { type: 'array', itemType: 'uint64', value: new BigUint64Array([1n, 2n ** 64n - 1n]) }],
  ['a.i64', { type: 'array', itemType: 'int64', value: new BigInt64Array([-5n]) }],
  ['a.bool', { type: 'array', itemType: 'bool', value: [true, false, true] }],
  ['a.string', { type: 'array', itemType: 'string', value: ['<unk>', '▁the', ''] }],
  ['a.empty', { type: 'array', itemType: 'int32', value: new Int32Array(0) }],
  [
    'a.nested',
    {
      type: 'array',
      itemType: 'array',
      value: [
        { type: 'array', itemType: 'string', value: ['x'] },
        { type: 'array', itemType: 'uint8', value: new Uint8Array([9]) },
      ],
    },
  ],
];

describe('GGUF writer and reader', () => {
  test('metadata of every value type reads back exactly', async () => {
    const bytes = encodeGgufBytes({ metadata: allTypesMetadata, tensors: [] });
    const g = await readGgufHeader(bytesByteSource(bytes, 'meta.gguf'));
    expect(g.version).toBe(3);
    expect(g.alignment).toBe(64);
    expect([...g.metadata]).toEqual(allTypesMetadata);
  });

  test('F32, F16, BF16, Q8_0 and Q4_0 tensors read back (exactly, or as the format rounds)', async () => {
    const x = gaussian(64 * 3, 5);
    const tensors: GgufWriterTensor[] = (['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0'] as const).map((type) => ({ name: type, shape: [3, 64], type, data: x }));
    tensors.push({ name: 'vec', shape: [5], type: 'F32', data: new Float32Array([1, 2, 3, 4, 5]) });
    const bytes = encodeGgufBytes({ metadata: [['general.alignment', { type: 'uint32', value: 32 }]], tensors });
    const src = bytesByteSource(bytes, 't.gguf');
    const g = await readGgufHeader(src);
    const info = Object.fromEntries(g.tensors.map((t) => [t.name, t]));
    expect(info.F32.ne).toEqual([64, 3]);
    expect(info.vec.ne).toEqual([5]);
    expect(g.tensors.every((t) => (t.offset - g.dataOffset) % 32 === 0)).toBe(true);
    expect(info.Q8_0.byteLength).toBe(6 * 34);
    expect(info.Q4_0.byteLength).toBe(6 * 18);
    const read = async (n: string) => {
      const t = info[n];
      return dequantizeGgml(t.type, await src.read(t.offset, t.byteLength!), 0, 192);
    };
    expect(await read('F32')).toEqual(x);
    expect(await read('F16')).toEqual(roundToF16(x));
    expect(await read('BF16')).toEqual(roundToBf16(x));
    expect(await read('Q8_0')).toEqual(dequantizeGgml(GGML_TYPE.Q8_0, quantizeQ8_0(x), 0, 192));
    // Q8_0 error is at most half a step (amax/127/2, plus f16 rounding of the scale); Q4_0 at most one step.
    expect(maxAbsDiff(await read('Q8_0'), x)).toBeLessThan((Math.max(...x.map(Math.abs)) / 127) * 0.51);
    expect(maxAbsDiff(await read('Q4_0'), x)).toBeLessThan(Math.max(...x.map(Math.abs)) / 8 + 1e-6);
  });

  test('Q8_0 blocks decode as f16 scale times int8 (bytes written from the spec)', () => {
    const block = new Uint8Array(34);
    block[0] = 0x00; // d = 0.5 as f16: 0x3800, little-endian
    block[1] = 0x38;
    for (let j = 0; j < 32; j++) block[2 + j] = (j - 16) & 0xff; // -16..15 as int8
    block[2 + 31] = 0x80; // -128
    const y = dequantizeGgml(GGML_TYPE.Q8_0, block, 0, 32);
    const want = Array.from({ length: 32 }, (_, j) => (j === 31 ? -128 : j - 16) * 0.5);
    expect(Array.from(y)).toEqual(want);
  });

  test('Q4_0 blocks: low nibbles are elements 0..15, high nibbles 16..31, value (q - 8) * d', () => {
    const block = new Uint8Array(18);
    block[0] = 0x00; // d = -2 as f16: 0xC000
    block[1] = 0xc0;
    for (let j = 0; j < 16; j++) block[2 + j] = j | ((15 - j) << 4);
    const y = dequantizeGgml(GGML_TYPE.Q4_0, block, 0, 32);
    const want = [...Array.from({ length: 16 }, (_, j) => (j - 8) * -2), ...Array.from({ length: 16 }, (_, j) => (15 - j - 8) * -2)];
    expect(Array.from(y)).toEqual(want);
  });

  test('quantizers follow llama.cpp reference rounding', () => {
    // Q4_0: the largest-magnitude value maps to nibble 0 (d = max / -8); 0 maps to 8.
    const x = new Float32Array(32);
    x[0] = -4;
    x[1] = 2;
    x[2] = 0.25; // 0.25 / 0.5 = 0.5 -> trunc(0.5 + 8.5) = 9
    x[20] = 3.9;
    const q = quantizeQ4_0(x);
    expect([q[0], q[1]]).toEqual([0x00, 0x38]); // d = 0.5
    expect(q[2 + 0] & 15).toBe(0);
    expect(q[2 + 1] & 15).toBe(12);
    expect(q[2 + 2] & 15).toBe(9);
    expect(q[2 + 3] & 15).toBe(8);
    expect(q[2 + 4] >> 4).toBe(15); // 3.9 / 0.5 + 8.5 = 16.3 -> clamped to 15
    // Q8_0: roundf rounds half away from zero.
    const z = new Float32Array(32);
    z[0] = 127;
    z[1] = 2.5;
    z[2] = -2.5;
    const q8 = quantizeQ8_0(z);
    expect([q8[0], q8[1]]).toEqual([0x00, 0x3c]); // d = 1
    expect([q8[2], q8[3], q8[4] - 256]).toEqual([127, 3, -3]);
  });
});

describe('damaged GGUF files', () => {
  const cfg = tinyConfig({ dim: 32, headDim: 8, hiddenDim: 64 });
  const w = tinyWeights(cfg, 3);
  const good = encodeGgufBytes(llamaGgufSpec(cfg, (n) => w.get(n)!));

  test('bad magic', async () => {
    const bad = good.slice();
    bad[0] = 0x47;
    bad[3] = 0x00;
    await expect(openGguf(bytesByteSource(bad, 'bad.gguf'))).rejects.toThrow('bad.gguf is not a GGUF file: bad magic 47 47 55 00 (expected 47 47 55 46, "GGUF")');
  });

  test('truncated inside the header and inside the data', async () => {
    await expect(openGguf(bytesByteSource(good.slice(0, 100), 'cut.gguf'))).rejects.toThrow(/^cut\.gguf is truncated: .* needs bytes \d+\.\.\d+ of the header, file has 100$/);
    const cut = good.length - 100;
    await expect(openGguf(bytesByteSource(good.slice(0, cut), 'cut.gguf'))).rejects.toThrow(new RegExp(`^cut\\.gguf is truncated: tensor output\\.weight needs bytes \\d+\\.\\.\\d+, file has ${cut}$`));
  });

  test('corrupt lengths and versions', async () => {
    const v1 = good.slice();
    v1[4] = 1;
    await expect(openGguf(bytesByteSource(v1, 'v1.gguf'))).rejects.toThrow(/GGUF version 1, which is not supported/);
    const huge = good.slice();
    huge[8 + 8 + 8 + 7] = 0x7f; // the first key's string length: 2^62-ish
    await expect(openGguf(bytesByteSource(huge, 'huge.gguf'))).rejects.toThrow(CheckpointError);
  });

  test('an unsupported tensor type is named with its tensor', async () => {
    const spec = llamaGgufSpec(cfg, (n) => w.get(n)!);
    const i = spec.tensors.findIndex((t) => t.name === 'blk.1.attn_v.weight');
    spec.tensors[i] = { name: 'blk.1.attn_v.weight', ne: [256, 4], ggmlType: GGML_TYPE.Q4_K, bytes: new Uint8Array(4 * 144) };
    await expect(openGguf(bytesByteSource(encodeGgufBytes(spec), 'k.gguf'))).rejects.toThrow(
      'k.gguf: tensor blk.1.attn_v.weight has GGUF type Q4_K (12), which is not supported (supported: F32, F16, BF16, Q8_0, Q4_0)',
    );
  });

  test('shapes that disagree with the metadata', async () => {
    const spec = llamaGgufSpec(cfg, (n) => w.get(n)!);
    const i = spec.tensors.findIndex((t) => t.name === 'blk.0.attn_k.weight');
    spec.tensors[i] = { name: 'blk.0.attn_k.weight', shape: [32, 32], type: 'F32', data: new Float32Array(32 * 32) };
    await expect(openGguf(bytesByteSource(encodeGgufBytes(spec), 's.gguf'))).rejects.toThrow(
      's.gguf: tensor blk.0.attn_k.weight (layers.0.wk) has shape [32, 32], but the config (dim 32, hidden 64, 4 heads, 2 kv heads, head dim 8, vocab 48) implies [16, 32]',
    );
  });
});

describe('Llama models in GGUF', () => {
  const cfg = tinyConfig({ dim: 32, headDim: 8, hiddenDim: 64, tiedEmbeddings: true });

  test('F32 GGUF runs exactly like the weights it was written from; Q8_0 and Q4_0 load dequantized', async () => {
    const w = tinyWeights(cfg, 4);
    const ref = LlamaCpu.fromWeights(cfg, w);
    for (const type of ['F32', 'Q8_0', 'Q4_0'] as const) {
      const spec = llamaGgufSpec(cfg, (n) => w.get(n)!, { tensorType: (_, shape) => (shape.length === 2 ? type : 'F32') });
      const ckpt = await openCheckpoint([bytesByteSource(encodeGgufBytes(spec), `tiny-${type}.gguf`)]);
      expect(ckpt.format).toBe('gguf');
      expect(ckpt.config).toEqual(cfg);
      expect(ckpt.tensors.find((t) => t.name === 'layers.0.wq')?.dtype).toBe(type.toLowerCase());
      expect(ckpt.tensors.find((t) => t.name === 'layers.0.wq')?.sourceName).toBe('blk.0.attn_q.weight');
      const m = await LlamaCpu.load(ckpt);
      const wq = await ckpt.loadTensor('layers.1.wq');
      if (type === 'F32') {
        expect(wq).toEqual(w.get('layers.1.wq'));
        for (let p = 0; p < 5; p++) expect(maxAbsDiff(m.forward(p + 3, p), ref.forward(p + 3, p))).toBe(0);
      } else {
        const orig = w.get('layers.1.wq')!;
        expect(wq).toEqual(dequantizeGgml(GGML_TYPE[type], type === 'Q8_0' ? quantizeQ8_0(orig) : quantizeQ4_0(orig), 0, orig.length));
        expect(maxAbsDiff(m.forward(3, 0), ref.forward(3, 0))).toBeGreaterThan(0);
      }
    }
  });

  test('qwen2 GGUF (rotate-half q/k and biases) runs like the interleaved original', async () => {
    const qcfg = tinyConfig({ arch: 'qwen2', ropeLayout: 'rotate-half', ropeTheta: 1e6, normEps: 1e-6 });
    const w = tinyWeights(qcfg, 6, { biases: true });
    const ckpt = await openGguf(bytesByteSource(encodeGgufBytes(llamaGgufSpec(qcfg, (n) => w.get(n)!)), 'qwen.gguf'));
    expect(ckpt.config).toEqual(qcfg);
    expect(ckpt.tensors.map((t) => t.name)).toContain('layers.1.bk');
    expect(await ckpt.loadTensor('layers.1.bq')).toEqual(w.get('layers.1.bq'));
    expect(await ckpt.loadTensor('layers.1.wk')).toEqual(w.get('layers.1.wk'));
    const m = await LlamaCpu.load(ckpt);
    const ref = LlamaCpu.fromWeights(qcfg, w);
    for (let p = 0; p < 6; p++) expect(maxAbsDiff(m.forward(p * 7, p), ref.forward(p * 7, p))).toBe(0);
  });

  test.skipIf(!hasStories260K)('stories260K.gguf (GQA, dims not multiples of 32) tells the known story', async () => {
    const ckpt = await openCheckpoint([await nodeFileByteSource(STORIES260K_GGUF)]);
    expect(ckpt.config).toMatchObject({ dim: 64, nLayers: 5, nHeads: 8, nKvHeads: 4, hiddenDim: 172, vocabSize: 512, headDim: 8, tiedEmbeddings: false });
    expect(ckpt.tensors.find((t) => t.name === 'layers.0.wk')?.shape).toEqual([32, 64]);
    const tok = ckpt.tokenizer!;
    const prompt = tok.encode('Once upon a time');
    expect(tok.decode(prompt)).toBe('Once upon a time');
    const model = await LlamaCpu.load(ckpt);
    const out = model.generate(prompt, 40);
    const text = tok.decode([...prompt, ...out]);
    console.log(`stories260K, greedy, 40 tokens: ${JSON.stringify(text)}`);
    expect(text.startsWith('Once upon a time, there was a little girl named Lily. She loved to play outside in the park.')).toBe(true);
  });
});
