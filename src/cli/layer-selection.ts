/**
 * Which layers `quantlab quantize MODEL` quantizes, and at how many bits: the --include, --exclude and
 * --layer-bits patterns of the command line turned into the per-layer overrides of a QuantPlan
 * (model/workspace.ts). Patterns are globs on whole layer names where `*` stands for any run of characters
 * (dots included): `layers.*.w2`, `tok_embeddings`, `p2o.Conv.*`. A pattern that names no layer is a
 * usage error, so a typo never silently quantizes everything.
 */
import type { LayerInfo, QuantPlan } from '../model/workspace.ts';
import { MAX_BITS, MIN_BITS } from '../quant/config.ts';
import { UsageError } from './cli-errors.ts';

export interface LayerBitsRule {
  pattern: string;
  bits: number;
}

/** What the user typed, parsed (no model needed). */
export interface LayerSelection {
  /** Layers kept at full precision by default (embeddings, classifier, shared weights) to quantize anyway. */
  include: string[];
  /** Layers to keep at full precision. Wins over include. */
  exclude: string[];
  /** Bits for the layers a pattern matches; a later rule wins over an earlier one. */
  layerBits: LayerBitsRule[];
}

/** A glob as an anchored regular expression: `*` is any run of characters, everything else is literal. */
export function globToRegExp(pattern: string): RegExp {
  const body = pattern
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`);
}

/** `PATTERN=BITS` (the last `=` splits, so a pattern may hold one). */
export function parseLayerBits(raw: string): LayerBitsRule {
  const eq = raw.lastIndexOf('=');
  const pattern = eq < 0 ? '' : raw.slice(0, eq);
  const bitsText = eq < 0 ? '' : raw.slice(eq + 1).trim();
  if (!pattern || !bitsText) throw new UsageError(`--layer-bits must look like PATTERN=BITS (e.g. layers.*.w2=8), got '${raw}'`);
  const bits = Number(bitsText);
  if (!/^\d+$/.test(bitsText) || bits < MIN_BITS || bits > MAX_BITS) {
    throw new UsageError(`--layer-bits ${raw}: bits must be an integer from ${MIN_BITS} to ${MAX_BITS}, got '${bitsText}'`);
  }
  return { pattern, bits };
}

function matching(layers: readonly LayerInfo[], pattern: string, option: string): LayerInfo[] {
  const re = globToRegExp(pattern);
  const hits = layers.filter((l) => re.test(l.name));
  if (hits.length === 0) {
    const examples = layers.slice(0, 3).map((l) => l.name);
    throw new UsageError(`${option} ${pattern} matches no layer of the model (layers are named like ${examples.join(', ')}${layers.length > 3 ? ', ...' : ''}; quantlab inspect MODEL lists them)`);
  }
  return hits;
}

function shortList(names: string[]): string {
  return names.length <= 4 ? names.join(', ') : `${names.slice(0, 4).join(', ')}, ... (${names.length} layers)`;
}

/**
 * The per-layer overrides of a QuantPlan. Throws UsageError for a pattern that matches no layer, and for a
 * --layer-bits pattern that matches only layers that stay at full precision (which would do nothing).
 */
export function selectionOverrides(layers: readonly LayerInfo[], sel: LayerSelection): NonNullable<QuantPlan['overrides']> {
  const overrides: NonNullable<QuantPlan['overrides']> = {};
  const set = (name: string, o: { exclude?: boolean; bits?: number }) => (overrides[name] = { ...overrides[name], ...o });
  for (const p of sel.include) for (const l of matching(layers, p, '--include')) if (l.excludedByDefault) set(l.name, { exclude: false });
  for (const p of sel.exclude) for (const l of matching(layers, p, '--exclude')) set(l.name, { exclude: true });
  const quantized = (l: LayerInfo) => !(overrides[l.name]?.exclude ?? l.excludedByDefault);
  for (const rule of sel.layerBits) {
    const hits = matching(layers, rule.pattern, '--layer-bits');
    const live = hits.filter(quantized);
    if (live.length === 0) {
      const names = hits.map((l) => l.name);
      throw new UsageError(
        `--layer-bits ${rule.pattern}=${rule.bits} matches only layers kept at full precision (${shortList(names)}); --include them to quantize them, or drop their --exclude`,
      );
    }
    for (const l of live) set(l.name, { bits: rule.bits });
  }
  return overrides;
}
