/**
 * Line strings for the rendered-text data of the OCR recogniser: runs of whole consecutive words cut from
 * running text (the bundled Moby-Dick), limited to characters the recogniser can output, reproducible
 * from a seed. No Node imports: the browser bundles this file (it fetches the chapters itself; Node uses
 * text-data-node.ts).
 */
import { mulberry32 } from '../util/random.ts';

export interface TextLineSample {
  text: string;
}

export interface SampleTextLinesOptions {
  seed: number;
  /** Shortest line, in characters (default 8). */
  minChars?: number;
  /** Longest line, in characters (default 28). */
  maxChars?: number;
  /**
   * Characters a line may contain besides the single space between words, e.g. the PP-OCR keys
   * (`ppocrKeys` of ocr-decode.ts). Words with any other character are skipped and break the run of words,
   * so a line never joins the words on both sides of a skipped one. Default: every character.
   */
  allowed?: ReadonlySet<string> | readonly string[];
}

/**
 * Picks `n` lines: each starts at the first word beginning at or after a random character offset (so a
 * word's chance is proportional to its length plus the blank before it), aims at a random length uniform in
 * [minChars, maxChars], and takes consecutive words while the line stays within maxChars and is shorter than
 * its aim. Starts that cannot give at least minChars are redrawn. Only the words near each start are read, so
 * the cost does not grow with the text. Lines may repeat when the text is short.
 */
export function sampleTextLines(text: string, n: number, opts: SampleTextLinesOptions): TextLineSample[] {
  const minChars = opts.minChars ?? 8;
  const maxChars = opts.maxChars ?? 28;
  if (!(Number.isInteger(n) && n >= 0)) throw new Error(`n must be a non-negative integer, got ${n}`);
  if (!(Number.isInteger(minChars) && minChars >= 1 && Number.isInteger(maxChars) && maxChars >= minChars)) {
    throw new Error(`need 1 <= minChars <= maxChars, got ${minChars}, ${maxChars}`);
  }
  const allowed = opts.allowed === undefined ? undefined : opts.allowed instanceof Set ? opts.allowed : new Set(opts.allowed as readonly string[]);
  const usable = (w: string): boolean => {
    if (w.length > maxChars) return false;
    if (allowed) for (const c of w) if (!allowed.has(c)) return false;
    return true;
  };
  const word = /\S+/g;
  const blank = /\s/g;
  const random = mulberry32(opts.seed);
  const lines: TextLineSample[] = [];
  const maxAttempts = 1000 * Math.max(n, 1);
  let attempts = 0;
  while (lines.length < n) {
    if (++attempts > maxAttempts) throw new Error(`could not cut ${n} lines of ${minChars}..${maxChars} characters from the text`);
    let at = Math.floor(random() * text.length);
    const aim = minChars + Math.floor(random() * (maxChars - minChars + 1));
    if (at > 0 && !/\s/.test(text[at - 1])) {
      // Inside a word: start at the next one.
      blank.lastIndex = at;
      if (blank.exec(text) === null) continue;
      at = blank.lastIndex;
    }
    word.lastIndex = at;
    let line = '';
    for (let m = word.exec(text); m !== null; m = word.exec(text)) {
      // A skipped word ends the run: a line never joins the words on both sides of it.
      if (!usable(m[0])) break;
      const next = line.length === 0 ? m[0] : `${line} ${m[0]}`;
      if (next.length > maxChars) break;
      line = next;
      if (line.length >= aim) break;
    }
    if (line.length >= minChars) lines.push({ text: line });
  }
  return lines;
}
