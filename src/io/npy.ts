/**
 * NumPy .npy files, read and written by hand from the format spec
 * (numpy/lib/format.py, NEP 1 "A Simple File Format for NumPy Arrays"):
 *
 *   "\x93NUMPY", major, minor (1.0, 2.0 or 3.0),
 *   header length: uint16 LE (1.0) or uint32 LE (2.0, 3.0),
 *   header: a Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
 *           (latin-1 for 1.0/2.0, UTF-8 for 3.0), padded with spaces and ending in '\n',
 *   data:   the elements in C order (or Fortran order when fortran_order is True).
 *
 * Writers pad the header so the data starts at a multiple of 64 bytes (16 before NumPy 1.9);
 * the reader accepts any offset. Big-endian files are byte-swapped on reading and Fortran-order
 * arrays are transposed to C order, so every NpyArray is little-endian, C-ordered data.
 * No Node imports: the browser's file loader uses this module as is.
 */

export type NpyDtype = 'float32' | 'float16' | 'int8' | 'uint8' | 'int32' | 'float64';

export interface NpyArray {
  dtype: NpyDtype;
  /** Dimensions in C order; [] is a scalar (one element). */
  shape: number[];
  /** float16 data is kept as raw IEEE binary16 bits (decode with float16BitsToFloat32 or npyToFloat32). */
  data: Float32Array | Uint16Array | Int8Array | Uint8Array | Int32Array | Float64Array;
}

/** A .npy file that cannot be read or an array that cannot be written; the message names the problem. */
export class NpyError extends Error {
  override name = 'NpyError';
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"
/** The data offset a writer aligns to (numpy.lib.format.ARRAY_ALIGN). */
const ARRAY_ALIGN = 64;

interface DtypeInfo {
  kind: string;
  itemsize: number;
  /** How NumPy spells it on a little-endian machine. */
  descr: string;
}

const DTYPES: Record<NpyDtype, DtypeInfo> = {
  float32: { kind: 'f', itemsize: 4, descr: '<f4' },
  float16: { kind: 'f', itemsize: 2, descr: '<f2' },
  float64: { kind: 'f', itemsize: 8, descr: '<f8' },
  int8: { kind: 'i', itemsize: 1, descr: '|i1' },
  uint8: { kind: 'u', itemsize: 1, descr: '|u1' },
  int32: { kind: 'i', itemsize: 4, descr: '<i4' },
};

const SUPPORTED_TEXT = Object.entries(DTYPES)
  .map(([name, d]) => `${name} '${d.descr}'`)
  .join(', ');

// ---------------------------------------------------------------------------------------------
// float16

/** Value of an IEEE 754 binary16 bit pattern (exact: every half is a float32). */
export function float16BitsToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

function roundHalfEven(y: number): number {
  const f = Math.floor(y);
  const d = y - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * binary16 bits of v, rounded to nearest, ties to even (as numpy.float16 and IEEE 754 convert).
 * v is rounded once, from its exact value: no double rounding through float32.
 * Values from 65520 (halfway between 65504 and the next step 65536) up become infinity.
 */
export function float32ToFloat16Bits(v: number): number {
  if (Number.isNaN(v)) return 0x7e00;
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a >= 65520) return sign | 0x7c00;
  // Subnormals are multiples of 2^-24; 1024 * 2^-24 rolls over into the smallest normal (0x0400) exactly.
  if (a < 2 ** -14) return sign | roundHalfEven(a * 2 ** 24);
  let e = Math.floor(Math.log2(a));
  // Math.log2 may be off by one next to a power of two.
  if (a >= 2 ** (e + 1)) e += 1;
  else if (a < 2 ** e) e -= 1;
  let m = roundHalfEven((a / 2 ** e - 1) * 1024); // scaling by powers of two is exact
  if (m === 1024) {
    m = 0;
    e += 1;
  }
  return sign | ((e + 15) << 10) | m;
}

// ---------------------------------------------------------------------------------------------
// Header: the Python literal subset NumPy writes (dict, tuple, list, str, int, True/False/None).

type PyValue = string | number | boolean | null | PyValue[] | { tuple: PyValue[] } | Map<string, PyValue>;

class PyLiteralParser {
  private pos = 0;
  constructor(private readonly text: string) {}

  fail(what: string): never {
    const shown = this.text.length > 160 ? `${this.text.slice(0, 160)}...` : this.text;
    throw new NpyError(`malformed header: ${what} at character ${this.pos} of ${JSON.stringify(shown)}`);
  }

  private skipSpace(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos])) this.pos++;
  }

  private peek(): string {
    this.skipSpace();
    return this.text[this.pos] ?? '';
  }

  private expect(ch: string): void {
    if (this.peek() !== ch) this.fail(`expected '${ch}'`);
    this.pos++;
  }

  /** The whole header: one dict, then only padding. */
  parseHeader(): Map<string, PyValue> {
    if (this.peek() !== '{') this.fail('expected a dictionary');
    const d = this.value() as Map<string, PyValue>;
    this.skipSpace();
    if (this.pos < this.text.length) this.fail('unexpected text after the dictionary');
    return d;
  }

  private value(): PyValue {
    const c = this.peek();
    if (c === '{') return this.dict();
    if (c === '(') return { tuple: this.sequence('(', ')') };
    if (c === '[') return this.sequence('[', ']');
    if (c === "'" || c === '"') return this.string();
    if (/[-+0-9.]/.test(c)) return this.number();
    const word = /^[A-Za-z_]\w*/.exec(this.text.slice(this.pos))?.[0];
    if (word === 'True' || word === 'False' || word === 'None') {
      this.pos += word.length;
      return word === 'None' ? null : word === 'True';
    }
    return this.fail(c ? `unexpected '${c}'` : 'unexpected end');
  }

  private dict(): Map<string, PyValue> {
    this.expect('{');
    const out = new Map<string, PyValue>();
    while (this.peek() !== '}') {
      const keyAt = this.pos;
      const key = this.value();
      if (typeof key !== 'string') {
        this.pos = keyAt;
        this.fail('dictionary keys must be strings');
      }
      this.expect(':');
      if (out.has(key)) this.fail(`key '${key}' appears twice`);
      out.set(key, this.value());
      if (this.peek() === ',') this.pos++;
      else if (this.peek() !== '}') this.fail("expected ',' or '}'");
    }
    this.pos++;
    return out;
  }

  private sequence(open: string, close: string): PyValue[] {
    this.expect(open);
    const out: PyValue[] = [];
    while (this.peek() !== close) {
      out.push(this.value());
      if (this.peek() === ',') this.pos++;
      else if (this.peek() !== close) this.fail(`expected ',' or '${close}'`);
    }
    this.pos++;
    return out;
  }

  private string(): string {
    const quote = this.text[this.pos++];
    let s = '';
    while (this.pos < this.text.length && this.text[this.pos] !== quote) {
      if (this.text[this.pos] === '\\') this.pos++;
      s += this.text[this.pos++] ?? '';
    }
    if (this.pos >= this.text.length) this.fail('unterminated string');
    this.pos++;
    return s;
  }

  private number(): number {
    // Python 2 NumPy wrote shapes as longs: (3L, 4L).
    const m = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?[lL]?/.exec(this.text.slice(this.pos));
    if (!m) this.fail('malformed number');
    this.pos += m[0].length;
    return Number(m[0].replace(/[lL]$/, ''));
  }
}

function formatPy(v: PyValue): string {
  if (v === null) return 'None';
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (typeof v === 'string') return `'${v}'`;
  if (typeof v === 'number') return String(v);
  if (Array.isArray(v)) return `[${v.map(formatPy).join(', ')}]`;
  if (v instanceof Map) return `{${[...v].map(([k, x]) => `'${k}': ${formatPy(x)}`).join(', ')}}`;
  return `(${v.tuple.map(formatPy).join(', ')}${v.tuple.length === 1 ? ',' : ''})`;
}

interface ParsedDescr {
  dtype: NpyDtype;
  bigEndian: boolean;
}

function parseDescr(descr: PyValue): ParsedDescr {
  if (typeof descr !== 'string') {
    throw new NpyError(`unsupported dtype ${formatPy(descr)}: structured arrays are not supported (supported: ${SUPPORTED_TEXT})`);
  }
  const m = /^([<>|=]?)([a-zA-Z])(\d+)$/.exec(descr);
  const found = m && (Object.keys(DTYPES) as NpyDtype[]).find((k) => DTYPES[k].kind === m[2] && DTYPES[k].itemsize === Number(m[3]));
  if (!m || !found) throw new NpyError(`unsupported dtype '${descr}' (supported: ${SUPPORTED_TEXT}; '>' big-endian variants are converted)`);
  // '|' (byte order not applicable) and '=' (native) only occur for one-byte types in files NumPy writes;
  // elsewhere read them as little-endian, the order of every machine this runs on.
  return { dtype: found, bigEndian: m[1] === '>' && DTYPES[found].itemsize > 1 };
}

function parseShape(shape: PyValue): number[] {
  const bad = () => new NpyError(`bad shape ${formatPy(shape)}: it must be a tuple of non-negative integers`);
  if (shape === null || typeof shape !== 'object' || !('tuple' in shape)) throw bad();
  const dims: number[] = [];
  for (const d of shape.tuple) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) throw bad();
    dims.push(d);
  }
  return dims;
}

function elementCount(shape: readonly number[]): number {
  const n = shape.reduce((a, b) => a * b, 1);
  if (!Number.isSafeInteger(n)) throw new NpyError(`bad shape (${shape.join(', ')}): ${n} elements is too many`);
  return n;
}

function decodeLatin1(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return s;
}

function typedArrayOf(dtype: NpyDtype, buffer: ArrayBuffer): NpyArray['data'] {
  switch (dtype) {
    case 'float32':
      return new Float32Array(buffer);
    case 'float16':
      return new Uint16Array(buffer);
    case 'float64':
      return new Float64Array(buffer);
    case 'int8':
      return new Int8Array(buffer);
    case 'uint8':
      return new Uint8Array(buffer);
    case 'int32':
      return new Int32Array(buffer);
  }
}

/** C-order copy of Fortran-order data: element (i0, ..., ik) sits at i0 + d0 * (i1 + d1 * (...)) in the file. */
function fortranToC<T extends NpyArray['data']>(src: T, shape: readonly number[]): T {
  const n = src.length;
  const k = shape.length;
  if (k < 2 || n === 0) return src;
  const out = new (src.constructor as new (n: number) => T)(n);
  const fStride: number[] = [];
  let s = 1;
  for (const d of shape) {
    fStride.push(s);
    s *= d;
  }
  const idx = new Array<number>(k).fill(0);
  let f = 0;
  for (let c = 0; c < n; c++) {
    out[c] = src[f];
    // Advance the C-order odometer (last axis fastest) and keep the Fortran offset in step.
    for (let ax = k - 1; ax >= 0; ax--) {
      if (++idx[ax] < shape[ax]) {
        f += fStride[ax];
        break;
      }
      f -= (shape[ax] - 1) * fStride[ax];
      idx[ax] = 0;
    }
  }
  return out;
}

/** Parse a .npy file. Throws NpyError naming the problem. */
export function readNpy(input: ArrayBuffer | Uint8Array): NpyArray {
  const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
  if (bytes.length < MAGIC.length || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new NpyError('not a .npy file: bad magic (the file must start with "\\x93NUMPY")');
  }
  if (bytes.length < 8) throw new NpyError(`truncated header: the file ends after ${bytes.length} bytes, inside the version field`);
  const major = bytes[6];
  const minor = bytes[7];
  if (![1, 2, 3].includes(major) || minor !== 0) {
    throw new NpyError(`unsupported .npy format version ${major}.${minor} (supported: 1.0, 2.0, 3.0)`);
  }
  const lenBytes = major === 1 ? 2 : 4;
  const preamble = 8 + lenBytes;
  if (bytes.length < preamble) throw new NpyError(`truncated header: the file ends after ${bytes.length} bytes, inside the header length field`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const available = bytes.length - preamble;
  if (headerLen > available) {
    throw new NpyError(`truncated header: the header length field says ${headerLen} bytes, the file has ${available} after the preamble`);
  }
  const headerBytes = bytes.subarray(preamble, preamble + headerLen);
  let headerText: string;
  if (major === 3) {
    try {
      headerText = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
    } catch {
      throw new NpyError('malformed header: version 3.0 header is not valid UTF-8');
    }
  } else {
    headerText = decodeLatin1(headerBytes);
  }
  const header = new PyLiteralParser(headerText).parseHeader();
  for (const key of ['descr', 'fortran_order', 'shape']) {
    if (!header.has(key)) throw new NpyError(`malformed header: the key '${key}' is missing`);
  }
  for (const key of header.keys()) {
    if (key !== 'descr' && key !== 'fortran_order' && key !== 'shape') throw new NpyError(`malformed header: unexpected key '${key}'`);
  }
  const { dtype, bigEndian } = parseDescr(header.get('descr')!);
  const fortran = header.get('fortran_order');
  if (typeof fortran !== 'boolean') throw new NpyError(`malformed header: fortran_order must be True or False, got ${formatPy(fortran!)}`);
  const shape = parseShape(header.get('shape')!);
  const itemsize = DTYPES[dtype].itemsize;
  const nbytes = elementCount(shape) * itemsize;
  const offset = preamble + headerLen;
  const have = bytes.length - offset;
  if (have < nbytes) throw new NpyError(`truncated data: expected ${nbytes} bytes of data, file has ${have}`);
  // A copy starts at offset 0 of its own buffer, so the typed array is aligned whatever the header padding.
  // (Not bytes.slice: a Node Buffer's slice is a view, not a copy.)
  const raw = new Uint8Array(nbytes);
  raw.set(bytes.subarray(offset, offset + nbytes));
  if (bigEndian) {
    for (let i = 0; i < raw.length; i += itemsize) {
      for (let a = i, b = i + itemsize - 1; a < b; a++, b--) {
        const t = raw[a];
        raw[a] = raw[b];
        raw[b] = t;
      }
    }
  }
  let data = typedArrayOf(dtype, raw.buffer);
  if (fortran) data = fortranToC(data, shape);
  return { dtype, shape, data };
}

/**
 * The array's values as float32. float32 data is returned as is (not copied); float16 is decoded
 * exactly; float64 and int32 are rounded to the nearest float32 (float64 beyond +-3.4e38 becomes +-Infinity).
 */
export function npyToFloat32(a: NpyArray): Float32Array {
  if (a.dtype === 'float32') return a.data as Float32Array;
  const out = new Float32Array(a.data.length);
  if (a.dtype === 'float16') {
    const bits = a.data as Uint16Array;
    for (let i = 0; i < bits.length; i++) out[i] = float16BitsToFloat32(bits[i]);
  } else {
    out.set(a.data);
  }
  return out;
}

function dtypeOfArray(data: Float32Array | Int8Array | Uint8Array | Int32Array | Uint16Array): NpyDtype {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Uint8Array) return 'uint8';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Uint16Array) return 'float16';
  throw new NpyError(`cannot write ${Object.prototype.toString.call(data)}: use Float32Array, Uint16Array (float16 bits), Int8Array, Uint8Array or Int32Array`);
}

/** Little-endian bytes of data as `dtype`: the array's own type, or a Float32Array narrowed to float16 / widened to float64. */
function encodeData(data: Float32Array | Int8Array | Uint8Array | Int32Array | Uint16Array, dtype: NpyDtype): Uint8Array {
  const own = dtypeOfArray(data);
  if (own === dtype) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (own === 'float32' && dtype === 'float16') return new Uint8Array(Uint16Array.from(data, float32ToFloat16Bits).buffer);
  if (own === 'float32' && dtype === 'float64') return new Uint8Array(Float64Array.from(data).buffer);
  throw new NpyError(`cannot write a ${data.constructor.name} as ${dtype} (only as ${own}; a Float32Array may also be written as float16 or float64)`);
}

/**
 * A version 1.0 .npy file (2.0 when the header outgrows 65535 bytes), little-endian, C order,
 * the data starting at a multiple of 64 bytes. `dtype` defaults from the array type; a Uint16Array
 * holds float16 bits.
 */
export function writeNpy(data: Float32Array | Int8Array | Uint8Array | Int32Array | Uint16Array, shape: number[], dtype?: NpyDtype): Uint8Array {
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new NpyError(`bad shape [${shape.join(', ')}]: every dimension must be a non-negative integer`);
  }
  const n = elementCount(shape);
  if (n !== data.length) throw new NpyError(`shape [${shape.join(', ')}] holds ${n} elements, the data has ${data.length}`);
  const dt = dtype ?? dtypeOfArray(data);
  if (!Object.hasOwn(DTYPES, dt)) throw new NpyError(`unknown dtype '${String(dt)}' (supported: ${Object.keys(DTYPES).join(', ')})`);
  const body = encodeData(data, dt);
  const shapeText = `(${shape.join(', ')}${shape.length === 1 ? ',' : ''})`;
  const dict = `{'descr': '${DTYPES[dt].descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  let major = 1;
  let preamble = 10;
  if (dict.length + 1 + ARRAY_ALIGN > 0xffff) {
    major = 2;
    preamble = 12;
  }
  const unpadded = preamble + dict.length + 1;
  const headerLen = dict.length + 1 + ((ARRAY_ALIGN - (unpadded % ARRAY_ALIGN)) % ARRAY_ALIGN);
  const out = new Uint8Array(preamble + headerLen + body.length);
  out.set(MAGIC);
  out[6] = major;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, headerLen, true);
  else view.setUint32(8, headerLen, true);
  out.fill(0x20, preamble, preamble + headerLen - 1);
  for (let i = 0; i < dict.length; i++) out[preamble + i] = dict.charCodeAt(i);
  out[preamble + headerLen - 1] = 0x0a;
  out.set(body, preamble + headerLen);
  return out;
}
