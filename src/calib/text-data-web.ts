/** The bundled text in the browser: Moby-Dick chapters fetched from data/moby-dick/ (see bundled-data.ts). */
import { CalibDataError, EVAL_FIRST_CHAPTER, MOBY_DICK_CHAPTERS, paragraphs } from './text-data.ts';

/** The raw text of chapter `n` (what mobyDickChapter reads in Node). */
export async function fetchChapter(base: string, n: number, signal?: AbortSignal): Promise<string> {
  const url = new URL(`data/moby-dick/chapter_${n}.json`, base).href;
  let res: Response;
  try {
    res = await fetch(url, { signal });
  } catch (e) {
    throw new CalibDataError(`could not fetch the bundled text (${url}): ${(e as Error).message}`);
  }
  if (!res.ok) throw new CalibDataError(`the bundled text is missing: the server answered ${res.status} for ${url}`);
  const j = (await res.json()) as { text?: unknown };
  if (typeof j.text !== 'string') throw new CalibDataError(`${url}: no text field`);
  return j.text;
}

/**
 * Paragraphs of the calibration chapters (1 .. EVAL_FIRST_CHAPTER-1) or of the held-out ones, fetched until
 * at least `minChars` characters are there (a token is 3-5 characters of English).
 */
export async function loadMobyDickWeb(base: string, minChars: number, part: 'calibration' | 'evaluation' = 'calibration', signal?: AbortSignal): Promise<string[]> {
  const first = part === 'calibration' ? 1 : EVAL_FIRST_CHAPTER;
  const last = part === 'calibration' ? EVAL_FIRST_CHAPTER - 1 : MOBY_DICK_CHAPTERS;
  const out: string[] = [];
  let chars = 0;
  for (let n = first; n <= last && chars < minChars; n++) {
    for (const p of paragraphs(await fetchChapter(base, n, signal), { lineBreaks: true })) {
      out.push(p);
      chars += p.length;
    }
  }
  return out;
}

/** The raw text of every calibration or held-out chapter, joined by blank lines (as the CLI joins them). */
export async function mobyDickPartWeb(base: string, part: 'calibration' | 'evaluation', signal?: AbortSignal): Promise<string> {
  const first = part === 'calibration' ? 1 : EVAL_FIRST_CHAPTER;
  const last = part === 'calibration' ? EVAL_FIRST_CHAPTER - 1 : MOBY_DICK_CHAPTERS;
  const texts: string[] = [];
  for (let n = first; n <= last; n++) texts.push(await fetchChapter(base, n, signal));
  return texts.join('\n\n');
}
