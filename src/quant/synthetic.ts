/**
 * Seeded synthetic tensors for the Playground and tests: Gaussian, Laplace, and "LLM-like" activations
 * (Gaussian with a few input channels, i.e. columns, 20-60x larger, as in the SmoothQuant paper's figures).
 * The same seed gives the same tensor in the browser, in Node and in tests.
 */
import { mulberry32 } from '../util/random.ts';
export type SyntheticKind = 'gaussian' | 'laplace' | 'llm';

export interface SyntheticSpec {
  kind: SyntheticKind;
  rows: number;
  cols: number;
  seed: number;
  /** Number of outlier columns for `llm` (default 4). */
  outlierChannels?: number;
}


export function syntheticTensor(spec: SyntheticSpec): Float32Array {
  const { rows, cols } = spec;
  const rand = mulberry32(spec.seed);
  const n = rows * cols;
  const out = new Float32Array(n);
  const normal = () => Math.sqrt(-2 * Math.log(Math.max(rand(), 1e-12))) * Math.cos(2 * Math.PI * rand());
  switch (spec.kind) {
    case 'gaussian':
      for (let i = 0; i < n; i++) out[i] = normal();
      break;
    case 'laplace':
      for (let i = 0; i < n; i++) {
        const u = rand() - 0.5;
        out[i] = -Math.sign(u) * Math.log(Math.max(1 - 2 * Math.abs(u), 1e-12)) / Math.SQRT2; // unit variance
      }
      break;
    case 'llm': {
      const k = Math.min(spec.outlierChannels ?? 4, cols);
      const gain = new Float32Array(cols).fill(1);
      for (let j = 0; j < k; j++) {
        const c = Math.floor(rand() * cols);
        gain[c] = 20 + 40 * rand();
      }
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = normal() * gain[c];
      break;
    }
  }
  return out;
}
