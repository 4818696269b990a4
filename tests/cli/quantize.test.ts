/** `quantlab quantize` writes codes, scales, zero points and dequantized values equal to the CPU reference, reports the reference's error, and refuses bad command lines (exit 2) and bad data (exit 1) with one clear line, before starting the GPU. */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { main } from '../../src/cli/main.ts';
import { float32ToFloat16Bits, npyToFloat32, readNpy, writeNpy, type NpyArray } from '../../src/io/npy.ts';
import { validateQuantConfig, type QuantConfig } from '../../src/quant/config.ts';
import { makeGroupLayout } from '../../src/quant/layout.ts';
import { errorMetricsRef } from '../../src/quant/reference/metrics.ts';
import { dequantizeRef, qparamsRef, quantizeRef } from '../../src/quant/reference/quantize.ts';
import { groupStatsRef } from '../../src/quant/reference/stats.ts';
import { gaussian } from '../helpers/random.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const launcher = join(root, 'bin', 'quantlab.mjs');
const dir = mkdtempSync(join(tmpdir(), 'quantlab-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function quantlab(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [launcher, ...args], { cwd: opts.cwd ?? root, env: { ...process.env, ...opts.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A JavaScript stack frame ("at f (file.ts:12:5)"); Dawn's own warnings name C++ lines without a column. */
const STACK_FRAME = /^\s+at .*:\d+:\d+\)?$/m;

function save(name: string, bytes: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

function load(path: string): NpyArray {
  return readNpy(readFileSync(path));
}

/** The whole pipeline on the CPU reference: the files the CLI must write. */
function reference(x: Float32Array, shape: number[], cfgIn: QuantConfig) {
  const cfg = validateQuantConfig(cfgIn);
  const layout = makeGroupLayout(shape, cfg.granularity, cfg.groupSize);
  const qp = qparamsRef(groupStatsRef(x, layout), cfg);
  const codes = quantizeRef(x, layout, qp, cfg);
  const dequant = dequantizeRef(codes, layout, qp, cfg);
  return { layout, qp, codes, dequant, metrics: errorMetricsRef(x, dequant) };
}

/** Reads the four outputs and checks them against the reference, element for element. */
function expectOutputsEqualReference(out: string, x: Float32Array, shape: number[], cfg: QuantConfig, paramShape: number[]) {
  const ref = reference(x, shape, cfg);
  const codes = load(join(out, 'codes.npy'));
  const scales = load(join(out, 'scales.npy'));
  const zeros = load(join(out, 'zeros.npy'));
  const dequant = load(join(out, 'dequant.npy'));
  expect(codes.dtype).toBe(ref.codes instanceof Int8Array ? 'int8' : 'uint8');
  expect(codes.shape).toEqual(shape);
  expect(Array.from(codes.data)).toEqual(Array.from(ref.codes));
  expect(scales.dtype).toBe('float32');
  expect(scales.shape).toEqual(paramShape);
  expect(Array.from(scales.data)).toEqual(Array.from(ref.qp.scale));
  expect(zeros.dtype).toBe('int32');
  expect(zeros.shape).toEqual(paramShape);
  expect(Array.from(zeros.data)).toEqual(Array.from(ref.qp.zero));
  expect(dequant.dtype).toBe('float32');
  expect(dequant.shape).toEqual(shape);
  expect(Array.from(dequant.data)).toEqual(Array.from(ref.dequant));
  return ref;
}

function expectRelClose(got: number, want: number) {
  expect(Math.abs(got - want)).toBeLessThanOrEqual(1e-4 * Math.abs(want));
}

/** A weight-like tensor: Gaussian with a few large outliers, so groups have different ranges. */
function weight(n: number, seed: number): Float32Array {
  const x = gaussian(n, seed, 0.05);
  for (let i = 7; i < n; i += 97) x[i] *= 20;
  return x;
}

describe('outputs equal the CPU reference', () => {
  test('[8, 100] per-group asym int4, group 32 (partial last group), --json', async () => {
    const shape = [8, 100];
    const x = weight(800, 1);
    const input = save('w-8x100.npy', writeNpy(x, shape));
    const out = join(dir, 'group-asym4');
    const r = await quantlab(['quantize', '--input', input, '--bits', '4', '--granularity', 'group', '--group-size', '32', '--scheme', 'asym', '--out', out, '--json']);
    expect(r.stderr).not.toMatch(STACK_FRAME);
    expect(r.code).toBe(0);
    const cfg: QuantConfig = { bits: 4, granularity: 'group', groupSize: 32, scheme: 'asym' };
    const ref = expectOutputsEqualReference(out, x, shape, cfg, [8, 4]);
    expect(load(join(out, 'codes.npy')).data).toBeInstanceOf(Uint8Array);
    // Nothing but the JSON object on stdout.
    const report = JSON.parse(r.stdout);
    expect(report.shape).toEqual(shape);
    expect(report.config).toEqual(validateQuantConfig(cfg));
    expect(report.numGroups).toBe(32);
    expectRelClose(report.mse, ref.metrics.mse);
    expectRelClose(report.sqnr, ref.metrics.sqnr);
    expectRelClose(report.maxAbsError, ref.metrics.maxAbsError);
    // 4 bits plus one fp16 scale and a 4-bit zero point per group of 32 (the last one of each row holds 4).
    expect(report.bitsPerWeight).toBeCloseTo(4 + (32 * 20) / 800, 12);
    expect(report.outputs).toEqual({
      codes: join(out, 'codes.npy'),
      scales: join(out, 'scales.npy'),
      zeros: join(out, 'zeros.npy'),
      dequant: join(out, 'dequant.npy'),
    });
    expect(typeof report.device.description).toBe('string');
  });

  test('[4, 5, 20] float16 input, per-channel sym int8: trailing axes are columns, zero points all 0', async () => {
    const shape = [4, 5, 20];
    const bits = Uint16Array.from(weight(400, 2), float32ToFloat16Bits);
    const input = save('w-f16.npy', writeNpy(bits, shape));
    const x = npyToFloat32(readNpy(readFileSync(input)));
    const out = join(dir, 'channel-sym8');
    const r = await quantlab(['quantize', '--input', input, '--bits', '8', '--granularity', 'channel', '--scheme', 'sym', '--out', out, '--json']);
    expect(r.code).toBe(0);
    const ref = expectOutputsEqualReference(out, x, shape, { bits: 8, granularity: 'channel', scheme: 'sym' }, [4, 1]);
    expect(load(join(out, 'codes.npy')).data).toBeInstanceOf(Int8Array);
    expect(Array.from(load(join(out, 'zeros.npy')).data).every((z) => z === 0)).toBe(true);
    const report = JSON.parse(r.stdout);
    expect(report.inputDtype).toBe('float16');
    expect(report.numGroups).toBe(4);
    expectRelClose(report.mse, ref.metrics.mse);
    expectRelClose(report.sqnr, ref.metrics.sqnr);
  });

  test('1-D float64 input, per-tensor asym int3 with clipping, human summary', async () => {
    // 301 values: the codes do not fill the last 4-byte word the GPU writes them in.
    const x64 = Float64Array.from(weight(301, 3));
    // writeNpy takes float32 data; float64 files come from NumPy, so widen a float32 file's values exactly.
    const input = save('v-f64.npy', writeNpy(Float32Array.from(x64), [301], 'float64'));
    const out = join(dir, 'tensor-asym3');
    const r = await quantlab(['quantize', '--input', input, '--bits', '3', '--granularity', 'tensor', '--scheme', 'asym', '--clip-ratio', '0.5', '--out', out]);
    expect(r.code).toBe(0);
    const ref = expectOutputsEqualReference(out, Float32Array.from(x64), [301], { bits: 3, granularity: 'tensor', scheme: 'asym', clipRatio: 0.5 }, [1]);
    expect(r.stdout).toContain('int3 asym, per-tensor, clip ratio 0.5');
    expect(r.stdout).toContain(`SQNR ${ref.metrics.sqnr.toFixed(2)} dB`);
    expect(r.stdout).toContain(join(out, 'dequant.npy'));
  });

  test('FP8 E4M3 per-group, relative paths from another working directory', async () => {
    const shape = [6, 64];
    const x = weight(384, 4);
    save('w-fp8.npy', writeNpy(x, shape));
    const r = await quantlab(['quantize', '--input', 'w-fp8.npy', '--format', 'fp8-e4m3', '--bits', '8', '--granularity', 'group', '--group-size', '32', '--out', 'fp8', '--json'], { cwd: dir });
    expect(r.code).toBe(0);
    // --bits is ignored for FP8: a note on stderr, stdout stays pure JSON.
    expect(r.stderr).toContain('--bits is ignored');
    const report = JSON.parse(r.stdout);
    expect(report.config.format).toBe('fp8-e4m3');
    expect(report.config.scheme).toBe('sym');
    const ref = expectOutputsEqualReference(join(dir, 'fp8'), x, shape, { bits: 8, granularity: 'group', groupSize: 32, scheme: 'sym', format: 'fp8-e4m3' }, [6, 2]);
    expect(load(join(dir, 'fp8', 'codes.npy')).data).toBeInstanceOf(Uint8Array);
    expectRelClose(report.mse, ref.metrics.mse);
    expect(report.outputs.codes).toBe(join(dir, 'fp8', 'codes.npy'));
  });
});

describe('bad command lines and bad data', () => {
  // Spawned cases run with no usable GPU (SwiftShader forced, its driver file missing): a command that
  // created the GPU context before checking its arguments would fail with the GPU message instead.
  // The other cases call main() in this process, which is the same code without a Node start-up each.
  const noGpu = { QUANTLAB_ADAPTER: 'swiftshader', VK_ICD_FILENAMES: join(dir, 'no-such-icd.json') };
  const good = () => join(dir, 'good.npy');
  const out = () => join(dir, 'never-written');
  const cases: { name: string; args: () => string[]; code: number; message: (string | RegExp)[]; stdout?: string; spawn?: boolean }[] = [
    { name: 'missing file', args: () => ['quantize', '--input', join(dir, 'missing.npy'), '--out', out()], code: 1, message: ['quantlab quantize: cannot read', 'missing.npy: no such file'] },
    { name: 'not a .npy file', args: () => ['quantize', '--input', join(dir, 'text.npy'), '--out', out()], code: 1, message: ['bad magic'] },
    { name: 'truncated data', args: () => ['quantize', '--input', join(dir, 'truncated.npy'), '--out', out()], code: 1, message: ['expected 400 bytes of data, file has 100'] },
    { name: 'complex dtype', args: () => ['quantize', '--input', join(dir, 'complex.npy'), '--out', out()], code: 1, message: ["unsupported dtype '<c8'"] },
    { name: 'bool dtype', args: () => ['quantize', '--input', join(dir, 'bool.npy'), '--out', out()], code: 1, message: ["unsupported dtype '|b1'"] },
    { name: 'NaN and Inf in the input', args: () => ['quantize', '--input', join(dir, 'nan.npy'), '--out', out()], code: 1, message: ['contains 2 non-finite values', 'first at index [1, 2]', 'needs finite inputs'], spawn: true },
    { name: 'scalar tensor', args: () => ['quantize', '--input', join(dir, 'scalar.npy'), '--out', out()], code: 1, message: ['scalar'] },
    { name: '--group-size 0', args: () => ['quantize', '--input', good(), '--out', out(), '--group-size', '0'], code: 2, message: ['quantlab quantize: --group-size must be a positive integer, got 0'] },
    { name: '--bits 9', args: () => ['quantize', '--input', good(), '--out', out(), '--bits', '9'], code: 2, message: ['quantlab quantize: --bits must be an integer from 2 to 8, got 9'], spawn: true },
    { name: '--bits 1', args: () => ['quantize', '--input', good(), '--out', out(), '--bits', '1'], code: 2, message: ['--bits must be an integer from 2 to 8, got 1'] },
    { name: '--bits x', args: () => ['quantize', '--input', good(), '--out', out(), '--bits', 'x'], code: 2, message: ["--bits must be an integer from 2 to 8, got 'x'"] },
    { name: '--clip-ratio 1.5', args: () => ['quantize', '--input', good(), '--out', out(), '--clip-ratio', '1.5'], code: 2, message: ['--clip-ratio must be a number in (0, 1], got 1.5'] },
    { name: '--granularity row', args: () => ['quantize', '--input', good(), '--out', out(), '--granularity', 'row'], code: 2, message: ["--granularity must be one of tensor, channel, group, got 'row'"] },
    { name: 'FP8 asym', args: () => ['quantize', '--input', good(), '--out', out(), '--format', 'fp8-e4m3', '--scheme', 'asym'], code: 2, message: ['symmetric only'] },
    { name: 'unknown option', args: () => ['quantize', '--input', good(), '--out', out(), '--frobnicate', '3'], code: 2, message: ['unknown option --frobnicate'] },
    { name: 'option without its value', args: () => ['quantize', '--input', good(), '--bits', '--out', out()], code: 2, message: ['--bits needs a value'] },
    { name: 'unknown command', args: () => ['quantise', '--input', good()], code: 2, message: ["quantlab: unknown command 'quantise'"] },
    { name: 'missing --out', args: () => ['quantize', '--input', good()], code: 2, message: ['quantlab quantize: missing --out'] },
    { name: 'no command', args: () => [], code: 2, message: ['Usage: quantlab <command>'] },
    // The output directory is created before the GPU starts (an unwritable --out fails fast), so this case has its own.
    { name: 'GPU unavailable', args: () => ['quantize', '--input', good(), '--out', join(dir, 'gpu-unavailable')], code: 1, message: [/quantlab quantize: No WebGPU adapter/], spawn: true },
    { name: 'quantlab --help', args: () => ['--help'], code: 0, message: [], stdout: 'quantize', spawn: true },
    { name: 'quantlab quantize --help', args: () => ['quantize', '--help'], code: 0, message: [], stdout: '--group-size N' },
  ];

  async function inProcess(args: string[]): Promise<CliResult> {
    let stdout = '';
    let stderr = '';
    const code = await main(args, { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t) });
    return { code, stdout, stderr };
  }

  const spawned = new Map<string, Promise<CliResult>>();

  beforeAll(() => {
    save('good.npy', writeNpy(weight(64, 5), [2, 32]));
    writeFileSync(join(dir, 'text.npy'), 'x,y\n1,2\n');
    save('truncated.npy', writeNpy(new Float32Array(100), [100]).subarray(0, 128 + 100));
    const header = (descr: string) => `{'descr': '${descr}', 'fortran_order': False, 'shape': (3,), }`.padEnd(117) + '\n';
    const encoder = new TextEncoder();
    for (const [name, descr, bytes] of [['complex.npy', '<c8', 24], ['bool.npy', '|b1', 3]] as const) {
      const file = new Uint8Array(128 + bytes);
      file.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 118, 0]);
      file.set(encoder.encode(header(descr)), 10);
      save(name, file);
    }
    const nan = new Float32Array(12);
    nan[6] = NaN;
    nan[9] = -Infinity;
    save('nan.npy', writeNpy(nan, [3, 4]));
    save('scalar.npy', writeNpy(new Float32Array([1]), []));
    // The launches start together: each is a short Node process that never reaches the GPU.
    for (const c of cases) if (c.spawn) spawned.set(c.name, quantlab(c.args(), { env: noGpu }));
  });

  for (const c of cases) {
    test(`${c.name}${c.spawn ? ' (spawned)' : ''}`, async () => {
      const r = c.spawn ? await spawned.get(c.name)! : await inProcess(c.args());
      for (const m of c.message) expect(r.stderr).toMatch(m instanceof RegExp ? m : new RegExp(m.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
      expect(r.code).toBe(c.code);
      expect(r.stderr).not.toMatch(STACK_FRAME);
      if (c.stdout) expect(r.stdout).toContain(c.stdout);
      if (c.code !== 0) expect(r.stdout).toBe('');
      expect(existsSync(out())).toBe(false);
    });
  }

  test('QUANTLAB_DEBUG=1 adds the stack trace (spawned)', async () => {
    const r = await quantlab(['quantize', '--input', good(), '--out', out(), '--bits', '9'], { env: { ...noGpu, QUANTLAB_DEBUG: '1' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--bits must be an integer');
    expect(r.stderr).toMatch(STACK_FRAME);
  });
});
