/**
 * The model representation every Llama-family loader produces (llama2.c .bin, GGUF, Hugging Face
 * safetensors) and every consumer reads (the CPU reference forward pass, the WGSL forward pass,
 * quantization). Tensors carry canonical llama2.c / Meta names; linear weights are PyTorch [out, in]
 * row-major, and q/k rows are always handed out in the interleaved-pair RoPE layout (see rope-layout.ts).
 */
import type { Tokenizer } from './tokenizer.ts';

export type LlamaArch = 'llama' | 'mistral' | 'qwen2';

/**
 * How the source file orders q/k rows inside a head. `interleaved`: RoPE rotates pairs (2i, 2i+1)
 * (Meta's original code, llama2.c, GGUF llama). `rotate-half`: pairs (i, i + headDim/2) (Hugging Face,
 * GGUF qwen2). loadTensor converts to interleaved either way; this field records where the data came from.
 */
export type RopeLayout = 'interleaved' | 'rotate-half';

/** Storage type of a tensor in its file (loadTensor always returns float32). */
export type TensorDtype = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0';

export type CheckpointFormat = 'llama2c' | 'gguf' | 'safetensors';

export interface LlamaConfig {
  /** Residual stream width (hidden_size). */
  dim: number;
  /** SwiGLU inner width (intermediate_size). */
  hiddenDim: number;
  nLayers: number;
  /** Query heads. */
  nHeads: number;
  /** Key/value heads (grouped-query attention when < nHeads). */
  nKvHeads: number;
  vocabSize: number;
  /** Longest context the model supports (the KV cache length). */
  seqLen: number;
  /** RMSNorm epsilon. */
  normEps: number;
  /** RoPE base (10000 for Llama 1/2, 500000 for Llama 3, 1e6 for Qwen2). */
  ropeTheta: number;
  /** Per-head width; dim / nHeads unless the checkpoint says otherwise. */
  headDim: number;
  /** The classifier reuses tok_embeddings (no `output` tensor). */
  tiedEmbeddings: boolean;
  arch: LlamaArch;
  ropeLayout: RopeLayout;
}

export interface LlamaTensorInfo {
  /**
   * Canonical name: tok_embeddings, layers.N.attention_norm, layers.N.wq / wk / wv / wo,
   * layers.N.bq / bk / bv (biases, Qwen2), layers.N.ffn_norm, layers.N.w1 (gate) / w2 (down) / w3 (up),
   * norm, output.
   */
  name: string;
  /** [out, in] for linears and embeddings, [n] for norms and biases. */
  shape: number[];
  /** Storage type in the file. */
  dtype: TensorDtype;
  /** The name in the file (e.g. blk.0.attn_q.weight, model.layers.0.self_attn.q_proj.weight). */
  sourceName: string;
}

export interface LlamaCheckpoint {
  format: CheckpointFormat;
  /** File name (the first file for sharded checkpoints). */
  name: string;
  config: LlamaConfig;
  /** Every tensor the model uses, in a stable order (embeddings, layers in order, norm, output). */
  tensors: LlamaTensorInfo[];
  tokenizer?: Tokenizer;
  /** Why there is no tokenizer, when there is none. */
  tokenizerNote?: string;
  /** Reads one tensor: float32, [out, in] row-major, q/k (and their biases) in the interleaved RoPE layout. */
  loadTensor(name: string): Promise<Float32Array>;
  /** Bytes of the checkpoint file(s). */
  sizeBytes: number;
}

/** A checkpoint that cannot be read: bad magic, truncated data, unsupported type, inconsistent shapes. */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

export const LAYER_TENSORS = ['attention_norm', 'wq', 'wk', 'wv', 'wo', 'ffn_norm', 'w1', 'w2', 'w3'] as const;
export const BIAS_TENSORS = ['bq', 'bk', 'bv'] as const;
export type LayerTensor = (typeof LAYER_TENSORS)[number] | (typeof BIAS_TENSORS)[number];

export const layerTensorName = (layer: number, t: LayerTensor): string => `layers.${layer}.${t}`;

/** The linear weights (the tensors quantization acts on), in forward order. */
export function linearTensorNames(cfg: LlamaConfig): string[] {
  const out: string[] = [];
  for (let l = 0; l < cfg.nLayers; l++) for (const t of ['wq', 'wk', 'wv', 'wo', 'w1', 'w3', 'w2'] as const) out.push(layerTensorName(l, t));
  return out;
}

/**
 * Every tensor a config implies, with its shape, in checkpoint order. `output` is listed unless the
 * embeddings are tied; biases only when `withBiases`.
 */
export function expectedTensors(cfg: LlamaConfig, withBiases = false): { name: string; shape: number[] }[] {
  const q = cfg.nHeads * cfg.headDim;
  const kv = cfg.nKvHeads * cfg.headDim;
  const out: { name: string; shape: number[] }[] = [{ name: 'tok_embeddings', shape: [cfg.vocabSize, cfg.dim] }];
  for (let l = 0; l < cfg.nLayers; l++) {
    const p = `layers.${l}.`;
    out.push(
      { name: p + 'attention_norm', shape: [cfg.dim] },
      { name: p + 'wq', shape: [q, cfg.dim] },
      { name: p + 'wk', shape: [kv, cfg.dim] },
      { name: p + 'wv', shape: [kv, cfg.dim] },
    );
    if (withBiases) out.push({ name: p + 'bq', shape: [q] }, { name: p + 'bk', shape: [kv] }, { name: p + 'bv', shape: [kv] });
    out.push(
      { name: p + 'wo', shape: [cfg.dim, q] },
      { name: p + 'ffn_norm', shape: [cfg.dim] },
      { name: p + 'w1', shape: [cfg.hiddenDim, cfg.dim] },
      { name: p + 'w2', shape: [cfg.dim, cfg.hiddenDim] },
      { name: p + 'w3', shape: [cfg.hiddenDim, cfg.dim] },
    );
  }
  out.push({ name: 'norm', shape: [cfg.dim] });
  if (!cfg.tiedEmbeddings) out.push({ name: 'output', shape: [cfg.vocabSize, cfg.dim] });
  return out;
}

/** Throws CheckpointError naming the first field of a config that cannot describe a Llama model. */
export function validateConfig(cfg: LlamaConfig, file: string): void {
  const ints: (keyof LlamaConfig)[] = ['dim', 'hiddenDim', 'nLayers', 'nHeads', 'nKvHeads', 'vocabSize', 'seqLen', 'headDim'];
  for (const k of ints) {
    const v = cfg[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new CheckpointError(`${file}: config ${k} must be a positive integer, got ${String(v)}`);
  }
  if (cfg.nHeads % cfg.nKvHeads !== 0) {
    throw new CheckpointError(`${file}: ${cfg.nHeads} attention heads cannot be shared by ${cfg.nKvHeads} key/value heads (must divide evenly)`);
  }
  if (cfg.headDim % 2 !== 0) throw new CheckpointError(`${file}: head dimension ${cfg.headDim} is odd; RoPE rotates pairs`);
  if (!(cfg.normEps > 0) || !(cfg.ropeTheta > 0)) {
    throw new CheckpointError(`${file}: config normEps (${cfg.normEps}) and ropeTheta (${cfg.ropeTheta}) must be positive`);
  }
}

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * Checks that the tensors a loader found are exactly the ones the config implies (extra biases allowed
 * as a complete q/k/v set) with matching shapes, and returns them in canonical order.
 */
export function checkTensorsAgainstConfig(cfg: LlamaConfig, found: LlamaTensorInfo[], file: string): LlamaTensorInfo[] {
  const byName = new Map(found.map((t) => [t.name, t]));
  const withBiases = byName.has('layers.0.bq') || byName.has('layers.0.bk') || byName.has('layers.0.bv');
  const ordered: LlamaTensorInfo[] = [];
  const configText = `dim ${cfg.dim}, hidden ${cfg.hiddenDim}, ${cfg.nHeads} heads, ${cfg.nKvHeads} kv heads, head dim ${cfg.headDim}, vocab ${cfg.vocabSize}`;
  for (const e of expectedTensors(cfg, withBiases)) {
    const t = byName.get(e.name);
    if (!t) throw new CheckpointError(`${file}: tensor ${e.name} is missing (expected shape ${shapeText(e.shape)} from the config)`);
    if (t.shape.length !== e.shape.length || t.shape.some((d, i) => d !== e.shape[i])) {
      throw new CheckpointError(`${file}: tensor ${t.sourceName} (${e.name}) has shape ${shapeText(t.shape)}, but the config (${configText}) implies ${shapeText(e.shape)}`);
    }
    ordered.push(t);
    byName.delete(e.name);
  }
  if (byName.has('output') && cfg.tiedEmbeddings) {
    throw new CheckpointError(`${file}: the config ties the classifier to the embeddings, but the file has an output tensor`);
  }
  for (const t of byName.values()) {
    throw new CheckpointError(`${file}: tensor ${t.sourceName} (${t.name}) does not belong to a ${cfg.nLayers}-layer model`);
  }
  return ordered;
}

/** Number of elements of a shape. */
export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
