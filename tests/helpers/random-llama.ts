/** Random Llama-family checkpoints for GPU-against-CPU tests: Gaussian weights, norms around 1. */
import { expectedTensors, type LlamaCheckpoint, type LlamaConfig } from '../../src/model/llama/model.ts';
import { gaussian } from './random.ts';

export interface RandomLlama {
  config: LlamaConfig;
  /** The weights by canonical name; edit them before loading to plant outliers. */
  weights: Map<string, Float32Array>;
  /** A checkpoint over the weights, with `over` replacing some of them. */
  checkpoint(over?: ReadonlyMap<string, Float32Array>): LlamaCheckpoint;
}

/** Weights of tensor i are N(0, 0.3) with seed `seed + i`; norms are 1 + N(0, 0.1). */
export function randomLlama(config: LlamaConfig, seed: number, opts: { biases?: boolean } = {}): RandomLlama {
  const tensors = expectedTensors(config, opts.biases ?? false);
  const weights = new Map(tensors.map((t, i) => [t.name, gaussian(t.shape.reduce((a, b) => a * b, 1), seed + i, t.name.endsWith('norm') ? 0.1 : 0.3)]));
  for (const [name, w] of weights) if (name.endsWith('norm')) for (let i = 0; i < w.length; i++) w[i] += 1;
  return {
    config,
    weights,
    checkpoint: (over = new Map()) => ({
      format: 'safetensors',
      name: 'random',
      config,
      sizeBytes: 0,
      tensors: tensors.map((t) => ({ ...t, dtype: 'f32', sourceName: t.name })),
      loadTensor: async (n) => (over.get(n) ?? weights.get(n)!).slice(),
    }),
  };
}

/** y[t] = W x[t] for W [out, in], in float64. */
export function matmulRows(rows: readonly Float32Array[], w: Float32Array, out: number): Float64Array {
  const inn = rows[0].length;
  const y = new Float64Array(rows.length * out);
  rows.forEach((x, t) => {
    for (let o = 0; o < out; o++) {
      let s = 0;
      for (let j = 0; j < inn; j++) s += w[o * inn + j] * x[j];
      y[t * out + o] = s;
    }
  });
  return y;
}
