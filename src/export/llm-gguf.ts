/**
 * GGUF export of a Llama-family checkpoint for llama.cpp (ggml/docs/gguf.md; REFERENCE.md section 5): the
 * linear weights as Q8_0 or Q4_0 (blocks of 32 along a row, quantized with llama.cpp's reference rounding,
 * ggml-quants.ts), the token embedding as the same type (llama-quantize does the same for these file
 * types), the classifier (`output`, when not tied) as Q8_0 (llama.cpp keeps it at higher precision: Q6_K
 * in a Q4_0 file, which QuantLab does not write), norms and biases F32, the SentencePiece vocabulary from
 * the checkpoint's tokenizer, and general.file_type / general.quantization_version as llama.cpp writes
 * them. Names, metadata keys and the interleaved q/k order come from llamaGgufSpec (gguf-writer.ts).
 */
import { encodeGguf, llamaGgufSpec, type GgufWriteType } from '../model/formats/gguf-writer.ts';
import { ggmlBlockInfo, GGML_TYPE } from '../model/formats/ggml-quants.ts';
import type { LlamaCheckpoint } from '../model/llama/model.ts';
import { LlmExportError } from './llm-int4.ts';

export type GgufExportType = 'Q8_0' | 'Q4_0';

export interface GgufExportOptions {
  /** Storage of the linear weights. */
  type: GgufExportType;
  /** Token embedding storage (default: `type`). */
  embeddings?: GgufWriteType;
  /** Classifier storage when not tied (default Q8_0). */
  output?: GgufWriteType;
  /** Norms and biases (default F32). */
  norms?: 'F32' | 'F16';
  /** Float tensors replacing the checkpoint's (smoothed or AWQ-scaled weights), canonical names and basis. */
  replaced?: ReadonlyMap<string, Float32Array>;
  /** A tensor whose rows are not a multiple of 32 cannot be Q8_0 / Q4_0: refuse (default) or store it as F16. */
  incompatible?: 'error' | 'F16';
  /** general.name (default the checkpoint's name). */
  name?: string;
}

/** llama.cpp's llama_ftype of a file whose linears are all of one type. */
const FILE_TYPE: Record<GgufExportType, number> = { Q4_0: 2, Q8_0: 7 };

const isNormOrBias = (name: string) => /(norm|\.b[qkv])$/.test(name);

/** The storage each canonical tensor gets (before the row-length check). */
export function ggufTensorTypes(ckpt: Pick<LlamaCheckpoint, 'tensors'>, opts: GgufExportOptions): Map<string, GgufWriteType> {
  return new Map(
    ckpt.tensors.map((t) => {
      if (isNormOrBias(t.name)) return [t.name, opts.norms ?? 'F32'];
      if (t.name === 'tok_embeddings') return [t.name, opts.embeddings ?? opts.type];
      if (t.name === 'output') return [t.name, opts.output ?? 'Q8_0'];
      return [t.name, opts.type];
    }),
  );
}

export interface GgufExport {
  /** The .gguf file as chunks to write one after another. */
  chunks: Uint8Array[];
  /** The storage type of every canonical tensor. */
  types: Map<string, GgufWriteType>;
  bytes: number;
}

/**
 * Encodes a checkpoint as a GGUF v3 file (see the file comment). Throws LlmExportError listing every tensor
 * whose rows cannot hold blocks of 32 (unless `incompatible: 'F16'`) and every replacement that names no tensor.
 */
export async function exportGguf(ckpt: Pick<LlamaCheckpoint, 'config' | 'tensors' | 'loadTensor' | 'tokenizer' | 'name'>, opts: GgufExportOptions): Promise<GgufExport> {
  if (opts.type !== 'Q8_0' && opts.type !== 'Q4_0') throw new LlmExportError('GGUF', [`type must be Q8_0 or Q4_0, got ${String(opts.type)}`]);
  const types = ggufTensorTypes(ckpt, opts);
  const problems: string[] = [];
  for (const t of ckpt.tensors) {
    const type = types.get(t.name) as GgufWriteType;
    const block = ggmlBlockInfo(GGML_TYPE[type]);
    const row = t.shape[t.shape.length - 1];
    if (block && row % block.blockSize !== 0) {
      if (opts.incompatible === 'F16') types.set(t.name, 'F16');
      else problems.push(`${t.name} ([${t.shape.join(', ')}]): rows of ${row} values are not a multiple of ${block.blockSize}, which ${type} needs (export it as F16 with incompatible: 'F16')`);
    }
  }
  const names = new Set(ckpt.tensors.map((t) => t.name));
  for (const name of opts.replaced?.keys() ?? []) if (!names.has(name)) problems.push(`${name}: a replacement tensor was given for it, but the model has no such tensor`);
  if (problems.length) throw new LlmExportError('GGUF', problems);

  const weights = new Map<string, Float32Array>();
  for (const t of ckpt.tensors) weights.set(t.name, opts.replaced?.get(t.name) ?? (await ckpt.loadTensor(t.name)));
  const spec = llamaGgufSpec(ckpt.config, (n) => weights.get(n) as Float32Array, {
    tensorType: (n) => types.get(n) ?? 'F32',
    tokenizer: ckpt.tokenizer,
    name: opts.name ?? ckpt.name,
    withBiases: names.has('layers.0.bq'),
  });
  const metadata = spec.metadata instanceof Map ? [...spec.metadata] : spec.metadata;
  metadata.push(['general.quantization_version', { type: 'uint32', value: 2 }], ['general.file_type', { type: 'uint32', value: FILE_TYPE[opts.type] }]);
  const chunks = encodeGguf({ ...spec, metadata });
  return { chunks, types, bytes: chunks.reduce((s, c) => s + c.length, 0) };
}
