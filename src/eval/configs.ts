/**
 * Evaluation configurations from their labels (`quantlab eval --configs fp32,rtn-int4-g32,...`):
 *
 *   fp32                              the reference
 *   fp16                              linear weights rounded to float16
 *   rtn-int<B>[-g<G>|-pc|-pt][-sym|-asym]   round-to-nearest weights: B = 2..8 bits, per group of G, per
 *                                     output channel (the default) or per tensor; asymmetric by default
 *   rtn-fp8[-pc|-pt]                  FP8 E4M3 simulation (symmetric)
 *   awq-int<B>[-g<G>|-pc][-sym|-asym] AWQ (scale + clip search on calibration text), group 128 by default
 *   smoothquant-w8a8[-a<alpha>][-pt]  SmoothQuant factors (alpha 0.5 by default) folded, INT8 per-channel
 *                                     symmetric weights, INT8 activations per token (-pt: static per tensor)
 *
 * Only the linear layers' weights are quantized; embeddings, norms and the classifier stay FP32 (as the
 * whole-model RTN does). No Node imports.
 */
import { QuantConfigError, validateQuantConfig, type Granularity, type QuantConfig, type Scheme } from '../quant/config.ts';
import { EvalError, type EvalConfig } from './types.ts';

export const DEFAULT_EVAL_CONFIGS = 'fp32,fp16,rtn-int8,rtn-int4-g32,rtn-int4-g64,rtn-int4-g128,awq-int4-g32,smoothquant-w8a8';

const FORMS = 'fp32, fp16, rtn-int<2-8>[-g<size>|-pc|-pt][-sym|-asym], rtn-fp8[-pc|-pt], awq-int<2-8>[-g<size>|-pc][-sym|-asym], smoothquant-w8a8[-a<alpha>][-pt]';

function fail(label: string, why: string): never {
  throw new EvalError(`config '${label}': ${why} (forms: ${FORMS})`);
}

function bitsOf(label: string, word: string | undefined): number {
  const m = /^int(\d+)$/.exec(word ?? '');
  if (!m) fail(label, `expected int<bits> after the method, got '${word ?? ''}'`);
  const b = Number(m[1]);
  if (!(b >= 2 && b <= 8)) fail(label, `bits must be an integer from 2 to 8, got ${m[1]}`);
  return b;
}

/** The quantizer words after int<B>: granularity and scheme, each at most once. */
function quantWords(label: string, words: string[], defaults: { granularity: Granularity; groupSize?: number; scheme: Scheme }, allowTensor: boolean): { granularity: Granularity; groupSize?: number; scheme: Scheme } {
  let granularity: Granularity | undefined;
  let groupSize: number | undefined;
  let scheme: Scheme | undefined;
  for (const w of words) {
    const g = /^g(\d*)$/.exec(w);
    if (g) {
      if (granularity) fail(label, `two granularities ('${w}')`);
      const n = Number(g[1]);
      if (g[1] === '' || !Number.isInteger(n) || n < 1) fail(label, `group size must be a positive integer, got '${w}'`);
      granularity = 'group';
      groupSize = n;
    } else if (w === 'pc' || (w === 'pt' && allowTensor)) {
      if (granularity) fail(label, `two granularities ('${w}')`);
      granularity = w === 'pc' ? 'channel' : 'tensor';
    } else if (w === 'sym' || w === 'asym') {
      if (scheme) fail(label, `two schemes ('${w}')`);
      scheme = w;
    } else {
      fail(label, `unknown word '${w}'`);
    }
  }
  granularity ??= defaults.granularity;
  return { granularity, groupSize: granularity === 'group' ? (groupSize ?? defaults.groupSize) : undefined, scheme: scheme ?? defaults.scheme };
}

function validated(label: string, q: QuantConfig): Required<QuantConfig> {
  try {
    return validateQuantConfig(q);
  } catch (e) {
    if (e instanceof QuantConfigError) fail(label, e.message);
    throw e;
  }
}

/** One configuration from its label; throws EvalError naming the label and what is wrong. */
export function parseEvalConfig(raw: string): EvalConfig {
  const label = raw.trim().toLowerCase();
  if (!label) throw new EvalError(`empty config name (forms: ${FORMS})`);
  const [method, ...rest] = label.split('-');
  switch (method) {
    case 'fp32':
    case 'fp16':
      if (rest.length) fail(label, `${method} takes no options`);
      return { label, method };
    case 'rtn': {
      if (rest[0] === 'fp8') {
        const q = quantWords(label, rest.slice(1), { granularity: 'channel', scheme: 'sym' }, true);
        if (q.scheme !== 'sym') fail(label, 'FP8 is symmetric only');
        return { label, method, quant: validated(label, { bits: 8, format: 'fp8-e4m3', ...q }) };
      }
      const bits = bitsOf(label, rest[0]);
      const q = quantWords(label, rest.slice(1), { granularity: 'channel', scheme: 'asym' }, true);
      return { label, method, quant: validated(label, { bits, ...q }) };
    }
    case 'awq': {
      const bits = bitsOf(label, rest[0]);
      const q = quantWords(label, rest.slice(1), { granularity: 'group', groupSize: 128, scheme: 'asym' }, false);
      return { label, method, quant: validated(label, { bits, ...q }) };
    }
    case 'smoothquant': {
      if (rest[0] !== 'w8a8') fail(label, `SmoothQuant is evaluated as w8a8, got '${rest[0] ?? ''}'`);
      let alpha: number | undefined;
      let granularity: 'per-token' | 'per-tensor' | undefined;
      for (const w of rest.slice(1)) {
        const a = /^a(\d+(?:\.\d+)?|\.\d+)$/.exec(w);
        if (a) {
          if (alpha !== undefined) fail(label, 'two alphas');
          alpha = Number(a[1]);
          if (!(alpha >= 0 && alpha <= 1)) fail(label, `alpha must be in [0, 1], got ${a[1]}`);
        } else if (w === 'pt') {
          if (granularity) fail(label, 'two activation granularities');
          granularity = 'per-tensor';
        } else if (/^a/.test(w)) {
          fail(label, `alpha must be a number in [0, 1] written a<alpha> (e.g. a0.65), got '${w}'`);
        } else {
          fail(label, `unknown word '${w}'`);
        }
      }
      return {
        label,
        method,
        alpha: alpha ?? 0.5,
        quant: validated(label, { bits: 8, granularity: 'channel', scheme: 'sym' }),
        act: { bits: 8, granularity: granularity ?? 'per-token' },
      };
    }
    default:
      fail(label, `unknown method '${method}'`);
  }
}

/** A comma-separated list of configurations, each once. */
export function parseEvalConfigs(list: string): EvalConfig[] {
  const parts = list.split(',').map((s) => s.trim());
  if (parts.every((p) => p === '')) throw new EvalError(`no configs given (forms: ${FORMS})`);
  const out: EvalConfig[] = [];
  for (const p of parts) {
    if (p === '') throw new EvalError(`empty config name in '${list}'`);
    const c = parseEvalConfig(p);
    if (out.some((o) => o.label === c.label)) throw new EvalError(`config '${c.label}' is given twice`);
    out.push(c);
  }
  return out;
}
