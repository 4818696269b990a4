/** The evaluation benchmark's plumbing without a GPU: `--only eval` selects it and nothing else but the copy baseline, a missing model skips it with a message, and the report prints both engines. */
import { describe, expect, test } from 'vitest';
import { evalReport, runEvalBench, splitEvalOnly, type EvalBenchResult } from '../../bench/eval.ts';
import { KERNEL_NAMES } from '../../bench/cases.ts';
import { selectAwqCases, selectCalibCases, selectCases } from '../../bench/model-stats.ts';
import type { GpuContext } from '../../src/gpu/context.ts';

describe('case selection', () => {
  test('--only eval: the evaluation case, and the others see only the copy baseline', () => {
    const s = splitEvalOnly(['eval'], KERNEL_NAMES);
    expect(s).toEqual({ evalSelected: true, others: ['copy'] });
    expect(selectCases(KERNEL_NAMES, s.others)).toEqual({ kernels: ['copy'], kernelsBeyondCopy: false, forward: false, rtn: false });
    expect(selectCalibCases(s.others)).toEqual({ stats: false, sweeps: false, llama: false, ocr: false });
    expect(selectAwqCases(s.others)).toEqual({ loss: false, layer: false, llama: false, sweep: false });
  });

  test('no --only: everything; --only awq: no evaluation; mixed lists keep the other words', () => {
    expect(splitEvalOnly([], KERNEL_NAMES)).toEqual({ evalSelected: true, others: [] });
    expect(splitEvalOnly(['awq'], KERNEL_NAMES)).toEqual({ evalSelected: false, others: ['awq'] });
    expect(splitEvalOnly(['eval', 'model'], KERNEL_NAMES)).toEqual({ evalSelected: true, others: ['model'] });
    expect(() => selectCases(KERNEL_NAMES, splitEvalOnly(['evl'], KERNEL_NAMES).others)).toThrow(/--only evl matches no case/);
  });
});

test('without stories15M the case is skipped with a message naming the file, and nothing touches the GPU', async () => {
  const logged: string[] = [];
  const r = await runEvalBench({} as GpuContext, { cpu: true, tokens: 32, log: (m) => logged.push(m), file: '/nonexistent/llama2.data' });
  expect(r.skipped).toMatch(/stories15M is not installed .*llama2\.data is missing/);
  expect(r.gpu).toBeNull();
  expect(evalReport(r)).toBe(`eval-perplexity skipped: ${r.skipped}`);
});

test('report: both engines, the speed-up and the perplexity agreement', () => {
  const r: EvalBenchResult = {
    model: 'stories15M',
    tokens: 256,
    context: 256,
    stride: 128,
    windows: 1,
    positions: 256,
    gpu: { seconds: 20, positionsPerS: 12.8, tokensPerS: 12.8, perplexity: 12.3456 },
    cpu: { seconds: 10, positionsPerS: 25.6, tokensPerS: 25.6, perplexity: 12.3457 },
    speedup: 0.5,
    perplexityRelDiff: 8.1e-6,
    durationS: 31,
  };
  const text = evalReport(r);
  const row = (name: string) => text.split('\n').find((l) => l.startsWith(name))!;
  expect(row('WGSL').split(/\s{2,}/)).toEqual(['WGSL forward, all logits', '256 tokens / 1 windows', '20.0', '12.8', '12.8', '12.3456']);
  expect(row('CPU').split(/\s{2,}/)).toEqual(['CPU reference (LlamaCpu)', '256 tokens / 1 windows', '10.0', '25.6', '25.6', '12.3457']);
  expect(text).toMatch(/WGSL 0.500x the CPU reference's tokens\/s; perplexities differ by 8.10e-6/);
});
