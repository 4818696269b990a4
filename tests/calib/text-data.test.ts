/** Calibration text: user files, the bundled book, tokenization into BOS-led sequences, generated samples, bad inputs. */
import { existsSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { nodeFileByteSource } from '../../src/model/formats/byte-source-node.ts';
import { openBundledStories15M } from '../../src/model/formats/llama2c.ts';
import { CalibDataError, defaultTextShape, generateSequences, paragraphs, parseTextFile, sampleToken, textToSequences } from '../../src/calib/text-data.ts';
import { loadMobyDickCalibrationNode, loadMobyDickEvalNode } from '../../src/calib/text-data-node.ts';
import { STORIES15M_DATA } from '../model/tiny-llama.ts';

const enc = (s: string) => new TextEncoder().encode(s);

describe('text files', () => {
  test('.txt paragraphs and .jsonl text fields', () => {
    expect(parseTextFile('a.txt', enc('One two.\nthree\n\n\nFour.'))).toEqual(['One two. three', 'Four.']);
    expect(parseTextFile('a.jsonl', enc('{"text":"alpha"}\n\n{"text":"beta\\n\\ngamma"}\n'))).toEqual(['alpha', 'beta', 'gamma']);
    expect(paragraphs('a\nb', { lineBreaks: true })).toEqual(['a', 'b']);
    const long = Array.from({ length: 50 }, (_, i) => `Sentence number ${i} is here.`).join(' ');
    const parts = paragraphs(long, { maxChars: 100 });
    expect(parts.length).toBeGreaterThan(10);
    expect(parts.every((p) => p.length <= 100)).toBe(true);
    expect(parts.join(' ')).toBe(long);
  });

  test('bad files name the problem', () => {
    expect(() => parseTextFile('e.txt', enc('  \n\n'))).toThrow(CalibDataError);
    expect(() => parseTextFile('b.jsonl', enc('{"text":"ok"}\n{oops'))).toThrow(/b.jsonl line 2: not JSON/);
    expect(() => parseTextFile('c.jsonl', enc('{"body":"x"}'))).toThrow(/line 1: no "text"/);
    expect(() => parseTextFile('d.txt', new Uint8Array([0xff, 0xfe, 0x41]))).toThrow(/not UTF-8/);
  });

  test('default shapes', () => {
    expect(defaultTextShape(4096)).toEqual({ samples: 128, seqLen: 512 });
    expect(defaultTextShape(256)).toEqual({ samples: 16, seqLen: 256 });
  });
});

describe.runIf(existsSync(STORIES15M_DATA))('tokenized sequences (stories15M tokenizer)', () => {
  test('BOS + L-1 tokens of one stream; calibration and evaluation chapters differ', async () => {
    const ckpt = await openBundledStories15M(await nodeFileByteSource(STORIES15M_DATA));
    const tok = ckpt.tokenizer!;
    const seqs = textToSequences(tok, loadMobyDickCalibrationNode(), 3, 64, 'moby');
    expect(seqs.sequences).toHaveLength(3);
    expect(seqs.tokens).toBe(192);
    for (const s of seqs.sequences) {
      expect(s).toHaveLength(64);
      expect(s[0]).toBe(tok.bosId);
    }
    // The stream continues across sequences: decoding the 3 bodies gives the start of the book.
    const text = tok.decode(seqs.sequences.flatMap((s) => s.slice(1)));
    expect(text.trimStart().startsWith('Call me Ishmael.')).toBe(true);
    const evalFirst = loadMobyDickEvalNode().next().value as string;
    expect(text.includes(evalFirst.slice(0, 40))).toBe(false);
    // Too little text for one sequence: a clear error; fewer sequences than asked: a note.
    expect(() => textToSequences(tok, ['Call me Ishmael.'], 4, 64, 'short.txt')).toThrow(/short.txt gives \d+ tokens; one sequence of 64 tokens needs 63/);
    const few = textToSequences(tok, ['Call me Ishmael. '.repeat(20)], 100, 16, 'few.txt');
    expect(few.sequences.length).toBeLessThan(100);
    expect(few.note).toMatch(/fills \d+ of the 100/);
  });
});

describe('generated samples', () => {
  test('seeded sampling is deterministic and follows the logits', async () => {
    // A toy "model": logits favour token (last + 1) mod 5.
    const next = async (t: number[]) => Float32Array.from({ length: 5 }, (_, i) => (i === (t[t.length - 1] + 1) % 5 ? 8 : 0));
    const a = await generateSequences(next, 0, 2, 6, { seed: 7 });
    const b = await generateSequences(next, 0, 2, 6, { seed: 7 });
    expect(a.sequences).toEqual(b.sequences);
    expect(a.sequences[0][0]).toBe(0);
    // With a logit gap of 8 (p ~ 0.9987 each step), nearly all steps follow the chain.
    let follow = 0;
    for (const s of a.sequences) for (let i = 1; i < s.length; i++) if (s[i] === (s[i - 1] + 1) % 5) follow++;
    expect(follow).toBeGreaterThanOrEqual(9);
    expect(sampleToken(Float32Array.from([0, 3, 1]), 0, Math.random)).toBe(1);
  });
});
