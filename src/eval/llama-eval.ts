/**
 * Side-by-side evaluation of a Llama-family model under several weight (and activation) quantization
 * configurations on the WGSL forward pass: perplexity over strided windows of held-out text, KL(P_fp32 ||
 * P_config) and top-1 agreement against the FP32 model on the same windows, and a greedy continuation of a
 * prompt. The FP32 logits of the scored positions are kept in memory when they fit (maxCacheBytes), else the
 * FP32 model stays loaded and recomputes them for each configuration.
 *
 * Weights per configuration (only the linear layers; embeddings, norms and classifier stay FP32, as the
 * whole-model RTN does): fp16 rounds them to float16; rtn fake-quantizes them on the GPU (QuantKernels);
 * awq runs awqLlama on the calibration sequences and evaluates its effective weights; smoothquant folds
 * SmoothQuant factors from the calibration statistics (max |X_j| per channel, smooth.py), quantizes the
 * linears INT8 per channel (symmetric) and fake-quantizes the linear inputs (LlamaGpuOptions.actQuant).
 * Calibration sequences must not come from the evaluation text. No Node imports.
 */
import { awqLlama } from '../awq/awq-llama.ts';
import { captureLlamaStats } from '../calib/capture-llama.ts';
import type { ActivationSummary } from '../calib/types.ts';
import type { GpuContext } from '../gpu/context.ts';
import { CancelledError } from '../gpu/errors.ts';
import { roundToF16 } from '../model/formats/half.ts';
import { LlamaCpu } from '../model/llama/forward-cpu.ts';
import { LlamaGpu } from '../model/llama/forward-gpu.ts';
import { linearTensorNames, numel, type LlamaCheckpoint } from '../model/llama/model.ts';
import type { QuantConfig } from '../quant/config.ts';
import { QuantKernels } from '../quant/gpu-kernels.ts';
import { makeGroupLayout } from '../quant/layout.ts';
import { quantizedBytes } from '../quant/model-rtn.ts';
import { llamaSmoothGroups } from '../smooth/fold-llama.ts';
import { smoothedActAmax, smoothingFactors, weightColumnAbsmax } from '../smooth/smoothquant.ts';
import { fround } from '../quant/reference/f32.ts';
import type { ActQuantOptions } from './act-fake-quant.ts';
import { cpuWindowLogits, gpuWindowLogits, scoreWindows, strideWindows, type EvalWindow } from './perplexity.ts';
import { EvalError, type EvalConfig, type EvalProgress, type EvalRow } from './types.ts';

export interface LlamaEvalOptions {
  configs: readonly EvalConfig[];
  /** The evaluation text as tokens, without BOS. */
  tokens: readonly number[];
  /** Positions per window (BOS included); default the model's context. */
  context?: number;
  /** Tokens between window starts; default context / 2. */
  stride?: number;
  /** BOS-led calibration sequences for awq and smoothquant (never the evaluation text). */
  calibration?: readonly number[][];
  /** Prompt tokens (BOS included) for the greedy generations, and their length. */
  prompt?: readonly number[];
  genTokens?: number;
  /** Text of generated tokens (the tokenizer's decode), for EvalRow.generation. */
  decode?: (ids: number[]) => string;
  /** Most bytes of FP32 logits kept for KL / top-1 (default 512 MiB); beyond it the FP32 model recomputes them. */
  maxCacheBytes?: number;
  maxBatch?: number;
  /** AWQ settings (defaults as awqLlama: x-only scales, clip search, 20 ratios). */
  awq?: { duo?: boolean; clip?: boolean; grid?: number; compute?: 'auto' | 'gpu' | 'cpu' };
  signal?: AbortSignal;
  onProgress?: (p: EvalProgress) => void;
  /** Each row as it is finished. */
  onRow?: (row: EvalRow) => void;
}

export interface LlamaEvalResult {
  rows: EvalRow[];
  windows: EvalWindow[];
  context: number;
  stride: number;
}

/** Bytes and bits per weight of the model when its linears use `linearBytes(name, shape)` and the rest stays FP32. */
function sizeOf(ckpt: LlamaCheckpoint, linearBytes: (shape: number[]) => number): { bitsPerWeight: number; sizeBytes: number } {
  const linears = new Set(linearTensorNames(ckpt.config));
  let size = 0;
  let lb = 0;
  let lp = 0;
  for (const t of ckpt.tensors) {
    const n = numel(t.shape);
    if (linears.has(t.name)) {
      const b = linearBytes(t.shape);
      size += b;
      lb += b;
      lp += n;
    } else {
      size += 4 * n;
    }
  }
  return { bitsPerWeight: lp ? (8 * lb) / lp : 32, sizeBytes: size };
}

export function quantizedLinearBytes(cfg: Required<QuantConfig>, shape: readonly number[]): number {
  const layout = makeGroupLayout(shape, cfg.granularity, cfg.groupSize);
  return quantizedBytes(cfg, layout.n, layout.numGroups);
}

/** What one configuration loads: replaced tensors, activation quantization, size, notes. */
interface Prepared {
  replaced: Map<string, Float32Array>;
  actQuant?: ActQuantOptions;
  bitsPerWeight: number;
  sizeBytes: number;
  notes: string[];
}

async function rtnWeights(ctx: GpuContext, ckpt: LlamaCheckpoint, quant: Required<QuantConfig>, source: (name: string) => Promise<Float32Array>, signal?: AbortSignal): Promise<Map<string, Float32Array>> {
  const kernels = new QuantKernels(ctx);
  const out = new Map<string, Float32Array>();
  for (const name of linearTensorNames(ckpt.config)) {
    if (signal?.aborted) throw new CancelledError('evaluation cancelled');
    const info = ckpt.tensors.find((t) => t.name === name)!;
    const w = await source(name);
    for (let i = 0; i < w.length; i++) if (!Number.isFinite(w[i])) throw new EvalError(`${name} has a non-finite weight at index ${i} (${w[i]})`);
    out.set(name, await kernels.fakeQuantize(w, makeGroupLayout(info.shape, quant.granularity, quant.groupSize), quant));
  }
  return out;
}

function quantNote(q: Required<QuantConfig>): string {
  const g = q.granularity === 'group' ? `groups of ${q.groupSize}` : q.granularity === 'channel' ? 'per channel' : 'per tensor';
  const f = q.format === 'fp8-e4m3' ? 'FP8 E4M3' : `INT${q.bits} ${q.scheme === 'sym' ? 'symmetric' : 'asymmetric'}`;
  return `linear weights ${f}, ${g} (fp16 scales${q.scheme === 'asym' ? `, ${q.bits}-bit zero points` : ''}); embeddings, norms, classifier FP32`;
}

export async function evaluateLlama(ctx: GpuContext, ckpt: LlamaCheckpoint, opts: LlamaEvalOptions): Promise<LlamaEvalResult> {
  const c = ckpt.config;
  const context = opts.context ?? c.seqLen;
  if (!(Number.isInteger(context) && context >= 1 && context <= c.seqLen)) throw new EvalError(`the context must be from 1 to the model's ${c.seqLen} positions, got ${context}`);
  const stride = opts.stride ?? Math.max(1, Math.floor(context / 2));
  const windows = strideWindows(opts.tokens.length, context, stride);
  if (opts.configs.length === 0) throw new EvalError('no configuration to evaluate');
  for (const t of opts.tokens) if (!(Number.isInteger(t) && t >= 0 && t < c.vocabSize)) throw new EvalError(`token ${t} is outside the model's vocabulary (0..${c.vocabSize - 1})`);
  const needsCalib = opts.configs.some((x) => x.method === 'awq' || x.method === 'smoothquant');
  if (needsCalib && !opts.calibration?.length) throw new EvalError('awq and smoothquant configs need calibration sequences');
  const bos = ckpt.tokenizer?.bosId ?? 1;
  const vocab = c.vocabSize;
  const maxBatch = opts.maxBatch ?? Math.min(64, context);
  const signal = opts.signal;
  const total = windows.length * (opts.configs.length + (opts.configs.some((x) => x.method === 'fp32') ? 0 : 1));
  let doneBefore = 0;
  const progress = (label: string) => (p: EvalProgress) => opts.onProgress?.({ done: doneBefore + p.done, total, label: `${label}: ${p.label}` });
  const scoredRows = windows.reduce((a, w) => a + w.end - w.scoreFrom, 0);
  const cacheFits = scoredRows * vocab * 4 <= (opts.maxCacheBytes ?? 512 * 2 ** 20);

  const rows: EvalRow[] = [];
  const ref = await LlamaGpu.load(ctx, ckpt, { maxBatch, signal });
  try {
    const t0 = performance.now();
    const refLogits = gpuWindowLogits(ref);
    const cache: Float32Array[] = [];
    const fp32 = opts.configs.find((x) => x.method === 'fp32');
    const fp32Metrics = await scoreWindows(refLogits, vocab, opts.tokens, windows, bos, {
      keep: cacheFits ? (i, l) => (cache[i] = l) : undefined,
      signal,
      onProgress: progress(fp32?.label ?? 'fp32'),
    });
    doneBefore += windows.length;
    const generate = async (llm: LlamaGpu): Promise<string | undefined> => {
      if (!opts.prompt?.length || !opts.genTokens) return undefined;
      const ids = await llm.generate([...opts.prompt], opts.genTokens, { signal });
      return opts.decode ? opts.decode(ids) : ids.join(' ');
    };
    const fp32Row = fp32
      ? { generation: await generate(ref), seconds: (performance.now() - t0) / 1000 }
      : undefined;
    const reference = cacheFits ? (i: number) => cache[i] : (_i: number, ids: number[], skip: number) => refLogits(ids, skip, signal);

    let calibStats: Map<string, ActivationSummary> | undefined;
    const calibrationStats = async () => {
      calibStats ??= new Map((await captureLlamaStats(ref, opts.calibration!.map((s) => [...s]), { signal })).map((s) => [s.name, s]));
      return calibStats;
    };

    for (const cfg of opts.configs) {
      if (signal?.aborted) throw new CancelledError('evaluation cancelled');
      const t1 = performance.now();
      if (cfg.method === 'fp32') {
        const size = sizeOf(ckpt, (shape) => 4 * numel(shape));
        const row: EvalRow = { config: cfg.label, method: 'fp32', ...size, metrics: { ...fp32Metrics }, seconds: fp32Row!.seconds, generation: fp32Row!.generation, notes: ['the reference: KL and top-1 compare every row with it'] };
        rows.push(row);
        opts.onRow?.(row);
        continue;
      }
      const prepared = await prepare(ctx, ckpt, ref, cfg, opts, calibrationStats, (p) => opts.onProgress?.({ done: doneBefore, total, label: `${cfg.label}: ${p.label}` }));
      const llm = await LlamaGpu.load(ctx, ckpt, {
        maxBatch,
        signal,
        actQuant: prepared.actQuant,
        transformWeight: (name, data) => prepared.replaced.get(name) ?? data,
      });
      let row: EvalRow;
      try {
        const metrics = await scoreWindows(gpuWindowLogits(llm), vocab, opts.tokens, windows, bos, { reference, signal, onProgress: progress(cfg.label) });
        const generation = await generate(llm);
        row = { config: cfg.label, method: cfg.method, bitsPerWeight: prepared.bitsPerWeight, sizeBytes: prepared.sizeBytes, metrics: { ...metrics }, seconds: (performance.now() - t1) / 1000, generation, notes: prepared.notes };
      } finally {
        llm.dispose();
      }
      doneBefore += windows.length;
      rows.push(row);
      opts.onRow?.(row);
    }
  } finally {
    ref.dispose();
  }
  return { rows, windows, context, stride };
}

async function prepare(
  ctx: GpuContext,
  ckpt: LlamaCheckpoint,
  ref: LlamaGpu,
  cfg: EvalConfig,
  opts: LlamaEvalOptions,
  calibrationStats: () => Promise<Map<string, ActivationSummary>>,
  onProgress: (p: EvalProgress) => void,
): Promise<Prepared> {
  const c = ckpt.config;
  const signal = opts.signal;
  const load = (name: string) => ckpt.loadTensor(name);
  switch (cfg.method) {
    case 'fp16': {
      const replaced = new Map<string, Float32Array>();
      for (const name of linearTensorNames(c)) replaced.set(name, roundToF16(await load(name)));
      return { replaced, ...sizeOf(ckpt, (shape) => 2 * numel(shape)), notes: ['linear weights rounded to float16; embeddings, norms, classifier FP32'] };
    }
    case 'rtn': {
      const q = cfg.quant!;
      return { replaced: await rtnWeights(ctx, ckpt, q, load, signal), ...sizeOf(ckpt, (shape) => quantizedLinearBytes(q, shape)), notes: [`round to nearest: ${quantNote(q)}`] };
    }
    case 'awq': {
      const q = cfg.quant!;
      const seqs = opts.calibration!.map((s) => [...s]);
      const r = await awqLlama(ref, ckpt, seqs, {
        quant: q,
        ...opts.awq,
        signal,
        onProgress: (p) => onProgress({ done: p.done, total: p.total, label: `AWQ ${p.label}` }),
      });
      ref.reset();
      return {
        replaced: r.weights,
        ...sizeOf(ckpt, (shape) => quantizedLinearBytes(q, shape)),
        notes: [`AWQ on ${r.tokens} calibration tokens (${seqs.length} sequences, ${r.seconds.toFixed(1)} s): ${quantNote(q)}`],
      };
    }
    case 'smoothquant': {
      const q = cfg.quant!;
      const stats = await calibrationStats();
      const replaced = new Map<string, Float32Array>();
      const amax = new Map<string, number>();
      for (const g of llamaSmoothGroups(c)) {
        const point = g.prev.replace(/attention_norm$/, 'attn_in').replace(/ffn_norm$/, 'mlp_in');
        const s = stats.get(point);
        if (!s) throw new EvalError(`no calibration statistics for ${point}`);
        const linears = [];
        for (const name of g.linears) {
          const w = await load(name);
          linears.push({ name, weight: w, out: w.length / c.dim });
        }
        const f = smoothingFactors(s.channelAbsmax, weightColumnAbsmax(linears, c.dim), cfg.alpha ?? 0.5);
        const norm = await load(g.prev);
        replaced.set(g.prev, norm.map((v, j) => fround(v / f[j])));
        for (const l of linears) {
          const y = new Float32Array(l.weight.length);
          for (let i = 0; i < y.length; i++) y[i] = fround(l.weight[i] * f[i % c.dim]);
          replaced.set(l.name, y);
        }
        amax.set(point, smoothedActAmax(s.channelAbsmax, f));
      }
      for (const [name, s] of stats) if (!amax.has(name)) amax.set(name, s.absmax);
      const source = async (name: string) => replaced.get(name) ?? (await load(name));
      const quantized = await rtnWeights(ctx, ckpt, q, source, signal);
      for (const [name, w] of quantized) replaced.set(name, w);
      const act = cfg.act!;
      return {
        replaced,
        actQuant: { bits: act.bits, granularity: act.granularity, amax: act.granularity === 'per-tensor' ? amax : undefined },
        ...sizeOf(ckpt, (shape) => quantizedLinearBytes(q, shape)),
        notes: [
          `SmoothQuant alpha ${cfg.alpha} folded into the norms and q/k/v, gate/up (max |X_j| of ${opts.calibration!.length} calibration sequences); ${quantNote(q)}; ` +
            `INT${act.bits} activations ${act.granularity === 'per-token' ? 'per token (dynamic)' : 'per tensor (calibration max)'} at the input of every linear`,
        ],
      };
    }
    default:
      throw new EvalError(`${cfg.label}: no preparation for method ${cfg.method}`);
  }
}

/** FP32 perplexity of the same windows from the CPU reference forward pass (LlamaCpu), the check of the WGSL one. */
export async function cpuPerplexity(ckpt: LlamaCheckpoint, tokens: readonly number[], windows: readonly EvalWindow[], opts: { signal?: AbortSignal; onProgress?: (p: EvalProgress) => void } = {}) {
  const cpu = await LlamaCpu.load(ckpt);
  return scoreWindows(cpuWindowLogits(cpu), ckpt.config.vocabSize, tokens, windows, ckpt.tokenizer?.bosId ?? 1, { signal: opts.signal, onProgress: opts.onProgress, label: 'CPU reference' });
}
