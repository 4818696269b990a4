/** The AWQ / SmoothQuant benchmark's arithmetic and plumbing: case selection, FLOP counts, GFLOP/s, per-alpha time, method timers and the report, without a GPU. */
import { describe, expect, test } from 'vitest';
import {
  awqLossFlops,
  awqReport,
  runAwqBench,
  secondsPerEvaluation,
  smoothEvalFlops,
  syntheticGroup,
  syntheticLayer,
  withMethodTimers,
  type AwqBenchResult,
} from '../../bench/awq.ts';
import { KERNEL_NAMES } from '../../bench/cases.ts';
import { AWQ_CASES, gflopPerSecond, selectAwqCases, selectCalibCases, selectCases, throughputRatio } from '../../bench/model-stats.ts';
import { DEFAULT_REP_PLAN } from '../../bench/stats.ts';
import type { GpuContext } from '../../src/gpu/context.ts';

const NONE = { loss: false, layer: false, llama: false, sweep: false };
const ALL = { loss: true, layer: true, llama: true, sweep: true };

describe('case selection', () => {
  test('--only awq: the three AWQ cases and the copy baseline, no calibration or model case', () => {
    expect(selectAwqCases(['awq'])).toEqual({ ...ALL, sweep: false });
    expect(selectCases(KERNEL_NAMES, ['awq'])).toEqual({ kernels: ['copy'], kernelsBeyondCopy: false, forward: false, rtn: false });
    expect(selectCalibCases(['awq'])).toEqual({ stats: false, sweeps: false, llama: false, ocr: false });
  });

  test('--only smoothquant: the sweep alone; no --only: every case', () => {
    expect(selectAwqCases(['smoothquant'])).toEqual({ ...NONE, sweep: true });
    expect(selectCases(KERNEL_NAMES, ['smoothquant']).kernels).toEqual(['copy']);
    expect(selectAwqCases([])).toEqual(ALL);
    expect(selectAwqCases(['awq-loss', 'layer'])).toEqual({ ...NONE, loss: true, layer: true });
  });

  test('--only model and --only calib pick no AWQ case; no AWQ case name contains "model"', () => {
    expect(AWQ_CASES.some((c) => c.includes('model'))).toBe(false);
    expect(selectAwqCases(['model'])).toEqual(NONE);
    expect(selectAwqCases(['calib'])).toEqual(NONE);
    // "llama" names calib-llama and awq-llama alike.
    expect(selectAwqCases(['llama'])).toEqual({ ...NONE, llama: true });
  });

  test('--no-model leaves out awq-llama only', () => {
    expect(selectAwqCases([], { model: false })).toEqual({ ...ALL, llama: false });
    expect(selectAwqCases(['awq'], { model: false })).toEqual({ ...NONE, loss: true, layer: true });
  });

  test('the AWQ case names are known --only words; a typo is an error naming them', () => {
    expect(() => selectCases(KERNEL_NAMES, ['awq'])).not.toThrow();
    expect(() => selectCases(KERNEL_NAMES, ['smoothquant-sweep'])).not.toThrow();
    expect(() => selectCases(KERNEL_NAMES, ['aqw'])).toThrow(/--only aqw matches no case .*AWQ \/ SmoothQuant cases: awq-loss, awq-layer, awq-llama, smoothquant-sweep/);
  });
});

describe('FLOP counts and units', () => {
  test('Gram form: one-time 2 T in^2, then 2 out in^2 per candidate', () => {
    const f = awqLossFlops('gram', { out: 288, in: 768, tokens: 1024 }, 21);
    expect(f.oneTime).toBe(2 * 1024 * 768 * 768);
    expect(f.perCandidate).toBe(2 * 288 * 768 * 768);
    expect(f.losses).toBe(21 * 339_738_624);
    expect(f.total).toBe(1_207_959_552 + 7_134_511_104);
  });

  test('direct form: one-time Y = X W^T, then 2 T in out + 3 T out per candidate', () => {
    const f = awqLossFlops('direct', { out: 96, in: 256, tokens: 256 }, 21);
    expect(f.oneTime).toBe(2 * 256 * 256 * 96);
    expect(f.perCandidate).toBe(2 * 256 * 256 * 96 + 3 * 256 * 96);
    expect(f.perCandidate).toBe(12_656_640);
    expect(f.total).toBe(f.oneTime + 21 * 12_656_640);
  });

  test('the Gram form wins when tokens x out is large against in x out', () => {
    const s = { out: 288, in: 768, tokens: 1024 };
    expect(awqLossFlops('gram', s, 21).total).toBeLessThan(awqLossFlops('direct', s, 21).total);
    const few = { out: 288, in: 768, tokens: 16 };
    expect(awqLossFlops('gram', few, 21).total).toBeGreaterThan(awqLossFlops('direct', few, 21).total);
  });

  test('SmoothQuant evaluation: 2 x rows x in x out per linear; seconds per alpha', () => {
    expect(smoothEvalFlops(256, 288, [288, 288, 288])).toBe(2 * 256 * 288 * 864);
    expect(smoothEvalFlops(256, 288, [])).toBe(0);
    expect(secondsPerEvaluation(4400, 22)).toBeCloseTo(0.2, 12);
    expect(secondsPerEvaluation(1, 0)).toBeNaN();
  });

  test('GFLOP/s and ratios to the baseline', () => {
    // 7.13 GFLOP in 3.5 s: 2.04 GFLOP/s; the CPU takes 7 s: 2x.
    expect(gflopPerSecond(7_134_511_104, 3500)).toBeCloseTo(2.038431744, 9);
    expect(gflopPerSecond(1e9, 0)).toBeNaN();
    expect(throughputRatio(7000, 3500)).toBe(2);
  });
});

describe('synthetic inputs', () => {
  test('layer and group shapes, outlier activations, deterministic', () => {
    const { w, x } = syntheticLayer({ out: 8, in: 16, tokens: 4 });
    expect(w.length).toBe(128);
    expect(x.length).toBe(64);
    expect(syntheticLayer({ out: 8, in: 16, tokens: 4 }).x).toEqual(x);
    const g = syntheticGroup({ channels: 16, rows: 32, linears: 3 });
    expect(g.linears.map((l) => [l.name, l.out, l.weight.length])).toEqual([
      ['linear0', 16, 256],
      ['linear1', 16, 256],
      ['linear2', 16, 256],
    ]);
    for (let c = 0; c < 16; c++) {
      let m = 0;
      for (let r = 0; r < 32; r++) m = Math.max(m, Math.abs(g.x[r * 16 + c]));
      expect(g.actAbsmax[c]).toBe(m);
    }
  });
});

describe('method timers', () => {
  class Thing {
    n = 0;
    sync(k: number): number {
      this.n += k;
      return this.n;
    }
    async slow(ms: number): Promise<string> {
      await new Promise((r) => setTimeout(r, ms));
      return 'done';
    }
    fail(): never {
      throw new Error('boom');
    }
  }

  test('count calls and time sync and async methods, keep results and this, restore afterwards', async () => {
    const proto = Thing.prototype;
    const { sync, slow } = proto;
    const t = new Thing();
    const r = await withMethodTimers(proto, ['sync', 'slow', 'fail'], async () => {
      expect(t.sync(2)).toBe(2);
      expect(t.sync(3)).toBe(5);
      await Promise.all([t.slow(20), t.slow(20)]);
      expect(() => t.fail()).toThrow('boom');
      return 'ok';
    });
    expect(r.value).toBe('ok');
    expect(r.calls).toEqual({ sync: 2, slow: 2, fail: 1 });
    // Two overlapping 20 ms calls count about once.
    expect(r.ms.slow).toBeGreaterThanOrEqual(15);
    expect(r.ms.slow).toBeLessThan(1000);
    expect(proto.sync).toBe(sync);
    expect(proto.slow).toBe(slow);
  });

  test('restores the methods when the run fails; refuses a non-method', async () => {
    const { sync } = Thing.prototype;
    await expect(withMethodTimers(Thing.prototype, ['sync'], () => Promise.reject(new Error('x')))).rejects.toThrow('x');
    expect(Thing.prototype.sync).toBe(sync);
    await expect(withMethodTimers(Thing.prototype, ['nope'], async () => 1)).rejects.toThrow(/not a method/);
  });
});

test('without stories15M, awq-llama is skipped with a message naming the missing file, and nothing touches the GPU', async () => {
  const logged: string[] = [];
  const r = await runAwqBench({ profiling: false, gpuTimeMs: new Map() } as unknown as GpuContext, {
    selection: { ...NONE, llama: true },
    cpu: true,
    plan: DEFAULT_REP_PLAN,
    quick: true,
    log: (m) => logged.push(m),
    llamaFile: '/nonexistent/llama2.data',
  });
  expect(r.llama).toBeNull();
  expect(r.errors).toEqual({});
  expect(r.skipped['awq-llama']).toMatch(/stories15M is not installed .*llama2\.data is missing/);
  expect(awqReport(r)).toBe(`awq-llama skipped: ${r.skipped['awq-llama']}`);
});

test('report: loss, layer, model and sweep tables', () => {
  const a: AwqBenchResult = {
    selection: ALL,
    loss: {
      layer: { out: 96, in: 256, tokens: 256 },
      candidates: 21,
      timing: 'wall-clock',
      rows: [
        { form: 'gram', device: 'gpu', reps: 3, oneTimeMs: 1, lossesMs: 4, totalMs: 5, flops: 5e9, gflops: 1000, lossesGflops: 900, speedupOverCpu: 10, speedupOverDirect: 4, bestIndex: 7 },
        { form: 'direct', device: 'gpu', reps: 3, oneTimeMs: 2, lossesMs: 18, totalMs: 20, flops: 4e9, gflops: 200, lossesGflops: 190, speedupOverCpu: 5, speedupOverDirect: 1, bestIndex: 7 },
      ],
      sameBest: true,
      flopModel: 'model',
    },
    layer: { layer: { out: 96, in: 256, tokens: 256 }, grid: 20, timing: 'wall-clock', reps: 3, gpuMs: 50, gpuWallMs: 60, cpu: { ms: 120, runs: 2 }, speedup: 2, gpuFinalLoss: 0.00123, cpuFinalLoss: 0.00123 },
    llama: {
      model: 'stories15M',
      sequences: 1,
      tokensPerSequence: 8,
      tokens: 8,
      grid: 4,
      blocks: 6,
      compute: 'cpu',
      loadS: 1,
      totalS: 60,
      sPerBlock: 10,
      blockS: [12, 10, 10, 10, 9, 9],
      captureS: 2,
      moduleForwardS: 45,
      moduleForwardCalls: 100,
      moduleForwardShare: 0.75,
      setWeightS: 3,
      otherS: 10,
    },
    sweep: {
      group: { channels: 128, rows: 128, linears: 3 },
      alphas: 21,
      evaluations: 22,
      flopsPerEvaluation: 12_582_912,
      timing: 'wall-clock',
      reps: 3,
      gpuMs: 2000,
      gpuWallMs: 2200,
      gpuSPerAlpha: 0.1,
      gpuGflops: 0.126,
      cpu: { ms: 1100, runs: 2, sPerAlpha: 0.05, gflops: 0.252 },
      speedup: 0.5,
      gpuBestAlpha: 0.5,
      cpuBestAlpha: 0.5,
    },
    skipped: {},
    errors: {},
    durationS: 70,
  };
  const text = awqReport(a);
  const row = (name: string) => text.split('\n').find((l) => l.startsWith(name))!;
  expect(row('GpuAwq.gramLosses').split(/\s{2,}/)).toEqual(['GpuAwq.gramLosses', 'gram', '3', '1.00', '4.00', '5.00', '5.00', '1000', '900', '10.0x', '4.00x', '7']);
  expect(row('GpuAwq.layer').split(/\s{2,}/)).toEqual(['GpuAwq.layer', '[96, 256] x 256 tokens', '3', '50.0', '60.0', '120', '2.00x', '1.230e-3/1.230e-3']);
  expect(row('stories15M').split(/\s{2,}/)).toEqual(['stories15M', '1 x 8 tokens', '4', 'cpu', '60.0', '10.0', '2.00', '45.0', '75%', '3.00', '10.0']);
  expect(row('gpuGroupError').split(/\s{2,}/)).toEqual(['gpuGroupError', '3 x [128, 128] on 128 rows', '22', '3', '2.20', '0.100', '0.126', '1.10', '0.0500', '0.252', '0.500x', '0.5/0.5']);
  expect(text).not.toMatch(/WARNING|failed|skipped/);
});
