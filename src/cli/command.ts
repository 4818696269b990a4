/** What a CLI command is: a name, its options, its help text, and a run function that returns the exit status. */
import type { OptionSpec, ParsedOptions } from './options.ts';

/** Where a command writes; text is written as is (callers end lines with '\n'). */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

export interface Command {
  name: string;
  /** One line for `quantlab --help`. */
  summary: string;
  /** The synopsis after "Usage: ", e.g. "quantlab quantize --input FILE.npy --out DIR [options]". */
  synopsis: string;
  /** Paragraphs printed between the synopsis and the option list. */
  description: string;
  options: OptionSpec[];
  /** How many non-option arguments the command takes (model files); 0 when absent. */
  maxPositionals?: number;
  /** Paragraphs printed after the option list (outputs, exit status, examples). */
  epilogue?: string;
  run(opts: ParsedOptions, io: CliIo): Promise<number>;
}

export const processIo: CliIo = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
};
