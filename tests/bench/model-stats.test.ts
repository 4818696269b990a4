/** The model benchmark's arithmetic: case selection, the prompt, weight bytes and FLOPs of a forward call, tokens/s, GFLOP/s and ratios. */
import { describe, expect, test } from 'vitest';
import { KERNEL_NAMES } from '../../bench/cases.ts';
import {
  checkForwardPlan,
  copyReference,
  fitPrompt,
  formatShares,
  forwardFlops,
  forwardWork,
  gflopPerSecond,
  kernelShares,
  selectCases,
  summarize,
  throughputRatio,
  tokensPerSecond,
} from '../../bench/model-stats.ts';
import { gbPerSecond } from '../../bench/stats.ts';
import { expectedTensors, type LlamaConfig } from '../../src/model/llama/model.ts';

/** stories15M's config (llama2.c stories15M.bin). */
const STORIES15M: LlamaConfig = {
  dim: 288,
  hiddenDim: 768,
  nLayers: 6,
  nHeads: 6,
  nKvHeads: 6,
  vocabSize: 32000,
  seqLen: 256,
  normEps: 1e-5,
  ropeTheta: 10000,
  headDim: 48,
  tiedEmbeddings: true,
  arch: 'llama',
  ropeLayout: 'interleaved',
};
const LINEAR_PARAMS = 6 * (4 * 288 * 288 + 3 * 288 * 768); // 5,971,968
const CLASSIFIER_PARAMS = 32000 * 288; // 9,216,000
const NORM_PARAMS = 6 * 2 * 288 + 288;

describe('case selection', () => {
  test('no --only: every kernel and both model cases', () => {
    const s = selectCases(KERNEL_NAMES, []);
    expect(s.kernels).toEqual([...KERNEL_NAMES]);
    expect(s).toMatchObject({ kernelsBeyondCopy: true, forward: true, rtn: true });
  });

  test('--only model: both model cases and the copy baseline, no other kernel', () => {
    expect(selectCases(KERNEL_NAMES, ['model'])).toEqual({ kernels: ['copy'], kernelsBeyondCopy: false, forward: true, rtn: true });
    expect(selectCases(KERNEL_NAMES, ['forward'])).toMatchObject({ kernels: ['copy'], forward: true, rtn: false });
    expect(selectCases(KERNEL_NAMES, ['rtn'])).toMatchObject({ kernels: ['copy'], forward: false, rtn: true });
  });

  test('--only kernel words match by substring and leave the model out', () => {
    const s = selectCases(KERNEL_NAMES, ['quantize']);
    expect(s.kernels).toEqual(['copy', 'quantize', 'dequantize', 'fake-quantize']);
    expect(s).toMatchObject({ kernelsBeyondCopy: true, forward: false, rtn: false });
    expect(selectCases(KERNEL_NAMES, ['stats', 'forward'])).toMatchObject({ kernels: ['copy', 'group-stats', 'column-stats'], forward: true, rtn: false });
  });

  test('--no-model turns the model cases off whatever --only says', () => {
    expect(selectCases(KERNEL_NAMES, [], { model: false })).toMatchObject({ forward: false, rtn: false, kernelsBeyondCopy: true });
    expect(selectCases(KERNEL_NAMES, ['model'], { model: false })).toMatchObject({ kernels: ['copy'], forward: false, rtn: false });
  });

  test('a word that names no case is an error', () => {
    expect(() => selectCases(KERNEL_NAMES, ['quantise'])).toThrow(/--only quantise matches no case/);
  });
});

describe('prompt', () => {
  test('exactly n tokens, BOS once, the text repeated', () => {
    expect(fitPrompt([1, 10, 11], 6)).toEqual([1, 10, 11, 10, 11, 10]);
    expect(fitPrompt([1, 10, 11, 12], 2)).toEqual([1, 10]);
    expect(fitPrompt([1], 3)).toEqual([1, 1, 1]);
    expect(() => fitPrompt([1, 2], 0)).toThrow(/at least one token/);
    expect(() => fitPrompt([], 4)).toThrow(/empty/);
  });

  test('prompt and decode tokens must fit the context', () => {
    expect(() => checkForwardPlan(32, 8, 256)).not.toThrow();
    expect(() => checkForwardPlan(250, 6, 256)).not.toThrow();
    expect(() => checkForwardPlan(250, 7, 256)).toThrow(/over the model's context of 256/);
    expect(() => checkForwardPlan(0, 8, 256)).toThrow(/--prompt-tokens/);
    expect(() => checkForwardPlan(8, 1.5, 256)).toThrow(/--decode-tokens/);
  });
});

describe('forward work', () => {
  test('stories15M (tied): the embedding matrix is the classifier and is read once per call', () => {
    const w = forwardWork(expectedTensors(STORIES15M), STORIES15M);
    expect(w.linearParams).toBe(LINEAR_PARAMS);
    expect(w.classifierParams).toBe(CLASSIFIER_PARAMS);
    expect(w.weightBytesPerCall).toBe(4 * (LINEAR_PARAMS + CLASSIFIER_PARAMS + NORM_PARAMS));
    expect(w.weightBytesPerCall).toBe(60_766_848);
  });

  test('untied: the classifier is `output`, and one embedding row is read', () => {
    const cfg = { ...STORIES15M, tiedEmbeddings: false };
    const w = forwardWork(expectedTensors(cfg, true), cfg, 2);
    const biases = 6 * 3 * 288;
    expect(w.linearParams).toBe(LINEAR_PARAMS);
    expect(w.classifierParams).toBe(CLASSIFIER_PARAMS);
    expect(w.weightBytesPerCall).toBe(2 * (LINEAR_PARAMS + CLASSIFIER_PARAMS + NORM_PARAMS + biases + 288));
  });

  test('FLOPs: 2 per multiply-add, the classifier only for the logit rows computed', () => {
    const w = { linearParams: LINEAR_PARAMS, classifierParams: CLASSIFIER_PARAMS };
    expect(forwardFlops(w, 1)).toBe(2 * (LINEAR_PARAMS + CLASSIFIER_PARAMS));
    expect(forwardFlops(w, 32)).toBe(400_637_952);
    expect(forwardFlops(w, 32, 32)).toBe(2 * 32 * (LINEAR_PARAMS + CLASSIFIER_PARAMS));
  });
});

describe('units', () => {
  test('tokens/s, GFLOP/s and decode GB/s', () => {
    expect(tokensPerSecond(32, 8000)).toBe(4);
    expect(tokensPerSecond(1, 250)).toBe(4);
    expect(tokensPerSecond(1, 0)).toBeNaN();
    expect(gflopPerSecond(400_637_952, 100)).toBeCloseTo(4.00637952, 9);
    expect(gflopPerSecond(1, 0)).toBeNaN();
    // One decode token of stories15M in 20 ms streams its weights at about 3 GB/s.
    expect(gbPerSecond(60_766_848, 20)).toBeCloseTo(3.0383424, 9);
  });

  test('GPU/CPU is the throughput ratio, null when a side is missing or zero', () => {
    expect(throughputRatio(2, 50)).toBe(0.04);
    expect(throughputRatio(50, 2)).toBe(25);
    expect(throughputRatio(undefined, 2)).toBeNull();
    expect(throughputRatio(2, 0)).toBeNull();
    expect(throughputRatio(NaN, 2)).toBeNull();
    expect(throughputRatio(Infinity, 2)).toBeNull();
  });

  test('the copy reference is the baseline at the largest size', () => {
    const rows = [
      { bound: 'baseline', n: 4, gbps: 1.1 },
      { bound: 'memory', n: 16, gbps: 9 },
      { bound: 'baseline', n: 16, gbps: 1.3 },
      { bound: 'baseline', n: 1, gbps: 2 },
    ];
    expect(copyReference(rows)).toEqual({ n: 16, gbps: 1.3 });
    expect(copyReference(rows.filter((r) => r.bound !== 'baseline'))).toBeNull();
  });

  test('kernel shares: largest first, summing to 1', () => {
    const s = kernelShares(
      new Map([
        ['rope.wgsl', 1],
        ['matvec.wgsl', 6],
        ['attention.wgsl', 3],
      ]),
    );
    expect(s.map((x) => x.shader)).toEqual(['matvec.wgsl', 'attention.wgsl', 'rope.wgsl']);
    expect(s.map((x) => x.share)).toEqual([0.6, 0.3, 0.1]);
    expect(formatShares(s, 2)).toBe('matvec 60%, attention 30%, other 10%');
    expect(formatShares(s)).toBe('matvec 60%, attention 30%, rope 10%');
    expect(kernelShares(new Map([['a.wgsl', 0]]))).toEqual([{ shader: 'a.wgsl', ms: 0, share: 0 }]);
    expect(formatShares([])).toBe('-');
  });

  test('summary of samples', () => {
    expect(summarize([30, 10, 20, 40])).toEqual({ ms: 25, minMs: 10, maxMs: 40, samples: 4 });
    expect(summarize([]).samples).toBe(0);
    expect(summarize([]).ms).toBeNaN();
  });
});
