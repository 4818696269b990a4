/**
 * Evaluation text as one token stream: paragraphs tokenized without BOS and concatenated (as calibration
 * text is, calib/text-data.ts), cut at the number of tokens asked for (a cap: shorter text gives fewer
 * tokens). Text shorter than the minimum (one full window) is an error that names the source and both
 * counts. No Node imports.
 */
import { CancelledError } from '../gpu/errors.ts';
import type { Tokenizer } from '../model/llama/tokenizer.ts';
import { EvalError } from './types.ts';

/** At most `count` tokens of the texts; throws EvalError when they hold fewer than `minimum` (default `count`). */
export function evalTokens(tok: Tokenizer, texts: Iterable<string>, count: number, source: string, signal?: AbortSignal, minimum = count): number[] {
  if (!(Number.isInteger(count) && count >= 1)) throw new EvalError(`the number of evaluation tokens must be a positive integer, got ${count}`);
  const need = Math.min(minimum, count);
  const stream: number[] = [];
  for (const t of texts) {
    if (signal?.aborted) throw new CancelledError();
    // Paragraph by paragraph: the llama2.c merge loop is quadratic in the length of what it encodes.
    for (const id of tok.encode(t, { bos: false })) stream.push(id);
    if (stream.length >= count) break;
  }
  if (stream.length < need) {
    throw new EvalError(`${source} gives ${stream.length} tokens; the evaluation needs at least ${need}. Give more text${need < count ? ' or a shorter --context' : ' or lower --tokens'}.`);
  }
  return stream.slice(0, count);
}
