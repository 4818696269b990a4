/** `quantlab inspect` describes the bundled stories15M (config, linear layers, norm -> linear groups, Jetson memory) and ONNX models (layers, groups, op histogram, unsupported ops, memory), `quantlab generate` tells its story on the GPU with and without INT4 weights, and bad arguments get clear errors. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { cli } from '../helpers/cli.ts';
import { nodeFileByteSource } from '../../src/model/formats/byte-source-node.ts';
import { loadModelFile } from '../../src/model/onnx/load-node.ts';
import { openModel } from '../../src/model/workspace.ts';

describe('quantlab inspect', () => {
  test('stories15M: config, 42 linear layers, 24 groups, memory rows', async () => {
    const r = await cli(['inspect', 'stories15M', '--json']);
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout);
    expect(d.config).toMatchObject({ dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKvHeads: 6, vocabSize: 32000, seqLen: 256 });
    expect(d.layers).toHaveLength(42);
    expect(d.linearParams).toBe(6 * (4 * 288 * 288 + 3 * 288 * 768));
    expect(d.totalParams).toBe(d.linearParams + 32000 * 288 + 6 * 2 * 288 + 288);
    expect(d.groups).toHaveLength(24);
    expect(d.groups[0]).toEqual({ prev: 'layers.0.attention_norm', linears: ['layers.0.wq', 'layers.0.wk', 'layers.0.wv'] });
    expect(d.memory.map((m: { weights: string }) => m.weights)).toEqual(['FP16', 'INT8', 'INT4']);
    expect(d.memory[0].totalBytes).toBeGreaterThan(d.memory[2].totalBytes);
  });
  test('missing or unreadable models are clear errors', async () => {
    expect((await cli(['inspect'])).stderr).toMatch(/missing MODEL/);
    const r = await cli(['inspect', '/nonexistent/model.gguf']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no such file: \/nonexistent\/model.gguf/);
  });
});

const REC = join('node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_PP-OCRv4_rec_infer.onnx');

describe.skipIf(!existsSync(REC))('quantlab inspect on an ONNX model (PP-OCRv4 recognizer)', () => {
  test('--json: every Conv / MatMul with a constant weight as [out, in], groups, op histogram, unsupported ops, memory', async () => {
    const r = await cli(['inspect', REC, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout);
    const model = await loadModelFile(REC);
    const h = await openModel([await nodeFileByteSource(REC)]);
    if (h.kind !== 'onnx') throw new Error('expected an ONNX handle');
    const skipped = new Set(h.analysis.skipped.map((s) => s.name));
    const nodes = model.graph.nodes.filter((n) => (n.opType === 'Conv' || n.opType === 'MatMul') && !skipped.has(n.name));
    expect(d.kind).toBe('onnx');
    expect(d.layers.map((l: { name: string }) => l.name).sort()).toEqual(nodes.map((n) => n.name).sort());
    for (const l of d.layers) expect(l.op).toBe(nodes.find((n) => n.name === l.name)!.opType);
    expect(d.layers.reduce((a: number, l: { params: number; shape: number[] }) => a + l.params, 0)).toBe(d.quantizableParams);
    for (const l of d.layers) expect(l.shape[0] * l.shape[1]).toBe(l.params);
    const histogram: Record<string, number> = {};
    for (const n of model.graph.nodes) histogram[n.opType] = (histogram[n.opType] ?? 0) + 1;
    expect(d.onnx.summary.opHistogram).toEqual(histogram);
    expect(d.onnx.summary.unsupported).toContainEqual(expect.objectContaining({ op: 'BatchNormalization', count: histogram.BatchNormalization }));
    expect(d.groups.length).toBeGreaterThan(0);
    for (const g of d.groups) for (const l of g.linears) expect(nodes.find((n) => n.name === l)?.opType).toBe('MatMul');
    expect(d.memory.map((m: { weights: string }) => m.weights)).toEqual(['FP16', 'INT8', 'INT4']);
    expect(d.memory[0].kvCacheBytes).toBe(0);
  });

  test('text: one line per layer with op and shape, skipped layers, groups, unsupported ops', async () => {
    const r = await cli(['inspect', REC]);
    expect(r.code).toBe(0);
    const h = await openModel([await nodeFileByteSource(REC)]);
    if (h.kind !== 'onnx') throw new Error('expected an ONNX handle');
    for (const l of h.analysis.layers) expect(r.stdout).toMatch(new RegExp(`\\n  ${l.name.replace(/\./g, '\\.')} +${l.op} +\\[${l.outChannels}, ${l.inChannels}\\]`));
    for (const s of h.analysis.skipped) expect(r.stdout).toContain(`${s.name} (${s.op}): ${s.reason}`);
    expect(r.stdout).toMatch(/Norm -> linear groups \(SmoothQuant \/ AWQ\): \d+/);
    expect(r.stdout).toMatch(/BatchNormalization x\d+: fold into the preceding convolution/);
    expect(r.stdout).toMatch(/INT4 .* Orin Nano 8GB: fits/);
  });
});

describe('quantlab generate', () => {
  test('greedy stories15M on the GPU, FP32 and with INT8 per-channel weights', { timeout: 300_000 }, async () => {
    for (const extra of [[], ['--quant', 'int8-channel-sym']]) {
      const r = await cli(['generate', 'stories15M', '--prompt', 'Once upon a time', '--tokens', '10', '--json', ...extra]);
      expect(r.code).toBe(0);
      const d = JSON.parse(r.stdout);
      expect(d.promptTokens).toEqual([1, 9038, 2501, 263, 931]);
      expect(d.text).toBe('Once upon a time, there was a little girl named Lily.');
    }
  });
  test('a malformed --quant is a usage error before any model work', async () => {
    const r = await cli(['generate', 'stories15M', '--prompt', 'x', '--quant', 'int9-g32']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--quant/);
  });
});
