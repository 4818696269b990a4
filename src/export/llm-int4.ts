/**
 * What the INT4 checkpoint exporters (AutoAWQ GEMM, TinyChat v2) share: one quantized linear as the lab's
 * quantizer produces it (unsigned 4-bit codes, a scale and an integer zero point per group of `groupSize`
 * input channels, x' = (q - z) * s: REFERENCE.md section 1, identical to AutoAWQ's and llm-awq's
 * asymmetric quantizer), the Hugging Face Llama names and config.json the checkpoints use, and the
 * per-layer checks that refuse what a layout cannot hold before any bytes are written.
 *
 * Linears are handed in the lab's canonical basis ([out, in], q/k rows interleaved, see rope-layout.ts);
 * Hugging Face layouts want q_proj / k_proj rows in rotate-half order. Every group lies inside one row, so
 * permuting the rows of the weight permutes the rows of its codes, scales and zeros the same way: the
 * exporters permute the lab's codes instead of quantizing again, and the file holds exactly the lab's
 * integers.
 *
 * AWQ plugs in through `linears` (codes of the scaled weight W diag(s), as quantizeScaledRef returns them)
 * and `replaced` (the norm divided by s, or the previous linear's rows divided by s), which is how AutoAWQ
 * stores a searched model; linears not given are quantized here with round-to-nearest.
 */
import { QuantConfigError, type QuantConfig } from '../quant/config.ts';
import { makeGroupLayout } from '../quant/layout.ts';
import { groupStatsRef } from '../quant/reference/stats.ts';
import { qparamsRef, quantizeRef } from '../quant/reference/quantize.ts';
import { expectedTensors, linearTensorNames, type LlamaCheckpoint, type LlamaConfig } from '../model/llama/model.ts';
import { interleavedToRotateHalf, ropeHeadsOf } from '../model/llama/rope-layout.ts';

/** A linear weight quantized to unsigned INT4 per group along the input axis. */
export interface LinearInt4 {
  /** [out, in] = [N, K]. */
  shape: [number, number];
  groupSize: number;
  /** Codes 0..15, [N, K] row-major. */
  codes: Uint8Array;
  /** Scale per group, [N, K / groupSize] row-major. */
  scales: Float32Array;
  /** Integer zero point 0..15 per group, [N, K / groupSize]. */
  zeros: Float32Array | Uint8Array;
}

/** The checkpoint cannot be written in the chosen layout; `problems` has one line per offending layer. */
export class LlmExportError extends Error {
  override name = 'LlmExportError';
  constructor(
    readonly format: string,
    readonly problems: string[],
  ) {
    super(`cannot export ${format}:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
}

/** A file of an exported checkpoint, as chunks to write one after another. */
export interface LlmExportFile {
  name: string;
  chunks: Uint8Array[];
}

export const int4QuantConfig = (groupSize: number, clipRatio = 1): QuantConfig => ({ bits: 4, granularity: 'group', groupSize, scheme: 'asym', clipRatio });

/** Round-to-nearest INT4 of one linear with the lab's CPU reference quantizer (bit-identical to its GPU kernels). */
export function rtnLinearInt4(w: Float32Array, shape: [number, number], groupSize: number, clipRatio = 1): LinearInt4 {
  const [n, k] = shape;
  if (k % groupSize !== 0) throw new QuantConfigError(`${k} input channels are not a multiple of the group size ${groupSize}`);
  const cfg = int4QuantConfig(groupSize, clipRatio);
  const layout = makeGroupLayout(shape, 'group', groupSize);
  const qp = qparamsRef(groupStatsRef(w, layout), cfg);
  const codes = quantizeRef(w, layout, qp, cfg) as Uint8Array;
  if (codes.length !== n * k) throw new RangeError(`weight of ${w.length} values does not match [${n}, ${k}]`);
  return { shape, groupSize, codes, scales: qp.scale, zeros: qp.zero };
}

/** The rows of a linear's codes, scales and zeros permuted to Hugging Face's rotate-half order (q/k only). */
export function linearToHfRows(name: string, lin: LinearInt4, cfg: LlamaConfig): LinearInt4 {
  const heads = ropeHeadsOf(name, cfg);
  if (heads === undefined) return lin;
  const [n, k] = lin.shape;
  const gpr = k / lin.groupSize;
  const perm = interleavedToRotateHalf(Float32Array.from({ length: n }, (_, i) => i), heads, 1);
  const codes = new Uint8Array(lin.codes.length);
  const scales = new Float32Array(lin.scales.length);
  const zeros = new Float32Array(lin.zeros.length);
  for (let r = 0; r < n; r++) {
    const src = perm[r];
    codes.set(lin.codes.subarray(src * k, (src + 1) * k), r * k);
    for (let g = 0; g < gpr; g++) {
      scales[r * gpr + g] = lin.scales[src * gpr + g];
      zeros[r * gpr + g] = lin.zeros[src * gpr + g];
    }
  }
  return { ...lin, codes, scales, zeros };
}

const HF_NAMES: Record<string, string> = {
  tok_embeddings: 'model.embed_tokens', norm: 'model.norm', output: 'lm_head',
  attention_norm: 'input_layernorm', wq: 'self_attn.q_proj', wk: 'self_attn.k_proj', wv: 'self_attn.v_proj', wo: 'self_attn.o_proj',
  ffn_norm: 'post_attention_layernorm', w1: 'mlp.gate_proj', w2: 'mlp.down_proj', w3: 'mlp.up_proj',
};
const HF_BIASES: Record<string, string> = { bq: 'self_attn.q_proj', bk: 'self_attn.k_proj', bv: 'self_attn.v_proj' };

/** Hugging Face module path of a canonical tensor (model.layers.0.self_attn.q_proj, model.norm, lm_head); biases name their linear. */
export function hfModuleName(canonical: string): string {
  const m = /^layers\.(\d+)\.(\w+)$/.exec(canonical);
  const local = m ? m[2] : canonical;
  const mod = HF_NAMES[local] ?? HF_BIASES[local];
  if (!mod) throw new RangeError(`${canonical} has no Hugging Face name`);
  return m ? `model.layers.${m[1]}.${mod}` : mod;
}

/** Hugging Face tensor name of a canonical float tensor (…weight, or …bias for bq/bk/bv). */
export function hfTensorName(canonical: string): string {
  return `${hfModuleName(canonical)}.${/\.b[qkv]$/.test(canonical) ? 'bias' : 'weight'}`;
}

/** transformers' config.json (model/formats/safetensors.ts, shared with the FP16/FP32 safetensors writer). */
export { hfConfigJson } from '../model/formats/safetensors.ts';

export interface Int4ExportOptions {
  /** Input channels per group (default 128). */
  groupSize?: number;
  /** Clip ratio of the RTN quantizer for linears not given in `linears` (default 1: no clipping). */
  clipRatio?: number;
  /** Linears already quantized (e.g. AWQ's codes of the scaled weights), by canonical name, canonical basis. */
  linears?: ReadonlyMap<string, LinearInt4>;
  /** Float tensors replacing the checkpoint's (AWQ's divided norms, smoothed or fake-quantized weights). */
  replaced?: ReadonlyMap<string, Float32Array>;
  onProgress?: (done: number, total: number, name: string) => void;
}

/** Shapes of the linears an INT4 export quantizes (the transformer blocks' seven; embeddings and lm_head stay fp16, as AutoAWQ leaves them). */
export function int4Linears(cfg: LlamaConfig): { name: string; shape: [number, number] }[] {
  const shapes = new Map(expectedTensors(cfg).map((e) => [e.name, e.shape]));
  return linearTensorNames(cfg).map((name) => ({ name, shape: shapes.get(name) as [number, number] }));
}

/**
 * Checks every linear against a layout's packing rule and the given quantized linears against the model;
 * throws LlmExportError listing every offending layer. `rule` returns why a [N, K] linear cannot be packed.
 */
export function checkInt4Export(
  format: string,
  ckpt: Pick<LlamaCheckpoint, 'config' | 'tensors'>,
  opts: Int4ExportOptions,
  groupSize: number,
  rule: (n: number, k: number) => string | undefined,
): void {
  const problems: string[] = [];
  if (!Number.isInteger(groupSize) || groupSize < 1) throw new LlmExportError(format, [`group size must be a positive integer, got ${groupSize}`]);
  const linears = int4Linears(ckpt.config);
  const known = new Set(linears.map((l) => l.name));
  for (const { name, shape } of linears) {
    const [n, k] = shape;
    const where = `${name} (${hfModuleName(name)}, [${n}, ${k}])`;
    if (k % groupSize !== 0) problems.push(`${where}: K = ${k} input channels is not a multiple of the group size ${groupSize}`);
    const why = rule(n, k);
    if (why) problems.push(`${where}: ${why}`);
    const given = opts.linears?.get(name);
    if (given) {
      if (given.shape[0] !== n || given.shape[1] !== k) problems.push(`${where}: the quantized linear given has shape [${given.shape.join(', ')}]`);
      else if (given.groupSize !== groupSize) problems.push(`${where}: the quantized linear given has group size ${given.groupSize}, the export ${groupSize}`);
      else if (given.codes.length !== n * k || given.scales.length !== (n * k) / groupSize || given.zeros.length !== (n * k) / groupSize) {
        problems.push(`${where}: the quantized linear given has ${given.codes.length} codes, ${given.scales.length} scales and ${given.zeros.length} zeros; expected ${n * k}, ${(n * k) / groupSize}, ${(n * k) / groupSize}`);
      } else if (given.codes.some((c) => c > 15) || given.zeros.some((z) => !(Number.isInteger(z) && z >= 0 && z <= 15))) {
        problems.push(`${where}: the quantized linear given has codes or zero points outside 0..15`);
      }
    }
  }
  for (const name of opts.linears?.keys() ?? []) {
    if (!known.has(name)) problems.push(`${name}: a quantized linear was given for it, but the model has no such linear`);
  }
  const tensorNames = new Set(ckpt.tensors.map((t) => t.name));
  for (const name of opts.replaced?.keys() ?? []) {
    if (!tensorNames.has(name)) problems.push(`${name}: a replacement tensor was given for it, but the model has no such tensor`);
  }
  // Two canonical tensors must never land on one file name (a map gone wrong, or an unknown tensor).
  const owner = new Map<string, string>();
  for (const t of ckpt.tensors) {
    let out: string;
    try {
      out = hfTensorName(t.name);
    } catch {
      problems.push(`${t.name}: has no Hugging Face name`);
      continue;
    }
    const prior = owner.get(out);
    if (prior) problems.push(`${t.name}: its name ${out} collides with ${prior}'s`);
    else owner.set(out, t.name);
  }
  if (problems.length) throw new LlmExportError(format, problems);
}

/** Every linear of the export quantized (given or RTN), in canonical order, canonical basis. */
export async function quantizedLinears(ckpt: Pick<LlamaCheckpoint, 'config' | 'loadTensor'>, opts: Int4ExportOptions, groupSize: number): Promise<Map<string, LinearInt4>> {
  const out = new Map<string, LinearInt4>();
  const linears = int4Linears(ckpt.config);
  let done = 0;
  for (const { name, shape } of linears) {
    const given = opts.linears?.get(name);
    out.set(name, given ?? rtnLinearInt4(opts.replaced?.get(name) ?? (await ckpt.loadTensor(name)), shape, groupSize, opts.clipRatio ?? 1));
    opts.onProgress?.(++done, linears.length, name);
  }
  return out;
}
