/**
 * Folding SmoothQuant factors leaves the FP32 model's function unchanged: a random tiny Llama (CPU forward
 * pass, also after a llama2.c round trip) and hand-built ONNX graphs (LayerNormalization -> MatMul + Gemm
 * transB, decomposed RMSNorm -> MatMul behind a Transpose) run by onnxruntime-node give the same outputs,
 * while the stored tensors really changed.
 */
import { encodeCheckpointLlama2c } from '../../src/model/formats/llama2c.ts';
import { describe, expect, test } from 'vitest';
import * as ort from 'onnxruntime-node';
import { openLlama2c } from '../../src/model/formats/llama2c.ts';
import { LlamaCpu } from '../../src/model/llama/forward-cpu.ts';
import { expectedTensors } from '../../src/model/llama/model.ts';
import { attr, makeGraph, makeModel, makeNode, makeValueInfo } from '../../src/model/onnx/build.ts';
import { loadModel } from '../../src/model/onnx/load.ts';
import { serializeModel } from '../../src/model/onnx/serialize.ts';
import { makeTensor } from '../../src/model/onnx/tensor-data.ts';
import { openModel, type OnnxModelHandle } from '../../src/model/workspace.ts';
import { llamaSmoothGroups, smoothLlamaTensors } from '../../src/smooth/fold-llama.ts';
import { onnxGroupWeights, onnxSmoothGroups, replaceConstants, smoothOnnxConstants } from '../../src/smooth/fold-onnx.ts';
import { smoothingFactors, weightColumnAbsmax } from '../../src/smooth/smoothquant.ts';
import { gaussian } from '../helpers/random.ts';
import { concat, maxAbsDiff, tinyConfig, tinyWeights } from '../model/tiny-llama.ts';

function bytesSource(name: string, bytes: Uint8Array) {
  return { name, size: bytes.length, read: async (o: number, n: number) => bytes.subarray(o, o + n) };
}

function logitsOf(cpu: LlamaCpu, tokens: number[]): Float32Array[] {
  cpu.reset();
  return tokens.map((t, pos) => cpu.forward(t, pos).slice());
}

describe('Llama', () => {
  test('smoothed tiny Llama: same logits in FP32, norms and q/k/v, gate/up changed, llama2.c round trip', async () => {
    const cfg = tinyConfig({ nKvHeads: 4 });
    const weights = tinyWeights(cfg, 7);
    // Outlier input channels, as in real LLMs, so the factors are far from 1.
    const ckpt = { config: cfg, loadTensor: async (n: string) => weights.get(n)!.slice() };
    const factors = new Map<string, Float32Array>();
    for (const g of llamaSmoothGroups(cfg)) {
      const act = Float32Array.from({ length: cfg.dim }, (_, j) => (j % 5 === 0 ? 30 : 1 + j / 10));
      const linears = g.linears.map((n) => ({ name: n, weight: weights.get(n)!, out: expectedTensors(cfg).find((t) => t.name === n)!.shape[0] }));
      factors.set(g.prev, smoothingFactors(act, weightColumnAbsmax(linears, cfg.dim), 0.5));
    }
    const replaced = await smoothLlamaTensors(ckpt, factors);
    expect([...replaced.keys()].sort()).toEqual(
      ['attention_norm', 'wq', 'wk', 'wv', 'ffn_norm', 'w1', 'w3'].flatMap((t) => [0, 1].map((l) => `layers.${l}.${t}`)).sort(),
    );
    const s0 = factors.get('layers.0.attention_norm')!;
    expect(replaced.get('layers.0.attention_norm')![0]).toBeCloseTo(weights.get('layers.0.attention_norm')![0] / s0[0], 5);
    expect(replaced.get('layers.0.wk')![cfg.dim + 2]).toBeCloseTo(weights.get('layers.0.wk')![cfg.dim + 2] * s0[2], 5);
    expect(maxAbsDiff(replaced.get('layers.1.w1')!, weights.get('layers.1.w1')!)).toBeGreaterThan(0.1);

    const smoothedWeights = new Map(weights);
    for (const [k, v] of replaced) smoothedWeights.set(k, v);
    const tokens = [1, 5, 9, 33, 2, 17];
    const ref = logitsOf(LlamaCpu.fromWeights(cfg, weights), tokens);
    const got = logitsOf(LlamaCpu.fromWeights(cfg, smoothedWeights), tokens);
    for (let i = 0; i < tokens.length; i++) expect(maxAbsDiff(ref[i], got[i])).toBeLessThan(1e-4);

    // Written as llama2.c and reopened: the same logits again.
    const full = { ...ckpt, name: 'tiny', tensors: expectedTensors(cfg).map((t) => ({ name: t.name, shape: t.shape, dtype: 'f32' as const, sourceName: t.name })), tokenizer: undefined };
    const files = await encodeCheckpointLlama2c(full, replaced);
    expect(files.tokenizer).toBeUndefined();
    const reopened = await openLlama2c(bytesSource('model.bin', concat(files.model)));
    const back = logitsOf(await LlamaCpu.load(reopened), tokens);
    for (let i = 0; i < tokens.length; i++) expect(maxAbsDiff(ref[i], back[i])).toBeLessThan(1e-4);
    await expect(smoothLlamaTensors(ckpt, new Map([['layers.0.wq', s0]]))).rejects.toThrow(/not a norm/);
  });
});

/** x [2, 3, 8] -> LayerNormalization -> MatMul(B [8, 6]) and Gemm-free MatMul through a Transpose; RMSNorm decomposed -> Gemm transB. */
function testGraph(): Uint8Array {
  const C = 8;
  const ln = [makeTensor('ln_g', [C], gaussian(C, 1, 0.3).map((v) => 1 + v)), makeTensor('ln_b', [C], gaussian(C, 2, 0.2))];
  const wA = makeTensor('wA', [C, 6], gaussian(C * 6, 3, 0.5)); // MatMul B [in, out]
  const wB = makeTensor('wB', [5, C], gaussian(5 * C, 4, 0.5)); // [out, in] behind a Transpose
  const bB = makeTensor('bB', [5], gaussian(5, 5, 0.1));
  const rmsG = makeTensor('rms_g', [C], gaussian(C, 6, 0.3).map((v) => 1 + v));
  const wC = makeTensor('wC', [4, C], gaussian(4 * C, 7, 0.5)); // Gemm transB: [out, in]
  const proj = makeTensor('proj', [6, C], gaussian(6 * C, 8, 0.5));
  const nodes = [
    makeNode('LayerNormalization', ['x', 'ln_g', 'ln_b'], ['ln_out'], [attr.int('axis', -1), attr.float('epsilon', 1e-5)], { name: 'ln' }),
    makeNode('MatMul', ['ln_out', 'wA'], ['a'], [], { name: 'mmA' }),
    makeNode('Transpose', ['wB'], ['wBt'], [attr.ints('perm', [1, 0])], { name: 'tB' }),
    makeNode('MatMul', ['ln_out', 'wBt'], ['b0'], [], { name: 'mmB' }),
    makeNode('Add', ['b0', 'bB'], ['b'], [], { name: 'addB' }),
    // a [2, 3, 6] -> [6, 6] . proj [6, 8] -> h [6, 8] -> RMSNorm -> Gemm transB
    makeNode('Reshape', ['a', 'shape2d'], ['a2'], [], { name: 'flat' }),
    makeNode('MatMul', ['a2', 'proj'], ['h'], [], { name: 'mmP' }),
    makeNode('Pow', ['h', 'two'], ['h2'], [], { name: 'sq' }),
    makeNode('ReduceMean', ['h2'], ['ms'], [attr.ints('axes', [-1]), attr.int('keepdims', 1)], { name: 'rm' }),
    makeNode('Add', ['ms', 'eps'], ['mse'], [], { name: 'addEps' }),
    makeNode('Sqrt', ['mse'], ['rms'], [], { name: 'sqrt' }),
    makeNode('Div', ['h', 'rms'], ['hn'], [], { name: 'div' }),
    makeNode('Mul', ['hn', 'rms_g'], ['rms_out'], [], { name: 'mulG' }),
    makeNode('Gemm', ['rms_out', 'wC'], ['c'], [attr.int('transB', 1)], { name: 'gemmC' }),
  ];
  const graph = makeGraph({
    nodes,
    initializers: [...ln, wA, wB, bB, rmsG, wC, proj, makeTensor('shape2d', [2], BigInt64Array.from([6n, 6n])), makeTensor('two', [], Float32Array.of(2)), makeTensor('eps', [], Float32Array.of(1e-6))],
    inputs: [makeValueInfo('x', 'float32', [2, 3, C])],
    outputs: [makeValueInfo('b', 'float32', [2, 3, 5]), makeValueInfo('c', 'float32', [6, 4])],
  });
  return serializeModel(makeModel(graph, { opset: 17 }));
}

async function runOrt(bytes: Uint8Array, x: Float32Array): Promise<Record<string, Float32Array>> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const out = await session.run({ x: new ort.Tensor('float32', x, [2, 3, 8]) });
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
  } finally {
    await session.release();
  }
}

describe('ONNX', () => {
  test('LayerNorm -> MatMul [in, out] + MatMul(Transpose) and RMSNorm -> Gemm transB: same outputs after folding', async () => {
    const bytes = testGraph();
    const h = (await openModel([bytesSource('t.onnx', bytes)])) as OnnxModelHandle;
    const groups = onnxSmoothGroups(h);
    expect(groups.map((g) => [g.group.kind, g.group.linears, g.skip])).toEqual([
      ['layernorm', ['mmA', 'mmB'], undefined],
      ['rmsnorm', ['gemmC'], undefined],
    ]);
    const factors = new Map<string, Float32Array>();
    for (const g of groups) {
      const lin = await onnxGroupWeights(h, g);
      const act = Float32Array.from({ length: 8 }, (_, j) => (j === 2 ? 50 : 0.5 + j));
      factors.set(g.name, smoothingFactors(act, weightColumnAbsmax(lin, 8), 0.8));
    }
    // The [out, in] view of MatMul B [8, 6] has 6 rows of 8.
    expect((await onnxGroupWeights(h, groups[0]))[0].out).toBe(6);
    const replaced = await smoothOnnxConstants(h, groups, factors);
    expect([...replaced.keys()].sort()).toEqual(['ln_b', 'ln_g', 'rms_g', 'wA', 'wB', 'wC']);
    const smoothed = serializeModel(replaceConstants(h.model, replaced));
    const x = gaussian(48, 9, 2);
    const ref = await runOrt(bytes, x);
    const got = await runOrt(smoothed, x);
    for (const k of ['b', 'c']) {
      expect(maxAbsDiff(ref[k], got[k])).toBeLessThan(2e-4 * Math.max(1, ...Array.from(ref[k], Math.abs)));
    }
    // The stored weights did change (wA column 2 of the [in, out] layout is row 2).
    const before = (await loadModel(bytes)).graph.initializers.find((t) => t.name === 'wA')!;
    const after = (await loadModel(smoothed)).graph.initializers.find((t) => t.name === 'wA')!;
    expect(before.data).not.toEqual(after.data);
  });

  test('a norm output also read by another node is not smoothed, and says why', async () => {
    const C = 4;
    const graph = makeGraph({
      nodes: [
        makeNode('LayerNormalization', ['x', 'g', 'b'], ['n'], [attr.int('axis', -1)], { name: 'ln' }),
        makeNode('MatMul', ['n', 'w'], ['y'], [], { name: 'mm' }),
        makeNode('Add', ['n', 'x'], ['r'], [], { name: 'residual' }),
      ],
      initializers: [makeTensor('g', [C], Float32Array.of(1, 1, 1, 1)), makeTensor('b', [C], Float32Array.of(0, 0, 0, 0)), makeTensor('w', [C, 3], gaussian(12, 1))],
      inputs: [makeValueInfo('x', 'float32', [1, C])],
      outputs: [makeValueInfo('y', 'float32', [1, 3]), makeValueInfo('r', 'float32', [1, C])],
    });
    const h = (await openModel([bytesSource('r.onnx', serializeModel(makeModel(graph, { opset: 17 })))])) as OnnxModelHandle;
    const [g] = onnxSmoothGroups(h);
    expect(g.skip).toMatch(/also read by residual/);
    await expect(smoothOnnxConstants(h, [g], new Map([[g.name, new Float32Array(C).fill(2)]]))).rejects.toThrow(/cannot be smoothed/);
  });
});
