/**
 * SentencePiece tokenizer.model files (the protobuf ModelProto in google/sentencepiece
 * src/sentencepiece_model.proto), as shipped with Hugging Face Llama 2 / Mistral checkpoints:
 *   ModelProto { repeated SentencePiece pieces = 1; TrainerSpec trainer_spec = 2; NormalizerSpec normalizer_spec = 3; }
 *   SentencePiece { string piece = 1; float score = 2; Type type = 3 [default NORMAL]; }
 *   TrainerSpec { ModelType model_type = 3 (1 unigram, 2 BPE); int32 unk_id = 40, bos_id = 41, eos_id = 42; }
 *   NormalizerSpec { bool add_dummy_prefix = 3 [default true]; }
 * Only BPE models become a Tokenizer (llama2.c's tokenizer.py exports tokenizer.bin from the same file).
 */
import { CheckpointError } from '../llama/model.ts';
import { Tokenizer } from '../llama/tokenizer.ts';

class Proto {
  pos = 0;
  private readonly dv: DataView;
  constructor(
    readonly b: Uint8Array,
    private readonly file: string,
  ) {
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  get done() {
    return this.pos >= this.b.length;
  }
  fail(what: string): never {
    throw new CheckpointError(`${this.file} is not a SentencePiece model: ${what} at byte ${this.pos}`);
  }
  varint(): bigint {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.b.length) this.fail('truncated varint');
      const byte = this.b[this.pos++];
      v |= BigInt(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return v;
      shift += 7n;
      if (shift > 63n) this.fail('varint too long');
    }
  }
  /** Next field: number, wire type. */
  key(): [number, number] {
    const k = Number(this.varint());
    return [k >>> 3, k & 7];
  }
  bytes(): Uint8Array {
    const n = Number(this.varint());
    if (this.pos + n > this.b.length) this.fail('length past the end');
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  float(): number {
    if (this.pos + 4 > this.b.length) this.fail('truncated float');
    const v = this.dv.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else this.fail(`unknown wire type ${wire}`);
  }
}

export interface SentencePieceModel {
  pieces: Uint8Array[];
  scores: Float32Array;
  types: Uint8Array;
  /** 1 unigram, 2 BPE, 3 word, 4 char. */
  modelType: number;
  unkId: number;
  bosId: number;
  eosId: number;
  addDummyPrefix: boolean;
}

export function parseSentencePieceModel(bytes: Uint8Array, file: string): SentencePieceModel {
  const p = new Proto(bytes, file);
  const pieces: Uint8Array[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  let modelType = 1;
  let unkId = 0;
  let bosId = 1;
  let eosId = 2;
  let addDummyPrefix = true;
  const int32 = (v: bigint) => Number(BigInt.asIntN(32, v));
  while (!p.done) {
    const [field, wire] = p.key();
    if (field === 1 && wire === 2) {
      const m = new Proto(p.bytes(), file);
      let piece: Uint8Array = new Uint8Array(0);
      let score = 0;
      let type = 1;
      while (!m.done) {
        const [f, w] = m.key();
        if (f === 1 && w === 2) piece = m.bytes();
        else if (f === 2 && w === 5) score = m.float();
        else if (f === 3 && w === 0) type = Number(m.varint());
        else m.skip(w);
      }
      // SentencePiece writes spaces as U+2581 ("▁", UTF-8 e2 96 81); the tokenizer works with plain spaces.
      pieces.push(new TextEncoder().encode(new TextDecoder().decode(piece).replaceAll('\u2581', ' ')));
      scores.push(score);
      types.push(type);
    } else if (field === 2 && wire === 2) {
      const m = new Proto(p.bytes(), file);
      while (!m.done) {
        const [f, w] = m.key();
        if (f === 3 && w === 0) modelType = Number(m.varint());
        else if (f === 40 && w === 0) unkId = int32(m.varint());
        else if (f === 41 && w === 0) bosId = int32(m.varint());
        else if (f === 42 && w === 0) eosId = int32(m.varint());
        else m.skip(w);
      }
    } else if (field === 3 && wire === 2) {
      const m = new Proto(p.bytes(), file);
      while (!m.done) {
        const [f, w] = m.key();
        if (f === 3 && w === 0) addDummyPrefix = m.varint() !== 0n;
        else m.skip(w);
      }
    } else {
      p.skip(wire);
    }
  }
  if (pieces.length === 0) throw new CheckpointError(`${file} is not a SentencePiece model: no pieces`);
  return { pieces, scores: Float32Array.from(scores), types: Uint8Array.from(types), modelType, unkId, bosId, eosId, addDummyPrefix };
}

/** A Tokenizer from a BPE tokenizer.model, or why none can be made. */
export function sentencePieceTokenizer(bytes: Uint8Array, file: string): { tokenizer?: Tokenizer; note?: string } {
  const m = parseSentencePieceModel(bytes, file);
  if (m.modelType !== 2) return { note: `${file} is a SentencePiece ${['', 'unigram', 'BPE', 'word', 'char'][m.modelType] ?? m.modelType} model; only BPE is supported` };
  return {
    tokenizer: new Tokenizer({
      pieces: m.pieces,
      scores: m.scores,
      types: m.types,
      bosId: m.bosId,
      eosId: m.eosId,
      unkId: m.unkId,
      addSpacePrefix: m.addDummyPrefix,
    }),
  };
}
