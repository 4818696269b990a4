/**
 * Options that may be given several times (`--exclude A --exclude B`). parseOptions (options.ts) refuses a
 * repeated option, which is right for every single-valued one, so the occurrences of options marked
 * repeatable are taken out of argv first, kept in command-line order, and read back with listOption();
 * everything else is parsed, and its errors worded, by parseOptions.
 */
import { UsageError } from './cli-errors.ts';
import { parseOptions, type OptionSpec, type ParsedOptions } from './options.ts';

/** An option with a value that may be given any number of times. */
export interface RepeatableOptionSpec extends OptionSpec {
  value: string;
  repeatable: true;
}

export function isRepeatable(spec: OptionSpec): spec is RepeatableOptionSpec {
  return (spec as Partial<RepeatableOptionSpec>).repeatable === true && spec.value !== undefined;
}

/** The values each parse collected, by option name; kept beside ParsedOptions rather than inside it. */
const collected = new WeakMap<ParsedOptions, ReadonlyMap<string, readonly string[]>>();

/** parseOptions, plus repeatable options (see listOption). */
export function parseCommandLine(argv: readonly string[], specs: readonly OptionSpec[], command: string, maxPositionals = 0): ParsedOptions {
  const repeatable = new Map(specs.filter(isRepeatable).map((s) => [s.name, s]));
  if (repeatable.size === 0) return parseOptions(argv, specs, command, maxPositionals);
  const rest: string[] = [];
  const lists = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') ? arg.slice(2, eq < 0 ? undefined : eq) : '';
    const spec = repeatable.get(name);
    if (!spec) {
      rest.push(arg);
      continue;
    }
    let value: string;
    if (eq >= 0) {
      value = arg.slice(eq + 1);
    } else {
      // As in parseOptions: a following "--word" is the next option, not this one's value.
      if (i + 1 >= argv.length || argv[i + 1].startsWith('--')) throw new UsageError(`--${name} needs a value (--${name} ${spec.value})`);
      value = argv[++i];
    }
    if (value === '') throw new UsageError(`--${name} needs a non-empty value (--${name} ${spec.value})`);
    lists.set(name, [...(lists.get(name) ?? []), value]);
  }
  const opts = parseOptions(rest, specs.filter((s) => !isRepeatable(s)), command, maxPositionals);
  collected.set(opts, lists);
  return opts;
}

/** Every value given for a repeatable option, in command-line order (empty when it was not given). */
export function listOption(opts: ParsedOptions, name: string): readonly string[] {
  return collected.get(opts)?.get(name) ?? [];
}
