/**
 * The form values as typed (strings for number fields, so an empty field stays empty) and their parsing into
 * a SyntheticSpec and a QuantConfig. A draft that does not parse gives a message for the form and no request.
 */
import { validateQuantConfig, type Granularity, type NumberFormat, type QuantConfig, type Scheme } from '../../quant/config.ts';
import type { SyntheticKind, SyntheticSpec } from '../../quant/synthetic.ts';
import { validateSyntheticSpec } from './tensor-spec.ts';

export interface SyntheticDraft {
  kind: SyntheticKind;
  rows: string;
  cols: string;
  seed: string;
}

export interface ConfigDraft {
  bits: number;
  format: NumberFormat;
  granularity: Granularity;
  groupSize: string;
  scheme: Scheme;
  clipRatio: number;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/** A whole number typed in a field: digits only, so "1e3", "2.5" and "" are rejected rather than guessed. */
function parseCount(text: string, what: string): Parsed<number> {
  const t = text.trim();
  if (t === '') return { ok: false, error: `Enter ${what}.` };
  if (!/^\d+$/.test(t)) return { ok: false, error: `${what[0].toUpperCase()}${what.slice(1)} must be a whole number, got "${t}".` };
  return { ok: true, value: Number(t) };
}

export function parseSynthetic(d: SyntheticDraft): Parsed<SyntheticSpec> {
  const rows = parseCount(d.rows, 'the number of rows');
  if (!rows.ok) return rows;
  const cols = parseCount(d.cols, 'the number of columns');
  if (!cols.ok) return cols;
  const seed = parseCount(d.seed, 'a seed');
  if (!seed.ok) return seed;
  const spec: SyntheticSpec = { kind: d.kind, rows: rows.value, cols: cols.value, seed: seed.value };
  try {
    validateSyntheticSpec(spec);
  } catch (e) {
    return { ok: false, error: `${(e as Error).message[0].toUpperCase()}${(e as Error).message.slice(1)}.` };
  }
  return { ok: true, value: spec };
}

export function parseConfig(d: ConfigDraft): Parsed<QuantConfig> {
  const cfg: QuantConfig = {
    bits: d.format === 'fp8-e4m3' ? 8 : d.bits,
    granularity: d.granularity,
    scheme: d.format === 'fp8-e4m3' ? 'sym' : d.scheme,
    format: d.format,
    clipRatio: d.clipRatio,
  };
  if (d.granularity === 'group') {
    const g = parseCount(d.groupSize, 'a group size');
    if (!g.ok) return g;
    if (g.value < 1) return { ok: false, error: 'Group size must be at least 1.' };
    cfg.groupSize = g.value;
  }
  try {
    validateQuantConfig(cfg);
  } catch (e) {
    return { ok: false, error: `${(e as Error).message}.` };
  }
  return { ok: true, value: cfg };
}

export const SYNTHETIC_LABELS: Record<SyntheticKind, string> = {
  gaussian: 'Gaussian',
  laplace: 'Laplace',
  llm: 'LLM-like (outlier channels)',
};
