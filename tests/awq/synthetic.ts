/** A synthetic linear layer for the AWQ tests: Gaussian weights and activations with a few outlier input channels. */
import { gaussian, rng } from '../helpers/random.ts';

export interface SyntheticLayer {
  w: Float32Array;
  shape: [number, number];
  x: Float32Array;
  tokens: number;
  /** The input channels whose activations are scaled up. */
  outliers: number[];
}

export function syntheticLayer(out: number, inDim: number, tokens: number, seed: number, outlierGain = 30, numOutliers = 4): SyntheticLayer {
  const w = gaussian(out * inDim, seed, 0.05);
  const x = gaussian(tokens * inDim, seed + 1);
  const r = rng(seed + 2);
  const outliers: number[] = [];
  while (outliers.length < numOutliers) {
    const j = Math.floor(r() * inDim);
    if (!outliers.includes(j)) outliers.push(j);
  }
  for (let t = 0; t < tokens; t++) for (const j of outliers) x[t * inDim + j] *= outlierGain;
  return { w, shape: [out, inDim], x, tokens, outliers };
}
