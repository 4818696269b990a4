/** Synthetic SmoothQuant groups for the tests: N(0, 1) activations with a few LLM-style outlier channels. */
import type { GroupSample } from '../../src/smooth/smoothquant.ts';
import { gaussian } from '../helpers/random.ts';

/** Rows [rows, c] of N(0, 1) activations with channels `outliers` scaled by `gain` (LLM-style outlier channels). */
export function outlierActivations(rows: number, c: number, seed: number, outliers: number[], gain: number): Float32Array {
  const x = gaussian(rows * c, seed);
  for (let r = 0; r < rows; r++) for (const j of outliers) x[r * c + j] *= gain;
  return x;
}

export function columnAbsmax(x: Float32Array, c: number): Float32Array {
  const m = new Float32Array(c);
  for (let i = 0; i < x.length; i++) m[i % c] = Math.max(m[i % c], Math.abs(x[i]));
  return m;
}

export function syntheticGroup(seed = 3): GroupSample & { actAbsmax: Float32Array } {
  const c = 32;
  const rows = 48;
  const x = outlierActivations(rows, c, seed, [3, 17], 40);
  return {
    channels: c,
    rows,
    x,
    actAbsmax: columnAbsmax(x, c),
    linears: [
      { name: 'q', weight: gaussian(24 * c, seed + 1, 0.1), out: 24 },
      { name: 'k', weight: gaussian(16 * c, seed + 2, 0.1), out: 16 },
    ],
  };
}
