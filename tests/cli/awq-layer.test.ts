/** `quantlab awq-layer` writes scales and a fake-quantized weight equal to the CPU AWQ reference, reports the loss at every ratio, and refuses bad inputs with one clear line. */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { awqClipRef, awqSearchRef, divideColumns, quantizeScaledRef, scaleColumns } from '../../src/awq/reference.ts';
import { readNpy, writeNpy, type NpyArray } from '../../src/io/npy.ts';
import type { QuantConfig } from '../../src/quant/config.ts';
import { syntheticLayer } from '../awq/synthetic.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const launcher = join(root, 'bin', 'quantlab.mjs');
const dir = mkdtempSync(join(tmpdir(), 'quantlab-awq-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function quantlab(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [launcher, ...args], { cwd: root });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const STACK_FRAME = /^\s+at .*:\d+:\d+\)?$/m;

function save(name: string, data: Float32Array, shape: number[]): string {
  const path = join(dir, name);
  writeFileSync(path, writeNpy(data, shape));
  return path;
}

function load(path: string): NpyArray {
  return readNpy(readFileSync(path));
}

const layer = syntheticLayer(32, 96, 160, 41);
const wPath = save('w.npy', layer.w, layer.shape);
// Activations as [batch 2, seq 80, in]: leading axes flatten into 160 tokens.
const xPath = save('x.npy', layer.x, [2, 80, 96]);

describe('end to end', () => {
  test('int4 asym g32, duo, clip, --json: outputs equal the reference', async () => {
    const out = join(dir, 'awq-duo');
    const r = await quantlab(['awq-layer', '--weight', wPath, '--acts', xPath, '--bits', '4', '--group-size', '32', '--duo', '--out', out, '--json']);
    expect(r.stderr).not.toMatch(STACK_FRAME);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(JSON.parse(readFileSync(join(out, 'awq.json'), 'utf8'))).toEqual(report);
    const quant: QuantConfig = { bits: 4, granularity: 'group', groupSize: 32, scheme: 'asym' };
    const ref = awqSearchRef(layer.w, layer.shape, layer.x, 160, { quant, duo: true });
    expect(report.tokens).toBe(160);
    expect(report.shape).toEqual([32, 96]);
    expect(report.bestIndex).toBe(ref.bestIndex);
    expect(report.bestRatio).toBe(ref.bestRatio);
    expect(report.losses).toHaveLength(20);
    report.losses.forEach((l: number, i: number) => expect(Math.abs(l - ref.losses[i])).toBeLessThanOrEqual(2e-4 * ref.losses[i]));
    expect(Math.abs(report.rtnLoss - ref.rtnLoss)).toBeLessThanOrEqual(2e-4 * ref.rtnLoss);
    expect(report.bestLoss).toBeLessThan(report.rtnLoss);
    expect(report.finalLoss).toBeLessThan(report.rtnLoss);
    const scales = load(join(out, 'scales.npy'));
    expect(scales.dtype).toBe('float32');
    expect(scales.shape).toEqual([96]);
    const s = scales.data as Float32Array;
    s.forEach((v, j) => expect(Math.abs(v - ref.scales[j])).toBeLessThanOrEqual(1e-5 * ref.scales[j]));
    // Clip thresholds: the reference clip search run on the written scales.
    const clipRef = awqClipRef(scaleColumns(layer.w, layer.shape, s), layer.shape, divideColumns(layer.x, 160, s), 160, quant);
    const clipMax = load(join(out, 'clip_max.npy'));
    expect(clipMax.shape).toEqual([32, 3]);
    expect(Array.from(clipMax.data)).toEqual(Array.from(clipRef.maxVal));
    expect(report.clip.groups).toBe(96);
    expect(report.clip.chosenCandidates.reduce((a: number, b: number) => a + b, 0)).toBe(96);
    // weight.npy = Q(clip(W*s))/s of the written scales and thresholds, bit for bit; codes and parameters too.
    const want = quantizeScaledRef(layer.w, layer.shape, s, quant, clipRef.maxVal);
    const weight = load(join(out, 'weight.npy'));
    expect(weight.dtype).toBe('float32');
    expect(weight.shape).toEqual([32, 96]);
    expect(Array.from(weight.data)).toEqual(Array.from(want.weight));
    const codes = load(join(out, 'codes.npy'));
    expect(codes.dtype).toBe('uint8');
    expect(Array.from(codes.data)).toEqual(Array.from(want.codes));
    expect(Array.from(load(join(out, 'qscales.npy')).data)).toEqual(Array.from(want.qparams.scale));
    expect(Array.from(load(join(out, 'zeros.npy')).data)).toEqual(Array.from(want.qparams.zero));
  });

  test('x-only, --no-clip, --loss direct, --sym: weight is Q(W*s)/s and ratio 0 is RTN', async () => {
    const out = join(dir, 'awq-xonly');
    const r = await quantlab(['awq-layer', '--weight', wPath, '--acts', xPath, '--group-size', '32', '--sym', '--no-clip', '--loss', 'direct', '--out', out]);
    expect(r.stderr).not.toMatch(STACK_FRAME);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/best\s+ratio/);
    const report = JSON.parse(readFileSync(join(out, 'awq.json'), 'utf8'));
    const quant: QuantConfig = { bits: 4, granularity: 'group', groupSize: 32, scheme: 'sym' };
    const ref = awqSearchRef(layer.w, layer.shape, layer.x, 160, { quant, duo: false, loss: 'direct' });
    expect(report.bestIndex).toBe(ref.bestIndex);
    expect(report.clip).toBeNull();
    expect(report.losses[0]).toBe(report.rtnLoss);
    const s = load(join(out, 'scales.npy')).data as Float32Array;
    expect(Array.from(load(join(out, 'weight.npy')).data)).toEqual(Array.from(quantizeScaledRef(layer.w, layer.shape, s, quant).weight));
    expect(load(join(out, 'codes.npy')).dtype).toBe('int8');
  });
});

describe('bad inputs', () => {
  test('shape mismatch names both shapes', async () => {
    const bad = save('x-bad.npy', new Float32Array(10 * 95), [10, 95]);
    const r = await quantlab(['awq-layer', '--weight', wPath, '--acts', bad, '--out', join(dir, 'o1')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[32, 96]');
    expect(r.stderr).toContain('[10, 95]');
    expect(r.stderr).not.toMatch(STACK_FRAME);
  });

  test('NaN in the activations is refused with a count', async () => {
    const x = layer.x.slice();
    x[5] = NaN;
    x[700] = NaN;
    const bad = save('x-nan.npy', x, [160, 96]);
    const r = await quantlab(['awq-layer', '--weight', wPath, '--acts', bad, '--out', join(dir, 'o2')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/2 non-finite values/);
  });

  test('a 3-D weight is refused', async () => {
    const bad = save('w3.npy', new Float32Array(2 * 4 * 96), [2, 4, 96]);
    const r = await quantlab(['awq-layer', '--weight', bad, '--acts', xPath, '--out', join(dir, 'o3')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/2-D \[out, in\].*\[2, 4, 96\]/);
  });

  test('bad options exit 2', async () => {
    const r = await quantlab(['awq-layer', '--weight', wPath, '--acts', xPath, '--out', join(dir, 'o4'), '--loss', 'mse']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--loss must be one of gram, direct/);
    const r2 = await quantlab(['awq-layer', '--weight', wPath, '--acts', xPath, '--out', join(dir, 'o4'), '--per-channel', '--group-size', '32']);
    expect(r2.code).toBe(2);
  });

  test('a group size that does not divide in makes partial groups (noted on stderr), and a zero input channel stays finite', async () => {
    const x = layer.x.slice();
    for (let t = 0; t < 160; t++) x[t * 96 + 3] = 0;
    const zx = save('x-zero.npy', x, [160, 96]);
    const out = join(dir, 'o5');
    const r = await quantlab(['awq-layer', '--weight', wPath, '--acts', zx, '--group-size', '40', '--duo', '--out', out]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/last group of each row holds 16/);
    const s = load(join(out, 'scales.npy')).data as Float32Array;
    for (const v of s) expect(Number.isFinite(v) && v > 0).toBe(true);
    for (const v of load(join(out, 'weight.npy')).data) expect(Number.isFinite(v)).toBe(true);
    expect(load(join(out, 'qscales.npy')).shape).toEqual([32, 3]);
  });
});
