/** .npy files written by NumPy (any version, either byte order, C or Fortran order) read back as the same array, the files we write follow the spec, and a bad file is refused with an NpyError that names the problem. */
import { describe, expect, test } from 'vitest';
import { float16BitsToFloat32, float32ToFloat16Bits, NpyError, npyToFloat32, readNpy, writeNpy, type NpyArray, type NpyDtype } from '../../src/io/npy.ts';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];

/** A file laid out by hand from the spec: magic, version, little-endian header length, header text, data. */
function handBuilt(opts: { major?: number; minor?: number; header: string; data?: ArrayLike<number>; headerLen?: number }): Uint8Array {
  const major = opts.major ?? 1;
  const text = new TextEncoder().encode(opts.header);
  const lenBytes = major === 1 ? 2 : 4;
  const len = opts.headerLen ?? text.length;
  const data = opts.data ?? [];
  const out = new Uint8Array(8 + lenBytes + text.length + data.length);
  out.set(MAGIC);
  out[6] = major;
  out[7] = opts.minor ?? 0;
  for (let i = 0; i < lenBytes; i++) out[8 + i] = (len >>> (8 * i)) & 0xff;
  out.set(text, 8 + lenBytes);
  out.set(data, 8 + lenBytes + text.length);
  return out;
}

/** Header text padded with spaces and ended with '\n' so that preamble + header is a multiple of `align`. */
function padded(dict: string, preamble: number, align: number): string {
  const total = preamble + dict.length + 1;
  return dict + ' '.repeat((align - (total % align)) % align) + '\n';
}

function le(values: number[], kind: 'f4' | 'i4' | 'f8' | 'f2', littleEndian = true): number[] {
  const size = { f4: 4, i4: 4, f8: 8, f2: 2 }[kind];
  const v = new DataView(new ArrayBuffer(values.length * size));
  values.forEach((x, i) => {
    if (kind === 'f4') v.setFloat32(i * size, x, littleEndian);
    else if (kind === 'i4') v.setInt32(i * size, x, littleEndian);
    else if (kind === 'f8') v.setFloat64(i * size, x, littleEndian);
    else v.setUint16(i * size, x, littleEndian);
  });
  return Array.from(new Uint8Array(v.buffer));
}

function npyError(bytes: Uint8Array): NpyError {
  try {
    readNpy(bytes);
  } catch (e) {
    expect(e).toBeInstanceOf(NpyError);
    return e as NpyError;
  }
  throw new Error('readNpy accepted a malformed file');
}

describe('float16 conversion', () => {
  test.each([
    [1, 0x3c00],
    [-2, 0xc000],
    [65504, 0x7bff],
    [2 ** -24, 0x0001],
    [1023 * 2 ** -24, 0x03ff],
    [2 ** -14, 0x0400],
    [0, 0x0000],
    [-0, 0x8000],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
  ].map(([v, bits]) => [v, `0x${bits.toString(16).padStart(4, '0')}`, bits] as const))('%d encodes as %s', (v, _hex, bits) => {
    expect(float32ToFloat16Bits(v)).toBe(bits);
    expect(Object.is(float16BitsToFloat32(bits), v)).toBe(true);
  });

  test('rounds to nearest, ties to even', () => {
    // 0.1 lies between 0x2e66 (0.0999755859375) and 0x2e67 (0.10003662109375), nearer the first.
    expect(float32ToFloat16Bits(0.1)).toBe(0x2e66);
    expect(float16BitsToFloat32(0x2e66)).toBe(0.0999755859375);
    // 1 + 2^-11 lies halfway between 1 (0x3c00, even) and 1 + 2^-10 (0x3c01).
    expect(float32ToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00);
    // 1 + 3 * 2^-11 lies halfway between 0x3c01 and 0x3c02 (even).
    expect(float32ToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(float32ToFloat16Bits(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01);
    // Subnormal ties: 2^-25 is halfway between 0 and 2^-24; 3 * 2^-25 between 0x0001 and 0x0002.
    expect(float32ToFloat16Bits(2 ** -25)).toBe(0x0000);
    expect(float32ToFloat16Bits(3 * 2 ** -25)).toBe(0x0002);
    expect(float32ToFloat16Bits(2 ** -26)).toBe(0x0000);
    // The largest subnormal rounds up into the smallest normal.
    expect(float32ToFloat16Bits(1023.5 * 2 ** -24)).toBe(0x0400);
    // Overflow: 65520 is halfway between 65504 (0x7bff, odd) and 65536 (infinity), so it goes to infinity.
    expect(float32ToFloat16Bits(65519.99)).toBe(0x7bff);
    expect(float32ToFloat16Bits(65520)).toBe(0x7c00);
    expect(float32ToFloat16Bits(-1e10)).toBe(0xfc00);
  });

  test('NaN stays NaN', () => {
    const bits = float32ToFloat16Bits(NaN);
    expect(bits & 0x7c00).toBe(0x7c00);
    expect(bits & 0x03ff).not.toBe(0);
    expect(float16BitsToFloat32(0x7e00)).toBeNaN();
    expect(float16BitsToFloat32(0xfc01)).toBeNaN();
  });

  test('every half value survives decode then encode', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const v = float16BitsToFloat32(bits);
      if (Number.isNaN(v)) continue;
      expect(Math.fround(v)).toBe(v);
      if (float32ToFloat16Bits(v) !== bits) expect.fail(`0x${bits.toString(16)} -> ${v} -> 0x${float32ToFloat16Bits(v).toString(16)}`);
    }
  });
});

describe('round trips', () => {
  const shapes: number[][] = [[7], [3, 5], [2, 3, 4], [], [0]];
  const arrays: Record<Exclude<NpyDtype, 'float64'>, (n: number) => Float32Array | Uint16Array | Int8Array | Uint8Array | Int32Array> = {
    float32: (n) => Float32Array.from({ length: n }, (_, i) => Math.fround((i - 3) * 1.37e-3 + (i % 5) * 1e20)),
    float16: (n) => Uint16Array.from({ length: n }, (_, i) => (i * 7919) & 0xffff),
    int8: (n) => Int8Array.from({ length: n }, (_, i) => ((i * 37) % 256) - 128),
    uint8: (n) => Uint8Array.from({ length: n }, (_, i) => (i * 37) % 256),
    int32: (n) => Int32Array.from({ length: n }, (_, i) => (i * 2654435761) | 0),
  };

  for (const [dtype, make] of Object.entries(arrays)) {
    test.each(shapes)(`${dtype} with shape [%s]`, (...shape) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const data = make(n);
      const bytes = writeNpy(data, shape);
      const back = readNpy(bytes);
      expect(back.dtype).toBe(dtype);
      expect(back.shape).toEqual(shape);
      expect(back.data.constructor).toBe(data.constructor);
      expect(Array.from(back.data)).toEqual(Array.from(data));
      // The header is padded with spaces to a '\n' so the data starts at a multiple of 64 bytes.
      const headerLen = bytes[8] | (bytes[9] << 8);
      expect((10 + headerLen) % 64).toBe(0);
      expect(bytes[10 + headerLen - 1]).toBe(0x0a);
      expect(bytes.length).toBe(10 + headerLen + data.byteLength);
    });
  }

  test('the header is the dict NumPy writes', () => {
    const bytes = writeNpy(new Float32Array(12), [3, 4]);
    const header = new TextDecoder().decode(bytes.subarray(10, 10 + (bytes[8] | (bytes[9] << 8))));
    expect(header.trimEnd()).toBe("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }");
    expect(new TextDecoder().decode(writeNpy(new Int8Array(3), [3]).subarray(10, 70))).toContain("'descr': '|i1'");
    expect(new TextDecoder().decode(writeNpy(new Int32Array(1), []).subarray(10, 70))).toContain("'shape': ()");
  });

  test('a Float32Array can be written as float16 (rounded) or float64 (exact)', () => {
    const x = new Float32Array([1, 1 + 2 ** -11, 65504, 1e6, Math.fround(0.1)]);
    const h = readNpy(writeNpy(x, [5], 'float16'));
    expect(h.dtype).toBe('float16');
    expect(Array.from(h.data)).toEqual([0x3c00, 0x3c00, 0x7bff, 0x7c00, 0x2e66]);
    const d = readNpy(writeNpy(x, [5], 'float64'));
    expect(d.dtype).toBe('float64');
    expect(Array.from(d.data)).toEqual(Array.from(x));
  });

  test('writeNpy refuses a shape that does not hold the data, and a dtype the array cannot become', () => {
    expect(() => writeNpy(new Float32Array(6), [4])).toThrow(/shape \[4\] holds 4 elements, the data has 6/);
    expect(() => writeNpy(new Float32Array(1), [-1])).toThrow(NpyError);
    expect(() => writeNpy(new Int8Array(2), [2], 'float32')).toThrow(/cannot write a Int8Array as float32/);
  });
});

describe('npyToFloat32', () => {
  test.each<[NpyArray, number[]]>([
    [{ dtype: 'float32', shape: [2], data: new Float32Array([1.5, -2]) }, [1.5, -2]],
    [{ dtype: 'float16', shape: [3], data: new Uint16Array([0x3c00, 0xc000, 0x0001]) }, [1, -2, 2 ** -24]],
    [{ dtype: 'float64', shape: [3], data: new Float64Array([0.1, 1e300, -3]) }, [Math.fround(0.1), Infinity, -3]],
    [{ dtype: 'int8', shape: [2], data: new Int8Array([-128, 127]) }, [-128, 127]],
    [{ dtype: 'uint8', shape: [2], data: new Uint8Array([0, 255]) }, [0, 255]],
    [{ dtype: 'int32', shape: [2], data: new Int32Array([-7, 2 ** 24 + 1]) }, [-7, 2 ** 24]],
  ])('%o', (a, want) => {
    const f = npyToFloat32(a);
    expect(f).toBeInstanceOf(Float32Array);
    expect(Array.from(f)).toEqual(want);
  });
});

describe('files laid out by hand from the spec', () => {
  test('version 1.0, byte by byte', () => {
    // {'descr': '<i4', 'fortran_order': False, 'shape': (2,), } (57 bytes) padded to 10 + 118 = 128, then 7 and -1.
    const header = padded("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", 10, 64);
    expect(header.length).toBe(118);
    const bytes = new Uint8Array([
      0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x01, 0x00, 118, 0x00,
      ...Array.from(header, (c) => c.charCodeAt(0)),
      0x07, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
    ]);
    const a = readNpy(bytes);
    expect(a).toEqual({ dtype: 'int32', shape: [2], data: new Int32Array([7, -1]) });
  });

  test('version 2.0 with a 4-byte header length', () => {
    const header = padded("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", 12, 64);
    const a = readNpy(handBuilt({ major: 2, header, data: le([1, 2, 3, 4.5], 'f4') }));
    expect(a.dtype).toBe('float32');
    expect(a.shape).toEqual([2, 2]);
    expect(Array.from(a.data)).toEqual([1, 2, 3, 4.5]);
  });

  test('version 3.0 (UTF-8 header)', () => {
    const header = padded("{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }", 12, 64);
    const a = readNpy(handBuilt({ major: 3, header, data: le([0x3c00, 0x7bff, 0x0001], 'f2') }));
    expect(Array.from(npyToFloat32(a))).toEqual([1, 65504, 2 ** -24]);
  });

  test('old NumPy files whose data starts at a multiple of 16, not 64', () => {
    const header = padded("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 10, 16);
    expect((10 + header.length) % 64).not.toBe(0);
    const a = readNpy(handBuilt({ header, data: le([0.5, -0.25, 8], 'f4') }));
    expect(Array.from(a.data)).toEqual([0.5, -0.25, 8]);
  });

  test('any data offset, Python 2 long shapes, double quotes, other key order, no padding', () => {
    const a = readNpy(handBuilt({ header: '{"shape": (2L, 1L), "fortran_order": False, "descr": "<f8"}', data: le([1 / 3, -5], 'f8') }));
    expect(a.dtype).toBe('float64');
    expect(a.shape).toEqual([2, 1]);
    expect(Array.from(a.data)).toEqual([1 / 3, -5]);
  });

  test('a byte view into a larger buffer (a Node Buffer slice) reads its own bytes', () => {
    const file = writeNpy(new Float32Array([1, 2, 3]), [3]);
    const big = new Uint8Array(file.length + 11);
    big.set(file, 5);
    expect(Array.from(readNpy(big.subarray(5, 5 + file.length)).data)).toEqual([1, 2, 3]);
    expect(Array.from(readNpy(file.slice().buffer).data)).toEqual([1, 2, 3]);
  });

  test.each([
    ['>f4', 'f4', [1.5, -2, 1e-30], 'float32'],
    ['>i4', 'i4', [1, -2, 0x12345678], 'int32'],
    ['>f8', 'f8', [0.1, -1e300, 5], 'float64'],
    ['>f2', 'f2', [0x3c00, 0xc000, 0x7bff], 'float16'],
  ] as const)('big-endian %s is converted', (descr, kind, values, dtype) => {
    const header = padded(`{'descr': '${descr}', 'fortran_order': False, 'shape': (3,), }`, 10, 64);
    const a = readNpy(handBuilt({ header, data: le([...values], kind, false) }));
    expect(a.dtype).toBe(dtype);
    expect(Array.from(a.data)).toEqual(kind === 'f4' ? values.map(Math.fround) : [...values]);
  });

  test('Fortran-order arrays are transposed to C order', () => {
    // C-order [[0, 1, 2], [3, 4, 5]] stored column by column.
    const two = readNpy(handBuilt({ header: "{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }\n", data: le([0, 3, 1, 4, 2, 5], 'i4') }));
    expect(two.shape).toEqual([2, 3]);
    expect(Array.from(two.data)).toEqual([0, 1, 2, 3, 4, 5]);
    // Element (i, j, k) of a (2, 3, 4) array sits at i + 2j + 6k in Fortran order; it holds its C index 12i + 4j + k.
    const f = new Array<number>(24);
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) f[i + 2 * j + 6 * k] = 12 * i + 4 * j + k;
    const three = readNpy(handBuilt({ header: "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3, 4), }\n", data: le(f, 'f4') }));
    expect(Array.from(three.data)).toEqual(Array.from({ length: 24 }, (_, i) => i));
  });
});

describe('malformed files give an NpyError naming the problem', () => {
  const ok = (shape = '(3,)', descr = '<f4', fortran = 'False') => `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }\n`;

  test.each<[string, Uint8Array, RegExp]>([
    ['bad magic', new TextEncoder().encode('PK\x03\x04 this is a zip file'), /bad magic/],
    ['bad magic (empty file)', new Uint8Array(0), /bad magic/],
    ['truncated header (inside the length field)', new Uint8Array([...MAGIC, 1, 0, 0x40]), /truncated header/],
    ['truncated header (shorter than its length field)', handBuilt({ header: ok().slice(0, 20), headerLen: 118 }), /truncated header: the header length field says 118 bytes, the file has 20/],
    ['big header length', handBuilt({ major: 2, header: ok(), headerLen: 0xffffffff }), /truncated header: the header length field says 4294967295 bytes/],
    ['truncated data', handBuilt({ header: ok('(3, 4)'), data: new Uint8Array(20) }), /truncated data: expected 48 bytes of data, file has 20/],
    ['unsupported version', handBuilt({ major: 4, header: ok() }), /unsupported \.npy format version 4\.0/],
    ['unknown dtype <c8', handBuilt({ header: ok('(3,)', '<c8') }), /unsupported dtype '<c8'/],
    ['unknown dtype |b1 (bool)', handBuilt({ header: ok('(3,)', '|b1') }), /unsupported dtype '\|b1'/],
    ['unknown dtype <U10', handBuilt({ header: ok('(3,)', '<U10') }), /unsupported dtype '<U10'/],
    ['structured dtype', handBuilt({ header: "{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, 'shape': (3,), }" }), /structured arrays are not supported/],
    ['non-integer shape', handBuilt({ header: ok('(3.5, 2)') }), /bad shape \(3\.5, 2\)/],
    ['negative shape', handBuilt({ header: ok('(-1,)') }), /bad shape \(-1,\)/],
    ['shape as a list', handBuilt({ header: ok('[3]') }), /bad shape \[3\]/],
    ['shape as a string', handBuilt({ header: ok("'3'") }), /bad shape '3'/],
    ['missing key', handBuilt({ header: "{'descr': '<f4', 'shape': (3,)}" }), /the key 'fortran_order' is missing/],
    ['unexpected key', handBuilt({ header: "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}" }), /unexpected key 'x'/],
    ['fortran_order not a boolean', handBuilt({ header: ok('(3,)', '<f4', '0') }), /fortran_order must be True or False, got 0/],
    ['header not a dict', handBuilt({ header: "['descr', '<f4']" }), /malformed header: expected a dictionary/],
    ['unterminated dict', handBuilt({ header: "{'descr': '<f4', 'fortran_order': False" }), /malformed header/],
    ['text after the dict', handBuilt({ header: `${ok().trimEnd()} junk` }), /unexpected text after the dictionary/],
  ])('%s', (_name, bytes, message) => {
    expect(npyError(bytes).message).toMatch(message);
  });
});
