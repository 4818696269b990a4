/**
 * Calibration data from the command line, shared by `calibrate`, `smoothquant` and `awq`:
 * --data FILE|DIR|generated, --samples N, --seq-len L for language models (the bundled Moby-Dick when --data
 * is absent), tokenized with the model's tokenizer into BOS-led sequences.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { LlamaGpu } from '../model/llama/forward-gpu.ts';
import type { LlamaModelHandle } from '../model/workspace.ts';
import { CalibDataError, defaultTextShape, generateSequences, parseTextFile, textToSequences, type TextSequences } from '../calib/text-data.ts';
import { loadMobyDickCalibrationNode } from '../calib/text-data-node.ts';
import { InputError, UsageError } from './cli-errors.ts';
import type { OptionSpec, ParsedOptions } from './options.ts';

export const LLAMA_DATA_OPTIONS: OptionSpec[] = [
  { name: 'data', value: 'FILE|DIR', help: 'calibration data: a .txt / .jsonl file or a directory of them, or "generated" (default: the bundled Moby-Dick)' },
  { name: 'samples', value: 'N', help: 'sequences (default 128, or 16 for models with a context under 512)' },
  { name: 'seq-len', value: 'L', help: 'tokens per sequence (default 512, or the whole context when shorter)' },
];

/** The text files of --data: one file, or every .txt / .jsonl of a directory (sorted by name). */
export function textFiles(path: string): { name: string; bytes: Uint8Array }[] {
  if (!existsSync(path)) throw new InputError(`--data: no such file or directory: ${path}`);
  const files = statSync(path).isDirectory()
    ? readdirSync(path)
        .filter((f) => /\.(txt|jsonl)$/i.test(f))
        .sort()
        .map((f) => join(path, f))
    : [path];
  if (files.length === 0) throw new InputError(`--data ${path}: the directory has no .txt or .jsonl file`);
  return files.map((f) => ({ name: basename(f), bytes: readFileSync(f) }));
}

/** --samples and --seq-len for a Llama model (defaults from its context), checked against the context. */
export function llamaDataShape(h: LlamaModelHandle, opts: ParsedOptions): { samples: number; seqLen: number } {
  const shape = defaultTextShape(h.ckpt.config.seqLen);
  const samples = opts.int('samples', { min: 1, max: 100_000 }) ?? shape.samples;
  const seqLen = opts.int('seq-len', { min: 2, max: 1 << 20 }) ?? shape.seqLen;
  if (seqLen > h.ckpt.config.seqLen) throw new UsageError(`--seq-len ${seqLen} is longer than the model's context (${h.ckpt.config.seqLen})`);
  return { samples, seqLen };
}

/** The calibration sequences of --data for a Llama model; `llm` generates them for --data generated. */
export async function llamaSequencesFromArgs(h: LlamaModelHandle, opts: ParsedOptions, llm: LlamaGpu): Promise<TextSequences> {
  const { samples, seqLen } = llamaDataShape(h, opts);
  const tok = h.ckpt.tokenizer;
  const data = opts.string('data');
  if (data === 'generated') return generateSequences((t, reset) => (reset && llm.reset(), llm.forward(t)), tok?.bosId ?? 1, samples, seqLen);
  if (!tok) throw new InputError(`${h.name} has no tokenizer this tool can read${h.ckpt.tokenizerNote ? `: ${h.ckpt.tokenizerNote}` : ''}; use --data generated`);
  try {
    if (data === undefined) return textToSequences(tok, loadMobyDickCalibrationNode(), samples, seqLen, 'Moby-Dick (bundled)');
    const files = textFiles(data);
    return textToSequences(tok, files.flatMap((f) => parseTextFile(f.name, f.bytes)), samples, seqLen, files.length === 1 ? files[0].name : `${files.length} files in ${data}`);
  } catch (e) {
    if (e instanceof CalibDataError) throw new InputError(e.message);
    throw e;
  }
}
