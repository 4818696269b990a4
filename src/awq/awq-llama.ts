/**
 * AWQ for a Llama-family model on the GPU, as llm-awq's run_awq does it (REFERENCE.md section 4):
 *  1. the calibration sequences run once through the WGSL forward pass; the input of every linear of every
 *     block is kept on the GPU ([tokens, cols] per capture point);
 *  2. per block, four scale searches on the original weights: input_layernorm -> q,k,v inspecting the whole
 *     attention (LlamaGpu.moduleForward with candidate weights swapped in); v -> o (only when v's output
 *     feeds o one to one, i.e. no grouped-query sharing) and up -> down inspecting the single linear (the
 *     Gram-matrix loss of GpuAwq.search); post_attention_layernorm -> gate, up inspecting the MLP;
 *  3. the scales are applied (columns of the group's linears multiplied by s, the previous op divided by
 *     s: the norm, or the rows of v / up), the clip search runs on the scaled weights with the inputs
 *     divided by s (not for q and k), and every linear is quantized.
 * The result holds, per linear, the effective fake-quantized weight in the original model's basis,
 * diag(r) Q(clip(diag(1/r) W diag(s))) diag(1/s), which equals running the scaled model with the norm
 * divided by s: the lab and the CLI swap it in with setWeight and leave the norms alone. Also the losses of
 * every ratio (RTN's beside them), each block's attention and MLP output error with all their linears quantized
 * (RTN against AWQ), and each linear's own output error under RTN and under AWQ.
 * No Node imports: the browser worker can run it.
 */
import { CancelledError } from '../gpu/errors.ts';
import type { LlamaGpu } from '../model/llama/forward-gpu.ts';
import type { LlamaCheckpoint } from '../model/llama/model.ts';
import { QuantKernels } from '../quant/gpu-kernels.ts';
import type { QuantConfig } from '../quant/config.ts';
import { GpuAwq } from './gpu-awq.ts';
import {
  activationMeanAbs,
  argminFirst,
  awqClipRef,
  awqLossGram,
  awqQuantConfig,
  awqRatios,
  awqScalesForRatio,
  awqSearchRef,
  divideColumns,
  gramMatrix,
  quantizeScaledRef,
  wMeanOfWeight,
  type AwqConfig,
} from './reference.ts';

export class AwqError extends Error {
  override name = 'AwqError';
}

export interface AwqLlamaOptions {
  quant: QuantConfig;
  /** AutoAWQ's duo scaling (default true) or llm-awq's x-only. */
  duo?: boolean;
  /** Clip search (default true; never for q and k). */
  clip?: boolean;
  grid?: number;
  /**
   * Where the single-linear searches, the clip search and the final quantization run: the WGSL kernels of
   * GpuAwq, or their CPU reference. 'auto' (default): the CPU on a software adapter, where it is about 20x
   * faster (SwiftShader). The inspected-module losses always run through the WGSL forward pass.
   */
  compute?: 'auto' | 'gpu' | 'cpu';
  /** Largest size of the captured activations kept on the GPU (default 1 GiB); over it, one block at a time (awqCapturePlan). */
  maxCaptureBytes?: number;
  signal?: AbortSignal;
  onProgress?: (p: { done: number; total: number; label: string }) => void;
  /** Called as each block finishes (its groups and linears, and its effective weights), e.g. to stream a report or keep it for a resume. */
  onBlock?: (block: AwqBlockReport, groups: AwqGroupReport[], linears: AwqLinearReport[], weights: Map<string, Float32Array>) => void;
  /**
   * Blocks finished by an earlier run with the same model, settings and calibration sequences (a cancelled
   * run's onBlock output): they are taken as they are and their searches skipped. Each block depends only on
   * the full-precision inputs captured for it, so a resumed run equals an uninterrupted one.
   */
  resume?: AwqPartial;
}

/** The finished blocks of a run, as onBlock delivered them. */
export interface AwqPartial {
  blocks: AwqBlockReport[];
  groups: AwqGroupReport[];
  linears: AwqLinearReport[];
  weights: Map<string, Float32Array>;
}

export type AwqGroupKind = 'qkv' | 'v_o' | 'gate_up' | 'up_down';

export interface AwqGroupReport {
  block: number;
  kind: AwqGroupKind;
  /** The op the scales fold into: a norm, or the previous linear. */
  prev: string;
  linears: string[];
  inspected: 'attention' | 'mlp' | 'linear';
  ratios: number[];
  /** Output MSE of the inspected module at every ratio. */
  losses: number[];
  bestIndex: number;
  bestRatio: number;
  /** Output MSE of the inspected module with plain RTN weights (s = 1). */
  rtnLoss: number;
  scales: Float32Array;
  /** Per input channel mean |x| (AWQ's activation statistic). */
  xMean: Float32Array;
}

export interface AwqLinearReport {
  name: string;
  block: number;
  /** Output MSE of the linear alone on its calibration inputs: RTN weights, then AWQ's. */
  rtnError: number;
  awqError: number;
  /** Mean of the chosen clip thresholds relative to the group max (1 = no clipping); undefined when not searched. */
  clipMean?: number;
}

export interface AwqBlockReport {
  block: number;
  /**
   * Output MSE of the block's attention plus that of its MLP, each run on its full-precision calibration
   * inputs with all of its linears quantized: RTN weights, then AWQ's (the error AWQ sets out to reduce).
   */
  rtnError: number;
  awqError: number;
  /** The same split by module. */
  attention: { rtn: number; awq: number };
  mlp: { rtn: number; awq: number };
  /** Sums of the block's single-linear output errors (each linear on its own inputs). */
  linearRtnError: number;
  linearAwqError: number;
}

export interface AwqLlamaResult {
  groups: AwqGroupReport[];
  linears: AwqLinearReport[];
  blocks: AwqBlockReport[];
  /** The effective fake-quantized weight of every linear, [out, in] (see the file comment). */
  weights: Map<string, Float32Array>;
  tokens: number;
  /** Whether the linear inputs of all blocks were kept at once, or one block at a time (awqCapturePlan). */
  capture: 'all' | 'per-block';
  seconds: number;
}

interface Captured {
  /** capture point name -> [tokens, cols] on the GPU. */
  buffers: Map<string, { buffer: GPUBuffer; cols: number }>;
  /** Start row and length of every sequence. */
  seqs: { start: number; len: number }[];
  tokens: number;
}

/**
 * Run every sequence through the model and keep the input of every linear of the chosen blocks (all blocks
 * when `blocks` is undefined), per capture point.
 */
async function captureInputs(llm: LlamaGpu, sequences: number[][], signal: AbortSignal | undefined, blocks?: ReadonlySet<number>): Promise<Captured> {
  const { ctx } = llm;
  const points = llm.enableCapture().filter((p) => !blocks || blocks.has(p.block));
  const tokens = sequences.reduce((a, s) => a + s.length, 0);
  const buffers = new Map<string, { buffer: GPUBuffer; cols: number }>();
  const seqs: { start: number; len: number }[] = [];
  try {
    for (const p of points) buffers.set(p.name, { buffer: ctx.storage(tokens * p.cols * 4, `AWQ inputs ${p.name}`), cols: p.cols });
    let row = 0;
    for (const seq of sequences) {
      if (signal?.aborted) throw new CancelledError('AWQ cancelled');
      if (seq.length > llm.config.seqLen) throw new AwqError(`a calibration sequence has ${seq.length} tokens; the model's context is ${llm.config.seqLen}`);
      seqs.push({ start: row, len: seq.length });
      llm.reset();
      await llm.forward(seq, {
        signal,
        onChunk: async (rows) => {
          await ctx.run(points.map((p) => ({ copy: { src: p.buffer, srcOffset: 0, dst: buffers.get(p.name)!.buffer, dstOffset: row * p.cols * 4, size: rows * p.cols * 4 } })));
          row += rows;
        },
      });
    }
    return { buffers, seqs, tokens };
  } catch (e) {
    ctx.pool.releaseAll([...buffers.values()].map((b) => b.buffer));
    throw e;
  } finally {
    llm.disableCapture();
    llm.reset();
  }
}

/**
 * How the linear inputs are kept: all blocks from one pass over the data when they fit in `maxBytes`;
 * otherwise one block at a time, the data run through the model again before each block (nLayers forward
 * passes instead of one, against about 40 module passes per block for the searches). Refused when even one
 * block's inputs do not fit.
 */
export function awqCapturePlan(c: Pick<LlamaGpu['config'], 'dim' | 'hiddenDim' | 'nHeads' | 'headDim' | 'nLayers'>, tokens: number, maxBytes: number): { mode: 'all' | 'per-block'; bytes: number } {
  const perBlock = (2 * c.dim + c.nHeads * c.headDim + c.hiddenDim) * tokens * 4;
  if (perBlock * c.nLayers <= maxBytes) return { mode: 'all', bytes: perBlock * c.nLayers };
  if (perBlock <= maxBytes) return { mode: 'per-block', bytes: perBlock };
  throw new AwqError(
    `the inputs of one block's linears over ${tokens} calibration tokens take ${(perBlock / 2 ** 20).toFixed(0)} MiB, over the ${(maxBytes / 2 ** 20).toFixed(0)} MiB limit: use fewer or shorter samples`,
  );
}

function firstNonFinite(x: Float32Array): number {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) return i;
  return -1;
}

function onesLike(n: number): Float32Array {
  return new Float32Array(n).fill(1);
}

function scaleRows(w: Float32Array, shape: readonly number[], r: Float32Array, divide: boolean): Float32Array {
  const [out, inDim] = shape;
  const y = new Float32Array(w.length);
  for (let o = 0; o < out; o++) {
    const f = divide ? 1 / r[o] : r[o];
    for (let j = 0; j < inDim; j++) y[o * inDim + j] = Math.fround(w[o * inDim + j] * f);
  }
  return y;
}

export async function awqLlama(llm: LlamaGpu, ckpt: LlamaCheckpoint, sequences: number[][], opts: AwqLlamaOptions): Promise<AwqLlamaResult> {
  const t0 = performance.now();
  const { ctx } = llm;
  const c = llm.config;
  const quant = awqQuantConfig(opts.quant);
  const duo = opts.duo ?? true;
  const grid = opts.grid ?? 20;
  const ratios = awqRatios(grid);
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  if (sequences.length === 0) throw new AwqError('AWQ needs calibration sequences');
  const gpuAwq = new GpuAwq(ctx);
  const onCpu = opts.compute === 'cpu' || (opts.compute !== 'gpu' && ctx.isSoftware);
  const awq = onCpu
    ? {
        search: async (w: Float32Array, shape: readonly number[], x: Float32Array, tokens: number, cfg: AwqConfig) => awqSearchRef(w, shape, x, tokens, cfg),
        clip: async (ws: Float32Array, shape: readonly number[], xs: Float32Array, tokens: number, q: QuantConfig) => awqClipRef(ws, shape, xs, tokens, q),
        quantizeScaled: async (w: Float32Array, shape: readonly number[], sc: Float32Array, q: QuantConfig, maxVal?: Float32Array) => quantizeScaledRef(w, shape, sc, q, maxVal),
      }
    : {
        search: (w: Float32Array, shape: readonly number[], x: Float32Array, tokens: number, cfg: AwqConfig) => gpuAwq.search(w, shape, x, tokens, cfg),
        clip: (ws: Float32Array, shape: readonly number[], xs: Float32Array, tokens: number, q: QuantConfig) => gpuAwq.clip(ws, shape, xs, tokens, q),
        quantizeScaled: (w: Float32Array, shape: readonly number[], sc: Float32Array, q: QuantConfig, maxVal?: Float32Array) => gpuAwq.quantizeScaled(w, shape, sc, q, maxVal),
      };
  const kernels = new QuantKernels(ctx);
  const original = new Map<string, Float32Array>();
  const load = async (name: string) => {
    if (!original.has(name)) original.set(name, await ckpt.loadTensor(name));
    return original.get(name)!;
  };
  const shapes: Record<string, [number, number]> = { wq: [qDim, c.dim], wk: [kvDim, c.dim], wv: [kvDim, c.dim], wo: [c.dim, qDim], w1: [c.hiddenDim, c.dim], w3: [c.hiddenDim, c.dim], w2: [c.dim, c.hiddenDim] };
  const N = sequences.reduce((a, q) => a + q.length, 0);
  const plan = awqCapturePlan(c, N, opts.maxCaptureBytes ?? 2 ** 30);
  let cap: Captured | undefined = plan.mode === 'all' ? await captureInputs(llm, sequences, opts.signal) : undefined;
  const releaseCapture = () => {
    if (cap) ctx.pool.releaseAll([...cap.buffers.values()].map((b) => b.buffer));
    cap = undefined;
  };
  const groups: AwqGroupReport[] = [];
  const linears: AwqLinearReport[] = [];
  const blocks: AwqBlockReport[] = [];
  const weights = new Map<string, Float32Array>();
  const total = c.nLayers * 4;
  let done = 0;
  const resumed = new Set(opts.resume?.blocks.map((b) => b.block) ?? []);
  const progress = (label: string) => opts.onProgress?.({ done, total, label });
  const orgOut = ctx.storage(N * c.dim * 4, 'AWQ module output (original)');
  const candOut = ctx.storage(N * c.dim * 4, 'AWQ module output (candidate)');
  try {
    for (let l = 0; l < c.nLayers; l++) {
      const p = `layers.${l}.`;
      if (resumed.has(l)) {
        const r = opts.resume!;
        groups.push(...r.groups.filter((g) => g.block === l));
        linears.push(...r.linears.filter((x) => x.block === l));
        blocks.push(r.blocks.find((b) => b.block === l)!);
        for (const n of Object.keys(shapes)) {
          const w = r.weights.get(p + n);
          if (!w) throw new AwqError(`the run to resume has block ${l} but not its weight ${p + n}`);
          weights.set(p + n, w);
        }
        done += 4;
        progress(`block ${l} done (kept from the earlier run)`);
        continue;
      }
      if (plan.mode === 'per-block') {
        releaseCapture();
        progress(`block ${l}: running the calibration data up to it`);
        cap = await captureInputs(llm, sequences, opts.signal, new Set([l]));
      }
      const cp = cap!;
      const read = async (point: string) => {
        const x = await ctx.readF32(cp.buffers.get(p + point)!.buffer, N * cp.buffers.get(p + point)!.cols);
        const bad = firstNonFinite(x);
        if (bad >= 0) {
          const cols = cp.buffers.get(p + point)!.cols;
          throw new AwqError(`the calibration activations at ${p + point} contain ${Number.isNaN(x[bad]) ? 'NaN' : x[bad]} (token ${Math.floor(bad / cols)}, channel ${bad % cols}): the model overflows on this data`);
        }
        return x;
      };
      const X = { attn_in: await read('attn_in'), attn_out: await read('attn_out'), mlp_in: await read('mlp_in'), mlp_mid: await read('mlp_mid') };
      const W: Record<string, Float32Array> = {};
      for (const n of Object.keys(shapes)) W[n] = await load(p + n);

      /** Module output MSE with these weights swapped in (all sequences), against the original output. */
      const moduleLoss = async (module: 'attention' | 'mlp', input: GPUBuffer, cand: Record<string, Float32Array>): Promise<number> => {
        for (const [n, w] of Object.entries(cand)) llm.setWeight(p + n, w);
        try {
          for (const s of cp.seqs) await llm.moduleForward(l, module, input, s.len, candOut, { inputOffset: s.start * c.dim, outOffset: s.start * c.dim });
        } finally {
          for (const n of Object.keys(cand)) llm.setWeight(p + n, W[n]);
        }
        return (await kernels.errorMetrics({ buffer: orgOut, length: N * c.dim }, { buffer: candOut, length: N * c.dim })).mse;
      };

      /** Scale search inspecting a module (attention for q/k/v, the MLP for gate/up). */
      const searchModule = async (kind: AwqGroupKind, module: 'attention' | 'mlp', names: string[], point: 'attn_in' | 'mlp_in', prev: string): Promise<AwqGroupReport> => {
        if (opts.signal?.aborted) throw new CancelledError('AWQ cancelled');
        progress(`block ${l}: ${names.join(', ')} (inspecting the ${module})`);
        const input = cp.buffers.get(p + point)!.buffer;
        for (const s of cp.seqs) await llm.moduleForward(l, module, input, s.len, orgOut, { inputOffset: s.start * c.dim, outOffset: s.start * c.dim });
        const xMean = activationMeanAbs(X[point], N, c.dim);
        // AutoAWQ's w_mean over the group's linears stacked along the output axis.
        const stacked = new Float32Array(names.reduce((a, n) => a + W[n].length, 0));
        let off = 0;
        for (const n of names) {
          stacked.set(W[n], off);
          off += W[n].length;
        }
        const wMean = duo ? wMeanOfWeight(stacked, [stacked.length / c.dim, c.dim], quant.groupSize) : undefined;
        const candidates = async (s: Float32Array) => {
          const out: Record<string, Float32Array> = {};
          for (const n of names) out[n] = (await awq.quantizeScaled(W[n], shapes[n], s, quant)).weight;
          return out;
        };
        const rtnLoss = await moduleLoss(module, input, await candidates(onesLike(c.dim)));
        const losses: number[] = [];
        const scalesByRatio: Float32Array[] = [];
        for (const r of ratios) {
          if (opts.signal?.aborted) throw new CancelledError('AWQ cancelled');
          const s = awqScalesForRatio(xMean, wMean, r, duo);
          scalesByRatio.push(s);
          losses.push(await moduleLoss(module, input, await candidates(s)));
        }
        const bestIndex = argminFirst(losses);
        return { block: l, kind, prev, linears: names.map((n) => p + n), inspected: module, ratios, losses, bestIndex, bestRatio: ratios[bestIndex], rtnLoss, scales: scalesByRatio[bestIndex], xMean };
      };

      /** Scale search inspecting one linear (Gram-matrix loss over every calibration token). */
      const searchLinear = async (kind: AwqGroupKind, name: string, point: 'attn_out' | 'mlp_mid', prev: string): Promise<AwqGroupReport> => {
        if (opts.signal?.aborted) throw new CancelledError('AWQ cancelled');
        progress(`block ${l}: ${name} (inspecting the linear)`);
        const r = await awq.search(W[name], shapes[name], X[point], N, { quant, duo, grid, loss: 'gram' });
        return { block: l, kind, prev: p + prev, linears: [p + name], inspected: 'linear', ratios: r.ratios, losses: r.losses, bestIndex: r.bestIndex, bestRatio: r.bestRatio, rtnLoss: r.rtnLoss, scales: r.scales, xMean: r.xMean };
      };

      const qkv = await searchModule('qkv', 'attention', ['wq', 'wk', 'wv'], 'attn_in', p + 'attention_norm');
      done++;
      // v -> o only when v's outputs are o's inputs one to one (llm-awq: "if shapes match").
      const vo = kvDim === qDim ? await searchLinear('v_o', 'wo', 'attn_out', 'wv') : undefined;
      done++;
      const gu = await searchModule('gate_up', 'mlp', ['w1', 'w3'], 'mlp_in', p + 'ffn_norm');
      done++;
      const ud = await searchLinear('up_down', 'w2', 'mlp_mid', 'w3');
      done++;
      const blockGroups = [qkv, ...(vo ? [vo] : []), gu, ud];
      groups.push(...blockGroups);

      // Apply: column scales per linear, row scales where the next group folded into this linear.
      const colScale: Record<string, Float32Array> = { wq: qkv.scales, wk: qkv.scales, wv: qkv.scales, wo: vo?.scales ?? onesLike(qDim), w1: gu.scales, w3: gu.scales, w2: ud.scales };
      const rowScale: Record<string, Float32Array | undefined> = { wv: vo?.scales, w3: ud.scales };
      const inputOf: Record<string, Float32Array> = { wq: X.attn_in, wk: X.attn_in, wv: X.attn_in, wo: X.attn_out, w1: X.mlp_in, w3: X.mlp_in, w2: X.mlp_mid };
      const blockLinears: AwqLinearReport[] = [];
      const rtnWeights: Record<string, Float32Array> = {};
      const awqWeights: Record<string, Float32Array> = {};
      const grams = new Map<Float32Array, Float64Array>();
      for (const n of Object.keys(shapes)) {
        if (opts.signal?.aborted) throw new CancelledError('AWQ cancelled');
        progress(`block ${l}: clip and quantize ${n}`);
        const shape = shapes[n];
        const s = colScale[n];
        const rs = rowScale[n];
        const wRows = rs ? scaleRows(W[n], shape, rs, true) : W[n];
        let maxVal: Float32Array | undefined;
        let clipMean: number | undefined;
        if ((opts.clip ?? true) && n !== 'wq' && n !== 'wk') {
          const ws = new Float32Array(wRows.length);
          for (let i = 0; i < ws.length; i++) ws[i] = Math.fround(wRows[i] * s[i % shape[1]]);
          const clip = await awq.clip(ws, shape, divideColumns(inputOf[n], N, s), N, quant);
          maxVal = clip.maxVal;
          let sum = 0;
          for (let g = 0; g < clip.maxVal.length; g++) sum += clip.origMax[g] > 0 ? clip.maxVal[g] / clip.origMax[g] : 1;
          clipMean = sum / clip.maxVal.length;
        }
        const q = (await awq.quantizeScaled(wRows, shape, s, quant, maxVal)).weight;
        const eff = rs ? scaleRows(q, shape, rs, false) : q;
        weights.set(p + n, eff);
        const x = inputOf[n];
        if (!grams.has(x)) grams.set(x, gramMatrix(x, N, shape[1]));
        const g = grams.get(x)!;
        const rtn = (await awq.quantizeScaled(W[n], shape, onesLike(shape[1]), quant)).weight;
        rtnWeights[n] = rtn;
        awqWeights[n] = eff;
        blockLinears.push({ name: p + n, block: l, rtnError: awqLossGram(g, W[n], rtn, shape, N), awqError: awqLossGram(g, W[n], eff, shape, N), clipMean });
      }
      linears.push(...blockLinears);
      // The block's modules with every linear quantized, RTN against AWQ, on the full-precision inputs.
      progress(`block ${l}: RTN and AWQ module errors`);
      const moduleError = async (module: 'attention' | 'mlp', names: string[], point: 'attn_in' | 'mlp_in') => {
        const input = cp.buffers.get(p + point)!.buffer;
        for (const sq of cp.seqs) await llm.moduleForward(l, module, input, sq.len, orgOut, { inputOffset: sq.start * c.dim, outOffset: sq.start * c.dim });
        const pick = (m: Record<string, Float32Array>) => Object.fromEntries(names.map((n) => [n, m[n]]));
        return { rtn: await moduleLoss(module, input, pick(rtnWeights)), awq: await moduleLoss(module, input, pick(awqWeights)) };
      };
      const attention = await moduleError('attention', ['wq', 'wk', 'wv', 'wo'], 'attn_in');
      const mlp = await moduleError('mlp', ['w1', 'w3', 'w2'], 'mlp_in');
      const block: AwqBlockReport = {
        block: l,
        rtnError: attention.rtn + mlp.rtn,
        awqError: attention.awq + mlp.awq,
        attention,
        mlp,
        linearRtnError: blockLinears.reduce((a, r) => a + r.rtnError, 0),
        linearAwqError: blockLinears.reduce((a, r) => a + r.awqError, 0),
      };
      blocks.push(block);
      opts.onBlock?.(block, blockGroups, blockLinears, new Map(Object.keys(shapes).map((n) => [p + n, weights.get(p + n)!])));
      progress(`block ${l} done`);
      for (const n of Object.keys(shapes)) original.delete(p + n);
    }
    return { groups, linears, blocks, weights, tokens: N, capture: plan.mode, seconds: (performance.now() - t0) / 1000 };
  } finally {
    releaseCapture();
    ctx.pool.releaseAll([orgOut, candOut]);
  }
}
