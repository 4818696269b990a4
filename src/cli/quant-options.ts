/**
 * The quantizer settings on the command line (--bits, --granularity, --group-size, --scheme, --format,
 * --clip-ratio / --clip), shared by both modes of `quantlab quantize`, and how a config is shown.
 */
import { MAX_BITS, MIN_BITS, QuantConfigError, validateQuantConfig, type Granularity, type NumberFormat, type QuantConfig, type Scheme } from '../quant/config.ts';
import { UsageError } from './cli-errors.ts';
import type { CliIo } from './command.ts';
import type { OptionSpec, ParsedOptions } from './options.ts';

export const DEFAULT_BITS = 4;
export const DEFAULT_GROUP_SIZE = 128;

export const QUANT_CONFIG_OPTIONS: OptionSpec[] = [
  { name: 'bits', value: 'B', help: `integer bit width, ${MIN_BITS} to ${MAX_BITS} (default ${DEFAULT_BITS}; fp8-e4m3 is always 8)` },
  { name: 'granularity', value: 'G', help: 'tensor, channel or group: which elements share one scale (default group)' },
  { name: 'group-size', value: 'N', help: `elements per group along a row (default ${DEFAULT_GROUP_SIZE})` },
  { name: 'scheme', value: 'S', help: 'sym (signed, zero point 0) or asym (unsigned with zero point); default asym for int, sym for fp8-e4m3' },
  { name: 'format', value: 'F', help: 'int or fp8-e4m3 (default int)' },
  { name: 'clip-ratio', value: 'R', help: "clip threshold as a fraction of each group's absmax, in (0, 1] (default 1)" },
  { name: 'clip', value: 'R', help: 'the same as --clip-ratio' },
];

/** Read and check every quantizer option before any file or GPU work, so mistakes fail fast. */
export function configFromOptions(opts: ParsedOptions, io: CliIo): Required<QuantConfig> {
  const format = opts.choice<NumberFormat>('format', ['int', 'fp8-e4m3']) ?? 'int';
  const bits = opts.int('bits', { min: MIN_BITS, max: MAX_BITS }) ?? DEFAULT_BITS;
  const granularity = opts.choice<Granularity>('granularity', ['tensor', 'channel', 'group']) ?? 'group';
  const groupSize = opts.int('group-size', { min: 1 }) ?? DEFAULT_GROUP_SIZE;
  const scheme = opts.choice<Scheme>('scheme', ['sym', 'asym']) ?? (format === 'fp8-e4m3' ? 'sym' : 'asym');
  if (opts.has('clip-ratio') && opts.has('clip')) throw new UsageError('--clip is another name for --clip-ratio: give one of them');
  const clipRatio = opts.number('clip-ratio', 0, 1) ?? opts.number('clip', 0, 1) ?? 1;
  if (format === 'fp8-e4m3' && opts.has('bits')) io.stderr('quantlab quantize: note: --bits is ignored for --format fp8-e4m3 (always 8 bits)\n');
  if (granularity !== 'group' && opts.has('group-size')) io.stderr(`quantlab quantize: note: --group-size is ignored for --granularity ${granularity}\n`);
  try {
    return validateQuantConfig({ bits, granularity, groupSize, scheme, format, clipRatio });
  } catch (e) {
    // Rules across options, e.g. FP8 E4M3 is symmetric only.
    if (e instanceof QuantConfigError) throw new UsageError(e.message);
    throw e;
  }
}

export function describeConfig(cfg: Required<QuantConfig>): string {
  const grid = cfg.format === 'fp8-e4m3' ? 'FP8 E4M3' : `int${cfg.bits} ${cfg.scheme}`;
  const gran = cfg.granularity === 'group' ? `per-group (group size ${cfg.groupSize})` : `per-${cfg.granularity}`;
  return `${grid}, ${gran}, clip ratio ${cfg.clipRatio}`;
}

/** Five significant digits; exponent notation for very small or large values. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  return v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5) ? v.toExponential(4) : String(Number(v.toPrecision(5)));
}

/** Bytes as B / KiB / MiB / GiB with three significant digits. */
export function formatBytes(b: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = b;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[u]}`;
}
