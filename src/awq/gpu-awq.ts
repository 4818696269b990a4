/**
 * AWQ for one linear layer on the GPU, with the same results as the CPU reference in ./reference.ts:
 * the Gram matrix X^T X accumulated over token batches (awq-gram.wgsl), the per-channel mean |x|
 * (the existing column-stats kernel), every candidate Q(W*s)/s of a batch of ratios (awq-scale-columns,
 * the existing group-stats and qparams kernels, awq-fake-quantize-unscale), the loss of all candidates in
 * Gram form in one dispatch (awq-gram-loss.wgsl) or directly from X W^T (linear.wgsl + error-metrics.wgsl),
 * and the clip search (awq-clip-search.wgsl, awq-clamp-groups.wgsl).
 * O(in) and O(out * in) bookkeeping (scales of each ratio, w_mean, X / s, argmin) stays on the CPU.
 */
import { grid, type GpuContext } from '../gpu/context.ts';
import type { QuantConfig } from '../quant/config.ts';
import { decodeGroupStats, QuantKernels, type GpuTensor } from '../quant/gpu-kernels.ts';
import { makeGroupLayout } from '../quant/layout.ts';
import { fround } from '../quant/reference/f32.ts';
import {
  argminFirst,
  awqLayout,
  awqQuantConfig,
  awqRatios,
  awqScalesForRatio,
  checkLayerShapes,
  AWQ_CLIP_CANDIDATES,
  clipFactors,
  clipSampleTokens,
  divideColumns,
  wMeanOfWeight,
  type AwqClipResult,
  type AwqConfig,
  type AwqLayerResult,
  type AwqQuantized,
  type AwqSearchResult,
} from './reference.ts';

const WG = 256;
const TILE = 64;
const STATS_BYTES = 32;

export interface AwqGpuOptions {
  /** Activation rows per Gram accumulation dispatch (default 2048): X is uploaded one batch at a time. */
  batchTokens?: number;
  /** Upper bound on the bytes of one batch of candidate weights (default 64 MiB); ratios are batched under it. */
  maxCandidateBytes?: number;
}

/** Activation statistics of the scale search: G = X^T X on the GPU and x_mean on the CPU. */
export interface AwqActivationStats {
  /** G [in, in] float32, on the GPU; release with GpuAwq.release. */
  gram: GPUBuffer;
  xMean: Float32Array;
  tokens: number;
  cols: number;
}

export class GpuAwq {
  readonly kernels: QuantKernels;

  constructor(readonly ctx: GpuContext) {
    this.kernels = new QuantKernels(ctx);
  }

  release(b: GPUBuffer | GpuTensor): void {
    this.ctx.pool.release('buffer' in b ? b.buffer : b);
  }

  /** G += X^T X for a batch X [tokens, cols] already on the GPU. */
  async accumulateGram(gram: GPUBuffer, x: GPUBuffer, tokens: number, cols: number): Promise<void> {
    const { ctx } = this;
    const params = ctx.uniform(new Uint32Array([tokens, cols, 0, 0]).buffer);
    const tiles = Math.ceil(cols / TILE);
    try {
      await ctx.run([{ shader: 'awq-gram.wgsl', bindings: [params, x, gram], workgroups: [tiles, tiles] }]);
    } finally {
      ctx.pool.release(params);
    }
  }

  /**
   * G = X^T X and x_mean = mean |X| per column, uploading X [tokens, cols] `batchTokens` rows at a time.
   * With `gram` false only x_mean is computed (the direct loss needs no G).
   */
  async activationStats(x: Float32Array, tokens: number, cols: number, opts: AwqGpuOptions & { gram?: boolean } = {}): Promise<AwqActivationStats> {
    const { ctx } = this;
    const batch = Math.max(1, opts.batchTokens ?? 2048);
    const gram = ctx.storage(cols * cols * 4, 'Gram matrix', true);
    const sumAbs = new Float64Array(cols);
    try {
      for (let t0 = 0; t0 < tokens; t0 += batch) {
        const n = Math.min(batch, tokens - t0);
        const xb = ctx.upload(x.subarray(t0 * cols, (t0 + n) * cols), 'activation batch');
        try {
          if (opts.gram !== false) await this.accumulateGram(gram, xb, n, cols);
          const st = await this.kernels.columnStats({ buffer: xb, length: n * cols }, n, cols);
          for (let j = 0; j < cols; j++) sumAbs[j] += st.meanAbs[j] * st.count[j];
        } finally {
          ctx.pool.release(xb);
        }
      }
    } catch (e) {
      ctx.pool.release(gram);
      throw e;
    }
    return { gram, xMean: Float32Array.from(sumAbs, (v) => v / tokens), tokens, cols };
  }

  /** X^T X read back (for tests and inspection). */
  async gramMatrix(x: Float32Array, tokens: number, cols: number, opts: AwqGpuOptions = {}): Promise<Float32Array> {
    const st = await this.activationStats(x, tokens, cols, opts);
    try {
      return await this.ctx.readF32(st.gram, cols * cols);
    } finally {
      this.release(st.gram);
    }
  }

  /** Q(W * s_r) / s_r for R scale vectors `scales` [R, in]: a buffer [R, out, in]. Caller releases it. */
  async candidates(w: GPUBuffer, shape: readonly number[], scales: Float32Array, quantIn: QuantConfig): Promise<GPUBuffer> {
    const { ctx, kernels } = this;
    const quant = awqQuantConfig(quantIn);
    const [out, cols] = shape;
    const perRatio = out * cols;
    const ratios = scales.length / cols;
    const n = perRatio * ratios;
    const layout = makeGroupLayout([ratios * out, cols], quant.granularity, quant.groupSize);
    const held: GPUBuffer[] = [];
    try {
      const sb = ctx.upload(scales, 'AWQ scales');
      held.push(sb);
      const ws = ctx.storage(n * 4, 'scaled weights');
      held.push(ws);
      const p1 = ctx.uniform(new Uint32Array([perRatio, cols, ratios, 0]).buffer);
      held.push(p1);
      await ctx.run([{ shader: 'awq-scale-columns.wgsl', constants: { WG }, bindings: [p1, w, sb, ws], workgroups: grid(Math.ceil(n / WG)) }]);
      const stats = await kernels.groupStatsBuffer({ buffer: ws, length: n }, layout);
      held.push(stats);
      const qp = await kernels.qparamsBuffer(stats, layout.numGroups, quant);
      held.push(qp);
      const y = ctx.storage(n * 4, 'AWQ candidate weights');
      const p2 = ctx.uniform(new Uint32Array([n, layout.rowLen, layout.groupSize, layout.groupsPerRow, perRatio, 0, 0, 0]).buffer);
      held.push(p2);
      const constants = { WG, SYMMETRIC: quant.scheme === 'sym', BITS: quant.bits, FP8: quant.format === 'fp8-e4m3' };
      try {
        await ctx.run([{ shader: 'awq-fake-quantize-unscale.wgsl', constants, bindings: [p2, ws, qp, sb, y], workgroups: grid(Math.ceil(n / WG)) }]);
      } catch (e) {
        ctx.pool.release(y);
        throw e;
      }
      return y;
    } finally {
      ctx.pool.releaseAll(held);
    }
  }

  /** Output MSE of each of the R candidates in `wq` [R, out, in] from G: sum_o dW_o G dW_o^T / (tokens * out). */
  async gramLosses(w: GPUBuffer, wq: GPUBuffer, ratios: number, shape: readonly number[], gram: GPUBuffer, tokens: number): Promise<number[]> {
    const { ctx } = this;
    const [out, cols] = shape;
    const colTiles = Math.ceil(cols / TILE);
    const params = ctx.uniform(new Uint32Array([out, cols, colTiles, 0]).buffer);
    const partial = ctx.storage(ratios * out * colTiles * 4, 'Gram loss partials');
    try {
      await ctx.run([{ shader: 'awq-gram-loss.wgsl', bindings: [params, w, wq, gram, partial], workgroups: [colTiles, Math.ceil(out / TILE), ratios] }]);
      const f = await ctx.readF32(partial, ratios * out * colTiles);
      const per = out * colTiles;
      return Array.from({ length: ratios }, (_, r) => {
        let s = 0;
        for (let i = r * per; i < (r + 1) * per; i++) s += f[i];
        return s / (tokens * out);
      });
    } finally {
      ctx.pool.releaseAll([params, partial]);
    }
  }

  /** Y = X W^T with linear.wgsl. Caller releases the result. */
  private async linear(x: GPUBuffer, w: GPUBuffer, tokens: number, out: number, cols: number): Promise<GPUBuffer> {
    const { ctx } = this;
    const params = ctx.uniform(new Uint32Array([tokens, out, cols, 0]).buffer);
    const noBias = ctx.storage(4, 'no bias');
    const y = ctx.storage(tokens * out * 4, 'layer output');
    try {
      await ctx.run([{ shader: 'linear.wgsl', bindings: [params, x, w, noBias, y], workgroups: [Math.ceil(out / TILE), Math.ceil(tokens / TILE)] }]);
      return y;
    } catch (e) {
      ctx.pool.release(y);
      throw e;
    } finally {
      ctx.pool.releaseAll([params, noBias]);
    }
  }

  /** Output MSE of each candidate computed directly: mean (X W^T - X Wq^T)^2, one matmul per candidate. */
  async directLosses(x: GPUBuffer, y0: GPUBuffer, wq: GPUBuffer, ratios: number, shape: readonly number[], tokens: number): Promise<number[]> {
    const { ctx, kernels } = this;
    const [out, cols] = shape;
    const bytes = out * cols * 4;
    const losses: number[] = [];
    const one = ctx.storage(bytes, 'candidate weight');
    try {
      for (let r = 0; r < ratios; r++) {
        await ctx.run([{ copy: { src: wq, srcOffset: r * bytes, dst: one, dstOffset: 0, size: bytes } }]);
        const y = await this.linear(x, one, tokens, out, cols);
        try {
          const m = await kernels.errorMetrics({ buffer: y0, length: tokens * out }, { buffer: y, length: tokens * out });
          losses.push(m.sse / (tokens * out));
        } finally {
          ctx.pool.release(y);
        }
      }
    } finally {
      ctx.pool.release(one);
    }
    return losses;
  }

  /** The scale search on the GPU: the same result as awqSearchRef (losses to float32 summation tolerance). */
  async search(w: Float32Array, shape: readonly number[], x: Float32Array, tokens: number, cfg: AwqConfig, opts: AwqGpuOptions = {}): Promise<AwqSearchResult> {
    checkLayerShapes(w, shape, x, tokens);
    const stats = await this.activationStats(x, tokens, shape[1], { ...opts, gram: (cfg.loss ?? 'gram') === 'gram' });
    try {
      return await this.searchWithStats(w, shape, x, stats, cfg, opts);
    } finally {
      this.release(stats.gram);
    }
  }

  private async searchWithStats(w: Float32Array, shape: readonly number[], x: Float32Array, stats: AwqActivationStats, cfg: AwqConfig, opts: AwqGpuOptions): Promise<AwqSearchResult> {
    const { ctx } = this;
    const quant = awqQuantConfig(cfg.quant);
    awqLayout(shape, quant);
    const [out, cols] = shape;
    const { tokens, xMean } = stats;
    const ratios = awqRatios(cfg.grid);
    const wMean = cfg.duo ? wMeanOfWeight(w, shape, quant.groupSize) : undefined;
    // Every ratio's scales, then s = 1 (plain RTN) last.
    const all = ratios.map((r) => awqScalesForRatio(xMean, wMean, r, cfg.duo));
    all.push(new Float32Array(cols).fill(1));
    const direct = (cfg.loss ?? 'gram') === 'direct';
    const held: GPUBuffer[] = [];
    try {
      const wb = ctx.upload(w, 'weight');
      held.push(wb);
      let xb: GPUBuffer | undefined;
      let y0: GPUBuffer | undefined;
      if (direct) {
        xb = ctx.upload(x, 'activations');
        held.push(xb);
        y0 = await this.linear(xb, wb, tokens, out, cols);
        held.push(y0);
      }
      const perBatch = Math.max(1, Math.min(all.length, Math.floor((opts.maxCandidateBytes ?? 64 * 2 ** 20) / (out * cols * 4))));
      const losses: number[] = [];
      for (let r0 = 0; r0 < all.length; r0 += perBatch) {
        const batch = all.slice(r0, r0 + perBatch);
        const s = new Float32Array(batch.length * cols);
        batch.forEach((v, i) => s.set(v, i * cols));
        const wq = await this.candidates(wb, shape, s, quant);
        try {
          losses.push(...(direct ? await this.directLosses(xb!, y0!, wq, batch.length, shape, tokens) : await this.gramLosses(wb, wq, batch.length, shape, stats.gram, tokens)));
        } finally {
          ctx.pool.release(wq);
        }
      }
      const rtnLoss = losses.pop()!;
      const bestIndex = argminFirst(losses);
      const scales = all[bestIndex];
      const wq = await this.candidates(wb, shape, scales, quant);
      const quantizedWeight = await ctx.readF32(wq, out * cols);
      ctx.pool.release(wq);
      return { ratios, losses, bestRatio: ratios[bestIndex], bestIndex, scales, quantizedWeight, rtnLoss, xMean, wMean };
    } finally {
      ctx.pool.releaseAll(held);
    }
  }

  /** W * s on the GPU (a buffer [out, in]). Caller releases it. */
  private async scaleColumns(w: GPUBuffer, shape: readonly number[], s: Float32Array): Promise<GPUBuffer> {
    const { ctx } = this;
    const n = shape[0] * shape[1];
    const sb = ctx.upload(s, 'AWQ scales');
    const params = ctx.uniform(new Uint32Array([n, shape[1], 1, 0]).buffer);
    const y = ctx.storage(n * 4, 'scaled weight');
    try {
      await ctx.run([{ shader: 'awq-scale-columns.wgsl', constants: { WG }, bindings: [params, w, sb, y], workgroups: grid(Math.ceil(n / WG)) }]);
      return y;
    } catch (e) {
      ctx.pool.release(y);
      throw e;
    } finally {
      ctx.pool.releaseAll([sb, params]);
    }
  }

  /**
   * The clip search on the GPU: `ws` is the scaled weight W*s, `xs` the activations divided by s
   * [tokens, in] (sampled here, as awqClipRef does).
   */
  async clip(ws: Float32Array | GpuTensor, shape: readonly number[], xs: Float32Array, tokens: number, quantIn: QuantConfig): Promise<AwqClipResult> {
    const { ctx, kernels } = this;
    const quant = awqQuantConfig(quantIn);
    const layout = awqLayout(shape, quant);
    const cols = shape[1];
    if (xs.length !== tokens * cols) throw new RangeError(`activations hold ${xs.length} values, [${tokens}, ${cols}] needs ${tokens * cols}`);
    const { rows, count } = clipSampleTokens(xs, tokens, cols);
    const factors = clipFactors();
    const nc = AWQ_CLIP_CANDIDATES;
    const held: GPUBuffer[] = [];
    try {
      let wsBuf: GPUBuffer;
      if (ws instanceof Float32Array) {
        wsBuf = ctx.upload(ws, 'scaled weight');
        held.push(wsBuf);
      } else wsBuf = ws.buffer;
      const stats = await kernels.groupStatsBuffer({ buffer: wsBuf, length: layout.n }, layout);
      held.push(stats);
      const fb = ctx.upload(factors, 'clip factors');
      const xb = ctx.upload(rows, 'sampled activations');
      const errs = ctx.storage(layout.numGroups * nc * 4, 'clip errors');
      const params = ctx.uniform(new Uint32Array([cols, layout.groupSize, layout.groupsPerRow, layout.numGroups, count, 0, 0, 0]).buffer);
      held.push(fb, xb, errs, params);
      const constants = { WG: 64, SYMMETRIC: quant.scheme === 'sym', BITS: quant.bits, FP8: quant.format === 'fp8-e4m3' };
      await ctx.run([{ shader: 'awq-clip-search.wgsl', constants, bindings: [params, wsBuf, stats, fb, xb, errs], workgroups: grid(layout.numGroups) }]);
      const raw = await ctx.readF32(errs, layout.numGroups * nc);
      const origMax = decodeGroupStats(await ctx.read(stats, layout.numGroups * STATS_BYTES), layout.numGroups).absmax;
      const errors = Float64Array.from(raw, (v) => v / count);
      const maxVal = new Float32Array(layout.numGroups);
      const choice = new Uint8Array(layout.numGroups);
      for (let g = 0; g < layout.numGroups; g++) {
        let best = 0;
        for (let c = 1; c < nc; c++) if (errors[g * nc + c] < errors[g * nc + best]) best = c;
        choice[g] = best;
        maxVal[g] = fround(origMax[g] * factors[best]);
      }
      const clipped = await this.clampGroups(wsBuf, shape, maxVal, quant);
      held.push(clipped);
      const q = await kernels.quantize({ buffer: clipped, length: layout.n }, layout, quant);
      return { maxVal, origMax, choice, errors, clippedWeight: q.dequantized, sampledTokens: count };
    } finally {
      ctx.pool.releaseAll(held);
    }
  }

  /** clamp(x, -maxVal[g], maxVal[g]) per group. Caller releases the result. */
  private async clampGroups(x: GPUBuffer, shape: readonly number[], maxVal: Float32Array, quant: QuantConfig): Promise<GPUBuffer> {
    const { ctx } = this;
    const layout = awqLayout(shape, quant);
    const mb = ctx.upload(maxVal, 'clip thresholds');
    const params = ctx.uniform(new Uint32Array([layout.n, layout.rowLen, layout.groupSize, layout.groupsPerRow]).buffer);
    const y = ctx.storage(layout.n * 4, 'clipped weight');
    try {
      await ctx.run([{ shader: 'awq-clamp-groups.wgsl', constants: { WG }, bindings: [params, x, mb, y], workgroups: grid(Math.ceil(layout.n / WG)) }]);
      return y;
    } catch (e) {
      ctx.pool.release(y);
      throw e;
    } finally {
      ctx.pool.releaseAll([mb, params]);
    }
  }

  /** Q(clamp(W*s)) / s with codes and parameters of the scaled domain, as quantizeScaledRef. */
  async quantizeScaled(w: Float32Array, shape: readonly number[], s: Float32Array, quantIn: QuantConfig, maxVal?: Float32Array): Promise<AwqQuantized> {
    const { ctx, kernels } = this;
    const quant = awqQuantConfig(quantIn);
    const layout = awqLayout(shape, quant);
    const held: GPUBuffer[] = [];
    try {
      const wb = ctx.upload(w, 'weight');
      held.push(wb);
      let ws = await this.scaleColumns(wb, shape, s);
      held.push(ws);
      if (maxVal) {
        ws = await this.clampGroups(ws, shape, maxVal, quant);
        held.push(ws);
      }
      const q = await kernels.quantize({ buffer: ws, length: layout.n }, layout, quant);
      const cols = shape[1];
      // The division by s is O(out * in): float32-exact on the CPU, as in the reference.
      const weight = q.dequantized.map((v, i) => fround(v / s[i % cols]));
      return { weight, codes: q.codes, qparams: q.qparams };
    } finally {
      ctx.pool.releaseAll(held);
    }
  }

  /** Scale search, clip search (unless `clip` is false) and the final quantization, as awqLayerRef. */
  async layer(w: Float32Array, shape: readonly number[], x: Float32Array, tokens: number, cfg: AwqConfig & { clip?: boolean }, opts: AwqGpuOptions = {}): Promise<AwqLayerResult> {
    const { ctx } = this;
    checkLayerShapes(w, shape, x, tokens);
    const direct = (cfg.loss ?? 'gram') === 'direct';
    const stats = await this.activationStats(x, tokens, shape[1], { ...opts, gram: !direct });
    try {
      const search = await this.searchWithStats(w, shape, x, stats, cfg, opts);
      let clip: AwqClipResult | undefined;
      if (cfg.clip !== false) {
        const wb = ctx.upload(w, 'weight');
        try {
          const ws = await this.scaleColumns(wb, shape, search.scales);
          try {
            clip = await this.clip({ buffer: ws, length: w.length }, shape, divideColumns(x, tokens, search.scales), tokens, cfg.quant);
          } finally {
            ctx.pool.release(ws);
          }
        } finally {
          ctx.pool.release(wb);
        }
      }
      const quantized = await this.quantizeScaled(w, shape, search.scales, cfg.quant, clip?.maxVal);
      const finalLoss = await this.lossOf(w, quantized.weight, shape, x, stats, direct);
      return { search, clip, quantized, finalLoss };
    } finally {
      this.release(stats.gram);
    }
  }

  private async lossOf(w: Float32Array, wq: Float32Array, shape: readonly number[], x: Float32Array, stats: AwqActivationStats, direct: boolean): Promise<number> {
    const { ctx } = this;
    const [out, cols] = shape;
    const held: GPUBuffer[] = [];
    try {
      const wb = ctx.upload(w, 'weight');
      const qb = ctx.upload(wq, 'quantized weight');
      held.push(wb, qb);
      if (!direct) return (await this.gramLosses(wb, qb, 1, shape, stats.gram, stats.tokens))[0];
      const xb = ctx.upload(x, 'activations');
      held.push(xb);
      const y0 = await this.linear(xb, wb, stats.tokens, out, cols);
      held.push(y0);
      return (await this.directLosses(xb, y0, qb, 1, shape, stats.tokens))[0];
    } finally {
      ctx.pool.releaseAll(held);
    }
  }
}

/** awqSearchRef on the GPU of `ctx`. */
export function awqSearchGpu(ctx: GpuContext, w: Float32Array, shape: readonly number[], x: Float32Array, tokens: number, cfg: AwqConfig, opts?: AwqGpuOptions): Promise<AwqSearchResult> {
  return new GpuAwq(ctx).search(w, shape, x, tokens, cfg, opts);
}

/** awqClipRef on the GPU of `ctx`. */
export function awqClipGpu(ctx: GpuContext, ws: Float32Array, shape: readonly number[], xs: Float32Array, tokens: number, quant: QuantConfig): Promise<AwqClipResult> {
  return new GpuAwq(ctx).clip(ws, shape, xs, tokens, quant);
}
