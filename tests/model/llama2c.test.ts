/** llama2.c checkpoints in both float32 layouts (legacy run.c and export version 1 "ak42") load the same tensors, with GQA and unshared classifiers, and bad tokenizer files are reported precisely. */
import { describe, expect, test } from 'vitest';
import { bytesByteSource } from '../../src/model/formats/byte-source.ts';
import { encodeF32 } from '../../src/model/formats/half.ts';
import { encodeLlama2c, encodeLlama2cTokenizer, openLlama2c, parseLlama2cTokenizer } from '../../src/model/formats/llama2c.ts';
import type { LlamaConfig } from '../../src/model/llama/model.ts';
import { concat, tinyConfig, tinyWeights } from './tiny-llama.ts';

/** export.py version1_export, written from its description: 256-byte header, norms first, then embeddings and the linears. */
function encodeVersion1(cfg: LlamaConfig, w: Map<string, Float32Array>): Uint8Array {
  const header = new Uint8Array(256);
  const dv = new DataView(header.buffer);
  dv.setUint32(0, 0x616b3432, true);
  dv.setInt32(4, 1, true);
  [cfg.dim, cfg.hiddenDim, cfg.nLayers, cfg.nHeads, cfg.nKvHeads, cfg.vocabSize, cfg.seqLen].forEach((v, i) => dv.setInt32(8 + 4 * i, v, true));
  header[36] = cfg.tiedEmbeddings ? 1 : 0;
  const layers = (t: string) => Array.from({ length: cfg.nLayers }, (_, l) => w.get(`layers.${l}.${t}`)!);
  const order = [...layers('attention_norm'), ...layers('ffn_norm'), w.get('norm')!, w.get('tok_embeddings')!];
  for (const t of ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3']) order.push(...layers(t));
  if (!cfg.tiedEmbeddings) order.push(w.get('output')!);
  return concat([header, ...order.map(encodeF32)]);
}

describe('llama2.c checkpoint layouts', () => {
  for (const tied of [true, false]) {
    test(`legacy and version 1 files give the same tensors (GQA, ${tied ? 'shared' : 'unshared'} classifier)`, async () => {
      const cfg = tinyConfig({ tiedEmbeddings: tied });
      const w = tinyWeights(cfg, 31);
      const legacy = concat(encodeLlama2c(cfg, (n) => w.get(n)!));
      const header = new Int32Array(legacy.slice(0, 28).buffer);
      expect(header[5]).toBe(tied ? 48 : -48); // negative vocab_size: unshared classifier
      const a = await openLlama2c(bytesByteSource(legacy, 'legacy.bin'));
      const b = await openLlama2c(bytesByteSource(encodeVersion1(cfg, w), 'v1.bin'));
      expect(a.config).toEqual(cfg);
      expect(b.config).toEqual(cfg);
      expect(a.tensors.map((t) => t.name)).toEqual(b.tensors.map((t) => t.name));
      for (const t of a.tensors) {
        expect(await a.loadTensor(t.name)).toEqual(w.get(t.name));
        expect(await b.loadTensor(t.name)).toEqual(w.get(t.name));
      }
    });
  }

  test('export version 2 (int8) is refused by name', async () => {
    const v2 = encodeVersion1(tinyConfig(), tinyWeights(tinyConfig(), 32));
    new DataView(v2.buffer).setInt32(4, 2, true);
    await expect(openLlama2c(bytesByteSource(v2, 'q80.bin'))).rejects.toThrow(/q80\.bin: llama2\.c export version 2 is not supported/);
  });

  test('a config whose heads do not divide is refused', async () => {
    const bad = new Int32Array([16, 40, 2, 4, 3, 48, 32]);
    await expect(openLlama2c(bytesByteSource(new Uint8Array(bad.buffer), 'gqa.bin'))).rejects.toThrow(
      'gqa.bin: 4 attention heads cannot be shared by 3 key/value heads (must divide evenly)',
    );
  });
});

describe('tokenizer.bin', () => {
  const pieces = ['<unk>', '<s>', '</s>', ' ', 'a', 'b', ' a', 'ab', ' ab'].map((p) => new TextEncoder().encode(p));
  const scores = new Float32Array([0, 0, 0, -1e9, -1, -2, -3, -4, -5]);
  const file = encodeLlama2cTokenizer(pieces, scores);

  test('parses and encodes by score', () => {
    const t = parseLlama2cTokenizer(file, 9, 'tokenizer.bin');
    expect(t.maxTokenLength).toBe(5); // '<unk>'
    expect(t.bytesUsed).toBe(file.length);
    expect(t.tokenizer.encode('ab ab')).toEqual([1, 8, 8]);
  });

  test('truncated or mismatched files are reported with the token and bytes', () => {
    expect(() => parseLlama2cTokenizer(file.slice(0, file.length - 1), 9, 'tokenizer.bin')).toThrow(
      `tokenizer.bin is truncated: token 8 needs bytes ${file.length - 3}..${file.length}, file has ${file.length - 1}`,
    );
    expect(() => parseLlama2cTokenizer(file, 10, 'tokenizer.bin')).toThrow(`tokenizer.bin is truncated: token 9 needs bytes ${file.length}..${file.length + 8} for its score and length, file has ${file.length}`);
  });

  test('a tokenizer.bin given with the model is checked against its vocabulary size', async () => {
    const cfg = tinyConfig();
    const w = tinyWeights(cfg, 33);
    const model = bytesByteSource(concat(encodeLlama2c(cfg, (n) => w.get(n)!)), 'tiny.bin');
    await expect(openLlama2c(model, bytesByteSource(file, 'tokenizer.bin'))).rejects.toThrow(/tokenizer\.bin is truncated: token 9 needs/);
  });
});
