/**
 * A GGUF v3 writer (the layout gguf.ts reads): metadata of every value type, tensors stored as F32, F16,
 * BF16, Q8_0 or Q4_0 (quantized with llama.cpp's reference rounding, ggml-quants.ts), or raw bytes of
 * any ggml type. Output is a list of chunks to write one after another (or wrap in a Blob), so large
 * models need not be copied into one buffer.
 */
import { encodeF32 } from './half.ts';
import { encodeBf16, encodeF16, ggmlBlockInfo, GGML_TYPE, quantizeQ4_0, quantizeQ8_0 } from './ggml-quants.ts';
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VALUE_TYPES, type GgufValue, type GgufValueType } from './gguf.ts';
import { expectedTensors, type LlamaConfig } from '../llama/model.ts';
import { interleavedToRotateHalf, ropeHeadsOf } from '../llama/rope-layout.ts';
import type { Tokenizer } from '../llama/tokenizer.ts';

export type GgufWriteType = 'F32' | 'F16' | 'BF16' | 'Q8_0' | 'Q4_0';

export type GgufWriterTensor =
  | {
      name: string;
      /** PyTorch order, e.g. [out, in]; written reversed as GGUF ne (fastest first). */
      shape: number[];
      type: GgufWriteType;
      data: Float32Array;
    }
  | {
      name: string;
      /** GGUF order, fastest first. */
      ne: number[];
      /** ggml_type number. */
      ggmlType: number;
      bytes: Uint8Array;
    };

export interface GgufWriteSpec {
  metadata: Map<string, GgufValue> | [string, GgufValue][];
  tensors: GgufWriterTensor[];
  /** Defaults to general.alignment from the metadata, else 32. */
  alignment?: number;
}

const enc = new TextEncoder();

class ByteWriter {
  private buf = new Uint8Array(1024);
  private dv = new DataView(this.buf.buffer);
  len = 0;
  private grow(n: number) {
    if (this.len + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.dv = new DataView(next.buffer);
  }
  bytes(b: Uint8Array) {
    this.grow(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  u32(v: number) {
    this.grow(4);
    this.dv.setUint32(this.len, v, true);
    this.len += 4;
  }
  u64(v: number | bigint) {
    this.grow(8);
    this.dv.setBigUint64(this.len, BigInt(v), true);
    this.len += 8;
  }
  string(s: string) {
    const b = enc.encode(s);
    this.u64(b.length);
    this.bytes(b);
  }
  scalar(type: GgufValueType, v: unknown) {
    this.grow(8);
    const dv = this.dv;
    const p = this.len;
    switch (type) {
      case 'uint8': dv.setUint8(p, v as number); this.len += 1; return;
      case 'int8': dv.setInt8(p, v as number); this.len += 1; return;
      case 'uint16': dv.setUint16(p, v as number, true); this.len += 2; return;
      case 'int16': dv.setInt16(p, v as number, true); this.len += 2; return;
      case 'uint32': dv.setUint32(p, v as number, true); this.len += 4; return;
      case 'int32': dv.setInt32(p, v as number, true); this.len += 4; return;
      case 'float32': dv.setFloat32(p, v as number, true); this.len += 4; return;
      case 'float64': dv.setFloat64(p, v as number, true); this.len += 8; return;
      case 'uint64': dv.setBigUint64(p, BigInt(v as bigint), true); this.len += 8; return;
      case 'int64': dv.setBigInt64(p, BigInt(v as bigint), true); this.len += 8; return;
      case 'bool': dv.setUint8(p, v ? 1 : 0); this.len += 1; return;
      case 'string': this.string(v as string); return;
      case 'array': throw new Error('arrays are written by value()');
    }
  }
  value(v: GgufValue) {
    if (v.type !== 'array') {
      this.scalar(v.type, v.value);
      return;
    }
    this.u32(GGUF_VALUE_TYPES.indexOf(v.itemType));
    const items = v.value as ArrayLike<unknown>;
    this.u64(items.length);
    for (let i = 0; i < items.length; i++) {
      if (v.itemType === 'array') this.value(items[i] as GgufValue);
      else this.scalar(v.itemType, items[i]);
    }
  }
  pad(alignment: number) {
    const n = (alignment - (this.len % alignment)) % alignment;
    this.bytes(new Uint8Array(n));
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

function tensorBytes(t: GgufWriterTensor): { ne: number[]; type: number; bytes: Uint8Array } {
  if ('bytes' in t) {
    const block = ggmlBlockInfo(t.ggmlType);
    const n = t.ne.reduce((a, b) => a * b, 1);
    if (block && (n / block.blockSize) * block.blockBytes !== t.bytes.length) {
      throw new RangeError(`tensor ${t.name}: ${t.bytes.length} bytes do not match ne [${t.ne.join(', ')}] of ggml type ${t.ggmlType}`);
    }
    return { ne: t.ne, type: t.ggmlType, bytes: t.bytes };
  }
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (n !== t.data.length) throw new RangeError(`tensor ${t.name}: shape [${t.shape.join(', ')}] needs ${n} values, got ${t.data.length}`);
  const ne = [...t.shape].reverse();
  if ((t.type === 'Q8_0' || t.type === 'Q4_0') && ne[0] % 32 !== 0) {
    throw new RangeError(`tensor ${t.name}: ${t.type} needs rows (the last dimension, ${ne[0]}) to be a multiple of 32`);
  }
  switch (t.type) {
    case 'F32': return { ne, type: GGML_TYPE.F32, bytes: encodeF32(t.data) };
    case 'F16': return { ne, type: GGML_TYPE.F16, bytes: encodeF16(t.data) };
    case 'BF16': return { ne, type: GGML_TYPE.BF16, bytes: encodeBf16(t.data) };
    case 'Q8_0': return { ne, type: GGML_TYPE.Q8_0, bytes: quantizeQ8_0(t.data) };
    case 'Q4_0': return { ne, type: GGML_TYPE.Q4_0, bytes: quantizeQ4_0(t.data) };
  }
}

/** Encodes a GGUF v3 file as chunks: the header (metadata and tensor directory, padded), then each tensor, padded. */
export function encodeGguf(spec: GgufWriteSpec): Uint8Array[] {
  const metadata = spec.metadata instanceof Map ? [...spec.metadata] : spec.metadata;
  const al = metadata.find(([k]) => k === 'general.alignment')?.[1];
  const alignment = spec.alignment ?? (al && al.type === 'uint32' ? al.value : GGUF_DEFAULT_ALIGNMENT);
  if (al && al.type === 'uint32' && al.value !== alignment) throw new RangeError(`alignment ${alignment} disagrees with general.alignment ${al.value}`);
  if (!Number.isInteger(alignment) || alignment < 1 || (alignment & (alignment - 1)) !== 0) throw new RangeError(`alignment must be a power of two, got ${alignment}`);
  const tensors = spec.tensors.map((t) => ({ name: t.name, ...tensorBytes(t) }));
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new RangeError(`duplicate tensor name ${t.name}`);
    names.add(t.name);
  }
  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(3);
  w.u64(tensors.length);
  w.u64(metadata.length);
  for (const [key, value] of metadata) {
    w.string(key);
    w.u32(GGUF_VALUE_TYPES.indexOf(value.type));
    w.value(value);
  }
  let offset = 0;
  for (const t of tensors) {
    w.string(t.name);
    w.u32(t.ne.length);
    for (const d of t.ne) w.u64(d);
    w.u32(t.type);
    w.u64(offset);
    offset += Math.ceil(t.bytes.length / alignment) * alignment;
  }
  w.pad(alignment);
  const chunks = [w.result()];
  for (const t of tensors) {
    chunks.push(t.bytes);
    const pad = (alignment - (t.bytes.length % alignment)) % alignment;
    if (pad) chunks.push(new Uint8Array(pad));
  }
  return chunks;
}

/** encodeGguf as one buffer (small files, tests). */
export function encodeGgufBytes(spec: GgufWriteSpec): Uint8Array {
  return concatBytes(encodeGguf(spec));
}

export function concatBytes(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/**
 * The GGUF spec of a Llama-family model in llama.cpp's conventions (names, metadata keys, q/k in the
 * interleaved order for llama and rotate-half for qwen2), e.g. to export a quantized model.
 * `weights` gives canonical tensors (float32, [out, in], interleaved q/k); `tensorType` picks each
 * tensor's storage (default F32; Q8_0/Q4_0 need rows that are a multiple of 32).
 */
export function llamaGgufSpec(
  cfg: LlamaConfig,
  weights: (name: string) => Float32Array,
  opts: { tensorType?: (name: string, shape: number[]) => GgufWriteType; tokenizer?: Tokenizer; name?: string; withBiases?: boolean } = {},
): GgufWriteSpec {
  const arch = cfg.arch === 'qwen2' ? 'qwen2' : 'llama';
  const u32 = (value: number): GgufValue => ({ type: 'uint32', value });
  const f32 = (value: number): GgufValue => ({ type: 'float32', value });
  const metadata: [string, GgufValue][] = [
    ['general.architecture', { type: 'string', value: arch }],
    ['general.name', { type: 'string', value: opts.name ?? 'quantlab-export' }],
    [`${arch}.context_length`, u32(cfg.seqLen)],
    [`${arch}.embedding_length`, u32(cfg.dim)],
    [`${arch}.feed_forward_length`, u32(cfg.hiddenDim)],
    [`${arch}.block_count`, u32(cfg.nLayers)],
    [`${arch}.attention.head_count`, u32(cfg.nHeads)],
    [`${arch}.attention.head_count_kv`, u32(cfg.nKvHeads)],
    [`${arch}.attention.layer_norm_rms_epsilon`, f32(cfg.normEps)],
    [`${arch}.rope.freq_base`, f32(cfg.ropeTheta)],
    [`${arch}.rope.dimension_count`, u32(cfg.headDim)],
    [`${arch}.vocab_size`, u32(cfg.vocabSize)],
  ];
  if (cfg.headDim * cfg.nHeads !== cfg.dim) metadata.push([`${arch}.attention.key_length`, u32(cfg.headDim)], [`${arch}.attention.value_length`, u32(cfg.headDim)]);
  if (opts.tokenizer) {
    const t = opts.tokenizer.toData();
    const tokens = t.pieces.map((p, id) => {
      const b = opts.tokenizer!.byteValue(id);
      if (b >= 0) return `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
      return new TextDecoder().decode(p).replaceAll(' ', '\u2581');
    });
    metadata.push(
      ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
      ['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: tokens }],
      ['tokenizer.ggml.scores', { type: 'array', itemType: 'float32', value: t.scores }],
      ['tokenizer.ggml.token_type', { type: 'array', itemType: 'int32', value: Int32Array.from(t.types) }],
      ['tokenizer.ggml.bos_token_id', u32(t.bosId)],
      ['tokenizer.ggml.eos_token_id', u32(t.eosId)],
      ['tokenizer.ggml.unknown_token_id', u32(t.unkId)],
      ['tokenizer.ggml.add_space_prefix', { type: 'bool', value: t.addSpacePrefix }],
    );
  }
  const ggufName: Record<string, string> = {
    tok_embeddings: 'token_embd.weight', norm: 'output_norm.weight', output: 'output.weight',
    attention_norm: 'attn_norm.weight', wq: 'attn_q.weight', wk: 'attn_k.weight', wv: 'attn_v.weight', wo: 'attn_output.weight',
    bq: 'attn_q.bias', bk: 'attn_k.bias', bv: 'attn_v.bias',
    ffn_norm: 'ffn_norm.weight', w1: 'ffn_gate.weight', w2: 'ffn_down.weight', w3: 'ffn_up.weight',
  };
  const tensors: GgufWriterTensor[] = expectedTensors(cfg, opts.withBiases ?? cfg.arch === 'qwen2').map((e) => {
    const m = /^layers\.(\d+)\.(\w+)$/.exec(e.name);
    const name = m ? `blk.${m[1]}.${ggufName[m[2]]}` : ggufName[e.name];
    let data = weights(e.name);
    const heads = arch === 'qwen2' ? ropeHeadsOf(e.name, cfg) : undefined;
    if (heads !== undefined) data = interleavedToRotateHalf(data, heads, e.shape.length > 1 ? e.shape[1] : 1);
    return { name, shape: e.shape, type: opts.tensorType?.(e.name, e.shape) ?? 'F32', data };
  });
  return { metadata, tensors };
}
