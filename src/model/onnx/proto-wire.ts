/**
 * Protocol Buffers wire format (https://protobuf.dev/programming-guides/encoding/) on top of protobufjs's
 * minimal runtime (`protobufjs/minimal`): its Reader and Writer encode and decode every wire-level value
 * here (tags, varints including 10-byte negative int64s, fixed32/fixed64, floats and doubles, length
 * prefixes, strings, bytes, skipping fields), and its RangeErrors become WireErrors below.
 *
 * What stays hand-written is the ONNX schema: decode.ts and serialize.ts map the field numbers of
 * onnx.proto to OnnxModel, message by message, instead of using generated or reflected protobufjs types,
 * because a model loader wants three things a generated decoder does not give: tensor bytes as zero-copy
 * views of the file (protobufjs's Reader.bytes() returns a subarray of a Uint8Array input), errors naming
 * the field of the message the data stopped making sense in ("graph.initializer[3] "w".raw_data"), and
 * unknown fields kept verbatim so a model is written back byte for byte.
 *
 * The writer uses protobufjs's Writer for every value and length prefix, but keeps the message as a list
 * of byte runs: a nested message is written into its own writer and adopted by its parent with its
 * length known up front, and payloads of 4 KiB or more (tensor raw_data) stay views of the caller's
 * arrays, so a tensor's bytes are copied once, into the final array. protobufjs's own nesting
 * (fork()/ldelim()) would copy each tensor into one growing buffer that doubles as it goes, then move it
 * again for every enclosing message whose length prefix outgrows its one reserved byte (tensor, graph),
 * then copy it once more in finish(): several copies and about three times the model's size in memory.
 *
 * 64-bit values come back as numbers when they are safe integers and bigints otherwise. protobufjs
 * returns 64-bit values as `Long` objects when its `long` dependency loaded and as (lossy) numbers when
 * it did not; module setup below makes sure it is the former, so results never depend on that package.
 * No Node imports: the browser bundle uses this module as is.
 */
import { Reader, Writer, configure as configureProtobuf, util as protobufUtil } from 'protobufjs/minimal.js';

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

const WIRE_NAMES = ['varint', 'fixed64', 'length-delimited', 'group start', 'group end', 'fixed32', 'invalid (6)', 'invalid (7)'];

export function wireTypeName(wire: number): string {
  return WIRE_NAMES[wire] ?? `invalid (${wire})`;
}

/**
 * Bytes that are not valid protobuf (or not the message the caller expected). `path` names the field being
 * decoded when the problem showed up ("graph.initializer[3] "w".raw_data"); the innermost decoder sets it.
 */
export class WireError extends Error {
  override name = 'WireError';
  path: string | undefined;
  /** True when the bytes simply end too early (a truncated file), false for bytes that make no sense. */
  readonly truncated: boolean;
  constructor(message: string, readonly offset: number, truncated = false) {
    super(message);
    this.truncated = truncated;
  }
}

// ---------------------------------------------------------------------------------------------
// 64-bit values

/** The shape protobufjs gives 64-bit values in (long.js's Long, or the stand-in below). */
interface LongBitsLike {
  low: number;
  high: number;
  unsigned: boolean;
}

/** Minimal stand-in for long.js's Long: all that protobufjs's minimal Reader and Writer use of it. */
class PlainLong implements LongBitsLike {
  constructor(
    public low: number,
    public high: number,
    public unsigned: boolean,
  ) {}
  static isLong(x: unknown): boolean {
    return x instanceof PlainLong;
  }
  static fromString(s: string, unsigned = false): PlainLong {
    const u = BigInt.asUintN(64, BigInt(s));
    return new PlainLong(Number(u & 0xffffffffn) | 0, Number(u >> 32n) | 0, unsigned);
  }
}

/**
 * protobufjs decides at load time how its Reader returns 64-bit values: `Long` objects when it found the
 * `long` package, numbers (rounded above 2^53) otherwise. Give it a Long class when it has none, so an
 * int64 like INT64_MAX (Slice ends, say) always reads back exactly.
 */
if (!protobufUtil.Long) {
  protobufUtil.Long = PlainLong;
  configureProtobuf();
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);

/** The 64 bits of a value protobufjs read, unsigned. */
function unsignedBits(v: LongBitsLike | number): bigint {
  if (typeof v === 'number') {
    // Only reachable if someone reconfigured protobufjs without a Long class after this module loaded.
    if (!Number.isSafeInteger(v)) throw new WireError(`64-bit value ${v} was rounded by protobufjs (no Long class configured)`, 0);
    return BigInt.asUintN(64, BigInt(v));
  }
  return (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
}

function safeOrBig(big: bigint): number | bigint {
  return big >= MIN_SAFE && big <= MAX_SAFE ? Number(big) : big;
}

/** A bigint as the Long-like object protobufjs's Writer takes (handed a bigint, it would silently write 0). */
function longOf(v: bigint): LongBitsLike {
  const u = BigInt.asUintN(64, v);
  return { low: Number(u & 0xffffffffn) | 0, high: Number(u >> 32n) | 0, unsigned: true };
}

// ---------------------------------------------------------------------------------------------
// Reader

/** Sequential reader over buf[pos, end). `clamped` is set on readers of a message the data ends inside. */
export class WireReader {
  /** protobufjs's reader over the same bytes; its `len` is our `end`, positions are absolute in `buf`. */
  private readonly r: Reader;

  constructor(
    readonly buf: Uint8Array,
    pos: number,
    readonly end: number,
    readonly clamped = false,
  ) {
    const r = new Reader(buf);
    r.pos = pos;
    r.len = end;
    this.r = r;
  }

  get pos(): number {
    return this.r.pos;
  }

  set pos(p: number) {
    this.r.pos = p;
  }

  get done(): boolean {
    return this.r.pos >= this.end;
  }

  private endsEarly(what: string, need: number, at = this.r.pos): WireError {
    const left = this.end - at;
    return new WireError(
      `the data ends inside ${what}: it needs ${need} byte${need === 1 ? '' : 's'} at byte ${at}, only ${left} remain (file truncated?)`,
      at,
      true,
    );
  }

  /**
   * A protobufjs error as a WireError. Its RangeError ("index out of range") means the data ended inside
   * the value read from `start`: `need` bytes of a fixed-width value, a varint (need 0: it ran to the
   * end), or, when need is undefined, a length-prefixed payload whose length is read again here.
   */
  private failed(e: unknown, what: string, start: number, need?: number): WireError {
    if (e instanceof WireError) return e;
    if (!(e instanceof Error)) throw e;
    if (e instanceof RangeError) {
      if (need === 0) return this.endsEarly(what, 1, this.end);
      if (need !== undefined) return this.endsEarly(what, need, start);
      const r = this.r;
      r.pos = start;
      let len: number | undefined;
      try {
        len = r.size();
      } catch {
        // the length itself is cut off
      }
      return len === undefined ? this.endsEarly('a varint', 1, this.end) : this.endsEarly(what, len, r.pos);
    }
    if (/invalid tag encoding/.test(e.message)) return new WireError(`invalid field tag at byte ${start} (field number over 2^29)`, start);
    if (/invalid varint encoding/.test(e.message)) return new WireError(`malformed varint at byte ${start} (more than 10 bytes)`, start);
    if (/invalid length encoding/.test(e.message)) return new WireError(`length at byte ${start} is 2 GiB or more, over protobuf's limit`, start);
    return new WireError(`${e.message} at byte ${start}`, start);
  }

  /** Varint as a JavaScript number; exact up to 2^53, throws above (lengths, enums, small ints). */
  varint(): number {
    const r = this.r;
    const start = r.pos;
    try {
      const v = r.uint32();
      if (r.pos - start <= 4) return v; // at most 28 bits: exact
      r.pos = start;
      const big = unsignedBits(r.uint64());
      if (big > MAX_SAFE) throw new WireError(`varint ${big} at byte ${start} is too large for a length or count`, start);
      return Number(big);
    } catch (e) {
      throw this.failed(e, 'a varint', start, 0);
    }
  }

  /** A field tag (field number << 3 | wire type). */
  tag(): number {
    const r = this.r;
    const start = r.pos;
    try {
      return r.tag();
    } catch (e) {
      throw this.failed(e, 'a varint', start, 0);
    }
  }

  /**
   * int64 varint: a number when it is a safe integer, otherwise a bigint. Negative values are 10-byte
   * two's complement on the wire.
   */
  int64(): number | bigint {
    const r = this.r;
    const start = r.pos;
    try {
      const v = r.uint32();
      if (r.pos - start <= 4) return v; // fast path: at most 28 bits, non-negative
      r.pos = start;
      return safeOrBig(BigInt.asIntN(64, unsignedBits(r.int64())));
    } catch (e) {
      throw this.failed(e, 'a varint', start, 0);
    }
  }

  /** uint64 varint: a number when safe, otherwise a bigint. */
  uint64(): number | bigint {
    return safeOrBig(this.varint64Bits());
  }

  /** The raw 64 bits of a varint, unsigned. */
  varint64Bits(): bigint {
    const r = this.r;
    const start = r.pos;
    try {
      const v = r.uint32();
      if (r.pos - start <= 4) return BigInt(v);
      r.pos = start;
      return unsignedBits(r.uint64());
    } catch (e) {
      throw this.failed(e, 'a varint', start, 0);
    }
  }

  float32(): number {
    const start = this.r.pos;
    try {
      return this.r.float();
    } catch (e) {
      throw this.failed(e, 'a float', start, 4);
    }
  }

  float64(): number {
    const start = this.r.pos;
    try {
      return this.r.double();
    } catch (e) {
      throw this.failed(e, 'a double', start, 8);
    }
  }

  /** A length-delimited payload as a view of the buffer (no copy). */
  bytes(what = 'a length-delimited field'): Uint8Array {
    const start = this.r.pos;
    try {
      return this.r.bytes();
    } catch (e) {
      throw this.failed(e, what, start);
    }
  }

  string(): string {
    const start = this.r.pos;
    try {
      return this.r.string();
    } catch (e) {
      throw this.failed(e, 'a string', start);
    }
  }

  /**
   * Reader for a nested message. When the declared length runs past the end of the data (a truncated
   * file), the returned reader is clamped to the bytes that are there and marked `clamped`, so decoding
   * goes on inside and the error names the innermost field the data ends in.
   */
  message(): WireReader {
    const r = this.r;
    const at = r.pos;
    let len: number;
    try {
      len = r.size();
    } catch (e) {
      throw this.failed(e, 'a varint', at, 0);
    }
    const start = r.pos;
    if (len > this.end - start) {
      r.pos = this.end;
      return new WireReader(this.buf, start, this.end, true);
    }
    r.pos = start + len;
    return new WireReader(this.buf, start, start + len);
  }

  /** Skip one field's payload of the given wire type. */
  skip(wire: number, field: number): void {
    const r = this.r;
    const start = r.pos;
    try {
      switch (wire) {
        case WIRE_VARINT:
          r.uint32(); // reads (and checks) the whole varint, up to 10 bytes
          return;
        case WIRE_I64:
          r.skip(8);
          return;
        case WIRE_LEN:
          r.skip(r.size());
          return;
        case WIRE_I32:
          r.skip(4);
          return;
        default:
          throw new WireError(`field ${field} has wire type ${wireTypeName(wire)}, which ONNX never uses`, start);
      }
    } catch (e) {
      if (wire === WIRE_LEN) throw this.failed(e, `field ${field}`, start);
      throw this.failed(e, wire === WIRE_VARINT ? 'a varint' : `a ${wireTypeName(wire)} field`, start, wire === WIRE_VARINT ? 0 : wire === WIRE_I64 ? 8 : 4);
    }
  }

  /** Packed or unpacked repeated varints, appended to out (both encodings are valid for any repeated scalar). */
  repeatedInt64(wire: number, out: (number | bigint)[]): void {
    if (wire === WIRE_LEN) {
      const sub = this.message();
      while (!sub.done) out.push(sub.int64());
      if (sub.clamped) throw sub.endsEarly('a packed list', 1);
    } else {
      out.push(this.int64());
    }
  }

  repeatedFloat32(wire: number, out: number[]): void {
    if (wire === WIRE_LEN) {
      const sub = this.message();
      if ((sub.end - sub.pos) % 4 !== 0 && !sub.clamped) {
        throw new WireError(`packed float list of ${sub.end - sub.pos} bytes is not a multiple of 4`, sub.pos);
      }
      while (!sub.done) out.push(sub.float32());
      if (sub.clamped) throw sub.endsEarly('a packed float list', 4);
    } else {
      out.push(this.float32());
    }
  }
}

/** Throws unless the field came with the wire type its declaration implies. */
export function expectWire(actual: number, expected: number, field: number, pos: number): void {
  if (actual !== expected) {
    throw new WireError(`field ${field} has wire type ${wireTypeName(actual)}, expected ${wireTypeName(expected)}`, pos);
  }
}

// ---------------------------------------------------------------------------------------------
// Writer

/** Appended payloads at least this long are kept as views instead of copied into the current run. */
const KEEP_AS_VIEW = 4096;

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8');
/** A UTF-16 surrogate without its pair: TextEncoder writes U+FFFD for it, protobufjs invalid UTF-8. */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Builds a message as a list of byte runs. Values go through a protobufjs Writer (the current run); nested
 * messages are written into their own WireWriter and then adopted by the parent (their runs are moved, not
 * copied), and large payloads stay views, so a tensor's bytes are copied once, in `finish()`.
 */
export class WireWriter {
  private parts: Uint8Array[] = [];
  private partsLength = 0;
  /** The current run, created on first use. */
  private w: Writer | null = null;

  get length(): number {
    return this.partsLength + (this.w ? this.w.pos : 0);
  }

  private run(): Writer {
    return (this.w ??= new Writer());
  }

  /** Ends the current run: a view of the protobufjs Writer's buffer, which nothing writes to again. */
  private flush(): void {
    const w = this.w;
    if (!w) return;
    this.w = null;
    if (w.pos === 0) return;
    this.parts.push(w.finish(true));
    this.partsLength += w.pos;
  }

  varint(n: number): void {
    if (!(n >= 0) || !Number.isSafeInteger(n)) throw new RangeError(`cannot write ${n} as an unsigned varint`);
    if (n <= 0xffffffff) this.run().uint32(n);
    else this.run().uint64(n);
  }

  /** int64 / uint64 varint from a number or bigint (negative values as 10-byte two's complement). */
  varint64(v: number | bigint): void {
    if (typeof v === 'number') {
      if (v >= 0) this.varint(v);
      else if (Number.isInteger(v)) this.run().int64(v);
      else throw new RangeError(`cannot write ${v} as an int64 varint`);
      return;
    }
    this.run().uint64(longOf(v));
  }

  tag(field: number, wire: number): void {
    this.run().uint32(field * 8 + wire);
  }

  rawBytes(data: Uint8Array): void {
    if (data.length >= KEEP_AS_VIEW) {
      this.flush();
      this.parts.push(data);
      this.partsLength += data.length;
      return;
    }
    this.run().raw(data);
  }

  float32(v: number): void {
    this.run().float(v);
  }

  float64(v: number): void {
    this.run().double(v);
  }

  // Field helpers -------------------------------------------------------------------------------

  int64Field(field: number, v: number | bigint): void {
    this.tag(field, WIRE_VARINT);
    this.varint64(v);
  }

  floatField(field: number, v: number): void {
    this.tag(field, WIRE_I32);
    this.float32(v);
  }

  bytesField(field: number, data: Uint8Array): void {
    this.tag(field, WIRE_LEN);
    if (data.length < KEEP_AS_VIEW) {
      this.run().bytes(data);
      return;
    }
    this.varint(data.length);
    this.rawBytes(data);
  }

  stringField(field: number, s: string): void {
    if (LONE_SURROGATE.test(s)) {
      this.bytesField(field, utf8Encoder.encode(s));
      return;
    }
    this.tag(field, WIRE_LEN);
    this.run().string(s);
  }

  /** Writes `child` as a nested message and empties it. */
  messageField(field: number, child: WireWriter): void {
    this.tag(field, WIRE_LEN);
    this.varint(child.length);
    child.flush();
    this.flush();
    for (const p of child.parts) this.parts.push(p);
    this.partsLength += child.partsLength;
    child.parts = [];
    child.partsLength = 0;
  }

  /** Field records copied verbatim (tag included), e.g. unknown fields kept from the input. */
  verbatim(records: readonly Uint8Array[] | undefined): void {
    if (records) for (const r of records) this.rawBytes(r);
  }

  /** The message as one array that owns its buffer (never a view into scratch space or a tensor). */
  finish(): Uint8Array {
    this.flush();
    const only = this.parts.length === 1 ? this.parts[0] : undefined;
    if (only && only.byteOffset === 0 && only.byteLength === only.buffer.byteLength) return only;
    const out = new Uint8Array(this.partsLength);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }

  /** The byte runs without joining them (for outputs too large for one array). */
  finishParts(): Uint8Array[] {
    this.flush();
    return this.parts;
  }
}

export function utf8Encode(s: string): Uint8Array {
  return utf8Encoder.encode(s);
}

export function utf8Decode(b: Uint8Array): string {
  return utf8Decoder.decode(b);
}
