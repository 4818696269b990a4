/**
 * GGUF (llama.cpp's model format, versions 2 and 3; ggml/docs/gguf.md), read in pieces:
 *
 *   uint32 magic "GGUF", uint32 version, uint64 tensor_count, uint64 metadata_kv_count,
 *   metadata: (string key, uint32 value_type, value)...; a string is uint64 length + UTF-8 bytes;
 *     an array is uint32 item type, uint64 count, items,
 *   tensor infos: (string name, uint32 n_dims, uint64 ne[n_dims], uint32 ggml_type, uint64 offset)...,
 *   padding to `general.alignment` (default 32), tensor data (offsets relative to its start, aligned).
 *
 * ne[0] is the fastest-moving dimension (a row's length), so a PyTorch [out, in] weight has ne = [in, out];
 * shapes are reversed into [out, in] here. llama.cpp's convert_hf_to_gguf.py permutes Hugging Face's
 * q/k rows back to the interleaved RoPE order for the llama architecture (LlamaModel.permute, because
 * llama.cpp applies its "normal" pairwise RoPE to llama), but keeps qwen2 in the rotate-half order (NEOX
 * RoPE); loadTensor converts qwen2's q/k to interleaved.
 */
import { baseName, type ByteSource } from './byte-source.ts';
import { LITTLE_ENDIAN } from './half.ts';
import { dequantizeGgml, ggmlBlockInfo, ggmlTypeName, GGML_TYPE, READABLE_GGML_TYPES } from './ggml-quants.ts';
import {
  CheckpointError,
  checkTensorsAgainstConfig,
  numel,
  validateConfig,
  type LlamaArch,
  type LlamaCheckpoint,
  type LlamaConfig,
  type LlamaTensorInfo,
  type TensorDtype,
} from '../llama/model.ts';
import { rotateHalfToInterleaved, ropeHeadsOf } from '../llama/rope-layout.ts';
import { Tokenizer } from '../llama/tokenizer.ts';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value types, by their numbers in the file. */
export const GGUF_VALUE_TYPES = ['uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32', 'float32', 'bool', 'string', 'array', 'uint64', 'int64', 'float64'] as const;
export type GgufValueType = (typeof GGUF_VALUE_TYPES)[number];

export type GgufArrayItems =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | BigUint64Array
  | BigInt64Array
  | boolean[]
  | string[]
  | GgufValue[];

/** One metadata value with its GGUF type; numeric arrays are typed arrays, 64-bit integers bigints. */
export type GgufValue =
  | { type: 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'float64'; value: number }
  | { type: 'uint64' | 'int64'; value: bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: GgufValueType; value: GgufArrayItems };

export interface GgufTensorInfo {
  name: string;
  /** Dimensions as stored, fastest first (ne[0] = row length). */
  ne: number[];
  /** ggml_type number. */
  type: number;
  /** Absolute byte offset of the data in the file. */
  offset: number;
  /** Bytes of data, when the type's block layout is known. */
  byteLength?: number;
}

export interface GgufFile {
  version: number;
  alignment: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  /** Absolute offset where tensor data starts. */
  dataOffset: number;
}

/** Thrown by the parser when the bytes read so far end inside the header; the caller reads more. */
class NeedMoreBytes extends Error {}

const utf8 = new TextDecoder();

class Cursor {
  pos = 0;
  private readonly dv: DataView;
  constructor(
    readonly bytes: Uint8Array,
    /** Size of the whole file: distinguishes "read more" from "the file ends here". */
    private readonly fileSize: number,
    private readonly file: string,
  ) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(n: number, what: string): void {
    if (this.pos + n <= this.bytes.length) return;
    if (this.pos + n > this.fileSize) {
      throw new CheckpointError(`${this.file} is truncated: ${what} needs bytes ${this.pos}..${this.pos + n} of the header, file has ${this.fileSize}`);
    }
    throw new NeedMoreBytes();
  }
  u8(what: string) {
    this.need(1, what);
    return this.bytes[this.pos++];
  }
  u32(what: string) {
    this.need(4, what);
    const v = this.dv.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  /** A uint64 that must fit a JavaScript number (counts, lengths, offsets). */
  size(what: string): number {
    this.need(8, what);
    const v = this.dv.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new CheckpointError(`${this.file} is corrupt: ${what} is ${v}`);
    return Number(v);
  }
  string(what: string): string {
    const len = this.size(`the length of ${what}`);
    if (len > this.fileSize) throw new CheckpointError(`${this.file} is corrupt: ${what} claims ${len} bytes, more than the file`);
    this.need(len, what);
    const s = utf8.decode(this.bytes.subarray(this.pos, this.pos + len));
    this.pos += len;
    return s;
  }
  scalar(type: GgufValueType, what: string): GgufValue {
    const dv = this.dv;
    const at = (n: number) => {
      this.need(n, what);
      const p = this.pos;
      this.pos += n;
      return p;
    };
    switch (type) {
      case 'uint8': return { type, value: dv.getUint8(at(1)) };
      case 'int8': return { type, value: dv.getInt8(at(1)) };
      case 'uint16': return { type, value: dv.getUint16(at(2), true) };
      case 'int16': return { type, value: dv.getInt16(at(2), true) };
      case 'uint32': return { type, value: dv.getUint32(at(4), true) };
      case 'int32': return { type, value: dv.getInt32(at(4), true) };
      case 'float32': return { type, value: dv.getFloat32(at(4), true) };
      case 'float64': return { type, value: dv.getFloat64(at(8), true) };
      case 'uint64': return { type, value: dv.getBigUint64(at(8), true) };
      case 'int64': return { type, value: dv.getBigInt64(at(8), true) };
      case 'bool': {
        const b = dv.getUint8(at(1));
        if (b > 1) throw new CheckpointError(`${this.file} is corrupt: ${what} is a bool with byte ${b}`);
        return { type, value: b === 1 };
      }
      case 'string': return { type, value: this.string(what) };
      case 'array': return this.array(what);
    }
  }
  valueType(what: string): GgufValueType {
    const t = this.u32(`the type of ${what}`);
    const name = GGUF_VALUE_TYPES[t];
    if (name === undefined) throw new CheckpointError(`${this.file} is corrupt: ${what} has unknown value type ${t}`);
    return name;
  }
  array(what: string): GgufValue {
    const itemType = this.valueType(`the items of ${what}`);
    const n = this.size(`the length of ${what}`);
    if (n > this.fileSize - this.pos) throw new CheckpointError(`${this.file} is corrupt: ${what} claims ${n} items, more than the file can hold`);
    const typed = TYPED[itemType as keyof typeof TYPED];
    if (typed) {
      const [Ctor, size] = typed;
      this.need(n * size, what);
      const src = this.bytes.subarray(this.pos, this.pos + n * size);
      this.pos += n * size;
      let value: GgufArrayItems;
      if (LITTLE_ENDIAN) value = new Ctor(src.slice().buffer);
      else {
        const tmp = new Cursor(src, src.length, this.file);
        value = new Ctor(n);
        for (let i = 0; i < n; i++) (value as unknown as unknown[])[i] = tmp.scalar(itemType, what).value;
      }
      return { type: 'array', itemType, value };
    }
    if (itemType === 'bool') {
      const value: boolean[] = [];
      for (let i = 0; i < n; i++) value.push(this.scalar('bool', what).value as boolean);
      return { type: 'array', itemType, value };
    }
    if (itemType === 'string') {
      const value: string[] = [];
      for (let i = 0; i < n; i++) value.push(this.string(`${what}[${i}]`));
      return { type: 'array', itemType, value };
    }
    const value: GgufValue[] = [];
    for (let i = 0; i < n; i++) value.push(this.array(`${what}[${i}]`));
    return { type: 'array', itemType, value };
  }
}

type TypedCtor = new (x: ArrayBuffer | number) => Exclude<GgufArrayItems, boolean[] | string[] | GgufValue[]>;
const TYPED: Record<string, [TypedCtor, number]> = {
  uint8: [Uint8Array, 1], int8: [Int8Array, 1], uint16: [Uint16Array, 2], int16: [Int16Array, 2],
  uint32: [Uint32Array, 4], int32: [Int32Array, 4], float32: [Float32Array, 4], float64: [Float64Array, 8],
  uint64: [BigUint64Array, 8], int64: [BigInt64Array, 8],
};

function parseHeader(bytes: Uint8Array, fileSize: number, file: string): GgufFile {
  const c = new Cursor(bytes, fileSize, file);
  const magic = c.u32('the magic');
  if (magic !== GGUF_MAGIC) {
    const shown = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new CheckpointError(`${file} is not a GGUF file: bad magic ${shown} (expected 47 47 55 46, "GGUF")`);
  }
  const version = c.u32('the version');
  if (version === 1) throw new CheckpointError(`${file} is GGUF version 1, which is not supported (versions 2 and 3 are); re-convert it with a current llama.cpp`);
  if (version !== 2 && version !== 3) {
    const swapped = ((version & 0xff) << 24) | ((version & 0xff00) << 8) | ((version >>> 8) & 0xff00) | (version >>> 24);
    if (swapped === 2 || swapped === 3) throw new CheckpointError(`${file} is a big-endian GGUF file, which is not supported`);
    throw new CheckpointError(`${file}: unsupported GGUF version ${version} (versions 2 and 3 are supported)`);
  }
  const nTensors = c.size('the tensor count');
  const nKv = c.size('the metadata count');
  if (nTensors > fileSize || nKv > fileSize) throw new CheckpointError(`${file} is corrupt: header claims ${nTensors} tensors and ${nKv} metadata entries`);
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < nKv; i++) {
    const key = c.string(`metadata key ${i}`);
    const type = c.valueType(`metadata ${key}`);
    metadata.set(key, c.scalar(type, `metadata ${key}`));
  }
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const al = metadata.get('general.alignment');
  if (al) {
    if (al.type !== 'uint32' || al.value === 0 || (al.value & (al.value - 1)) !== 0) {
      throw new CheckpointError(`${file}: general.alignment must be a power-of-two uint32, got ${String(al.value)} (${al.type})`);
    }
    alignment = al.value;
  }
  const infos: { name: string; ne: number[]; type: number; rel: number }[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = c.string(`the name of tensor ${i}`);
    const nDims = c.u32(`the dimension count of tensor ${name}`);
    if (nDims < 1 || nDims > 4) throw new CheckpointError(`${file} is corrupt: tensor ${name} has ${nDims} dimensions (GGML allows 1 to 4)`);
    const ne: number[] = [];
    for (let d = 0; d < nDims; d++) ne.push(c.size(`dimension ${d} of tensor ${name}`));
    const type = c.u32(`the type of tensor ${name}`);
    const rel = c.size(`the data offset of tensor ${name}`);
    infos.push({ name, ne, type, rel });
  }
  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  const tensors: GgufTensorInfo[] = infos.map(({ name, ne, type, rel }) => {
    if (rel % alignment !== 0) throw new CheckpointError(`${file} is corrupt: tensor ${name} starts at data offset ${rel}, not a multiple of the alignment ${alignment}`);
    const block = ggmlBlockInfo(type);
    const n = ne.reduce((a, b) => a * b, 1);
    let byteLength: number | undefined;
    if (block) {
      if (ne[0] % block.blockSize !== 0) {
        throw new CheckpointError(`${file} is corrupt: tensor ${name} of type ${ggmlTypeName(type)} has rows of ${ne[0]} values, not a multiple of its block size ${block.blockSize}`);
      }
      byteLength = (n / block.blockSize) * block.blockBytes;
    }
    return { name, ne, type, offset: dataOffset + rel, byteLength };
  });
  return { version, alignment, metadata, tensors, dataOffset };
}

/** Reads a GGUF file's header, metadata and tensor directory (not the tensor data). */
export async function readGgufHeader(source: ByteSource): Promise<GgufFile> {
  const file = baseName(source.name);
  let chunk = Math.min(source.size, 1 << 20);
  for (;;) {
    const bytes = await source.read(0, chunk);
    try {
      return parseHeader(bytes, source.size, file);
    } catch (e) {
      if (!(e instanceof NeedMoreBytes)) throw e;
      chunk = Math.min(source.size, chunk * 4);
    }
  }
}

/** A metadata value as plain JavaScript (bigints that fit become numbers; arrays stay arrays). */
export function ggufPlain(v: GgufValue | undefined): unknown {
  if (v === undefined) return undefined;
  if (v.type === 'uint64' || v.type === 'int64') return v.value <= BigInt(Number.MAX_SAFE_INTEGER) && v.value >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v.value) : v.value;
  return v.value;
}

const NUMERIC = new Set<GgufValueType>(['uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32', 'float32', 'float64', 'uint64', 'int64']);

function metaNumber(meta: Map<string, GgufValue>, key: string, file: string): number | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  if (!NUMERIC.has(v.type)) throw new CheckpointError(`${file}: metadata ${key} should be a number, is a ${v.type}`);
  return Number(v.value);
}

function metaString(meta: Map<string, GgufValue>, key: string): string | undefined {
  const v = meta.get(key);
  return v?.type === 'string' ? v.value : undefined;
}

/**
 * The shortest decimal that rounds to the same float32: GGUF stores eps and theta as float32, so 1e-5
 * arrives as 9.99999974e-6; this gives back the 1e-5 the converter wrote.
 */
function shortestF32(v: number): number {
  for (let p = 1; p <= 9; p++) {
    const d = Number(v.toPrecision(p));
    if (Math.fround(d) === Math.fround(v)) return d;
  }
  return v;
}

/** GGUF tensor name -> canonical name. */
function canonicalName(gguf: string): string | undefined {
  const fixed: Record<string, string> = { 'token_embd.weight': 'tok_embeddings', 'output_norm.weight': 'norm', 'output.weight': 'output' };
  if (fixed[gguf]) return fixed[gguf];
  const m = /^blk\.(\d+)\.(\w+)\.(weight|bias)$/.exec(gguf);
  if (!m) return undefined;
  const weights: Record<string, string> = {
    attn_norm: 'attention_norm', attn_q: 'wq', attn_k: 'wk', attn_v: 'wv', attn_output: 'wo',
    ffn_norm: 'ffn_norm', ffn_gate: 'w1', ffn_down: 'w2', ffn_up: 'w3',
  };
  const biases: Record<string, string> = { attn_q: 'bq', attn_k: 'bk', attn_v: 'bv' };
  const t = m[3] === 'weight' ? weights[m[2]] : biases[m[2]];
  return t && `layers.${m[1]}.${t}`;
}

const DTYPES: Record<number, TensorDtype> = {
  [GGML_TYPE.F32]: 'f32', [GGML_TYPE.F16]: 'f16', [GGML_TYPE.BF16]: 'bf16', [GGML_TYPE.Q8_0]: 'q8_0', [GGML_TYPE.Q4_0]: 'q4_0',
};

/** The Llama model config a GGUF file's metadata describes. */
export function ggufLlamaConfig(g: GgufFile, file: string): LlamaConfig {
  const meta = g.metadata;
  const arch = metaString(meta, 'general.architecture');
  if (arch === undefined) throw new CheckpointError(`${file}: GGUF metadata has no general.architecture`);
  if (arch !== 'llama' && arch !== 'qwen2') {
    throw new CheckpointError(`${file}: GGUF architecture "${arch}" is not supported (llama, which Mistral models also use, and qwen2 are)`);
  }
  const req = (k: string) => {
    const v = metaNumber(meta, `${arch}.${k}`, file);
    if (v === undefined) throw new CheckpointError(`${file}: GGUF metadata ${arch}.${k} is missing`);
    return v;
  };
  const opt = (k: string) => metaNumber(meta, `${arch}.${k}`, file);
  const dim = req('embedding_length');
  const nHeads = req('attention.head_count');
  const headDim = opt('attention.key_length') ?? dim / nHeads;
  const valueLength = opt('attention.value_length');
  if (valueLength !== undefined && valueLength !== headDim) {
    throw new CheckpointError(`${file}: key length ${headDim} and value length ${valueLength} differ; not supported`);
  }
  const ropeDims = opt('rope.dimension_count');
  if (ropeDims !== undefined && ropeDims !== headDim) {
    throw new CheckpointError(`${file}: RoPE on ${ropeDims} of ${headDim} head dimensions (partial rotary) is not supported`);
  }
  const scaling = metaString(meta, `${arch}.rope.scaling.type`);
  if (scaling !== undefined && scaling !== 'none') {
    throw new CheckpointError(`${file}: RoPE scaling "${scaling}" is not supported yet`);
  }
  const embd = g.tensors.find((t) => t.name === 'token_embd.weight');
  const tokens = meta.get('tokenizer.ggml.tokens');
  const vocabSize = opt('vocab_size') ?? embd?.ne[1] ?? (tokens?.type === 'array' ? tokens.value.length : undefined);
  if (vocabSize === undefined) throw new CheckpointError(`${file}: cannot tell the vocabulary size (no ${arch}.vocab_size, token_embd.weight or tokenizer)`);
  const config: LlamaConfig = {
    dim,
    hiddenDim: req('feed_forward_length'),
    nLayers: req('block_count'),
    nHeads,
    nKvHeads: opt('attention.head_count_kv') ?? nHeads,
    vocabSize,
    seqLen: req('context_length'),
    normEps: shortestF32(opt('attention.layer_norm_rms_epsilon') ?? 1e-5),
    ropeTheta: shortestF32(opt('rope.freq_base') ?? 10000),
    headDim,
    tiedEmbeddings: !g.tensors.some((t) => t.name === 'output.weight'),
    arch: arch as LlamaArch,
    ropeLayout: arch === 'qwen2' ? 'rotate-half' : 'interleaved',
  };
  validateConfig(config, file);
  return config;
}

/** The SentencePiece tokenizer in GGUF metadata (tokenizer.ggml.model "llama"), or why there is none. */
export function ggufTokenizer(meta: Map<string, GgufValue>, file: string): { tokenizer?: Tokenizer; note?: string } {
  const model = metaString(meta, 'tokenizer.ggml.model');
  if (model === undefined) return { note: 'the GGUF file has no tokenizer (tokenizer.ggml.model)' };
  if (model !== 'llama') {
    return { note: `GGUF tokenizer model "${model}" (byte-level BPE, e.g. Llama 3, Qwen2) is not supported yet; only SentencePiece "llama"` };
  }
  const tokens = meta.get('tokenizer.ggml.tokens');
  if (tokens?.type !== 'array' || tokens.itemType !== 'string') throw new CheckpointError(`${file}: tokenizer.ggml.tokens is missing or not a string array`);
  const list = tokens.value as string[];
  const enc = new TextEncoder();
  const pieces = list.map((t) => enc.encode(t.replaceAll('\u2581', ' ')));
  const scoresV = meta.get('tokenizer.ggml.scores');
  const scores = scoresV?.type === 'array' && scoresV.value instanceof Float32Array ? scoresV.value : new Float32Array(list.length);
  const typesV = meta.get('tokenizer.ggml.token_type');
  const types = typesV?.type === 'array' && typesV.value instanceof Int32Array ? typesV.value : undefined;
  const num = (k: string) => metaNumber(meta, k, file);
  const prefix = meta.get('tokenizer.ggml.add_space_prefix');
  try {
    const tokenizer = new Tokenizer({
      pieces,
      scores,
      types,
      bosId: num('tokenizer.ggml.bos_token_id'),
      eosId: num('tokenizer.ggml.eos_token_id'),
      unkId: num('tokenizer.ggml.unknown_token_id'),
      addSpacePrefix: prefix?.type === 'bool' ? prefix.value : true,
    });
    return { tokenizer };
  } catch (e) {
    throw new CheckpointError(`${file}: bad tokenizer metadata: ${(e as Error).message}`);
  }
}

/** Opens a GGUF Llama-family checkpoint: config from metadata, tensors read and dequantized on demand. */
export async function openGguf(source: ByteSource): Promise<LlamaCheckpoint> {
  const file = baseName(source.name);
  const g = await readGgufHeader(source);
  const config = ggufLlamaConfig(g, file);
  const infos: LlamaTensorInfo[] = [];
  const byName = new Map<string, GgufTensorInfo>();
  for (const t of g.tensors) {
    if (t.name === 'rope_freqs.weight') throw new CheckpointError(`${file}: tensor rope_freqs.weight (Llama 3.1-style RoPE frequency scaling) is not supported yet`);
    const name = canonicalName(t.name);
    if (!name) throw new CheckpointError(`${file}: tensor ${t.name} is not part of the Llama architecture QuantLab reads`);
    const dtype = DTYPES[t.type];
    if (!dtype) {
      throw new CheckpointError(
        `${file}: tensor ${t.name} has GGUF type ${ggmlTypeName(t.type)} (${t.type}), which is not supported (supported: ${READABLE_GGML_TYPES.map(ggmlTypeName).join(', ')})`,
      );
    }
    const end = t.offset + (t.byteLength as number);
    if (end > source.size) throw new CheckpointError(`${file} is truncated: tensor ${t.name} needs bytes ${t.offset}..${end}, file has ${source.size}`);
    infos.push({ name, shape: [...t.ne].reverse(), dtype, sourceName: t.name });
    byName.set(name, t);
  }
  const tensors = checkTensorsAgainstConfig(config, infos, file);
  const tok = ggufTokenizer(g.metadata, file);
  if (tok.tokenizer && tok.tokenizer.vocabSize > config.vocabSize) {
    throw new CheckpointError(`${file}: the tokenizer has ${tok.tokenizer.vocabSize} tokens, more than the model's vocabulary of ${config.vocabSize}`);
  }
  return {
    format: 'gguf',
    name: file,
    config,
    tensors,
    tokenizer: tok.tokenizer,
    tokenizerNote: tok.note,
    sizeBytes: source.size,
    async loadTensor(name: string) {
      const t = byName.get(name);
      if (!t) throw new CheckpointError(`${file} has no tensor ${name}`);
      const n = numel(t.ne);
      const data = dequantizeGgml(t.type, await source.read(t.offset, t.byteLength as number), 0, n);
      const heads = config.ropeLayout === 'rotate-half' ? ropeHeadsOf(name, config) : undefined;
      return heads === undefined ? data : rotateHalfToInterleaved(data, heads, t.ne.length > 1 ? t.ne[0] : 1);
    },
  };
}

/** The GGUF metadata of a checkpoint source, for display (e.g. general.name, quantization version). */
export async function readGgufMetadata(source: ByteSource): Promise<Map<string, GgufValue>> {
  return (await readGgufHeader(source)).metadata;
}
