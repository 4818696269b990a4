/**
 * `quantlab awq` on stories15M with a tiny calibration set: the report's groups per block, the written
 * model.bin reopens, and its weights are the ones the report's errors were computed with (each linear's
 * output error recomputed here on the CPU forward pass's inputs); on a small ONNX graph with PNG images it
 * writes a model.onnx onnxruntime runs and an awq.json with the norm group; bad command lines and models refused
 * with nothing written.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { attr, makeGraph, makeModel, makeNode, makeValueInfo } from '../../src/model/onnx/build.ts';
import { serializeModel } from '../../src/model/onnx/serialize.ts';
import { makeTensor } from '../../src/model/onnx/tensor-data.ts';
import { gaussian } from '../helpers/random.ts';
import { pngDir } from '../helpers/images.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { awqLossDirect } from '../../src/awq/reference.ts';
import { cli } from '../helpers/cli.ts';
import { textToSequences } from '../../src/calib/text-data.ts';
import { loadMobyDickCalibrationNode } from '../../src/calib/text-data-node.ts';
import { nodeFileByteSource } from '../../src/model/formats/byte-source-node.ts';
import { openBundledStories15M } from '../../src/model/formats/llama2c.ts';
import { openCheckpoint } from '../../src/model/formats/open-checkpoint.ts';
import { LlamaCpu } from '../../src/model/llama/forward-cpu.ts';
import { STORIES15M_DATA } from '../model/tiny-llama.ts';

const dir = mkdtempSync(join(tmpdir(), 'quantlab-awq-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Report {
  format: string;
  groups: { block: number; kind: string; losses: { ratio: number; loss: number }[]; bestRatio: number; lossAtBest: number; rtnLoss: number }[];
  linears: { name: string; rtnError: number; awqError: number }[];
  blocks: { block: number; rtnError: number; awqError: number }[];
  data: { tokens: number };
}

describe.runIf(existsSync(STORIES15M_DATA))('quantlab awq stories15M', () => {
  test('report, model.bin with the reported weights', async () => {
    const out = join(dir, 'awq');
    const r = await cli(['awq', 'stories15M', '--samples', '1', '--seq-len', '8', '--group-size', '32', '--grid', '2', '--out', out]);
    expect(r.stderr).not.toMatch(/internal error|quantlab awq:/);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/block 5: attention \+ MLP output error RTN/);
    const rep = JSON.parse(readFileSync(join(out, 'awq.json'), 'utf8')) as Report;
    expect(rep.format).toBe('quantlab-awq');
    expect(rep.data.tokens).toBe(8);
    // stories15M has as many KV heads as heads: v -> o is searched in every block.
    expect(rep.groups.map((g) => g.kind)).toEqual(Array.from({ length: 6 }, () => ['qkv', 'v_o', 'gate_up', 'up_down']).flat());
    for (const g of rep.groups) {
      expect(g.losses.map((l) => l.ratio)).toEqual([0, 0.5]);
      expect(g.lossAtBest).toBe(Math.min(...g.losses.map((l) => l.loss)));
    }
    expect(rep.linears).toHaveLength(42);

    // The written weights give the reported errors on the same 8 tokens through the CPU forward pass.
    const orig = await openBundledStories15M(await nodeFileByteSource(STORIES15M_DATA));
    const awq = await openCheckpoint([await nodeFileByteSource(join(out, 'model.bin')), await nodeFileByteSource(join(out, 'tokenizer.bin'))]);
    expect(awq.tokenizer).toBeDefined();
    const seq = textToSequences(orig.tokenizer!, loadMobyDickCalibrationNode(), 1, 8, 'x').sequences[0];
    const cpu = await LlamaCpu.load(orig);
    const inputs = new Map<string, number[]>();
    cpu.setLinearInputHook((linear, x) => {
      if (!inputs.has(linear)) inputs.set(linear, []);
      inputs.get(linear)!.push(...x);
    });
    seq.forEach((id, pos) => cpu.forward(id, pos));
    for (const name of ['layers.0.wq', 'layers.0.wv', 'layers.2.wo', 'layers.3.w3', 'layers.5.w2']) {
      const rep1 = rep.linears.find((l) => l.name === name)!;
      const hookName = name.endsWith('wv') ? 'layers.0.wq' : name.endsWith('w3') ? 'layers.3.w1' : name;
      const x = Float32Array.from(inputs.get(hookName)!);
      const info = orig.tensors.find((t) => t.name === name)!;
      const got = awqLossDirect(x, 8, await orig.loadTensor(name), await awq.loadTensor(name), info.shape);
      expect(Math.abs(got - rep1.awqError) / rep1.awqError, name).toBeLessThan(2e-3);
    }
    // Norms and embeddings are left as they were (the scales live in the effective weights).
    expect(Array.from(await awq.loadTensor('layers.0.attention_norm'))).toEqual(Array.from(await orig.loadTensor('layers.0.attention_norm')));
  }, 600_000);

  test('bad command lines and models', async () => {
    let r = await cli(['awq', 'stories15M', '--granularity', 'tensor', '--out', join(dir, 'x')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--granularity must be group or channel/);
    r = await cli(['awq', 'stories15M']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--out/);
    r = await cli(['awq', 'stories15M', '--compute', 'tpu', '--out', join(dir, 'x')]);
    expect(r.code).toBe(2);
    r = await cli(['awq', 'stories15M', '--preprocess', 'imagenet', '--out', join(dir, 'x')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--preprocess is for ONNX models/);
  });
});

/** img [1, 3, 224, 224] -> 1x1 Conv (3 -> 16) -> NHWC -> LayerNorm -> MatMul q, MatMul k; q -> MatMul p (outside the group). */
function tinyOnnx(file: string): void {
  const graph = makeGraph({
    nodes: [
      makeNode('Conv', ['img', 'cw'], ['feat'], [], { name: 'conv' }),
      makeNode('Transpose', ['feat'], ['nhwc'], [attr.ints('perm', [0, 2, 3, 1])], { name: 'toNhwc' }),
      makeNode('LayerNormalization', ['nhwc', 'g', 'b'], ['n'], [attr.int('axis', -1)], { name: 'ln' }),
      makeNode('MatMul', ['n', 'wq'], ['q'], [], { name: 'mmQ' }),
      makeNode('MatMul', ['n', 'wk'], ['k'], [], { name: 'mmK' }),
      makeNode('MatMul', ['q', 'wp'], ['p'], [], { name: 'mmP' }),
    ],
    initializers: [
      makeTensor('cw', [16, 3, 1, 1], gaussian(48, 1, 1)),
      makeTensor('g', [16], gaussian(16, 2, 0.2).map((v, j) => (j === 4 ? 10 : 1 + v))),
      makeTensor('b', [16], gaussian(16, 3, 0.1)),
      makeTensor('wq', [16, 8], gaussian(128, 4, 0.5)),
      makeTensor('wk', [16, 8], gaussian(128, 5, 0.5)),
      makeTensor('wp', [8, 4], gaussian(32, 6, 0.5)),
    ],
    inputs: [makeValueInfo('img', 'float32', [1, 3, 224, 224])],
    outputs: [makeValueInfo('k', 'float32', [1, 224, 224, 8]), makeValueInfo('p', 'float32', [1, 224, 224, 4])],
  });
  writeFileSync(file, serializeModel(makeModel(graph, { opset: 17 })));
}

interface OnnxReport {
  format: string;
  groups: { name: string; linears: string[]; bestRatio: number; lossAtBest: number; rtnLoss: number; losses: { ratio: number; loss: number }[] }[];
  linears: { name: string; group?: string; rtnError: number; awqError: number; rows: number }[];
  skipped: { name: string; reason: string }[];
  total: { rtnError: number; awqError: number };
}

describe('quantlab awq on ONNX graphs', () => {
  test('a LayerNorm -> MatMul graph with PNG images: model.onnx runs in onnxruntime, awq.json has the group', async () => {
    const file = join(dir, 'tiny.onnx');
    tinyOnnx(file);
    const out = join(dir, 'onnx-out');
    const r = await cli(['awq', file, '--data', pngDir(dir, 'pngs'), '--bits', '4', '--group-size', '8', '--rows', '256', '--out', out, '--report', join(dir, 'r.json')]);
    expect(r.stderr).not.toMatch(/internal error|quantlab awq:/);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/note: conv left alone: Conv layers are left in FP32/);
    expect(r.stdout).toMatch(/ln -> mmQ, mmK: ratio/);
    const rep = JSON.parse(readFileSync(join(out, 'awq.json'), 'utf8')) as OnnxReport;
    expect(readFileSync(join(dir, 'r.json'), 'utf8')).toBe(readFileSync(join(out, 'awq.json'), 'utf8'));
    expect(rep.format).toBe('quantlab-awq');
    expect(rep.groups.map((g) => [g.name, g.linears])).toEqual([['ln', ['mmQ', 'mmK']]]);
    expect(rep.groups[0].losses).toHaveLength(20);
    expect(rep.groups[0].lossAtBest).toBe(Math.min(...rep.groups[0].losses.map((l) => l.loss)));
    expect(rep.linears.map((l) => [l.name, l.group ?? null, l.rows])).toEqual([
      ['mmQ', 'ln', 256],
      ['mmK', 'ln', 256],
      ['mmP', null, 256],
    ]);
    expect(rep.total.awqError).toBeLessThanOrEqual(rep.total.rtnError);
    const session = await ort.InferenceSession.create(join(out, 'model.onnx'));
    const res = await session.run({ img: new ort.Tensor('float32', gaussian(3 * 224 * 224, 7, 1), [1, 3, 224, 224]) });
    await session.release();
    expect(res.p.dims).toEqual([1, 224, 224, 4]);
    expect((res.p.data as Float32Array).every(Number.isFinite)).toBe(true);
  }, 120_000);

  test('bad inputs: no linear, NaN activations, --seq-len; exit status and nothing written', async () => {
    const conv = makeGraph({
      nodes: [makeNode('Conv', ['img', 'W'], ['y'], [], { name: 'conv' })],
      initializers: [makeTensor('W', [2, 3, 1, 1], Float32Array.from({ length: 6 }, (_, i) => i / 6))],
      inputs: [makeValueInfo('img', 'float32', [1, 3, 224, 224])],
      outputs: [makeValueInfo('y', 'float32', [1, 2, 224, 224])],
    });
    writeFileSync(join(dir, 'conv.onnx'), serializeModel(makeModel(conv, { opset: 17 })));
    let r = await cli(['awq', join(dir, 'conv.onnx'), '--data', pngDir(dir, 'pngs'), '--out', join(dir, 'conv-out')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/conv.onnx has no MatMul \/ Gemm layer AWQ can quantize/);
    expect(existsSync(join(dir, 'conv-out'))).toBe(false);

    const nan = makeGraph({
      nodes: [
        makeNode('Transpose', ['img'], ['nhwc'], [attr.ints('perm', [0, 2, 3, 1])], { name: 'toNhwc' }),
        makeNode('Log', ['nhwc'], ['lg'], [], { name: 'log' }),
        makeNode('LayerNormalization', ['lg', 'g', 'b'], ['n'], [attr.int('axis', -1)], { name: 'ln' }),
        makeNode('MatMul', ['n', 'W'], ['y'], [], { name: 'mm' }),
      ],
      initializers: [makeTensor('g', [3], Float32Array.of(1, 1, 1)), makeTensor('b', [3], Float32Array.of(0, 0, 0)), makeTensor('W', [3, 2], Float32Array.of(1, 2, 3, 4, 5, 6))],
      inputs: [makeValueInfo('img', 'float32', [1, 3, 224, 224])],
      outputs: [makeValueInfo('y', 'float32', [1, 224, 224, 2])],
    });
    writeFileSync(join(dir, 'nan.onnx'), serializeModel(makeModel(nan, { opset: 17 })));
    r = await cli(['awq', join(dir, 'nan.onnx'), '--data', pngDir(dir, 'pngs'), '--out', join(dir, 'nan-out')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/activation n \(input of mm\) contains \d+ NaN\/Inf values/);
    expect(existsSync(join(dir, 'nan-out'))).toBe(false);

    r = await cli(['awq', join(dir, 'nan.onnx'), '--seq-len', '8', '--out', join(dir, 'nan-out')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--seq-len is for language models/);
  }, 120_000);
});
