// On hand-made graphs (written with serializeModel and parsed back): constant-weight MatMul / Gemm / Conv / ConvTranspose are found with the right [out, in] view, non-constant weights are not, and fused or decomposed LayerNorm / RMSNorm -> linear groups are detected with their gamma, beta and foldability.
import { describe, expect, it } from 'vitest';
import { analyzeModel, type ModelAnalysis } from '../../src/model/onnx/analyze.ts';
import { attr, makeConstantNode, makeGraph, makeModel, makeNode, makeValueInfo } from '../../src/model/onnx/build.ts';
import { buildGraphIndex, liftConstantsToInitializers } from '../../src/model/onnx/graph-index.ts';
import { parseModel } from '../../src/model/onnx/load.ts';
import type { OnnxGraph, OnnxModel, OnnxNode, OnnxTensor } from '../../src/model/onnx/model.ts';
import { serializeModel } from '../../src/model/onnx/serialize.ts';
import { makeTensor, tensorToFloat32 } from '../../src/model/onnx/tensor-data.ts';
import { outInToWeight, weightToOutIn } from '../../src/model/onnx/weight-view.ts';
import { gaussian } from '../helpers/random.ts';

function randTensor(name: string, dims: number[], seed: number): OnnxTensor {
  return makeTensor(name, dims, gaussian(dims.reduce((a, b) => a * b, 1), seed));
}

/** Builds, serializes and re-parses, so every case also exercises the writer. */
function analyze(graph: OnnxGraph, opts: Parameters<typeof makeModel>[1] = {}): { model: OnnxModel; a: ModelAnalysis } {
  const model = parseModel(serializeModel(makeModel(graph, opts)));
  return { model, a: analyzeModel(model) };
}

function graphOf(nodes: OnnxNode[], initializers: OnnxTensor[], inputs = ['x'], outputs = ['y']): OnnxGraph {
  return makeGraph({
    nodes,
    initializers,
    inputs: inputs.map((n) => makeValueInfo(n, 'float32', ['batch', 'seq', 16])),
    outputs: outputs.map((n) => makeValueInfo(n)),
  });
}

describe('quantizable layers', () => {
  it('MatMul with an initializer B [K, N]: out = N, in = K, output channels on axis 1 of the stored weight', () => {
    const { a } = analyze(graphOf([makeNode('MatMul', ['x', 'W'], ['y'], [], { name: 'fc' })], [randTensor('W', [16, 24], 1)]));
    expect(a.layers).toHaveLength(1);
    const l = a.layers[0];
    expect(l).toMatchObject({
      name: 'fc', op: 'MatMul', weight: 'W', weightSource: 'initializer', weightShape: [16, 24], outChannels: 24, inChannels: 16,
      outAxis: 1, needsRearrange: true, activation: 'x', activationChannelAxis: -1, params: 384, groups: 1, depthwise: false,
    });
    expect(l.bias).toBeUndefined();
  });

  it('weightToOutIn turns MatMul B into the matrix whose rows produce the outputs (y = x B = W x)', () => {
    const { model, a } = analyze(graphOf([makeNode('MatMul', ['x', 'W'], ['y'])], [randTensor('W', [5, 3], 2)]));
    const l = a.layers[0];
    const stored = tensorToFloat32(model.graph.initializers[0]);
    const m = weightToOutIn(l, stored);
    const x = gaussian(5, 3);
    for (let n = 0; n < 3; n++) {
      let viaB = 0;
      let viaRows = 0;
      for (let k = 0; k < 5; k++) {
        viaB += x[k] * stored[k * 3 + n];
        viaRows += m[n * 5 + k] * x[k];
      }
      expect(viaRows).toBeCloseTo(viaB, 5);
    }
    expect(outInToWeight(l, m)).toEqual(stored);
  });

  it('MatMul + Add of a constant [N] reports the bias and its Add', () => {
    const { a } = analyze(
      graphOf([makeNode('MatMul', ['x', 'W'], ['h']), makeNode('Add', ['h', 'b'], ['y'], [], { name: 'bias_add' })], [randTensor('W', [16, 8], 4), randTensor('b', [8], 5)]),
    );
    expect(a.layers[0]).toMatchObject({ bias: 'b', biasAdd: 'bias_add', name: 'MatMul#0' });
  });

  it('MatMul B through Transpose of [N, K]: already [out, in], output channels on axis 0', () => {
    const { a } = analyze(
      graphOf([makeNode('Transpose', ['Wt'], ['W'], [attr.ints('perm', [1, 0])]), makeNode('MatMul', ['x', 'W'], ['y'])], [randTensor('Wt', [24, 16], 6)]),
    );
    expect(a.layers[0]).toMatchObject({ weight: 'Wt', weightPath: ['Transpose'], outChannels: 24, inChannels: 16, outAxis: 0, needsRearrange: false });
  });

  it('Gemm honours transB: transB=1 stores [N, K] = [out, in]; transB=0 stores [K, N]', () => {
    const { a } = analyze(
      graphOf(
        [
          makeNode('Gemm', ['x', 'W1', 'b1'], ['h'], [attr.int('transB', 1)], { name: 'g1' }),
          makeNode('Gemm', ['h', 'W2'], ['y'], [], { name: 'g2' }),
        ],
        [randTensor('W1', [32, 16], 7), randTensor('b1', [32], 8), randTensor('W2', [32, 10], 9)],
      ),
    );
    expect(a.layers.map((l) => [l.name, l.outChannels, l.inChannels, l.outAxis, l.needsRearrange, l.bias])).toEqual([
      ['g1', 32, 16, 0, false, 'b1'],
      ['g2', 10, 32, 1, true, undefined],
    ]);
  });

  it('Conv [O, I/g, kh, kw]: out = O, in = I/g*kh*kw, groups and depthwise flagged', () => {
    const { a } = analyze(
      graphOf(
        [
          makeNode('Conv', ['x', 'Wg', 'bg'], ['h'], [attr.int('group', 2), attr.ints('kernel_shape', [3, 3])], { name: 'grouped' }),
          makeNode('Conv', ['h', 'Wd'], ['y'], [attr.int('group', 8)], { name: 'depthwise' }),
        ],
        [randTensor('Wg', [8, 2, 3, 3], 10), randTensor('bg', [8], 11), randTensor('Wd', [8, 1, 5, 5], 12)],
      ),
    );
    expect(a.layers.map((l) => [l.name, l.outChannels, l.inChannels, l.groups, l.depthwise, l.outAxis, l.needsRearrange, l.bias, l.activationChannelAxis])).toEqual([
      ['grouped', 8, 18, 2, false, 0, false, 'bg', 1],
      ['depthwise', 8, 25, 8, true, 0, false, undefined, 1],
    ]);
  });

  it('ConvTranspose [I, O/g, kh, kw]: out = O, output channels on axis 1, rows gathered per group', () => {
    const { model, a } = analyze(graphOf([makeNode('ConvTranspose', ['x', 'W'], ['y'], [attr.int('group', 2)])], [randTensor('W', [4, 3, 2, 2], 13)]));
    const l = a.layers[0];
    expect([l.outChannels, l.inChannels, l.outAxis, l.needsRearrange, l.groups]).toEqual([6, 8, 1, true, 2]);
    const w = tensorToFloat32(model.graph.initializers[0]);
    const m = weightToOutIn(l, w);
    // Output channel o = g*3 + oc reads W[g*2 + ic, oc, kh, kw]; row element index ic*4 + k.
    for (let o = 0; o < 6; o++) {
      const g = Math.floor(o / 3);
      const oc = o % 3;
      for (let ic = 0; ic < 2; ic++) for (let k = 0; k < 4; k++) expect(m[o * 8 + ic * 4 + k]).toBe(w[((g * 2 + ic) * 3 + oc) * 4 + k]);
    }
    expect(outInToWeight(l, m)).toEqual(w);
  });

  it('a MatMul whose B is a graph input (or computed) is not quantizable, and says why', () => {
    const { a } = analyze(
      graphOf([makeNode('MatMul', ['x', 'w_in'], ['h'], [], { name: 'dyn' }), makeNode('MatMul', ['h', 'h2'], ['y'], [], { name: 'act' }), makeNode('Relu', ['x'], ['h2'])], [], ['x', 'w_in']),
    );
    expect(a.layers).toEqual([]);
    expect(a.skipped.map((s) => s.name)).toEqual(['dyn', 'act']);
    expect(a.skipped[0].reason).toContain('graph input');
    expect(a.skipped[1].reason).toContain('computed at run time');
  });

  it('weights stored as Constant nodes or behind DequantizeLinear are found and labelled', () => {
    const { model, a } = analyze(
      graphOf(
        [
          makeConstantNode(randTensor('Wc', [16, 4], 14)),
          makeNode('MatMul', ['x', 'Wc'], ['h']),
          makeNode('DequantizeLinear', ['Wq', 'scale'], ['Wdq']),
          makeNode('MatMul', ['h', 'Wdq'], ['y']),
        ],
        [makeTensor('Wq', [4, 4], new Int8Array(16)), makeTensor('scale', [], Float32Array.of(0.1))],
      ),
    );
    expect(a.layers.map((l) => [l.weight, l.weightSource, l.weightDataType, l.alreadyQuantized])).toEqual([
      ['Wc', 'constant-node', 'float32', false],
      ['Wq', 'initializer', 'int8', true],
    ]);
    expect(a.summary.unsupported).toContainEqual({ op: 'DequantizeLinear', count: 1, reason: 'already quantized' });
    expect(liftConstantsToInitializers(model.graph)).toBe(1);
    expect(model.graph.nodes.some((n) => n.opType === 'Constant')).toBe(false);
    expect(buildGraphIndex(model.graph).constants.get('Wc')?.source).toBe('initializer');
  });

  it('two layers reading one weight report each other', () => {
    const { a } = analyze(graphOf([makeNode('MatMul', ['x', 'W'], ['h'], [], { name: 'a' }), makeNode('MatMul', ['h', 'W'], ['y'], [], { name: 'b' })], [randTensor('W', [16, 16], 15)]));
    expect(a.layers.map((l) => l.sharesWeightWith)).toEqual([['b'], ['a']]);
    expect(a.summary.quantizableParams).toBe(256);
  });
});

/** ReduceMean over one axis (the last by default), as an opset-13 attribute. */
const reduceMean = (i: string, o: string, axis = -1): OnnxNode => makeNode('ReduceMean', [i], [o], [attr.ints('axes', [axis]), attr.int('keepdims', 1)]);
const scalar = (name: string, v: number): OnnxTensor => makeTensor(name, [], Float32Array.of(v));

/** x -> decomposed LayerNorm (the paddle2onnx / torch.onnx opset < 17 spelling) -> `ln_out`. */
function decomposedLayerNorm(x: string, axis = -1): { nodes: OnnxNode[]; inits: OnnxTensor[] } {
  return {
    nodes: [
      reduceMean(x, 'mean', axis),
      makeNode('Sub', [x, 'mean'], ['centered']),
      makeNode('Pow', ['centered', 'two'], ['sq']),
      reduceMean('sq', 'var', axis),
      makeNode('Add', ['var', 'eps'], ['var_eps']),
      makeNode('Sqrt', ['var_eps'], ['std']),
      makeNode('Div', ['centered', 'std'], ['normed']),
      makeNode('Mul', ['normed', 'gamma'], ['scaled']),
      makeNode('Add', ['scaled', 'beta'], ['ln_out']),
    ],
    inits: [scalar('two', 2), scalar('eps', 1e-5), randTensor('gamma', [16], 20), randTensor('beta', [16], 21)],
  };
}

describe('norm -> linear groups', () => {
  it('a decomposed LayerNorm feeding q, k, v MatMuls is one foldable group', () => {
    const ln = decomposedLayerNorm('x');
    const { a } = analyze(
      graphOf(
        [
          ...ln.nodes,
          makeNode('MatMul', ['ln_out', 'Wq'], ['q'], [], { name: 'q_proj' }),
          makeNode('MatMul', ['ln_out', 'Wk'], ['k'], [], { name: 'k_proj' }),
          makeNode('MatMul', ['ln_out', 'Wv'], ['v'], [], { name: 'v_proj' }),
          makeNode('Shape', ['ln_out'], ['shape']),
          makeNode('Sum', ['q', 'k', 'v'], ['y']),
        ],
        [...ln.inits, randTensor('Wq', [16, 16], 22), randTensor('Wk', [16, 16], 23), randTensor('Wv', [16, 16], 24)],
      ),
    );
    expect(a.normGroups).toHaveLength(1);
    expect(a.normGroups[0]).toMatchObject({
      kind: 'layernorm', form: 'decomposed', input: 'x', output: 'ln_out', gamma: 'gamma', beta: 'beta', channels: 16,
      linears: ['q_proj', 'k_proj', 'v_proj'], otherConsumers: [], foldable: true,
    });
    expect(a.normGroups[0].nodes).toHaveLength(9);
  });

  it('ReduceMean axes written as a positive index count as the last axis only when value_info gives the rank', () => {
    for (const [axis, declared, found] of [[2, true, 1], [2, false, 0], [1, true, 0]] as const) {
      const ln = decomposedLayerNorm('x', axis);
      const graph = graphOf([...ln.nodes, makeNode('MatMul', ['ln_out', 'W'], ['y'])], [...ln.inits, randTensor('W', [16, 16], 25)]);
      if (!declared) graph.inputs = [makeValueInfo('x')];
      expect(analyze(graph).a.normGroups.length, `axis ${axis}, rank ${declared ? 'declared' : 'unknown'}`).toBe(found);
    }
  });

  it('a norm whose output also feeds a residual Add is reported but not foldable', () => {
    const ln = decomposedLayerNorm('x');
    const { a } = analyze(
      graphOf(
        [...ln.nodes, makeNode('MatMul', ['ln_out', 'W'], ['h'], [], { name: 'fc' }), makeNode('Add', ['ln_out', 'h'], ['y'], [], { name: 'residual' })],
        [...ln.inits, randTensor('W', [16, 16], 25)],
      ),
    );
    expect(a.normGroups[0]).toMatchObject({ linears: ['fc'], otherConsumers: ['residual'], foldable: false });
  });

  it('a decomposed RMSNorm (Pow, ReduceMean, Add, Sqrt, Reciprocal, Mul, Mul gamma) feeding gate and up through a Reshape', () => {
    const { a } = analyze(
      graphOf(
        [
          makeNode('Pow', ['x', 'two'], ['sq']),
          reduceMean('sq', 'ms'),
          makeNode('Add', ['ms', 'eps'], ['ms_eps']),
          makeNode('Sqrt', ['ms_eps'], ['rms']),
          makeNode('Reciprocal', ['rms'], ['inv']),
          makeNode('Mul', ['x', 'inv'], ['normed']),
          makeNode('Mul', ['gamma', 'normed'], ['rms_out']),
          makeNode('Reshape', ['rms_out', 'flat'], ['rows']),
          makeNode('MatMul', ['rows', 'Wg'], ['g'], [], { name: 'gate' }),
          makeNode('MatMul', ['rows', 'Wu'], ['u'], [], { name: 'up' }),
          makeNode('Mul', ['g', 'u'], ['y']),
        ],
        [scalar('two', 2), scalar('eps', 1e-6), randTensor('gamma', [16], 26), makeTensor('flat', [2], BigInt64Array.of(-1n, 16n)), randTensor('Wg', [16, 32], 27), randTensor('Wu', [16, 32], 28)],
      ),
    );
    expect(a.normGroups).toHaveLength(1);
    expect(a.normGroups[0]).toMatchObject({ kind: 'rmsnorm', form: 'decomposed', input: 'x', gamma: 'gamma', channels: 16, linears: ['gate', 'up'], foldable: true });
    expect(a.normGroups[0].beta).toBeUndefined();
  });

  it('an RMSNorm written with Div and a Cast before the gamma Mul is found too', () => {
    const { a } = analyze(
      graphOf(
        [
          makeNode('Mul', ['x', 'x'], ['sq']),
          reduceMean('sq', 'ms'),
          makeNode('Add', ['ms', 'eps'], ['ms_eps']),
          makeNode('Sqrt', ['ms_eps'], ['rms']),
          makeNode('Div', ['x', 'rms'], ['normed']),
          makeNode('Cast', ['normed'], ['normed16'], [attr.int('to', 1)]),
          makeNode('Mul', ['normed16', 'gamma'], ['rms_out']),
          makeNode('Gemm', ['rms_out', 'W'], ['y'], [attr.int('transB', 1)], { name: 'proj' }),
        ],
        [scalar('eps', 1e-6), randTensor('gamma', [16], 29), randTensor('W', [8, 16], 30)],
      ),
    );
    expect(a.normGroups.map((g) => [g.kind, g.linears])).toEqual([['rmsnorm', ['proj']]]);
  });

  it('fused LayerNormalization and com.microsoft SkipLayerNormalization feed linears', () => {
    const { a } = analyze(
      graphOf(
        [
          makeNode('LayerNormalization', ['x', 'g1', 'b1'], ['n1'], [attr.int('axis', -1)], { name: 'ln1' }),
          makeNode('MatMul', ['n1', 'W1'], ['h'], [], { name: 'fc1' }),
          makeNode('SkipLayerNormalization', ['h', 'x', 'g2', 'b2'], ['n2'], [], { name: 'skip_ln', domain: 'com.microsoft' }),
          makeNode('MatMul', ['n2', 'W2'], ['y'], [], { name: 'fc2' }),
        ],
        [randTensor('g1', [16], 31), randTensor('b1', [16], 32), randTensor('W1', [16, 16], 33), randTensor('g2', [16], 34), randTensor('b2', [16], 35), randTensor('W2', [16, 4], 36)],
      ),
      { extraOpsets: [{ domain: 'com.microsoft', version: 1 }] },
    );
    expect(a.normGroups.map((g) => [g.form, g.kind, g.gamma, g.beta, g.linears, g.foldable])).toEqual([
      ['LayerNormalization', 'layernorm', 'g1', 'b1', ['fc1'], true],
      ['SkipLayerNormalization', 'layernorm', 'g2', 'b2', ['fc2'], true],
    ]);
    expect(a.summary.unsupported).toEqual([]);
  });

  it('a norm feeding a linear of a different width, or a Conv, makes no group', () => {
    const { a } = analyze(
      graphOf(
        [makeNode('LayerNormalization', ['x', 'g', 'b'], ['n']), makeNode('Conv', ['n', 'W'], ['y'])],
        [randTensor('g', [16], 37), randTensor('b', [16], 38), randTensor('W', [4, 16, 1, 1], 39)],
      ),
    );
    expect(a.summary.normCount).toBe(1);
    expect(a.normGroups).toEqual([]);
  });
});

describe('summary', () => {
  it('counts ops and parameters, and lists weights the pipeline leaves alone', () => {
    const { a } = analyze(
      graphOf(
        [
          makeNode('Gather', ['emb', 'ids'], ['e']),
          makeNode('LSTM', ['e', 'Wl', 'Rl'], ['y'], [attr.int('hidden_size', 8)]),
          makeNode('MatMul', ['x', 'W'], ['z']),
          makeNode('FancyOp', ['z'], ['zz'], [], { domain: 'org.example' }),
        ],
        [randTensor('emb', [100, 16], 40), randTensor('Wl', [1, 32, 16], 41), randTensor('Rl', [1, 32, 8], 42), randTensor('W', [16, 16], 43)],
        ['x', 'ids'],
        ['y', 'zz'],
      ),
      { extraOpsets: [{ domain: 'org.example', version: 1 }] },
    );
    expect(a.summary.opHistogram).toEqual({ Gather: 1, LSTM: 1, MatMul: 1, 'org.example:FancyOp': 1 });
    expect(a.summary.totalParams).toBe(1600 + 512 + 256 + 256);
    expect(a.summary.quantizableParams).toBe(256);
    expect(a.summary.unsupported.map((u) => u.op).sort()).toEqual(['Gather', 'LSTM', 'org.example:FancyOp']);
    expect(a.summary.opset).toBe(17);
  });
});
