/**
 * Command-line options: `--name value`, `--name=value` and boolean `--flag`, parsed against the
 * command's declared options, with typed accessors whose errors name the option and the bad value
 * ("--bits must be an integer from 2 to 8, got 9"). Hand-written rather than node:util parseArgs so
 * every message is ours and numbers such as `--clip-ratio -1` reach the range check.
 */
import { UsageError } from './cli-errors.ts';

export interface OptionSpec {
  /** Long name without the dashes: 'group-size'. */
  name: string;
  /** Placeholder of the value in help text ('N', 'FILE'); absent for a boolean flag. */
  value?: string;
  help: string;
  /** May be given several times (`--exclude A --exclude B`); read with list(). Needs a value. */
  repeatable?: boolean;
}

/** A raw value as the user typed it, quoted unless it is a number, for error messages. */
function shown(raw: string): string {
  return raw.trim() !== '' && Number.isFinite(Number(raw)) ? raw : `'${raw}'`;
}

export class ParsedOptions {
  constructor(
    private readonly values: ReadonlyMap<string, string | true | string[]>,
    /** True when -h or --help was given. */
    readonly help: boolean,
    /** Arguments that are not options (e.g. the model files of `quantlab inspect MODEL`). */
    readonly positionals: readonly string[] = [],
  ) {}

  has(name: string): boolean {
    return this.values.has(name);
  }

  flag(name: string): boolean {
    return this.values.get(name) === true;
  }

  /** Every value of a repeatable option, in command-line order (empty when it was not given). */
  list(name: string): readonly string[] {
    const v = this.values.get(name);
    return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
  }

  string(name: string): string | undefined {
    const v = this.values.get(name);
    return typeof v === 'string' ? v : undefined;
  }

  /** A value the command cannot run without. */
  required(name: string, what: string): string {
    const v = this.string(name);
    if (v === undefined) throw new UsageError(`missing --${name} (${what})`);
    return v;
  }

  int(name: string, range: { min: number; max?: number }): number | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    const v = Number(raw);
    if (!/^[-+]?\d+$/.test(raw.trim()) || v < range.min || (range.max !== undefined && v > range.max)) {
      const want =
        range.max !== undefined ? `an integer from ${range.min} to ${range.max}` : range.min === 1 ? 'a positive integer' : `an integer of at least ${range.min}`;
      throw new UsageError(`--${name} must be ${want}, got ${shown(raw)}`);
    }
    return v;
  }

  /** A number in the half-open interval (lowExclusive, highInclusive]. */
  number(name: string, lowExclusive: number, highInclusive: number): number | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    const v = Number(raw);
    if (raw.trim() === '' || !(v > lowExclusive && v <= highInclusive)) {
      throw new UsageError(`--${name} must be a number in (${lowExclusive}, ${highInclusive}], got ${shown(raw)}`);
    }
    return v;
  }

  choice<T extends string>(name: string, choices: readonly T[]): T | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    if (!(choices as readonly string[]).includes(raw)) throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got ${shown(raw)}`);
    return raw as T;
  }
}

/** Parse argv (the arguments after the command name). Throws UsageError naming the first problem. */
export function parseOptions(argv: readonly string[], specs: readonly OptionSpec[], command: string, maxPositionals = 0): ParsedOptions {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const values = new Map<string, string | true | string[]>();
  const positionals: string[] = [];
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') {
      help = true;
      continue;
    }
    if (!arg.startsWith('--') && positionals.length < maxPositionals) {
      positionals.push(arg);
      continue;
    }
    if (!arg.startsWith('--') || arg === '--') {
      throw new UsageError(`unexpected argument ${shown(arg)} (options are written --name value; see quantlab ${command} --help)`);
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const spec = byName.get(name);
    if (!spec) throw new UsageError(`unknown option --${name} (see quantlab ${command} --help)`);
    if (values.has(name) && !spec.repeatable) throw new UsageError(`--${name} is given more than once`);
    if (!spec.value) {
      if (eq >= 0) throw new UsageError(`--${name} takes no value, got --${arg.slice(2)}`);
      values.set(name, true);
      continue;
    }
    let value: string;
    if (eq >= 0) {
      value = arg.slice(eq + 1);
    } else {
      // A following "--word" is the next option, not this one's value; "-1" still is a value.
      if (i + 1 >= argv.length || argv[i + 1].startsWith('--')) throw new UsageError(`--${name} needs a value (--${name} ${spec.value})`);
      value = argv[++i];
    }
    if (spec.repeatable) {
      if (value === '') throw new UsageError(`--${name} needs a non-empty value (--${name} ${spec.value})`);
      const prev = values.get(name);
      values.set(name, [...(Array.isArray(prev) ? prev : []), value]);
    } else {
      values.set(name, value);
    }
  }
  return new ParsedOptions(values, help, positionals);
}

/** The option list of a help text, two columns, wrapped at 100 characters. */
export function formatOptionList(specs: readonly OptionSpec[]): string {
  const all = [...specs, { name: 'help', help: 'show this help' }];
  const left = all.map((s) => `  --${s.name}${s.value ? ` ${s.value}` : ''}`);
  const width = Math.max(...left.map((l) => l.length)) + 2;
  const lines: string[] = [];
  all.forEach((s, i) => {
    const words = s.help.split(/\s+/);
    let line = left[i].padEnd(width);
    let empty = true;
    for (const w of words) {
      if (!empty && line.length + 1 + w.length > 100) {
        lines.push(line);
        line = ' '.repeat(width);
        empty = true;
      }
      line += (empty ? '' : ' ') + w;
      empty = false;
    }
    lines.push(line);
  });
  return lines.join('\n');
}
