/** `quantlab amax` prints the amax the CPU calibrators choose on the same data (GPU histogram and sweeps included), and refuses bad data (exit 1) and bad command lines (exit 2) with a message naming the problem. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { calibrateTensor, MovingAverageMinMax, percentileAmax } from '../../src/calib/calibrators.ts';
import { GrowingHistogram } from '../../src/calib/histogram.ts';
import { CALIB_METHODS } from '../../src/calib/types.ts';
import { main } from '../../src/cli/main.ts';
import { writeNpy } from '../../src/io/npy.ts';
import { gaussian } from '../helpers/random.ts';

const dir = mkdtempSync(join(tmpdir(), 'quantlab-amax-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function quantlab(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(['amax', ...args], { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t) });
  return { code, stdout, stderr };
}

function save(name: string, data: Float32Array, shape: number[]): string {
  const path = join(dir, name);
  writeFileSync(path, writeNpy(data, shape));
  return path;
}

/** [60, 100] activations whose scale grows from batch to batch (20 rows each), with a few outliers. */
function activations(): Float32Array {
  const x = gaussian(6000, 11);
  for (let i = 0; i < 6000; i++) x[i] *= i < 2000 ? 0.5 : i < 4000 ? 1 : 3;
  x[4321] = 40;
  x[5000] = -25;
  return x;
}

/** The CPU reference on the same slices: growing histogram, exact statistics, every calibrator. */
function reference(x: Float32Array, rowsPerBatch: number, cols: number) {
  const h = new GrowingHistogram();
  const ma = new MovingAverageMinMax();
  let absmax = 0;
  for (let r = 0; r * cols < x.length; r += rowsPerBatch) {
    const b = x.subarray(r * cols, (r + rowsPerBatch) * cols);
    h.add(b);
    ma.addValues(b);
    for (const v of b) absmax = Math.max(absmax, Math.abs(v));
  }
  return { h, cal: calibrateTensor(h, { absmax, movingMin: ma.min, movingMax: ma.max }, 8), ma };
}

describe('amax equals the CPU calibrators', () => {
  const x = activations();
  const input = save('act.npy', x, [60, 100]);

  test('--method all --batches 3 --json on the GPU: every method, the growing histogram, the best SQNR', async () => {
    const r = await quantlab(['--input', input, '--batches', '3', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    const ref = reference(x, 20, 100);
    expect(out.device).not.toBeNull();
    expect(out.batches).toBe(3);
    expect(out.histogram.range).toBe(ref.h.range);
    expect(out.best).toBe(ref.cal.best);
    expect(out.methods.map((m: { method: string }) => m.method)).toEqual(CALIB_METHODS);
    for (const m of out.methods) {
      expect(m.amax).toBe(ref.cal.amax[m.method as keyof typeof ref.cal.amax]);
      expect(m.scale).toBeCloseTo(m.amax / 127, 12);
      expect(m.sqnrDb).toBeCloseTo(ref.cal.sqnrDb[m.method as keyof typeof ref.cal.sqnrDb], 9);
    }
    expect(out.amax).toBe(ref.cal.amax[ref.cal.best]);
    // The data really exercises the calibrators: max and MSE disagree, the moving average lags the max.
    expect(ref.cal.amax.mse).toBeLessThan(ref.cal.amax.max);
    expect(ref.cal.amax['ma-minmax']).toBeLessThan(ref.cal.amax.max);
  });

  test('--method entropy, human output', async () => {
    const r = await quantlab(['--input', input, '--method', 'entropy', '--cpu']);
    expect(r.code).toBe(0);
    const ref = reference(x, 60, 100);
    expect(r.stdout).toContain(`amax       ${ref.cal.amax.entropy.toPrecision(8)}`);
    expect(r.stdout).toContain(`scale      ${(ref.cal.amax.entropy / 127).toPrecision(8)}`);
    expect(r.stdout).toMatch(/SQNR +\d+\.\d\d dB/);
  });

  test('--method percentile --percentile 99.9 and --method ma-minmax on the CPU path', async () => {
    const ref = reference(x, 60, 100);
    const p = JSON.parse((await quantlab(['--input', input, '--method', 'percentile', '--percentile', '99.9', '--cpu', '--json'])).stdout);
    expect(p.method).toBe('percentile-99.9');
    expect(p.amax).toBe(percentileAmax(ref.h, 99.9));
    expect(p.device).toBeNull();
    const ma = JSON.parse((await quantlab(['--input', input, '--method', 'ma-minmax', '--batches', '6', '--cpu', '--json'])).stdout);
    const m = new MovingAverageMinMax();
    for (let b = 0; b < 6; b++) m.addValues(x.subarray(b * 1000, (b + 1) * 1000));
    expect(ma.amax).toBe(m.amax);
    const mse = JSON.parse((await quantlab(['--input', input, '--method', 'mse', '--bits', '4', '--cpu', '--json'])).stdout);
    const ref4 = calibrateTensor(ref.h, { absmax: 40, movingMin: 0, movingMax: 0 }, 4);
    expect(mse.amax).toBe(ref4.amax.mse);
    expect(mse.scale).toBeCloseTo(ref4.amax.mse / 7, 12);
  });

  test('all zeros: amax 0 for every method', async () => {
    const zeros = save('zeros.npy', new Float32Array(500), [500]);
    const out = JSON.parse((await quantlab(['--input', zeros, '--cpu', '--json'])).stdout);
    expect(out.methods.every((m: { amax: number }) => m.amax === 0)).toBe(true);
    expect(out.sqnrDb).toBeNull();
  });
});

describe('bad input', () => {
  test('NaN values: exit 1, the count is named', async () => {
    const x = gaussian(100, 1);
    x[3] = NaN;
    x[50] = NaN;
    const r = await quantlab(['--input', save('nan.npy', x, [100]), '--method', 'max']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/contains 2 non-finite values/);
    expect(r.stdout).toBe('');
  });

  test('an empty tensor: exit 1, nothing to calibrate', async () => {
    const r = await quantlab(['--input', save('empty.npy', new Float32Array(0), [0]), '--method', 'max']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no values.*nothing to calibrate/);
  });

  test('bad command lines: exit 2 with the option named', async () => {
    const input = save('ok.npy', gaussian(100, 2), [10, 10]);
    const cases: [string[], RegExp][] = [
      [['--input', input, '--method', 'kl'], /--method must be one of entropy, percentile, mse, max, ma-minmax, all, got 'kl'/],
      [['--input', input, '--method', 'percentile', '--percentile', '150'], /--percentile must be a number in \(0, 100\], got 150/],
      [['--input', input, '--method', 'percentile', '--percentile', '0'], /--percentile must be a number in \(0, 100\], got 0/],
      [['--input', input, '--method', 'mse', '--percentile', '99'], /--percentile goes with --method percentile/],
      [['--input', input, '--bits', '9'], /--bits must be an integer from 2 to 8, got 9/],
      [['--method', 'max'], /missing --input/],
    ];
    for (const [args, msg] of cases) {
      const r = await quantlab(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(msg);
    }
    const r = await quantlab(['--input', input, '--batches', '11', '--cpu']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--batches 11 but .* has only 10 rows/);
  });
});
