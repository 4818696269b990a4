/** The Llama BPE tokenizer encodes like llama2.c run.c (known ids, byte fallback, best-score merges) and decodes back to the exact text, from tokenizer.bin, GGUF metadata or a SentencePiece tokenizer.model. */
import { beforeAll, describe, expect, test } from 'vitest';
import { nodeFileByteSource } from '../../src/model/formats/byte-source-node.ts';
import { bytesByteSource } from '../../src/model/formats/byte-source.ts';
import { openGguf } from '../../src/model/formats/gguf.ts';
import { encodeGgufBytes, llamaGgufSpec } from '../../src/model/formats/gguf-writer.ts';
import { parseLlama2cTokenizer } from '../../src/model/formats/llama2c.ts';
import { sentencePieceTokenizer } from '../../src/model/formats/sentencepiece-model.ts';
import { Tokenizer } from '../../src/model/llama/tokenizer.ts';
import { rng } from '../helpers/random.ts';
import { concat, hasStories260K, STORIES15M_DATA, STORIES260K_GGUF, tinyConfig, tinyWeights } from './tiny-llama.ts';

/** stories15M.bin's length inside llama2.data; its tokenizer.bin follows. */
const TOKENIZER_OFFSET = 60_816_028;

let tok: Tokenizer;

beforeAll(async () => {
  const data = await nodeFileByteSource(STORIES15M_DATA);
  tok = parseLlama2cTokenizer(await data.read(TOKENIZER_OFFSET, data.size - TOKENIZER_OFFSET), 32000, 'tokenizer.bin').tokenizer;
});

const samples = [
  'Once upon a time',
  'The quick brown fox jumps over the lazy dog. 1234567890 !?',
  'naïve café, Übergrößenträger',
  '你好，世界 こんにちは 🙂🚀 ∑∫≠',
  '  leading spaces',
  'trailing space ',
  'double  space\nnew line\r\nwindows\ttab\t\tend',
  '\n',
  ' ',
  '\u0000\u0001 control bytes \u007f',
];

describe('llama2.c tokenizer (stories15M)', () => {
  test('known ids from llama2.c', () => {
    expect(tok.vocabSize).toBe(32000);
    expect(tok.encode('Once upon a time')).toEqual([1, 9038, 2501, 263, 931]);
    expect(tok.encode('Once upon a time', { bos: false, eos: true })).toEqual([9038, 2501, 263, 931, 2]);
    expect(tok.encode('')).toEqual([1]);
    // Newline has no piece of its own: byte fallback <0x0A> = 10 + 3.
    expect(tok.encode('a\nb', { bos: false })).toEqual([263, 13, 29890]);
  });

  test.each(samples)('round trip %j', (text) => {
    const ids = tok.encode(text);
    expect(ids[0]).toBe(1);
    expect(tok.decode(ids)).toBe(text);
    expect(tok.decode(tok.encode(text, { bos: false }))).toBe(text);
  });

  test('characters missing from the vocabulary fall back to byte tokens 3..258', () => {
    const ids = tok.encode('🙂', { bos: false });
    const bytes = Array.from(new TextEncoder().encode('🙂'));
    expect(ids).toEqual([29871, ...bytes.map((b) => b + 3)]);
    expect(ids.slice(1).map((i) => tok.piece(i))).toEqual(['<0xF0>', '<0x9F>', '<0x99>', '<0x82>']);
  });

  test('this tokenizer.bin stores byte tokens as raw characters; they still decode to single bytes', () => {
    // Old llama2.c exports wrote <0xFC> as the character U+00FC in UTF-8; decoding must give the byte 0xFC.
    expect(Array.from(tok.decodePiece(0, 0xfc + 3))).toEqual([0xfc]);
    expect(tok.toData().pieces[0xfc + 3]).toEqual(new TextEncoder().encode('\u00fc'));
    expect(tok.decode([1, 0xe4 + 3, 0xbd + 3, 0xa0 + 3])).toBe('你');
  });

  test('decode drops the dummy-prefix space after BOS only; control tokens vanish', () => {
    expect(tok.decode([1, 9038, 2501])).toBe('Once upon');
    expect(tok.decode([2501], 9038)).toBe(' upon');
    // A new sequence after BOS starts without its dummy space, as run.c prints it.
    expect(tok.decode([9038, 2, 1, 2501])).toBe('Onceupon');
  });

  test('merges agree with run.c quadratic loop on random text', () => {
    const r = rng(7);
    const encode = runcEncoder(tok);
    const alphabet = 'abcdefghijklmnopqrstuvwxyz      .,!éü\n';
    for (let trial = 0; trial < 30; trial++) {
      const text = Array.from({ length: 5 + Math.floor(r() * 60) }, () => alphabet[Math.floor(r() * alphabet.length)]).join('');
      expect(tok.encode(text, { bos: false })).toEqual(encode(text));
    }
  });
});

/** llama2.c run.c bpe_encode, quadratic, written directly against the vocabulary (the spec for the heap version). */
function runcEncoder(t: Tokenizer): (text: string) => number[] {
  const data = t.toData();
  const key = (b: Uint8Array) => Array.from(b, (x) => String.fromCharCode(x)).join('');
  const lookup = new Map<string, number>();
  data.pieces.forEach((p, id) => {
    if (data.types[id] === 1 && !lookup.has(key(p))) lookup.set(key(p), id);
  });
  return (text) => {
    const toks: number[] = [lookup.get(' ')!];
    for (const ch of text) {
      const b = new TextEncoder().encode(ch);
      const id = lookup.get(key(b));
      if (id !== undefined) toks.push(id);
      else for (const x of b) toks.push(x + 3);
    }
    for (;;) {
      let best = -1e10;
      let bestId = -1;
      let bestIdx = -1;
      for (let i = 0; i + 1 < toks.length; i++) {
        const id = lookup.get(key(data.pieces[toks[i]]) + key(data.pieces[toks[i + 1]]));
        if (id !== undefined && data.scores[id] > best) {
          best = data.scores[id];
          bestId = id;
          bestIdx = i;
        }
      }
      if (bestIdx < 0) break;
      toks.splice(bestIdx, 2, bestId);
    }
    return toks;
  };
}

describe('other tokenizer sources', () => {
  test.skipIf(!hasStories260K)('stories260K.gguf tokenizer (512 tokens, <0xHH> byte pieces, ▁ for spaces)', async () => {
    const ckpt = await openGguf(await nodeFileByteSource(STORIES260K_GGUF));
    const t = ckpt.tokenizer!;
    expect(t.vocabSize).toBe(512);
    expect(t.encode('Once upon a time').map((i) => t.piece(i))).toEqual(['<s>', ' Once', ' upon', ' a', ' time']);
    for (const s of samples) expect(t.decode(t.encode(s))).toBe(s);
  });

  test('a tokenizer exported to GGUF metadata encodes the same', async () => {
    const cfg = tinyConfig({ vocabSize: 32000, tiedEmbeddings: true, nLayers: 1 });
    const w = tinyWeights(cfg, 1);
    const spec = llamaGgufSpec(cfg, (n) => w.get(n)!, { tokenizer: tok });
    const ckpt = await openGguf(bytesByteSource(encodeGgufBytes(spec), 'tok.gguf'));
    const t = ckpt.tokenizer!;
    expect(t.piece(13)).toBe('<0x0A>');
    for (const s of samples) expect(t.encode(s)).toEqual(tok.encode(s));
  });

  test('SentencePiece tokenizer.model (protobuf) with byte fallback', () => {
    const pieces: [string, number, number][] = [['<unk>', 0, 2], ['<s>', 0, 3], ['</s>', 0, 3]];
    for (let b = 0; b < 256; b++) pieces.push([`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, 0, 6]);
    const words = ['▁', 'h', 'e', 'l', 'o', 'w', 'r', 'd', 'he', 'll', '▁he', 'llo', '▁hello', '▁w', 'or', '▁wor', 'ld', '▁world'];
    words.forEach((w, i) => pieces.push([w, -i, 1]));
    const model = sentencePieceTokenizer(encodeSpModel(pieces), 'tokenizer.model');
    const t = model.tokenizer!;
    expect(t.encode('hello world').map((i) => t.piece(i))).toEqual(['<s>', ' hello', ' world']);
    expect(t.decode(t.encode('hello wörld!'))).toBe('hello wörld!');
    expect(t.encode('x', { bos: false }).map((i) => t.piece(i))).toEqual([' ', '<0x78>']);
  });
});

/** A minimal ModelProto: pieces (field 1: piece, score, type), trainer_spec (field 2) with model_type BPE. */
function encodeSpModel(pieces: [string, number, number][]): Uint8Array {
  const varint = (v: number) => {
    const out: number[] = [];
    while (v > 0x7f) {
      out.push((v & 0x7f) | 0x80);
      v >>>= 7;
    }
    out.push(v);
    return new Uint8Array(out);
  };
  const field = (n: number, wire: number, body: Uint8Array) => concat(wire === 2 ? [varint((n << 3) | 2), varint(body.length), body] : [varint((n << 3) | wire), body]);
  const f32 = (v: number) => new Uint8Array(new Float32Array([v]).buffer);
  const parts = pieces.map(([p, score, type]) => field(1, 2, concat([field(1, 2, new TextEncoder().encode(p)), field(2, 5, f32(score)), field(3, 0, varint(type))])));
  parts.push(field(2, 2, concat([field(3, 0, varint(2)), field(40, 0, varint(0)), field(41, 0, varint(1)), field(42, 0, varint(2))])));
  return concat(parts);
}
