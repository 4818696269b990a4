/** Seeded random tensors for tests (mulberry32 + Box-Muller), so failures reproduce. */
import { mulberry32 } from '../../src/util/random.ts';

export const rng = mulberry32;

export function gaussian(n: number, seed: number, sigma = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12);
    out[i] = sigma * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
  }
  return out;
}
