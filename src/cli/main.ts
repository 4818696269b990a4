/**
 * The `quantlab` command line: finds the command, parses its options, runs it, and turns every
 * error a user can fix into one line on stderr with exit status 1 (bad input data, GPU problem) or
 * 2 (bad command line). Stack traces are printed only with QUANTLAB_DEBUG=1.
 * New commands are one file in ./commands, listed in COMMANDS.
 */
import { readFileSync } from 'node:fs';
import { GpuError } from '../gpu/errors.ts';
import { CliError } from './cli-errors.ts';
import { processIo, type CliIo, type Command } from './command.ts';
import { amaxCommand } from './commands/amax.ts';
import { awqCommand } from './commands/awq.ts';
import { awqLayerCommand } from './commands/awq-layer.ts';
import { calibrateCommand } from './commands/calibrate.ts';
import { evalCommand } from './commands/eval.ts';
import { exportCommand } from './commands/export.ts';
import { generateCommand } from './commands/generate.ts';
import { inspectCommand } from './commands/inspect.ts';
import { quantizeCommand } from './commands/quantize.ts';
import { smoothquantCommand } from './commands/smoothquant.ts';
import { formatOptionList, parseOptions } from './options.ts';

const COMMANDS: Command[] = [inspectCommand, generateCommand, quantizeCommand, calibrateCommand, amaxCommand, smoothquantCommand, awqCommand, awqLayerCommand, evalCommand, exportCommand];

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function mainUsage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return [
    'Usage: quantlab <command> [options]',
    '',
    'QuantLab on the command line: the quantization kernels of the browser lab, run on WebGPU in Node.',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    '',
    'Options:',
    '  --help      show this help (quantlab <command> --help for a command)',
    '  --version   print the version',
    '',
    'Exit status: 0 done, 1 bad input data or GPU failure, 2 bad command line.',
    'Set QUANTLAB_DEBUG=1 to print stack traces.',
    '',
  ].join('\n');
}

export function commandUsage(c: Command): string {
  return [`Usage: ${c.synopsis}`, '', c.description, '', 'Options:', formatOptionList(c.options), '', ...(c.epilogue ? [c.epilogue, ''] : [])].join('\n');
}

function report(err: unknown, prefix: string, io: CliIo): number {
  const debug = process.env.QUANTLAB_DEBUG === '1';
  const stack = debug && err instanceof Error && err.stack ? `\n${err.stack}` : '';
  if (err instanceof CliError) {
    io.stderr(`${prefix}: ${err.message}${stack}\n`);
    return err.exitCode;
  }
  // GpuUnavailableError and friends carry a message written for users (what failed, how to fix it).
  if (err instanceof GpuError) {
    io.stderr(`${prefix}: ${err.message}${stack}\n`);
    return 1;
  }
  const message = err instanceof Error ? err.message : String(err);
  io.stderr(`${prefix}: internal error: ${message}${stack || ' (set QUANTLAB_DEBUG=1 for the stack trace)'}\n`);
  return 1;
}

/** Runs the command line `argv` (without "node quantlab") and returns the exit status. */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    io.stderr(mainUsage());
    return 2;
  }
  if (first === '--help' || first === '-h' || first === 'help') {
    const c = COMMANDS.find((x) => x.name === rest[0]);
    if (rest.length > 0 && !c) {
      io.stderr(`quantlab: unknown command '${rest[0]}' (commands: ${COMMANDS.map((x) => x.name).join(', ')})\n`);
      return 2;
    }
    io.stdout(c ? commandUsage(c) : mainUsage());
    return 0;
  }
  if (first === '--version') {
    io.stdout(`quantlab ${version()}\n`);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === first);
  if (!command) {
    const what = first.startsWith('-') ? `unknown option ${first} before the command` : `unknown command '${first}'`;
    io.stderr(`quantlab: ${what} (commands: ${COMMANDS.map((c) => c.name).join(', ')}; see quantlab --help)\n`);
    return 2;
  }
  const prefix = `quantlab ${command.name}`;
  try {
    const opts = parseOptions(rest, command.options, command.name, command.maxPositionals ?? 0);
    if (opts.help) {
      io.stdout(commandUsage(command));
      return 0;
    }
    return await command.run(opts, io);
  } catch (err) {
    return report(err, prefix, io);
  }
}
