/** The calibration benchmark's arithmetic and plumbing: case selection, shapes, bytes and GB/s, the statistics / forward split, the CPU baseline (equal to the references) and the report, without a GPU. */
import { describe, expect, test } from 'vitest';
import {
  activationBytes,
  ActivationStatsCpu,
  calibReport,
  formatShape,
  llamaCaptureBytesPerToken,
  parseShape,
  parseShapes,
  parseTextShape,
  BusyTimer,
  runCalibBench,
  share,
  sweepHistogram,
  withStatisticsTimer,
  type CalibBenchResult,
  type StatsResult,
} from '../../bench/calib.ts';
import { KERNEL_NAMES } from '../../bench/cases.ts';
import { CALIB_CASES, selectCalibCases, selectCases, throughputRatio } from '../../bench/model-stats.ts';
import { DEFAULT_REP_PLAN, gbPerSecond } from '../../bench/stats.ts';
import { ActivationStatsGpu } from '../../src/calib/activation-stats.ts';
import { GrowingHistogram } from '../../src/calib/histogram.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import { HISTOGRAM_BINS } from '../../src/quant/reference/histogram.ts';
import { columnStatsRef, perTokenAbsmaxRef } from '../../src/quant/reference/stats.ts';
import { syntheticTensor } from '../../src/quant/synthetic.ts';

const NONE = { stats: false, sweeps: false, llama: false, ocr: false };
const ALL = { stats: true, sweeps: true, llama: true, ocr: true };

describe('case selection', () => {
  test('--only calib: all four calibration cases and the copy baseline, no other kernel or model case', () => {
    expect(selectCalibCases(['calib'])).toEqual(ALL);
    expect(selectCases(KERNEL_NAMES, ['calib'])).toEqual({ kernels: ['copy'], kernelsBeyondCopy: false, forward: false, rtn: false });
  });

  test('no --only: every calibration case; a word picks cases by substring', () => {
    expect(selectCalibCases([])).toEqual(ALL);
    expect(selectCalibCases(['sweeps'])).toEqual({ ...NONE, sweeps: true });
    expect(selectCalibCases(['calib-llama', 'ocr'])).toEqual({ ...NONE, llama: true, ocr: true });
    // "stats" names the statistics kernels and calib-stats alike.
    expect(selectCalibCases(['stats'])).toEqual({ ...NONE, stats: true });
    expect(selectCases(KERNEL_NAMES, ['stats']).kernels).toEqual(['copy', 'group-stats', 'column-stats']);
  });

  test('--only model does not pick a calibration case', () => {
    expect(CALIB_CASES.some((c) => c.includes('model'))).toBe(false);
    expect(selectCalibCases(['model'])).toEqual(NONE);
    expect(selectCalibCases(['quantize'])).toEqual(NONE);
  });

  test('--no-model leaves out only the cases that load a model', () => {
    expect(selectCalibCases([], { model: false })).toEqual({ ...NONE, stats: true, sweeps: true });
    expect(selectCalibCases(['calib'], { model: false })).toEqual({ ...NONE, stats: true, sweeps: true });
    expect(selectCalibCases(['llama'], { model: false })).toEqual(NONE);
  });

  test('a calibration case name is a known --only word; a typo is still an error', () => {
    expect(() => selectCases(KERNEL_NAMES, ['calib-sweeps'])).not.toThrow();
    expect(() => selectCases(KERNEL_NAMES, ['calbi'])).toThrow(/--only calbi matches no case .*calibration cases: calib-stats, calib-sweeps, calib-llama, calib-ocr/);
  });
});

describe('shapes', () => {
  test('TOKENSxCHANNELS lists', () => {
    expect(parseShape('512x768')).toEqual({ tokens: 512, channels: 768 });
    expect(parseShapes('64x288, 2048X4096')).toEqual([
      { tokens: 64, channels: 288 },
      { tokens: 2048, channels: 4096 },
    ]);
    expect(formatShape({ tokens: 2048, channels: 4096 })).toBe('2048x4096');
    expect(() => parseShape('512*768')).toThrow(/TOKENSxCHANNELS/);
    expect(() => parseShape('0x768')).toThrow(/at least one token/);
    expect(() => parseShape('16x30')).toThrow(/multiple of 4/);
    expect(() => parseShapes(',')).toThrow(/no activation shapes/);
  });

  test('calibration text NxL', () => {
    expect(parseTextShape('2x64')).toEqual({ sequences: 2, tokens: 64 });
    expect(() => parseTextShape('2x1')).toThrow(/--calib-text/);
    expect(() => parseTextShape('0x64')).toThrow(/--calib-text/);
    expect(() => parseTextShape('64')).toThrow(/--calib-text/);
  });
});

describe('units', () => {
  test('GB/s of activations and the ratio to copy (which moves 8 bytes per element)', () => {
    const s = { tokens: 2048, channels: 4096 };
    expect(activationBytes(s)).toBe(33_554_432);
    // 32 MiB of activations in 10 ms: 3.36 GB/s; copy of the same matrix in 8 ms: 8.39 GB/s.
    const gbps = gbPerSecond(activationBytes(s), 10);
    const copy = gbPerSecond(2 * activationBytes(s), 8);
    expect(gbps).toBeCloseTo(3.3554432, 9);
    expect(copy).toBeCloseTo(8.388608, 9);
    expect(throughputRatio(gbps, copy)).toBeCloseTo(0.4, 12);
    // Speed-up over the CPU: CPU ms over GPU wall ms.
    expect(throughputRatio(120, 10)).toBe(12);
    expect(throughputRatio(120, 0)).toBeNull();
  });

  test('captured activation bytes per stories15M token: 4 points per block', () => {
    const c = { nLayers: 6, dim: 288, nHeads: 6, headDim: 48, hiddenDim: 768 };
    expect(llamaCaptureBytesPerToken(c)).toBe(4 * 6 * (288 + 288 + 288 + 768));
    expect(llamaCaptureBytesPerToken(c)).toBe(39_168);
  });

  test('statistics time is the union of the calls\' intervals: overlapping calls count once', () => {
    const t = new BusyTimer();
    t.enter(0);
    t.exit(10); // [0, 10]
    t.enter(20);
    t.enter(25);
    t.exit(30);
    t.exit(40); // [20, 40] with a nested call
    t.enter(50);
    t.enter(55);
    t.exit(60);
    t.enter(62);
    t.exit(65);
    t.exit(70); // [50, 70]: three overlapping calls
    expect(t.ms).toBe(50);
    expect(t.calls).toBe(6);
    expect(() => t.exit(80)).toThrow(/without enter/);
  });

  test('share of the capture time, null without a total', () => {
    expect(share(2000, 8000)).toBe(0.25);
    expect(share(0, 8000)).toBe(0);
    expect(share(1, 0)).toBeNull();
    expect(share(1, null)).toBeNull();
  });

  test('the statistics timer wraps ActivationStatsGpu only while it runs, also when the run fails', async () => {
    const proto = ActivationStatsGpu.prototype;
    const { add, summary } = proto;
    const disposed = Object.assign(Object.create(proto), { disposed: true, name: 'x', channels: 4 }) as ActivationStatsGpu;
    const r = await withStatisticsTimer(async () => {
      expect(proto.add).not.toBe(add);
      await expect(disposed.add({ buffer: {} as GPUBuffer, length: 8 }, 2)).rejects.toThrow(/disposed/);
      return 7;
    });
    expect(r).toMatchObject({ value: 7, calls: 1, bytes: 0 });
    expect(proto.add).toBe(add);
    await expect(withStatisticsTimer(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(proto.add).toBe(add);
    expect(proto.summary).toBe(summary);
  });
});

describe('CPU baseline', () => {
  test('equals the references over batches: per-channel and per-token statistics, growing histogram, NaN/Inf left out', () => {
    const cols = 24;
    const a = syntheticTensor({ kind: 'llm', rows: 10, cols, seed: 1 });
    const b = syntheticTensor({ kind: 'llm', rows: 7, cols, seed: 2 });
    for (let i = 0; i < b.length; i++) b[i] *= 3; // the second batch grows the histogram's range
    a[5] = NaN;
    b[30] = -Infinity;
    const cpu = new ActivationStatsCpu(cols, 12);
    cpu.add(a, 10);
    cpu.add(b, 7);
    const both = new Float32Array(a.length + b.length);
    both.set(a);
    both.set(b, a.length);
    const ref = columnStatsRef(both, 17, cols);
    expect(cpu.min).toEqual(ref.min);
    expect(cpu.max).toEqual(ref.max);
    expect(cpu.absmax).toEqual(ref.absmax);
    expect(cpu.count).toEqual(ref.count);
    const mean = cpu.meanAbs();
    for (let c = 0; c < cols; c++) expect(mean[c]).toBeCloseTo(ref.meanAbs[c], 5);
    expect(cpu.nonFinite).toBe(2);
    expect(cpu.tokens).toBe(17);
    expect(cpu.tokenAbsmax).toEqual(Array.from(perTokenAbsmaxRef(both, 17, cols).slice(0, 12)));
    const h = new GrowingHistogram();
    h.add(a);
    h.add(b);
    expect(cpu.histogram.counts).toEqual(h.counts);
    expect(cpu.histogram.range).toBe(h.range);
    expect(cpu.histogram.nonFinite).toBe(2);
  });

  test('only the first rows x channels values of a longer buffer count', () => {
    const x = new Float32Array([1, -2, 3, 4, 100, 100]);
    const cpu = new ActivationStatsCpu(2);
    cpu.add(x, 2);
    expect(Array.from(cpu.absmax)).toEqual([3, 4]);
    expect(cpu.histogram.total).toBe(4);
    expect(() => cpu.add(x, 4)).toThrow(/needs 8 values/);
  });

  test('the sweep histogram has 2048 bins and a positive range', () => {
    const { h, description } = sweepHistogram();
    expect(h.counts.length).toBe(HISTOGRAM_BINS);
    expect(h.range).toBeGreaterThan(0);
    expect(description).toMatch(/2048-bin/);
  });
});

describe('without the models', () => {
  test('the model-level cases are skipped with a message naming the missing file, and nothing touches the GPU', async () => {
    const logged: string[] = [];
    const r = await runCalibBench({ profiling: false, gpuTimeMs: new Map() } as unknown as GpuContext, {
      selection: { ...NONE, llama: true, ocr: true },
      cpu: true,
      plan: DEFAULT_REP_PLAN,
      shapes: [],
      llamaText: { sequences: 2, tokens: 64 },
      ocrLines: 2,
      maxRunMs: Infinity,
      budgetMs: Infinity,
      startedAt: performance.now(),
      log: (m) => logged.push(m),
      llamaFile: '/nonexistent/llama2.data',
      ocrFile: '/nonexistent/ch_PP-OCRv4_rec_infer.onnx',
    });
    expect(r.llama).toBeNull();
    expect(r.ocr).toBeNull();
    expect(r.errors).toEqual({});
    expect(r.skipped['calib-llama']).toMatch(/stories15M is not installed .*llama2\.data is missing/);
    expect(r.skipped['calib-ocr']).toMatch(/PP-OCRv4 recogniser is not installed .*ch_PP-OCRv4_rec_infer\.onnx is missing/);
    expect(logged).toHaveLength(2);
    expect(calibReport(r)).toBe(`calib-llama skipped: ${r.skipped['calib-llama']}\ncalib-ocr skipped: ${r.skipped['calib-ocr']}`);
  });
});

test('report: statistics, sweep and model tables with GB/s, % of copy and speed-ups', () => {
  const stats: StatsResult = {
    shape: '512x768',
    tokens: 512,
    channels: 768,
    bytes: 1_572_864,
    byteModel: '',
    timing: 'gpu-timestamp',
    reps: 3,
    ms: 2,
    wallMs: 4,
    samplesMs: [2, 2, 2],
    gbps: 0.786432,
    wallGbps: 0.393216,
    copy: { ms: 1, gbps: 3.145728, reps: 3 },
    ratioToCopy: 0.25,
    cpu: { ms: 8, runs: 2, gbps: 0.196608 },
    speedup: 2,
    sameChannelAbsmax: true,
  };
  const c: CalibBenchResult = {
    selection: ALL,
    stats: [stats],
    statsSkipped: [{ shape: '2048x4096', reason: 'over --max-run-s 30' }],
    sweeps: [{ sweep: 'mse', bits: 8, bins: 2048, candidates: 1920, timing: 'gpu-timestamp', reps: 3, ms: 5, wallMs: 10, cpu: { ms: 50, runs: 2 }, speedup: 5, kernelSpeedup: 10, gpuBest: 700, cpuBest: 700 }],
    sweepHistogram: '2048-bin histogram',
    llama: {
      model: 'stories15M',
      sequences: 2,
      tokensPerSequence: 64,
      tokens: 128,
      tensors: 24,
      loadS: 1,
      captureS: 40,
      statisticsS: 10,
      statisticsShare: 0.25,
      forwardS: 31,
      calibratorsS: 2,
      totalS: 42,
      tokensPerSecond: 128 / 42,
      activationBytes: 128 * 39_168,
      statisticsGbps: (128 * 39_168) / 10 / 1e9,
    },
    ocr: {
      model: 'PP-OCRv4 rec',
      file: 'x.onnx',
      lines: 2,
      tensors: 60,
      tokens: 2,
      renderS: 0.5,
      captureS: 20,
      statisticsS: 5,
      statisticsShare: 0.25,
      activationBytes: 50e6,
      statisticsGbps: 0.01,
      totalS: 30,
      sPerImage: 15,
    },
    skipped: {},
    errors: {},
    durationS: 100,
  };
  const text = calibReport(c);
  const row = (name: string) => text.split('\n').find((l) => l.startsWith(name))!;
  expect(row('ActivationStatsGpu.add  512x768').split(/\s{2,}/)).toEqual(['ActivationStatsGpu.add', '512x768', '1.57', '3', '2.00', '0.786', '25%', '3.15', '4.00', '0.393', '8.00', '0.197', '2.00x']);
  expect(row('ActivationStatsGpu.add  2048x4096')).toMatch(/skipped/);
  expect(text).toContain('skipped: calib-stats 2048x4096: over --max-run-s 30');
  expect(row('CalibKernels.mseSweep').split(/\s{2,}/)).toEqual(['CalibKernels.mseSweep', '8', '1920', '3', '5.00', '10.0', '50.0', '5.00x', '10.0x', '700/700']);
  expect(row('stories15M').split(/\s{2,}/)).toEqual(['stories15M', '2 x 64 tokens (Moby-Dick)', '24', '42.0', '3.05 tokens/s', '40.0', '10.0', '25%', '0.000501', '31.0', '2.00']);
  expect(row('PP-OCRv4 rec').split(/\s{2,}/)).toEqual(['PP-OCRv4 rec', '2 rendered lines', '60', '30.0', '15.0 s/image', '20.0', '5.00', '25%', '0.0100', '-', '10.0']);
  expect(text).not.toMatch(/WARNING|failed/);
});
