/**
 * Hugging Face safetensors checkpoints of Llama-family models (LlamaForCausalLM, MistralForCausalLM,
 * Qwen2ForCausalLM), single-file or sharded.
 *
 * A .safetensors file (huggingface/safetensors docs): uint64 little-endian N, N bytes of JSON
 * {"name": {"dtype": "F32" | "F16" | "BF16" | ..., "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}},
 * then the data; offsets are relative to byte 8 + N. Shards come with model.safetensors.index.json
 * ({"weight_map": {"tensor": "file"}}); config.json gives the architecture.
 *
 * transformers stores q_proj/k_proj rows permuted for rotate-half RoPE (convert_llama_weights_to_hf.py
 * `permute`; Qwen2 was trained that way); loadTensor returns them in the interleaved order the forward
 * passes use (rope-layout.ts). Tokenizer: a SentencePiece tokenizer.model (Llama 2, Mistral) is read;
 * tokenizer.json (HF tokenizers: Llama 3, Qwen2) is not yet.
 */
import { baseName, readText, type ByteSource } from './byte-source.ts';
import { decodeBf16, decodeF16, decodeF32, encodeF32 } from './half.ts';
import { encodeBf16, encodeF16 } from './ggml-quants.ts';
import { sentencePieceTokenizer } from './sentencepiece-model.ts';
import {
  CheckpointError,
  checkTensorsAgainstConfig,
  expectedTensors,
  numel,
  validateConfig,
  type LlamaArch,
  type LlamaCheckpoint,
  type LlamaConfig,
  type LlamaTensorInfo,
  type TensorDtype,
} from '../llama/model.ts';
import { interleavedToRotateHalf, ropeHeadsOf, rotateHalfToInterleaved } from '../llama/rope-layout.ts';
import type { Tokenizer } from '../llama/tokenizer.ts';

export interface SafetensorsEntry {
  name: string;
  dtype: string;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  tensors: SafetensorsEntry[];
  metadata: Record<string, string>;
  dataOffset: number;
}

/** Largest JSON header accepted (the format's own limit is 100 MB). */
const MAX_HEADER = 100_000_000;
const DTYPE_BYTES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, F8_E4M3: 1, F8_E5M2: 1 };
const READABLE: Record<string, TensorDtype> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };

/** True when the first bytes look like a safetensors header (length, then '{'). */
export function looksLikeSafetensors(head: Uint8Array, size: number): boolean {
  if (head.length < 9) return false;
  const n = Number(new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true));
  return n >= 2 && n <= Math.min(MAX_HEADER, size - 8) && head[8] === 0x7b;
}

export async function readSafetensorsHeader(source: ByteSource): Promise<SafetensorsHeader> {
  const file = baseName(source.name);
  if (source.size < 8) throw new CheckpointError(`${file} is not a safetensors file: ${source.size} bytes`);
  const n8 = await source.read(0, 8);
  const n = new DataView(n8.buffer, n8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER)) throw new CheckpointError(`${file} is not a safetensors file: header length ${n} (bad magic?)`);
  const len = Number(n);
  if (8 + len > source.size) throw new CheckpointError(`${file} is truncated: the JSON header needs bytes 8..${8 + len}, file has ${source.size}`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(await source.read(8, len)));
  } catch (e) {
    throw new CheckpointError(`${file} is not a safetensors file: the header is not JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new CheckpointError(`${file}: the safetensors header is not a JSON object`);
  const dataOffset = 8 + len;
  const tensors: SafetensorsEntry[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = (v ?? {}) as Record<string, string>;
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const ok =
      typeof e === 'object' && e !== null && typeof e.dtype === 'string' && Array.isArray(e.shape) && e.shape.every((d) => Number.isInteger(d) && d >= 0) &&
      Array.isArray(e.data_offsets) && e.data_offsets.length === 2 && e.data_offsets.every((d) => Number.isInteger(d) && d >= 0);
    if (!ok) throw new CheckpointError(`${file}: malformed header entry for tensor ${name}`);
    const [b, en] = e.data_offsets as number[];
    const shape = e.shape as number[];
    const entry = { name, dtype: e.dtype as string, shape, begin: dataOffset + b, end: dataOffset + en };
    const size = DTYPE_BYTES[entry.dtype];
    if (size !== undefined && en - b !== numel(shape) * size) {
      throw new CheckpointError(`${file}: tensor ${name} (${entry.dtype} [${shape.join(', ')}]) should take ${numel(shape) * size} bytes, its offsets span ${en - b}`);
    }
    if (entry.end > source.size) throw new CheckpointError(`${file} is truncated: tensor ${name} needs bytes ${entry.begin}..${entry.end}, file has ${source.size}`);
    tensors.push(entry);
  }
  return { tensors, metadata, dataOffset };
}

const ARCHS: Record<string, LlamaArch> = { LlamaForCausalLM: 'llama', MistralForCausalLM: 'mistral', Qwen2ForCausalLM: 'qwen2' };

/** LlamaConfig from a transformers config.json (parsed). */
export function hfLlamaConfig(cfg: Record<string, unknown>, file = 'config.json'): LlamaConfig {
  const archs = Array.isArray(cfg.architectures) ? (cfg.architectures as string[]) : [];
  const arch = archs.map((a) => ARCHS[a]).find(Boolean) ?? ({ llama: 'llama', mistral: 'mistral', qwen2: 'qwen2' } as Record<string, LlamaArch>)[String(cfg.model_type)];
  if (!arch) {
    throw new CheckpointError(`${file}: architecture ${archs.join(', ') || String(cfg.model_type)} is not supported (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM are)`);
  }
  const num = (k: string, fallback?: number): number => {
    const v = cfg[k];
    if (v === undefined || v === null) {
      if (fallback === undefined) throw new CheckpointError(`${file}: ${k} is missing`);
      return fallback;
    }
    if (typeof v !== 'number') throw new CheckpointError(`${file}: ${k} should be a number, got ${JSON.stringify(v)}`);
    return v;
  };
  if (cfg.rope_scaling !== undefined && cfg.rope_scaling !== null) {
    const t = (cfg.rope_scaling as Record<string, unknown>).rope_type ?? (cfg.rope_scaling as Record<string, unknown>).type;
    if (t !== 'default') throw new CheckpointError(`${file}: rope_scaling "${String(t)}" is not supported yet`);
  }
  const act = cfg.hidden_act ?? 'silu';
  if (act !== 'silu') throw new CheckpointError(`${file}: hidden_act "${String(act)}" is not supported (SwiGLU with silu is)`);
  const dim = num('hidden_size');
  const nHeads = num('num_attention_heads');
  const config: LlamaConfig = {
    dim,
    hiddenDim: num('intermediate_size'),
    nLayers: num('num_hidden_layers'),
    nHeads,
    nKvHeads: num('num_key_value_heads', nHeads),
    vocabSize: num('vocab_size'),
    seqLen: num('max_position_embeddings'),
    normEps: num('rms_norm_eps', 1e-6),
    ropeTheta: num('rope_theta', 10000),
    headDim: num('head_dim', dim / nHeads),
    tiedEmbeddings: cfg.tie_word_embeddings === true,
    arch,
    ropeLayout: 'rotate-half',
  };
  validateConfig(config, file);
  return config;
}

/** HF tensor name -> canonical name; null for tensors to skip; undefined for unknown ones. */
function canonicalName(hf: string): string | null | undefined {
  const fixed: Record<string, string> = { 'model.embed_tokens.weight': 'tok_embeddings', 'model.norm.weight': 'norm', 'lm_head.weight': 'output' };
  if (fixed[hf]) return fixed[hf];
  if (/^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/.test(hf)) return null; // a buffer older checkpoints saved
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(hf);
  if (!m) return undefined;
  const weights: Record<string, string> = {
    input_layernorm: 'attention_norm', 'self_attn.q_proj': 'wq', 'self_attn.k_proj': 'wk', 'self_attn.v_proj': 'wv', 'self_attn.o_proj': 'wo',
    post_attention_layernorm: 'ffn_norm', 'mlp.gate_proj': 'w1', 'mlp.down_proj': 'w2', 'mlp.up_proj': 'w3',
  };
  const biases: Record<string, string> = { 'self_attn.q_proj': 'bq', 'self_attn.k_proj': 'bk', 'self_attn.v_proj': 'bv' };
  const t = m[3] === 'weight' ? weights[m[2]] : biases[m[2]];
  return t ? `layers.${m[1]}.${t}` : undefined;
}

interface Located {
  source: ByteSource;
  entry: SafetensorsEntry;
}

/**
 * Opens a Hugging Face checkpoint from its files: config.json, one or more .safetensors shards, and
 * optionally model.safetensors.index.json (checked against the shards given) and tokenizer.model.
 */
export async function openSafetensors(sources: ByteSource[]): Promise<LlamaCheckpoint> {
  const byBase = new Map(sources.map((s) => [baseName(s.name), s]));
  const shards = sources.filter((s) => s.name.endsWith('.safetensors'));
  if (shards.length === 0) throw new CheckpointError(`no .safetensors file among ${[...byBase.keys()].join(', ')}`);
  const first = baseName(shards[0].name);
  const configSrc = byBase.get('config.json');
  if (!configSrc) throw new CheckpointError(`${first}: a safetensors checkpoint needs its config.json (hidden_size, heads, ...) given alongside`);
  let cfgJson: Record<string, unknown>;
  try {
    cfgJson = JSON.parse(await readText(configSrc)) as Record<string, unknown>;
  } catch (e) {
    throw new CheckpointError(`config.json is not valid JSON: ${(e as Error).message}`);
  }
  const config = hfLlamaConfig(cfgJson);

  const indexSrc = [...byBase.entries()].find(([n]) => n.endsWith('.safetensors.index.json'))?.[1];
  let weightMap: Record<string, string> | undefined;
  if (indexSrc) {
    const idx = JSON.parse(await readText(indexSrc)) as { weight_map?: Record<string, string> };
    weightMap = idx.weight_map;
    if (!weightMap) throw new CheckpointError(`${baseName(indexSrc.name)} has no weight_map`);
    for (const f of new Set(Object.values(weightMap))) {
      if (!byBase.has(f)) throw new CheckpointError(`shard ${f}, listed in ${baseName(indexSrc.name)}, was not given`);
    }
  }

  const located = new Map<string, Located>();
  const infos: LlamaTensorInfo[] = [];
  for (const src of shards) {
    const file = baseName(src.name);
    const h = await readSafetensorsHeader(src);
    for (const e of h.tensors) {
      const name = canonicalName(e.name);
      if (name === null) continue;
      if (name === undefined) throw new CheckpointError(`${file}: tensor ${e.name} is not part of the ${config.arch} architecture QuantLab reads`);
      if (name === 'output' && config.tiedEmbeddings) continue; // transformers ties it to embed_tokens and ignores the copy
      const dtype = READABLE[e.dtype];
      if (!dtype) throw new CheckpointError(`${file}: tensor ${e.name} has dtype ${e.dtype}, which is not supported (F32, F16, BF16 are)`);
      const prior = located.get(name);
      if (prior) throw new CheckpointError(`tensor ${e.name} appears in both ${baseName(prior.source.name)} and ${file}`);
      if (weightMap && weightMap[e.name] !== undefined && weightMap[e.name] !== file) {
        throw new CheckpointError(`tensor ${e.name} is in ${file}, but the index maps it to ${weightMap[e.name]}`);
      }
      located.set(name, { source: src, entry: e });
      infos.push({ name, shape: e.shape, dtype, sourceName: e.name });
    }
  }
  const tensors = checkTensorsAgainstConfig(config, infos, first);

  let tokenizer: Tokenizer | undefined;
  let tokenizerNote: string | undefined;
  const spm = byBase.get('tokenizer.model');
  if (spm) {
    const t = sentencePieceTokenizer(await spm.read(0, spm.size), 'tokenizer.model');
    tokenizer = t.tokenizer;
    tokenizerNote = t.note;
    if (tokenizer && tokenizer.vocabSize > config.vocabSize) {
      throw new CheckpointError(`tokenizer.model has ${tokenizer.vocabSize} tokens, more than the model's vocabulary of ${config.vocabSize}`);
    }
  } else if (byBase.has('tokenizer.json')) {
    tokenizerNote = 'tokenizer.json (Hugging Face tokenizers) is not supported yet; give the SentencePiece tokenizer.model if the model has one';
  } else {
    tokenizerNote = 'no tokenizer.model was given';
  }

  return {
    format: 'safetensors',
    name: first,
    config,
    tensors,
    tokenizer,
    tokenizerNote,
    sizeBytes: sources.reduce((s, x) => s + x.size, 0),
    async loadTensor(name: string) {
      const loc = located.get(name);
      if (!loc) throw new CheckpointError(`${first} has no tensor ${name}`);
      const { entry: e, source } = loc;
      const bytes = await source.read(e.begin, e.end - e.begin);
      const n = numel(e.shape);
      const data = e.dtype === 'F32' ? decodeF32(bytes, 0, n) : e.dtype === 'F16' ? decodeF16(bytes, 0, n) : decodeBf16(bytes, 0, n);
      const heads = ropeHeadsOf(name, config);
      return heads === undefined ? data : rotateHalfToInterleaved(data, heads, e.shape.length > 1 ? e.shape[1] : 1);
    },
  };
}

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16';

export interface SafetensorsWriterTensor {
  name: string;
  shape: number[];
  dtype: SafetensorsDtype;
  data: Float32Array;
}

/** Encodes one .safetensors file as chunks (header padded with spaces to a multiple of 8, as the safetensors library does). */
export function encodeSafetensors(tensors: SafetensorsWriterTensor[], metadata: Record<string, string> = { format: 'pt' }): Uint8Array[] {
  const header: Record<string, unknown> = { __metadata__: metadata };
  const datas: Uint8Array[] = [];
  let offset = 0;
  for (const t of tensors) {
    if (numel(t.shape) !== t.data.length) throw new RangeError(`tensor ${t.name}: shape [${t.shape.join(', ')}] needs ${numel(t.shape)} values, got ${t.data.length}`);
    const bytes = t.dtype === 'F32' ? encodeF32(t.data) : t.dtype === 'F16' ? encodeF16(t.data) : encodeBf16(t.data);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    datas.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const jsonBytes = new TextEncoder().encode(json);
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(jsonBytes.length), true);
  return [len, jsonBytes, ...datas];
}

/** A file of a Hugging Face checkpoint produced by encodeHfCheckpoint. */
export interface HfFile {
  name: string;
  chunks: Uint8Array[];
}

/**
 * Writes a model (canonical names, interleaved q/k) as a Hugging Face checkpoint: config.json, the
 * safetensors shard(s) with HF names and rotate-half q/k rows, and model.safetensors.index.json when
 * sharded.
 */
export function encodeHfCheckpoint(
  cfg: LlamaConfig,
  weights: (name: string) => Float32Array,
  opts: { dtype?: SafetensorsDtype; shards?: number } = {},
): HfFile[] {
  const dtype = opts.dtype ?? 'F32';
  const nShards = Math.max(1, opts.shards ?? 1);
  const hfName: Record<string, string> = {
    tok_embeddings: 'model.embed_tokens.weight', norm: 'model.norm.weight', output: 'lm_head.weight',
    attention_norm: 'input_layernorm.weight', wq: 'self_attn.q_proj.weight', wk: 'self_attn.k_proj.weight', wv: 'self_attn.v_proj.weight',
    wo: 'self_attn.o_proj.weight', bq: 'self_attn.q_proj.bias', bk: 'self_attn.k_proj.bias', bv: 'self_attn.v_proj.bias',
    ffn_norm: 'post_attention_layernorm.weight', w1: 'mlp.gate_proj.weight', w2: 'mlp.down_proj.weight', w3: 'mlp.up_proj.weight',
  };
  const withBiases = cfg.arch === 'qwen2';
  const all: SafetensorsWriterTensor[] = expectedTensors(cfg, withBiases).map((e) => {
    const m = /^layers\.(\d+)\.(\w+)$/.exec(e.name);
    const name = m ? `model.layers.${m[1]}.${hfName[m[2]]}` : hfName[e.name];
    let data = weights(e.name);
    const heads = ropeHeadsOf(e.name, cfg);
    if (heads !== undefined) data = interleavedToRotateHalf(data, heads, e.shape.length > 1 ? e.shape[1] : 1);
    return { name, shape: e.shape, dtype, data };
  });
  const config = hfConfigJson(cfg, { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype]);
  const files: HfFile[] = [{ name: 'config.json', chunks: [new TextEncoder().encode(JSON.stringify(config, null, 2))] }];
  if (nShards === 1) {
    files.push({ name: 'model.safetensors', chunks: encodeSafetensors(all) });
    return files;
  }
  const per = Math.ceil(all.length / nShards);
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  for (let s = 0; s < nShards; s++) {
    const name = `model-${String(s + 1).padStart(5, '0')}-of-${String(nShards).padStart(5, '0')}.safetensors`;
    const part = all.slice(s * per, (s + 1) * per);
    for (const t of part) {
      weightMap[t.name] = name;
      totalSize += t.data.length * (dtype === 'F32' ? 4 : 2);
    }
    files.push({ name, chunks: encodeSafetensors(part) });
  }
  const index = { metadata: { total_size: totalSize }, weight_map: weightMap };
  files.push({ name: 'model.safetensors.index.json', chunks: [new TextEncoder().encode(JSON.stringify(index, null, 2))] });
  return files;
}

/** transformers' config.json of a Llama-family model (LlamaForCausalLM and friends), without quantization_config. */
export function hfConfigJson(cfg: LlamaConfig, torchDtype = 'float16'): Record<string, unknown> {
  return {
    architectures: [{ llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM' }[cfg.arch]],
    model_type: cfg.arch,
    hidden_size: cfg.dim,
    intermediate_size: cfg.hiddenDim,
    num_hidden_layers: cfg.nLayers,
    num_attention_heads: cfg.nHeads,
    num_key_value_heads: cfg.nKvHeads,
    head_dim: cfg.headDim,
    vocab_size: cfg.vocabSize,
    max_position_embeddings: cfg.seqLen,
    rms_norm_eps: cfg.normEps,
    rope_theta: cfg.ropeTheta,
    tie_word_embeddings: cfg.tiedEmbeddings,
    hidden_act: 'silu',
    torch_dtype: torchDtype,
  };
}
