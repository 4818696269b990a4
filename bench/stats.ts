/**
 * Pure helpers of the kernel benchmark: tensor sizes on the command line ("16M"), the median of the
 * timed repetitions, how many repetitions to run, throughput units, and the closing verdict against
 * the copy kernel. No GPU and no I/O here, so tests/bench/stats.test.ts can check them directly.
 */

const SUFFIX: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 };

/** "16M" -> 16 * 2^20 elements, "64K" -> 65536, "1000" -> 1000 (binary suffixes, like tensor sizes). */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMG]?)\s*$/i.exec(text);
  if (!m) throw new RangeError(`cannot read the size "${text}" (write e.g. 1M, 4M, 16M, 64K or 1048576)`);
  const n = Number(m[1]) * SUFFIX[m[2].toUpperCase()];
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`the size "${text}" is not a positive whole number of elements`);
  return n;
}

/** A comma-separated list of sizes, each a multiple of `multiple` (the bench views tensors as [n / 4096, 4096]). */
export function parseSizes(text: string, multiple = 1): number[] {
  const sizes = text
    .split(',')
    .filter((s) => s.trim() !== '')
    .map(parseSize);
  if (sizes.length === 0) throw new RangeError('no sizes given');
  for (const n of sizes) {
    if (n % multiple !== 0) throw new RangeError(`size ${n} is not a multiple of ${multiple} (the bench views each tensor as [n / ${multiple}, ${multiple}])`);
  }
  return sizes;
}

/** 16777216 -> "16M", 65536 -> "64K", other counts as plain numbers. */
export function formatSize(n: number): string {
  for (const [suffix, unit] of [
    ['G', SUFFIX.G],
    ['M', SUFFIX.M],
    ['K', SUFFIX.K],
  ] as const) {
    if (n >= unit && n % unit === 0) return `${n / unit}${suffix}`;
  }
  return String(n);
}

/** Median of the samples (mean of the middle two for an even count); NaN for none. */
export function median(samples: readonly number[]): number {
  if (samples.length === 0) return NaN;
  const s = [...samples].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export interface RepPlan {
  /** Measured time to aim for, summed over the repetitions. */
  targetMs: number;
  /** Fewest repetitions of a kernel that is not slow. */
  minReps: number;
  /** Most repetitions, however fast the kernel. */
  maxReps: number;
  /** A first repetition slower than this is the only one (SwiftShader at 16M elements). */
  slowMs: number;
}

export const DEFAULT_REP_PLAN: RepPlan = { targetMs: 500, minReps: 3, maxReps: 200, slowMs: 2000 };

/** How many timed repetitions in all, from the wall time of the first one. */
export function planReps(firstMs: number, plan: RepPlan = DEFAULT_REP_PLAN): number {
  if (!(firstMs >= 0) || firstMs > plan.slowMs) return 1;
  const want = Math.ceil(plan.targetMs / Math.max(firstMs, 1e-3));
  return Math.min(plan.maxReps, Math.max(plan.minReps, want));
}

/**
 * Whether a kernel needs a warm-up run at size n: not when its time at a smaller size, scaled linearly,
 * already says one run takes over plan.slowMs (its pipelines were built at that size, and the warm-up
 * would double the longest runs of a software adapter).
 */
export function needsWarmUp(previous: { n: number; wallMs: number } | undefined, n: number, plan: RepPlan = DEFAULT_REP_PLAN): boolean {
  const ms = predictMs(previous, n);
  return ms === undefined || ms <= plan.slowMs;
}

/** Wall time of one run at size n, scaled linearly from a run at another size; undefined without one. */
export function predictMs(previous: { n: number; wallMs: number } | undefined, n: number): number | undefined {
  return previous ? (previous.wallMs * n) / previous.n : undefined;
}

/** Bytes moved in `ms` milliseconds as GB/s (1 GB = 1e9 bytes). */
export function gbPerSecond(bytes: number, ms: number): number {
  return ms > 0 ? bytes / ms / 1e6 : NaN;
}

/** Elements processed in `ms` milliseconds, in 1e9 elements per second. */
export function gelemPerSecond(elements: number, ms: number): number {
  return ms > 0 ? elements / ms / 1e6 : NaN;
}

/** What the verdict needs of one result row. */
export interface VerdictRow {
  kernel: string;
  config: string;
  n: number;
  bound: 'baseline' | 'memory' | 'compute';
  /** GB/s of the kernel divided by GB/s of the copy kernel at the same size in the same run. */
  ratioToCopy: number;
}

export interface Verdict {
  /** Size the verdict is about: the target size when it was measured, else the largest one measured. */
  n: number;
  threshold: number;
  reached: string[];
  below: string[];
}

/** Which memory-bound kernels reach `threshold` of the copy kernel's bandwidth at size `target`. */
export function verdict(rows: readonly VerdictRow[], target: number, threshold = 0.7): Verdict {
  const sizes = [...new Set(rows.filter((r) => r.bound === 'memory').map((r) => r.n))];
  const n = sizes.includes(target) ? target : Math.max(...sizes, 0);
  const reached: string[] = [];
  const below: string[] = [];
  for (const r of rows) {
    if (r.bound !== 'memory' || r.n !== n) continue;
    const label = `${r.kernel} ${r.config} (${Math.round(100 * r.ratioToCopy)}%)`;
    (r.ratioToCopy >= threshold ? reached : below).push(label);
  }
  return { n, threshold, reached, below };
}

/** Right-aligned text table with a header rule; the first `leftColumns` columns are left-aligned. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[], leftColumns = 2): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, c) => (c < leftColumns ? cell.padEnd(widths[c]) : cell.padStart(widths[c])))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** A number with about three significant digits ("0.0123", "12.3", "1234"), "-" when missing. */
export function fmt(v: number | undefined, digits = 3): string {
  if (v === undefined || !Number.isFinite(v)) return '-';
  if (v === 0) return '0';
  const mag = Math.floor(Math.log10(Math.abs(v)));
  return v.toFixed(Math.max(0, digits - 1 - mag));
}
