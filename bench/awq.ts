/**
 * The AWQ and SmoothQuant cases of `npm run bench` (issue "SmoothQuant and AWQ": AWQ time per layer and for the
 * whole of stories15M, GFLOP/s of the loss evaluation, Gram-matrix versus direct loss timing, SmoothQuant sweep
 * time):
 *
 * - awq-loss: on one synthetic linear [out, in] with `tokens` activation rows (a few outlier input channels), the
 *   output MSE of the search's candidates (every ratio of the grid and s = 1, as GpuAwq.search evaluates them)
 *   in Gram form (GpuAwq.gramLosses: one dispatch, after the one-time G = X^T X) and directly (GpuAwq.directLosses:
 *   one X W'^T matmul and error-metrics per candidate, after the one-time Y = X W^T), against the CPU reference of
 *   each form (gramMatrix + awqLossGram, awqLossDirect: what awqSearchRef runs) on the same candidates.
 * - awq-layer: one whole layer, scale search + clip search + final quantization: GpuAwq.layer against awqLayerRef.
 * - awq-llama: awqLlama on stories15M with a tiny calibration set (one cold run after the forward pipelines are
 *   built), total and per-block seconds, with the time inside LlamaGpu.forward (the capture), moduleForward (the
 *   inspected-module losses) and setWeight measured in the same run.
 * - smoothquant-sweep: the alpha sweep (alphaSweepGroup over DEFAULT_ALPHAS, plus the unsmoothed baseline) of one
 *   synthetic norm -> linears group with the W8A8 evaluation on the GPU (gpuGroupError) and the CPU (cpuGroupError).
 *
 * FLOP counts (2 per multiply-add; awqLossFlops, smoothEvalFlops): direct = 2 x tokens x in x out per candidate for
 * X W'^T plus 3 x tokens x out for the difference, its square and the sum (the one-time Y = X W^T, 2 x tokens x in x
 * out, counted where it is run: on the GPU); Gram = 2 x out x in^2 per candidate plus the one-time 2 x tokens x in^2
 * for G; the SmoothQuant evaluation = 2 x rows x in x out per linear (the quantized matmul). GPU times use
 * bench/measure.ts (timestamp queries where the adapter has them, else wall clock); CPU times are the fastest of 1-2
 * runs (bench/measure.ts timeCpu). The pure helpers are exported for tests/bench/awq.test.ts.
 */
import { awqLlama } from '../src/awq/awq-llama.ts';
import { GpuAwq } from '../src/awq/gpu-awq.ts';
import {
  activationMeanAbs,
  argminFirst,
  awqLayerRef,
  awqLossDirect,
  awqLossGram,
  awqRatios,
  awqScalesForRatio,
  gramMatrix,
  wMeanOfWeight,
} from '../src/awq/reference.ts';
import { textToSequences } from '../src/calib/text-data.ts';
import { loadMobyDickCalibrationNode } from '../src/calib/text-data-node.ts';
import type { GpuContext } from '../src/gpu/context.ts';
import { nodeFileByteSource } from '../src/model/formats/byte-source-node.ts';
import { openBundledStories15M } from '../src/model/formats/llama2c.ts';
import { LlamaGpu } from '../src/model/llama/forward-gpu.ts';
import type { QuantConfig } from '../src/quant/config.ts';
import { QuantKernels } from '../src/quant/gpu-kernels.ts';
import { syntheticTensor } from '../src/quant/synthetic.ts';
import { SmoothQuantKernels, gpuGroupError } from '../src/smooth/smoothquant-gpu.ts';
import { alphaSweepGroup, cpuGroupError, DEFAULT_ALPHAS, weightColumnAbsmax, type GroupSample } from '../src/smooth/smoothquant.ts';
import { BusyTimer } from './calib.ts';
import { timeCpu, timeGpu, type TimingMethod } from './measure.ts';
import { BUNDLED_MODEL_FILE, modelMissing } from './model.ts';
import { gflopPerSecond, throughputRatio, type AwqSelection } from './model-stats.ts';
import { fmt, formatTable, type RepPlan } from './stats.ts';

/** A synthetic linear layer: weight [out, in], `tokens` activation rows. */
export interface LayerShape {
  out: number;
  in: number;
  tokens: number;
}

/** stories15M's w1 / w3 transposed (in 768) with 1024 tokens; quick: a small layer. */
export const DEFAULT_AWQ_LAYER: LayerShape = { out: 288, in: 768, tokens: 1024 };
export const QUICK_AWQ_LAYER: LayerShape = { out: 96, in: 256, tokens: 256 };
/** The weight quantizer of every AWQ case: INT4 asymmetric, groups of 64 (divides both layer sizes). */
export const AWQ_BENCH_QUANT: QuantConfig = { bits: 4, granularity: 'group', groupSize: 64, scheme: 'asym' };
/** awq-llama: calibration sequences x tokens and the ratio grid. */
export const DEFAULT_AWQ_LLAMA = { sequences: 1, tokens: 16, grid: 20 };
export const QUICK_AWQ_LLAMA = { sequences: 1, tokens: 8, grid: 4 };
/** smoothquant-sweep: one group of `linears` linears [channels, channels] on `rows` sampled rows (stories15M's q/k/v). */
export interface SmoothShape {
  channels: number;
  rows: number;
  linears: number;
}
export const DEFAULT_SMOOTH_GROUP: SmoothShape = { channels: 288, rows: 256, linears: 3 };
export const QUICK_SMOOTH_GROUP: SmoothShape = { channels: 128, rows: 128, linears: 3 };

export const formatLayer = (s: LayerShape) => `[${s.out}, ${s.in}] x ${s.tokens} tokens`;

/**
 * FLOPs of the loss evaluation of `candidates` candidate weights on a layer: `oneTime` (G = X^T X for the Gram
 * form; Y = X W^T for the direct form, which only the GPU path computes apart) and `perCandidate`.
 */
export function awqLossFlops(form: 'gram' | 'direct', s: LayerShape, candidates: number): { oneTime: number; perCandidate: number; losses: number; total: number } {
  const oneTime = form === 'gram' ? 2 * s.tokens * s.in * s.in : 2 * s.tokens * s.in * s.out;
  const perCandidate = form === 'gram' ? 2 * s.out * s.in * s.in : 2 * s.tokens * s.in * s.out + 3 * s.tokens * s.out;
  const losses = perCandidate * candidates;
  return { oneTime, perCandidate, losses, total: oneTime + losses };
}

/** FLOPs of one W8A8 evaluation of a SmoothQuant group: the quantized matmul of every linear, 2 x rows x in x out. */
export function smoothEvalFlops(rows: number, channels: number, outs: readonly number[]): number {
  return 2 * rows * channels * outs.reduce((a, b) => a + b, 0);
}

/** Seconds per alpha of a sweep that ran `evaluations` W8A8 evaluations (the alphas plus the unsmoothed baseline) in `ms`. */
export function secondsPerEvaluation(ms: number, evaluations: number): number {
  return evaluations > 0 ? ms / 1000 / evaluations : NaN;
}

/**
 * Run `fn` with the named methods of `target` (a prototype) wrapped by timers: the wall time during which at least
 * one call of each was running (BusyTimer: nested or concurrent calls count once) and the call counts. Works for
 * synchronous and promise-returning methods; the methods are restored afterwards, also when `fn` fails.
 */
export async function withMethodTimers<T>(target: object, names: readonly string[], fn: () => Promise<T>): Promise<{ value: T; ms: Record<string, number>; calls: Record<string, number> }> {
  const t = target as Record<string, unknown>;
  const saved = new Map<string, unknown>();
  const timers = new Map<string, BusyTimer>();
  for (const name of names) {
    const orig = t[name];
    if (typeof orig !== 'function') throw new TypeError(`${name} is not a method`);
    const timer = new BusyTimer();
    saved.set(name, orig);
    timers.set(name, timer);
    t[name] = function (this: unknown, ...args: unknown[]) {
      timer.enter(performance.now());
      let r: unknown;
      try {
        r = (orig as (...a: unknown[]) => unknown).apply(this, args);
      } catch (e) {
        timer.exit(performance.now());
        throw e;
      }
      if (r instanceof Promise) return r.finally(() => timer.exit(performance.now()));
      timer.exit(performance.now());
      return r;
    };
  }
  try {
    const value = await fn();
    const ms: Record<string, number> = {};
    const calls: Record<string, number> = {};
    for (const [name, timer] of timers) {
      ms[name] = timer.ms;
      calls[name] = timer.calls;
    }
    return { value, ms, calls };
  } finally {
    for (const [name, orig] of saved) t[name] = orig;
  }
}

// ---------------------------------------------------------------------------------------------
// Results

export interface LossRow {
  form: 'gram' | 'direct';
  device: 'gpu' | 'cpu';
  reps: number;
  /** The one-time part: G (Gram) or Y = X W^T (direct, GPU); 0 when there is none (CPU direct). */
  oneTimeMs: number;
  /** The losses of every candidate. */
  lossesMs: number;
  totalMs: number;
  flops: number;
  /** FLOPs of the whole (one-time part included) over totalMs, and of the losses alone over lossesMs. */
  gflops: number;
  lossesGflops: number;
  /** CPU total time of the same form over this total time (GPU rows only). */
  speedupOverCpu: number | null;
  /** Total time of the direct form on the same device over this total time (> 1: this form is faster). */
  speedupOverDirect: number | null;
  bestIndex: number;
}

export interface AwqLossResult {
  layer: LayerShape;
  candidates: number;
  timing: TimingMethod;
  rows: LossRow[];
  /** Whether the GPU Gram losses pick the same ratio as the CPU reference. */
  sameBest: boolean | null;
  flopModel: string;
}

export interface AwqLayerBenchResult {
  layer: LayerShape;
  grid: number;
  timing: TimingMethod;
  reps: number;
  gpuMs: number;
  gpuWallMs: number;
  cpu: { ms: number; runs: number } | null;
  /** CPU time over GPU wall time. */
  speedup: number | null;
  gpuFinalLoss: number;
  cpuFinalLoss: number | null;
}

export interface AwqLlamaBenchResult {
  model: string;
  sequences: number;
  tokensPerSequence: number;
  tokens: number;
  grid: number;
  blocks: number;
  /** Where the single-linear searches, clip and quantization ran ('auto': the CPU on a software adapter). */
  compute: 'gpu' | 'cpu';
  loadS: number;
  totalS: number;
  sPerBlock: number;
  /** Seconds of each block (the first includes the capture forward passes). */
  blockS: number[];
  /**
   * Time inside LlamaGpu.forward (capture), the inspected-module losses (LlamaGpu.moduleForward plus the
   * QuantKernels.errorMetrics that waits for their GPU work) and setWeight, in the same run.
   */
  captureS: number;
  moduleForwardS: number;
  moduleForwardCalls: number;
  moduleForwardShare: number | null;
  setWeightS: number;
  /** The rest: searches, clip, quantization, error metrics, Gram matrices of the report. */
  otherS: number;
}

export interface SmoothSweepResult {
  group: SmoothShape;
  alphas: number;
  /** W8A8 evaluations per sweep: the alphas and the unsmoothed baseline. */
  evaluations: number;
  flopsPerEvaluation: number;
  timing: TimingMethod;
  reps: number;
  gpuMs: number;
  gpuWallMs: number;
  gpuSPerAlpha: number;
  gpuGflops: number;
  cpu: { ms: number; runs: number; sPerAlpha: number; gflops: number } | null;
  /** CPU time over GPU wall time. */
  speedup: number | null;
  gpuBestAlpha: number;
  cpuBestAlpha: number | null;
}

export interface AwqBenchResult {
  selection: AwqSelection;
  loss: AwqLossResult | null;
  layer: AwqLayerBenchResult | null;
  llama: AwqLlamaBenchResult | null;
  sweep: SmoothSweepResult | null;
  skipped: Record<string, string>;
  errors: Record<string, string>;
  durationS: number;
}

export interface AwqBenchOptions {
  selection: AwqSelection;
  cpu: boolean;
  plan: RepPlan;
  quick: boolean;
  log: (m: string) => void;
  llamaFile?: string;
}

export async function runAwqBench(ctx: GpuContext, o: AwqBenchOptions): Promise<AwqBenchResult> {
  const started = performance.now();
  const out: AwqBenchResult = { selection: o.selection, loss: null, layer: null, llama: null, sweep: null, skipped: {}, errors: {}, durationS: 0 };
  const guard = async (name: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (e) {
      out.errors[name] = e instanceof Error ? e.message : String(e);
      o.log(`[awq] ${name} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    } finally {
      ctx.profiling = false;
      ctx.gpuTimeMs.clear();
    }
  };
  const layer = o.quick ? QUICK_AWQ_LAYER : DEFAULT_AWQ_LAYER;
  if (o.selection.loss) await guard('awq-loss', async () => void (out.loss = await benchLoss(ctx, layer, o)));
  if (o.selection.layer) await guard('awq-layer', async () => void (out.layer = await benchLayer(ctx, layer, o)));
  if (o.selection.llama) {
    const file = o.llamaFile ?? BUNDLED_MODEL_FILE;
    const missing = modelMissing(file);
    if (missing) {
      out.skipped['awq-llama'] = missing;
      o.log(`[awq] awq-llama skipped: ${missing}`);
    } else await guard('awq-llama', async () => void (out.llama = await benchLlama(ctx, file, o)));
  }
  if (o.selection.sweep) await guard('smoothquant-sweep', async () => void (out.sweep = await benchSweep(ctx, o.quick ? QUICK_SMOOTH_GROUP : DEFAULT_SMOOTH_GROUP, o)));
  out.durationS = (performance.now() - started) / 1000;
  return out;
}

/** A synthetic layer: Gaussian weights (std 0.05) and LLM-like activations with a few outlier channels. */
export function syntheticLayer(s: LayerShape, seed = 21): { w: Float32Array; x: Float32Array } {
  const w = syntheticTensor({ kind: 'gaussian', rows: s.out, cols: s.in, seed });
  for (let i = 0; i < w.length; i++) w[i] = Math.fround(0.05 * w[i]);
  return { w, x: syntheticTensor({ kind: 'llm', rows: s.tokens, cols: s.in, seed: seed + 1 }) };
}

async function benchLoss(ctx: GpuContext, s: LayerShape, o: AwqBenchOptions): Promise<AwqLossResult> {
  const awq = new GpuAwq(ctx);
  const { w, x } = syntheticLayer(s);
  const shape = [s.out, s.in];
  // The search's candidates: every ratio of the default grid, then s = 1 (plain RTN).
  const xMean = activationMeanAbs(x, s.tokens, s.in);
  const wMean = wMeanOfWeight(w, shape, AWQ_BENCH_QUANT.groupSize!);
  const scales = awqRatios().map((r) => awqScalesForRatio(xMean, wMean, r, true));
  scales.push(new Float32Array(s.in).fill(1));
  const R = scales.length;
  const flat = new Float32Array(R * s.in);
  scales.forEach((v, i) => flat.set(v, i * s.in));
  const wb = ctx.upload(w, 'weight');
  const xb = ctx.upload(x, 'activations');
  const gramScratch = ctx.storage(s.in * s.in * 4, 'Gram scratch', true);
  const y0 = ctx.storage(s.tokens * s.out * 4, 'layer output');
  const noBias = ctx.storage(16, 'no bias');
  const linParams = ctx.uniform(new Uint32Array([s.tokens, s.out, s.in, 0]).buffer);
  const held: GPUBuffer[] = [wb, xb, gramScratch, y0, noBias, linParams];
  try {
    const wq = await awq.candidates(wb, shape, flat, AWQ_BENCH_QUANT);
    held.push(wq);
    const stats = await awq.activationStats(x, s.tokens, s.in);
    held.push(stats.gram);
    const linear = () =>
      ctx.run([{ shader: 'linear.wgsl', constants: { ACCUMULATE: false, HAS_BIAS: false }, bindings: [linParams, xb, wb, noBias, y0], workgroups: [Math.ceil(s.out / 64), Math.ceil(s.tokens / 64)] }]);
    await linear();
    let gpuGram: number[] = [];
    let gpuDirect: number[] = [];
    // Wall clock for every GPU row (submit to the losses read back: what the search pays). Timestamps are off:
    // directLosses submits a copy-only step, and GpuContext.run with profiling on resolves an empty query set for it
    // (a validation error), so both forms are timed the same way without them.
    const wall = (op: () => Promise<unknown>) =>
      timeGpu(
        ctx,
        async () => {
          ctx.profiling = false;
          await op();
        },
        o.plan,
      );
    const tG = await wall(() => awq.accumulateGram(gramScratch, xb, s.tokens, s.in));
    const tGl = await wall(async () => void (gpuGram = await awq.gramLosses(wb, wq, R, shape, stats.gram, s.tokens)));
    const tY = await wall(linear);
    const tDl = await wall(async () => void (gpuDirect = await awq.directLosses(xb, y0, wq, R, shape, s.tokens)));
    const gf = awqLossFlops('gram', s, R);
    const df = awqLossFlops('direct', s, R);
    const row = (form: 'gram' | 'direct', device: 'gpu' | 'cpu', reps: number, oneTimeMs: number, lossesMs: number, flops: number, lossFlops: number, losses: number[]): LossRow => ({
      form,
      device,
      reps,
      oneTimeMs,
      lossesMs,
      totalMs: oneTimeMs + lossesMs,
      flops,
      gflops: gflopPerSecond(flops, oneTimeMs + lossesMs),
      lossesGflops: gflopPerSecond(lossFlops, lossesMs),
      speedupOverCpu: null,
      speedupOverDirect: null,
      bestIndex: argminFirst(losses.slice(0, R - 1)),
    });
    const rows: LossRow[] = [
      row('gram', 'gpu', tGl.reps, tG.wallMs, tGl.wallMs, gf.total, gf.losses, gpuGram),
      row('direct', 'gpu', tDl.reps, tY.wallMs, tDl.wallMs, df.total, df.losses, gpuDirect),
    ];
    if (o.cpu) {
      const cands = await ctx.readF32(wq, R * s.out * s.in);
      const cand = (r: number) => cands.subarray(r * s.out * s.in, (r + 1) * s.out * s.in);
      let g: Float64Array = new Float64Array(0);
      const cG = timeCpu(() => (g = gramMatrix(x, s.tokens, s.in)));
      let cpuGram: number[] = [];
      let cpuDirect: number[] = [];
      const cGl = timeCpu(() => (cpuGram = Array.from({ length: R }, (_, r) => awqLossGram(g, w, cand(r), shape, s.tokens))));
      const cDl = timeCpu(() => (cpuDirect = Array.from({ length: R }, (_, r) => awqLossDirect(x, s.tokens, w, cand(r), shape))));
      rows.push(row('gram', 'cpu', cGl.runs, cG.ms, cGl.ms, gf.total, gf.losses, cpuGram), row('direct', 'cpu', cDl.runs, 0, cDl.ms, df.losses, df.losses, cpuDirect));
    }
    for (const r of rows) {
      const cpu = rows.find((c) => c.device === 'cpu' && c.form === r.form);
      const direct = rows.find((c) => c.device === r.device && c.form === 'direct')!;
      if (r.device === 'gpu' && cpu) r.speedupOverCpu = throughputRatio(cpu.totalMs, r.totalMs);
      r.speedupOverDirect = throughputRatio(direct.totalMs, r.totalMs);
    }
    const cpuGramRow = rows.find((c) => c.device === 'cpu' && c.form === 'gram');
    const res: AwqLossResult = {
      layer: s,
      candidates: R,
      timing: 'wall-clock',
      rows,
      sameBest: cpuGramRow ? cpuGramRow.bestIndex === rows[0].bestIndex : null,
      flopModel:
        'Gram: one-time G = X^T X, 2 x tokens x in^2, then 2 x out x in^2 per candidate; direct: one-time Y = X W^T, 2 x tokens x in x out (GPU only; the CPU reference computes X (W - W\')^T), ' +
        'then 2 x tokens x in x out + 3 x tokens x out per candidate (X W\'^T, difference, square, sum)',
    };
    for (const r of rows) {
      o.log(
        `[awq] loss ${r.form.padEnd(6)} ${r.device}: ${fmt(r.oneTimeMs)} ms one-time + ${fmt(r.lossesMs)} ms for ${R} candidates = ${fmt(r.totalMs)} ms, ${fmt(r.gflops)} GFLOP/s` +
          (r.speedupOverCpu !== null ? `, ${fmt(r.speedupOverCpu)}x over the CPU` : ''),
      );
    }
    return res;
  } finally {
    ctx.pool.releaseAll(held);
  }
}

async function benchLayer(ctx: GpuContext, s: LayerShape, o: AwqBenchOptions): Promise<AwqLayerBenchResult> {
  const awq = new GpuAwq(ctx);
  const { w, x } = syntheticLayer(s, 31);
  const shape = [s.out, s.in];
  const cfg = { quant: AWQ_BENCH_QUANT, duo: true, grid: 20, clip: true };
  let gpuFinal = NaN;
  const t = await timeGpu(ctx, async () => void (gpuFinal = (await awq.layer(w, shape, x, s.tokens, cfg)).finalLoss), o.plan);
  let cpu: AwqLayerBenchResult['cpu'] = null;
  let cpuFinal: number | null = null;
  if (o.cpu) {
    const ct = timeCpu(() => (cpuFinal = awqLayerRef(w, shape, x, s.tokens, cfg).finalLoss));
    cpu = { ms: ct.ms, runs: ct.runs };
  }
  const r: AwqLayerBenchResult = {
    layer: s,
    grid: cfg.grid,
    timing: t.method,
    reps: t.reps,
    gpuMs: t.ms,
    gpuWallMs: t.wallMs,
    cpu,
    speedup: cpu ? throughputRatio(cpu.ms, t.wallMs) : null,
    gpuFinalLoss: gpuFinal,
    cpuFinalLoss: cpuFinal,
  };
  o.log(`[awq] layer ${formatLayer(s)}: GPU ${fmt(r.gpuMs)} ms (wall ${fmt(r.gpuWallMs)} ms, ${r.reps} reps)` + (cpu ? `  CPU ${fmt(cpu.ms)} ms, ${fmt(r.speedup ?? NaN)}x` : ''));
  return r;
}

async function benchLlama(ctx: GpuContext, file: string, o: AwqBenchOptions): Promise<AwqLlamaBenchResult> {
  const plan = o.quick ? QUICK_AWQ_LLAMA : DEFAULT_AWQ_LLAMA;
  const ckpt = await openBundledStories15M(await nodeFileByteSource(file));
  const tok = ckpt.tokenizer;
  if (!tok) throw new Error('the bundled stories15M has no tokenizer');
  const seqs = textToSequences(tok, loadMobyDickCalibrationNode(), plan.sequences, plan.tokens, 'Moby-Dick (bundled)');
  let t0 = performance.now();
  const llm = await LlamaGpu.load(ctx, ckpt, { maxBatch: Math.min(64, plan.tokens) });
  const loadS = (performance.now() - t0) / 1000;
  try {
    // Warm-up: the forward pipelines, outside the timed run.
    await llm.forward(seqs.sequences[0].slice(0, Math.min(4, plan.tokens)));
    llm.reset();
    const blockEnds: number[] = [];
    t0 = performance.now();
    // moduleForward only encodes and submits; the GPU work it queued is waited for in the error metrics that follow
    // (awqLlama's only QuantKernels.errorMetrics calls), so the module losses are the time inside both.
    const metrics = await withMethodTimers(QuantKernels.prototype, ['errorMetrics'], () =>
      withMethodTimers(LlamaGpu.prototype, ['forward', 'moduleForward', 'setWeight'], () =>
        awqLlama(llm, ckpt, seqs.sequences, { quant: AWQ_BENCH_QUANT, grid: plan.grid, compute: 'auto', onBlock: () => void blockEnds.push(performance.now()) }),
      ),
    );
    const timed = metrics.value;
    const moduleMs = timed.ms.moduleForward + metrics.ms.errorMetrics;
    const totalMs = performance.now() - t0;
    const blocks = llm.config.nLayers;
    const blockS = blockEnds.map((t, i) => (t - (i === 0 ? t0 : blockEnds[i - 1])) / 1000);
    const r: AwqLlamaBenchResult = {
      model: 'stories15M',
      sequences: seqs.sequences.length,
      tokensPerSequence: plan.tokens,
      tokens: seqs.tokens,
      grid: plan.grid,
      blocks,
      compute: ctx.isSoftware ? 'cpu' : 'gpu',
      loadS,
      totalS: totalMs / 1000,
      sPerBlock: totalMs / 1000 / blocks,
      blockS,
      captureS: timed.ms.forward / 1000,
      moduleForwardS: moduleMs / 1000,
      moduleForwardCalls: timed.calls.moduleForward,
      moduleForwardShare: totalMs > 0 ? moduleMs / totalMs : null,
      setWeightS: timed.ms.setWeight / 1000,
      otherS: (totalMs - timed.ms.forward - moduleMs - timed.ms.setWeight) / 1000,
    };
    o.log(
      `[awq] stories15M ${r.sequences} x ${r.tokensPerSequence} tokens, grid ${r.grid} (${r.compute} searches): ${fmt(r.totalS)} s, ${fmt(r.sPerBlock)} s per block; ` +
        `capture ${fmt(r.captureS)} s, module losses ${fmt(r.moduleForwardS)} s (${r.moduleForwardCalls} forwards), setWeight ${fmt(r.setWeightS)} s, rest ${fmt(r.otherS)} s`,
    );
    return r;
  } finally {
    llm.dispose();
  }
}

/** A synthetic SmoothQuant group: LLM-like activation rows (outlier channels) and Gaussian weights (std 0.05). */
export function syntheticGroup(g: SmoothShape, seed = 41): GroupSample & { actAbsmax: Float32Array } {
  const x = syntheticTensor({ kind: 'llm', rows: g.rows, cols: g.channels, seed });
  const actAbsmax = new Float32Array(g.channels);
  for (let i = 0; i < x.length; i++) actAbsmax[i % g.channels] = Math.max(actAbsmax[i % g.channels], Math.abs(x[i]));
  const linears = Array.from({ length: g.linears }, (_, i) => {
    const weight = syntheticTensor({ kind: 'gaussian', rows: g.channels, cols: g.channels, seed: seed + 1 + i });
    for (let k = 0; k < weight.length; k++) weight[k] = Math.fround(0.05 * weight[k]);
    return { name: `linear${i}`, weight, out: g.channels };
  });
  return { channels: g.channels, rows: g.rows, x, actAbsmax, linears };
}

async function benchSweep(ctx: GpuContext, shape: SmoothShape, o: AwqBenchOptions): Promise<SmoothSweepResult> {
  const sample = syntheticGroup(shape);
  const wcol = weightColumnAbsmax(sample.linears, shape.channels);
  const names = sample.linears.map((l) => l.name);
  const alphas = DEFAULT_ALPHAS;
  const evaluations = alphas.length + 1;
  const flopsPerEvaluation = smoothEvalFlops(shape.rows, shape.channels, sample.linears.map((l) => l.out));
  const k = new SmoothQuantKernels(ctx);
  const g = await k.uploadGroup(sample);
  try {
    let gpuBest = NaN;
    const sweep = async () => {
      gpuBest = (await alphaSweepGroup({ group: 'bench', linears: names, actAbsmax: sample.actAbsmax, weightColAbsmax: wcol, error: gpuGroupError(k, g) }, alphas, 'per-token')).bestAlpha;
    };
    const t = await timeGpu(ctx, sweep, o.plan);
    let cpu: SmoothSweepResult['cpu'] = null;
    let cpuBest: number | null = null;
    if (o.cpu) {
      let p: Promise<number> = Promise.resolve(NaN);
      // cpuGroupError is synchronous work behind a promise: the sweep's time is that of the call chain, awaited inside the timed run.
      const runs: number[] = [];
      for (let i = 0; i < 2 && (runs.length === 0 || runs[0] < 2000); i++) {
        const t0 = performance.now();
        p = alphaSweepGroup({ group: 'bench', linears: names, actAbsmax: sample.actAbsmax, weightColAbsmax: wcol, error: cpuGroupError(sample) }, alphas, 'per-token').then((s) => s.bestAlpha);
        cpuBest = await p;
        runs.push(performance.now() - t0);
      }
      const ms = Math.min(...runs);
      cpu = { ms, runs: runs.length, sPerAlpha: secondsPerEvaluation(ms, evaluations), gflops: gflopPerSecond(evaluations * flopsPerEvaluation, ms) };
    }
    const r: SmoothSweepResult = {
      group: shape,
      alphas: alphas.length,
      evaluations,
      flopsPerEvaluation,
      timing: t.method,
      reps: t.reps,
      gpuMs: t.ms,
      gpuWallMs: t.wallMs,
      gpuSPerAlpha: secondsPerEvaluation(t.wallMs, evaluations),
      gpuGflops: gflopPerSecond(evaluations * flopsPerEvaluation, t.wallMs),
      cpu,
      speedup: cpu ? throughputRatio(cpu.ms, t.wallMs) : null,
      gpuBestAlpha: gpuBest,
      cpuBestAlpha: cpuBest,
    };
    o.log(
      `[awq] smoothquant sweep ${shape.linears} x [${shape.channels}, ${shape.channels}] on ${shape.rows} rows, ${alphas.length} alphas: GPU ${fmt(r.gpuWallMs / 1000)} s (${fmt(r.gpuSPerAlpha)} s per alpha)` +
        (cpu ? `  CPU ${fmt(cpu.ms / 1000)} s (${fmt(cpu.sPerAlpha)} s per alpha), ${fmt(r.speedup ?? NaN)}x` : ''),
    );
    return r;
  } finally {
    k.releaseGroup(g);
    k.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// Report

const times = (v: number | null | undefined) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : `${fmt(v)}x`);
const pct = (v: number | null | undefined) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : `${fmt(100 * v, 2)}%`);

/** The AWQ / SmoothQuant tables and their notes, printed after the calibration tables. */
export function awqReport(a: AwqBenchResult): string {
  const lines: string[] = [];
  const block = (text: string) => {
    if (lines.length) lines.push('');
    lines.push(text);
  };
  const l = a.loss;
  if (l) {
    block(
      formatTable(
        ['awq-loss', 'form', 'reps', 'one-time ms', 'losses ms', 'total ms', 'GFLOP', 'GFLOP/s', 'losses GFLOP/s', 'vs CPU', 'vs direct', 'best'],
        l.rows.map((r) => [
          r.device === 'gpu' ? (r.form === 'gram' ? 'GpuAwq.gramLosses' : 'GpuAwq.directLosses') : r.form === 'gram' ? 'awqLossGram (CPU)' : 'awqLossDirect (CPU)',
          r.form,
          String(r.reps),
          fmt(r.oneTimeMs),
          fmt(r.lossesMs),
          fmt(r.totalMs),
          fmt(r.flops / 1e9),
          fmt(r.gflops),
          fmt(r.lossesGflops),
          times(r.speedupOverCpu),
          times(r.speedupOverDirect),
          String(r.bestIndex),
        ]),
      ),
    );
    lines.push(
      `awq-loss on a synthetic layer ${formatLayer(l.layer)} (INT4 asym g64, ${l.candidates} candidates: the search's ratios and s = 1): GPU ms = wall clock, submit to the losses read back (median), CPU the fastest of 1-2 runs; ` +
        `FLOPs: ${l.flopModel}; vs CPU: CPU total ms over GPU total ms of the same form; vs direct: the direct form's total ms on the same device over this row's; best: the ratio index each picks`,
    );
    if (l.sameBest === false) lines.push('WARNING: the GPU Gram losses pick a different ratio than the CPU reference');
  }
  const y = a.layer;
  if (y) {
    block(
      formatTable(
        ['awq-layer', 'layer', 'reps', 'GPU ms', 'wall ms', 'CPU ms', 'speed-up', 'final loss GPU/CPU'],
        [['GpuAwq.layer', formatLayer(y.layer), String(y.reps), fmt(y.gpuMs), fmt(y.gpuWallMs), y.cpu ? fmt(y.cpu.ms) : '-', times(y.speedup), `${y.gpuFinalLoss.toExponential(3)}/${y.cpuFinalLoss === null ? '-' : y.cpuFinalLoss.toExponential(3)}`]],
      ),
    );
    lines.push(`awq-layer: scale search (grid ${y.grid}, duo, Gram loss) + clip search + final quantization, INT4 asym g64; CPU: awqLayerRef; speed-up: CPU ms over GPU wall ms`);
  }
  const m = a.llama;
  if (m) {
    block(
      formatTable(
        ['awq-llama', 'data', 'grid', 'searches on', 's', 's/block', 'capture s', 'module loss s', 'module loss share', 'setWeight s', 'rest s'],
        [[m.model, `${m.sequences} x ${m.tokensPerSequence} tokens`, String(m.grid), m.compute, fmt(m.totalS), fmt(m.sPerBlock), fmt(m.captureS), fmt(m.moduleForwardS), pct(m.moduleForwardShare), fmt(m.setWeightS), fmt(m.otherS)]],
      ),
    );
    lines.push(
      `awq-llama: one awqLlama run (model loaded in ${fmt(m.loadS)} s and forward pipelines built beforehand), INT4 asym g64, duo; per block: ${m.blockS.map((v) => fmt(v)).join(', ')} s (the first includes the capture); ` +
        `module loss: the inspected-module losses, time inside LlamaGpu.moduleForward (${m.moduleForwardCalls} calls) and the QuantKernels.errorMetrics that waits for their GPU work, measured in the same run; ` +
        `rest: scale searches, clip and quantization (on the ${m.compute === 'cpu' ? 'CPU (compute auto on a software adapter)' : 'GPU'}), reading the captured inputs, the report's Gram matrices`,
    );
  }
  const s = a.sweep;
  if (s) {
    block(
      formatTable(
        ['smoothquant-sweep', 'group', 'evaluations', 'reps', 's', 's/alpha', 'GFLOP/s', 'CPU s', 'CPU s/alpha', 'CPU GFLOP/s', 'speed-up', 'best alpha GPU/CPU'],
        [
          [
            'gpuGroupError',
            `${s.group.linears} x [${s.group.channels}, ${s.group.channels}] on ${s.group.rows} rows`,
            String(s.evaluations),
            String(s.reps),
            fmt(s.gpuWallMs / 1000),
            fmt(s.gpuSPerAlpha),
            fmt(s.gpuGflops),
            s.cpu ? fmt(s.cpu.ms / 1000) : '-',
            s.cpu ? fmt(s.cpu.sPerAlpha) : '-',
            s.cpu ? fmt(s.cpu.gflops) : '-',
            times(s.speedup),
            `${s.gpuBestAlpha}/${s.cpuBestAlpha ?? '-'}`,
          ],
        ],
      ),
    );
    lines.push(
      `smoothquant-sweep: alphaSweepGroup over ${s.alphas} alphas plus the unsmoothed baseline (${s.evaluations} W8A8 evaluations, per-token activations), wall time of one sweep (GPU kernel ms ${fmt(s.gpuMs)} by the timing method above); ` +
        `s/alpha: s over the ${s.evaluations} evaluations; GFLOP/s: ${fmt(s.flopsPerEvaluation / 1e9)} GFLOP per evaluation (2 x rows x in x out per linear, the quantized matmul; the CPU reference also recomputes X W^T); CPU: cpuGroupError, fastest of 1-2 runs; speed-up: CPU s over GPU s`,
    );
  }
  for (const [name, why] of Object.entries(a.skipped)) lines.push(`${name} skipped: ${why}`);
  for (const [name, why] of Object.entries(a.errors)) lines.push(`${name} failed: ${why}`);
  return lines.join('\n');
}
