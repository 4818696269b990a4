/**
 * `quantlab smoothquant`: stories15M on a few tokens of the bundled text with an alpha sweep writes a report
 * whose chosen alpha lowers the W8A8 error, and a model.bin (+ tokenizer.bin) that `quantlab inspect` opens
 * and whose FP32 logits equal the original's; bad alphas, a model without norm -> linear groups and NaN
 * activations are refused with clear messages and exit codes.
 */
import { pngDir } from '../helpers/images.ts';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { cli } from '../helpers/cli.ts';
import { nodeFileByteSource } from '../../src/model/formats/byte-source-node.ts';
import { openBundledStories15M, openLlama2c } from '../../src/model/formats/llama2c.ts';
import { LlamaCpu } from '../../src/model/llama/forward-cpu.ts';
import { attr, makeGraph, makeModel, makeNode, makeValueInfo } from '../../src/model/onnx/build.ts';
import { serializeModel } from '../../src/model/onnx/serialize.ts';
import { makeTensor } from '../../src/model/onnx/tensor-data.ts';
import type { SmoothQuantReport } from '../../src/smooth/smooth-model.ts';
import { maxAbsDiff, STORIES15M_DATA } from '../model/tiny-llama.ts';

const dir = mkdtempSync(join(tmpdir(), 'quantlab-smoothquant-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.runIf(existsSync(STORIES15M_DATA))('stories15M', () => {
  test('alpha sweep: report, lower W8A8 error, model.bin equal in FP32 logits and opened by inspect', async () => {
    const out = join(dir, 'stories');
    const r = await cli(['smoothquant', 'stories15M', '--samples', '1', '--seq-len', '16', '--alpha', 'sweep', '--act', 'per-tensor', '--out', out]);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/12 groups, W8A8 \(per-tensor activations/);
    const rep = JSON.parse(readFileSync(join(out, 'smoothquant.json'), 'utf8')) as SmoothQuantReport;
    expect(rep.format).toBe('quantlab-smoothquant');
    expect(rep.alphaMode).toBe('sweep-model');
    expect(rep.groups).toHaveLength(12);
    expect(rep.groups[0]).toMatchObject({ group: 'layers.0.attention_norm', linears: ['layers.0.wq', 'layers.0.wk', 'layers.0.wv'], channels: 288, rows: 16 });
    expect(rep.groups[1].linears).toEqual(['layers.0.w1', 'layers.0.w3']);
    expect(rep.data).toMatchObject({ samples: 1, sequenceLength: 16, tokens: 16 });
    for (const g of rep.groups) {
      expect(g.sweep).toHaveLength(21);
      expect(g.alpha).toBe(rep.alpha);
      expect(g.difficulty.activation.after.max).toBeLessThan(g.difficulty.activation.before.max);
    }
    // The model's alpha minimises the summed error of the sweep, and beats no smoothing.
    const summed = rep.groups[0].sweep!.map((_, k) => rep.groups.reduce((a, g) => a + g.sweep![k].mse, 0));
    expect(rep.groups.reduce((a, g) => a + g.error.after.mse, 0)).toBeCloseTo(Math.min(...summed), 12);
    expect(rep.total.mseAfter).toBeLessThan(rep.total.mseBefore);

    expect(existsSync(join(out, 'tokenizer.bin'))).toBe(true);
    const insp = await cli(['inspect', join(out, 'model.bin'), join(out, 'tokenizer.bin')]);
    expect(insp.code).toBe(0);
    const original = await openBundledStories15M(await nodeFileByteSource(STORIES15M_DATA));
    const smoothed = await openLlama2c(await nodeFileByteSource(join(out, 'model.bin')), await nodeFileByteSource(join(out, 'tokenizer.bin')));
    expect(smoothed.tokenizer!.encode('Once upon a time')).toEqual(original.tokenizer!.encode('Once upon a time'));
    expect(maxAbsDiff(await smoothed.loadTensor('layers.0.wq'), await original.loadTensor('layers.0.wq'))).toBeGreaterThan(1e-3);
    const a = await LlamaCpu.load(original, { maxSeqLen: 8 });
    const b = await LlamaCpu.load(smoothed, { maxSeqLen: 8 });
    for (const [pos, t] of [1, 9038, 2501, 263].entries()) {
      const la = a.forward(t, pos).slice();
      const lb = b.forward(t, pos);
      expect(maxAbsDiff(la, lb), `position ${pos}`).toBeLessThan(2e-3 * Math.max(...Array.from(la, Math.abs)));
    }
  }, 300_000);

  test('bad command lines: alpha outside [0, 1], --per-group without a sweep, unknown --act', async () => {
    let r = await cli(['smoothquant', 'stories15M', '--alpha', '1.5', '--out', join(dir, 'x')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--alpha must be a number in \[0, 1\] or "sweep", got 1.5/);
    r = await cli(['smoothquant', 'stories15M', '--alpha', '-0.2', '--out', join(dir, 'x')]);
    expect(r.code).toBe(2);
    r = await cli(['smoothquant', 'stories15M', '--per-group', '--out', join(dir, 'x')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--per-group goes with --alpha sweep/);
    r = await cli(['smoothquant', 'stories15M', '--act', 'per-channel', '--out', join(dir, 'x')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--act must be one of per-token, per-tensor/);
    r = await cli(['smoothquant', 'stories15M', '--alpha', '0.5']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/missing --out/);
    expect(existsSync(join(dir, 'x'))).toBe(false);
  });
});

describe('ONNX models SmoothQuant cannot or must not smooth', () => {

  test('no norm -> linear group: a clear message, nothing written', async () => {
    const graph = makeGraph({
      nodes: [makeNode('Conv', ['img', 'W'], ['y'], [], { name: 'conv' })],
      initializers: [makeTensor('W', [2, 3, 1, 1], Float32Array.from({ length: 6 }, (_, i) => i / 6))],
      inputs: [makeValueInfo('img', 'float32', [1, 3, 224, 224])],
      outputs: [makeValueInfo('y', 'float32', [1, 2, 224, 224])],
    });
    const file = join(dir, 'conv.onnx');
    writeFileSync(file, serializeModel(makeModel(graph, { opset: 17 })));
    const r = await cli(['smoothquant', file, '--out', join(dir, 'conv-out')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/conv.onnx has no norm -> linear group .*SmoothQuant has nothing to smooth/);
    expect(existsSync(join(dir, 'conv-out', 'smoothquant.json'))).toBe(false);
  });

  test('NaN in the activations (Log of negative inputs before a LayerNorm -> MatMul): refused, the tensor named', async () => {
    const graph = makeGraph({
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
    const file = join(dir, 'nan.onnx');
    writeFileSync(file, serializeModel(makeModel(graph, { opset: 17 })));
    const r = await cli(['smoothquant', file, '--data', pngDir(dir, 'pngs'), '--out', join(dir, 'nan-out')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/activation n \(input of mm\) contains \d+ NaN\/Inf values/);
    expect(existsSync(join(dir, 'nan-out', 'model.onnx'))).toBe(false);
  }, 120_000);
});
