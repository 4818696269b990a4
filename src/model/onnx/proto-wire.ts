/**
 * Protocol Buffers wire format, read and written by hand (https://protobuf.dev/programming-guides/encoding/):
 * every field is a varint tag (field number << 3 | wire type) followed by a varint, a fixed 4 or 8 byte
 * value, or a varint length and that many bytes (strings, bytes, nested messages, packed repeated scalars).
 *
 * Hand-written rather than generated because ONNX needs little of protobuf (no groups, no maps, no oneof
 * logic beyond "last one wins") and because a model loader wants three things a generic runtime does not
 * give: tensor bytes as zero-copy views of the file, errors that say which field of which message the
 * data stopped making sense in, and a writer that does not copy gigabytes of weights twice.
 * No Node imports: the browser bundle uses this module as is.
 */

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

const utf8Decoder = new TextDecoder('utf-8');
const utf8Encoder = new TextEncoder();

/** Sequential reader over buf[pos, end). `clamped` is set on readers of a message the data ends inside. */
export class WireReader {
  constructor(
    readonly buf: Uint8Array,
    public pos: number,
    readonly end: number,
    readonly clamped = false,
  ) {}

  get done(): boolean {
    return this.pos >= this.end;
  }

  private endsEarly(what: string, need: number): WireError {
    const left = this.end - this.pos;
    return new WireError(
      `the data ends inside ${what}: it needs ${need} byte${need === 1 ? '' : 's'} at byte ${this.pos}, only ${left} remain (file truncated?)`,
      this.pos,
      true,
    );
  }

  /** Varint as a JavaScript number; exact up to 2^53, throws above (tags, lengths, enums, small ints). */
  varint(): number {
    const buf = this.buf;
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw this.endsEarly('a varint', 1);
      const b = buf[this.pos++];
      result += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (result > Number.MAX_SAFE_INTEGER) {
          throw new WireError(`varint ${result} at byte ${this.pos} is too large for a length or count`, this.pos);
        }
        return result;
      }
      mul *= 128;
    }
    throw new WireError(`malformed varint at byte ${this.pos - 10} (more than 10 bytes)`, this.pos - 10);
  }

  /**
   * int64 varint: a number when it is a safe integer, otherwise a bigint. Negative values are 10-byte
   * two's complement on the wire.
   */
  int64(): number | bigint {
    const start = this.pos;
    const buf = this.buf;
    // Fast path: up to 7 bytes hold at most 49 bits, always safe and non-negative.
    let small = 0;
    let mul = 1;
    for (let i = 0; i < 7; i++) {
      if (this.pos >= this.end) throw this.endsEarly('a varint', 1);
      const b = buf[this.pos++];
      small += (b & 0x7f) * mul;
      if (b < 0x80) return small;
      mul *= 128;
    }
    this.pos = start;
    const big = BigInt.asIntN(64, this.varint64Bits());
    return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
  }

  /** uint64 varint: a number when safe, otherwise a bigint. */
  uint64(): number | bigint {
    const big = this.varint64Bits();
    return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
  }

  /** The raw 64 bits of a varint, unsigned. */
  varint64Bits(): bigint {
    const buf = this.buf;
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw this.endsEarly('a varint', 1);
      const b = buf[this.pos++];
      result |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return BigInt.asUintN(64, result);
      shift += 7n;
    }
    throw new WireError(`malformed varint at byte ${this.pos - 10} (more than 10 bytes)`, this.pos - 10);
  }

  float32(): number {
    if (this.end - this.pos < 4) throw this.endsEarly('a float', 4);
    const b = this.buf;
    const p = this.pos;
    this.pos += 4;
    scratchU8[0] = b[p];
    scratchU8[1] = b[p + 1];
    scratchU8[2] = b[p + 2];
    scratchU8[3] = b[p + 3];
    return scratchF32[0];
  }

  float64(): number {
    if (this.end - this.pos < 8) throw this.endsEarly('a double', 8);
    for (let i = 0; i < 8; i++) scratchU8[i] = this.buf[this.pos + i];
    this.pos += 8;
    return scratchF64[0];
  }

  /** A length-delimited payload as a view of the buffer (no copy). */
  bytes(what = 'a length-delimited field'): Uint8Array {
    const len = this.varint();
    if (len > this.end - this.pos) throw this.endsEarly(what, len);
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }

  string(): string {
    return utf8Decoder.decode(this.bytes('a string'));
  }

  /**
   * Reader for a nested message. When the declared length runs past the end of the data (a truncated
   * file), the returned reader is clamped to the bytes that are there and marked `clamped`, so decoding
   * goes on inside and the error names the innermost field the data ends in.
   */
  message(): WireReader {
    const len = this.varint();
    const start = this.pos;
    if (len > this.end - start) {
      this.pos = this.end;
      return new WireReader(this.buf, start, this.end, true);
    }
    this.pos = start + len;
    return new WireReader(this.buf, start, start + len);
  }

  /** Skip one field's payload of the given wire type. */
  skip(wire: number, field: number): void {
    switch (wire) {
      case WIRE_VARINT:
        this.varint64Bits();
        return;
      case WIRE_I64:
        if (this.end - this.pos < 8) throw this.endsEarly('a fixed64 field', 8);
        this.pos += 8;
        return;
      case WIRE_LEN: {
        const len = this.varint();
        if (len > this.end - this.pos) throw this.endsEarly(`field ${field}`, len);
        this.pos += len;
        return;
      }
      case WIRE_I32:
        if (this.end - this.pos < 4) throw this.endsEarly('a fixed32 field', 4);
        this.pos += 4;
        return;
      default:
        throw new WireError(`field ${field} has wire type ${wireTypeName(wire)}, which ONNX never uses`, this.pos);
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

const EMPTY = new Uint8Array(0);
const scratch = new ArrayBuffer(8);
const scratchU8 = new Uint8Array(scratch);
const scratchF32 = new Float32Array(scratch);
const scratchF64 = new Float64Array(scratch);

/** Throws unless the field came with the wire type its declaration implies. */
export function expectWire(actual: number, expected: number, field: number, pos: number): void {
  if (actual !== expected) {
    throw new WireError(`field ${field} has wire type ${wireTypeName(actual)}, expected ${wireTypeName(expected)}`, pos);
  }
}

// ---------------------------------------------------------------------------------------------
// Writer

/** Appended payloads at least this long are kept as views instead of copied into the scratch buffer. */
const KEEP_AS_VIEW = 4096;

/**
 * Builds a message as a list of byte runs. Nested messages are written into their own writer and then
 * adopted by the parent (their runs are moved, not copied), so a tensor's bytes are copied once, in
 * `finish()`.
 */
export class WireWriter {
  private parts: Uint8Array[] = [];
  private partsLength = 0;
  /** Scratch space; flushed runs are views of its start, writing continues in the rest. */
  private buf: Uint8Array = EMPTY;
  private pos = 0;
  private allocSize = 64;

  get length(): number {
    return this.partsLength + this.pos;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    this.flush();
    this.allocSize = Math.min(1 << 16, this.allocSize * 2);
    this.buf = new Uint8Array(Math.max(n, this.allocSize));
  }

  private flush(): void {
    if (this.pos === 0) return;
    this.parts.push(this.buf.subarray(0, this.pos));
    this.partsLength += this.pos;
    this.buf = this.buf.subarray(this.pos);
    this.pos = 0;
  }

  varint(n: number): void {
    if (!(n >= 0) || !Number.isSafeInteger(n)) throw new RangeError(`cannot write ${n} as an unsigned varint`);
    this.ensure(10);
    while (n >= 0x80) {
      this.buf[this.pos++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    this.buf[this.pos++] = n;
  }

  /** int64 / uint64 varint from a number or bigint (negative values as 10-byte two's complement). */
  varint64(v: number | bigint): void {
    if (typeof v === 'number' && v >= 0) {
      this.varint(v);
      return;
    }
    let big = BigInt.asUintN(64, BigInt(v));
    this.ensure(10);
    while (big >= 0x80n) {
      this.buf[this.pos++] = Number(big & 0x7fn) | 0x80;
      big >>= 7n;
    }
    this.buf[this.pos++] = Number(big);
  }

  tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  rawBytes(data: Uint8Array): void {
    if (data.length >= KEEP_AS_VIEW) {
      this.flush();
      this.parts.push(data);
      this.partsLength += data.length;
      return;
    }
    this.ensure(data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
  }

  float32(v: number): void {
    scratchF32[0] = v;
    this.ensure(4);
    for (let i = 0; i < 4; i++) this.buf[this.pos++] = scratchU8[i];
  }

  float64(v: number): void {
    scratchF64[0] = v;
    this.ensure(8);
    for (let i = 0; i < 8; i++) this.buf[this.pos++] = scratchU8[i];
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
    this.varint(data.length);
    this.rawBytes(data);
  }

  stringField(field: number, s: string): void {
    this.bytesField(field, utf8Encoder.encode(s));
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
