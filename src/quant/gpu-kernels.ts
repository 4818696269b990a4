/**
 * The quantization kernels on the GPU: the same operations, with the same results, as the CPU reference
 * in ./reference (statistics, histogram, quantization parameters, quantize / dequantize / fake-quantize,
 * error metrics and the clipping sweep). Each method takes a Float32Array or a tensor already on the GPU.
 */
import { grid, type ComputeStep, type Constants, type GpuContext } from '../gpu/context.ts';
import { CancelledError } from '../gpu/errors.ts';
import { validateQuantConfig, type QuantConfig } from './config.ts';
import type { GroupLayout } from './layout.ts';
import { histogramInvBinWidth, HISTOGRAM_BINS, type AbsHistogram } from './reference/histogram.ts';
import { finishMetrics, type ClipSweepPoint, type ErrorMetrics } from './reference/metrics.ts';
import type { Codes, QParams } from './reference/quantize.ts';
import { allocGroupStats, type GroupStats } from './reference/stats.ts';

/** A float32 tensor resident on the GPU. */
export interface GpuTensor {
  buffer: GPUBuffer;
  length: number;
}

export type TensorInput = Float32Array | GpuTensor;

const WG = 256;
const STATS_BYTES = 32;
const QPARAMS_BYTES = 16;
/** Elements per workgroup for the reductions that write one partial per workgroup. */
const ELEMS_PER_WG = 32768;
const SWEEP_EPT = 32;

function nextPow2(v: number): number {
  let p = 1;
  while (p < v) p *= 2;
  return p;
}

function quantConstants(cfg: Required<QuantConfig>): Constants {
  return { SYMMETRIC: cfg.scheme === 'sym', BITS: cfg.bits, FP8: cfg.format === 'fp8-e4m3' };
}

function layoutWords(layout: GroupLayout): ArrayBuffer {
  return new Uint32Array([layout.n, layout.rowLen, layout.groupSize, layout.groupsPerRow]).buffer;
}

export function decodeGroupStats(raw: ArrayBuffer, numGroups: number): GroupStats {
  const f = new Float32Array(raw);
  const u = new Uint32Array(raw);
  const out = allocGroupStats(numGroups);
  for (let g = 0; g < numGroups; g++) {
    const o = g * 8;
    out.min[g] = f[o];
    out.max[g] = f[o + 1];
    out.absmax[g] = f[o + 2];
    out.count[g] = u[o + 4];
    out.nonFinite[g] = u[o + 5];
    out.meanAbs[g] = u[o + 4] ? f[o + 3] / u[o + 4] : 0;
  }
  return out;
}

export function decodeQParams(raw: ArrayBuffer, numGroups: number): QParams {
  const f = new Float32Array(raw);
  const out: QParams = { scale: new Float32Array(numGroups), invScale: new Float32Array(numGroups), zero: new Float32Array(numGroups) };
  for (let g = 0; g < numGroups; g++) {
    out.scale[g] = f[4 * g];
    out.invScale[g] = f[4 * g + 1];
    out.zero[g] = f[4 * g + 2];
  }
  return out;
}

export function encodeQParams(qp: QParams): Float32Array {
  const n = qp.scale.length;
  const f = new Float32Array(4 * n);
  for (let g = 0; g < n; g++) {
    f[4 * g] = qp.scale[g];
    f[4 * g + 1] = qp.invScale[g];
    f[4 * g + 2] = qp.zero[g];
  }
  return f;
}

export class QuantKernels {
  constructor(readonly ctx: GpuContext) {}

  /** Put an input on the GPU; `owned` says whether the caller of this helper must release it. */
  private input(x: TensorInput, what = 'input tensor'): { t: GpuTensor; owned: boolean } {
    if (x instanceof Float32Array) return { t: { buffer: this.ctx.upload(x, what), length: x.length }, owned: true };
    return { t: x, owned: false };
  }

  private done(...items: { t: GpuTensor; owned: boolean }[]): void {
    for (const it of items) if (it.owned) this.ctx.pool.release(it.t.buffer);
  }

  upload(x: Float32Array, what?: string): GpuTensor {
    return { buffer: this.ctx.upload(x, what), length: x.length };
  }

  release(t: GpuTensor | GPUBuffer): void {
    this.ctx.pool.release('buffer' in t ? t.buffer : t);
  }

  /** Per-group statistics into a GPU buffer of GroupStats structs (32 bytes each). Caller releases it. */
  async groupStatsBuffer(x: GpuTensor, layout: GroupLayout): Promise<GPUBuffer> {
    const { ctx } = this;
    const chunked = layout.groupSize > 16384 && layout.numGroups < 2048;
    const chunkLen = chunked ? 16384 : layout.groupSize;
    const chunksPerGroup = Math.ceil(layout.groupSize / chunkLen);
    const numSegs = layout.numGroups * chunksPerGroup;
    // Short groups: one thread per group (no reduction tree, whose barriers cost more than the loads).
    const tps = chunkLen <= 64 ? 1 : Math.min(WG, nextPow2(chunkLen));
    const segsPerWg = WG / tps;
    const out = ctx.storage(layout.numGroups * STATS_BYTES, 'group statistics');
    const partial = chunked ? ctx.storage(numSegs * STATS_BYTES, 'partial statistics') : out;
    const params = ctx.uniform(
      new Uint32Array([layout.n, layout.rowLen, layout.groupSize, layout.groupsPerRow, layout.numGroups, chunkLen, chunksPerGroup, chunked ? 0 : 1]).buffer,
    );
    const steps: ComputeStep[] = [
      { shader: 'group-stats.wgsl', constants: { WG, TPS: tps }, bindings: [params, x.buffer, partial], workgroups: grid(Math.ceil(numSegs / segsPerWg)) },
    ];
    let combineParams: GPUBuffer | undefined;
    if (chunked) {
      combineParams = ctx.uniform(new Uint32Array([layout.numGroups, chunksPerGroup, 0, 0]).buffer);
      steps.push({ shader: 'group-stats-combine.wgsl', constants: { WG }, bindings: [combineParams, partial, out], workgroups: grid(Math.ceil(layout.numGroups / WG)) });
    }
    try {
      await ctx.run(steps);
    } finally {
      ctx.pool.release(params);
      if (combineParams) ctx.pool.release(combineParams);
      if (chunked) ctx.pool.release(partial);
    }
    return out;
  }

  async groupStats(x: TensorInput, layout: GroupLayout): Promise<GroupStats> {
    const inp = this.input(x);
    try {
      const buf = await this.groupStatsBuffer(inp.t, layout);
      const raw = await this.ctx.read(buf, layout.numGroups * STATS_BYTES);
      this.ctx.pool.release(buf);
      return decodeGroupStats(raw, layout.numGroups);
    } finally {
      this.done(inp);
    }
  }

  /** Statistics of each column of x [rows, cols] (per input channel of an activation matrix). */
  async columnStats(x: TensorInput, rows: number, cols: number): Promise<GroupStats> {
    const { ctx } = this;
    const inp = this.input(x);
    const rowsPerChunk = Math.max(64, Math.ceil(rows / 1024));
    const numChunks = Math.ceil(rows / rowsPerChunk);
    const params = ctx.uniform(new Uint32Array([rows, cols, rowsPerChunk, numChunks]).buffer);
    const partial = ctx.storage(cols * numChunks * STATS_BYTES, 'column statistics');
    const combineParams = ctx.uniform(new Uint32Array([cols, numChunks, 0, 0]).buffer);
    const out = ctx.storage(cols * STATS_BYTES, 'column statistics');
    try {
      await ctx.run([
        { shader: 'column-stats.wgsl', constants: { WG }, bindings: [params, inp.t.buffer, partial], workgroups: [Math.ceil(cols / WG), numChunks] },
        { shader: 'group-stats-combine.wgsl', constants: { WG }, bindings: [combineParams, partial, out], workgroups: grid(Math.ceil(cols / WG)) },
      ]);
      return decodeGroupStats(await ctx.read(out, cols * STATS_BYTES), cols);
    } finally {
      ctx.pool.releaseAll([params, partial, combineParams, out]);
      this.done(inp);
    }
  }

  /** Absmax of each row of an activation matrix [tokens, channels]. */
  async perTokenAbsmax(x: TensorInput, rows: number, cols: number): Promise<Float32Array> {
    const s = await this.groupStats(x, { n: rows * cols, rowLen: cols, groupSize: cols, groupsPerRow: 1, numGroups: rows });
    return s.absmax;
  }

  /** 2048-bin histogram of |x| over [0, range]. */
  async absHistogram(x: TensorInput, range: number): Promise<AbsHistogram> {
    const { ctx } = this;
    const inv = histogramInvBinWidth(range);
    const inp = this.input(x);
    const n = inp.t.length;
    const words = new ArrayBuffer(16);
    new Uint32Array(words).set([n, 0, ELEMS_PER_WG * 4, 0]);
    new Float32Array(words)[1] = inv;
    const params = ctx.uniform(words);
    const counts = ctx.storage((HISTOGRAM_BINS + 1) * 4, 'histogram', true);
    try {
      await ctx.run([{ shader: 'abs-histogram.wgsl', constants: { WG }, bindings: [params, inp.t.buffer, counts], workgroups: grid(Math.ceil(n / (ELEMS_PER_WG * 4))) }]);
      const raw = new Uint32Array(await ctx.read(counts, (HISTOGRAM_BINS + 1) * 4));
      return { counts: raw.slice(0, HISTOGRAM_BINS), range: Math.fround(range), nonFinite: raw[HISTOGRAM_BINS] };
    } finally {
      ctx.pool.releaseAll([params, counts]);
      this.done(inp);
    }
  }

  /** Quantization parameters of every group from a GroupStats buffer. Caller releases the result. */
  async qparamsBuffer(stats: GPUBuffer, numGroups: number, cfgIn: QuantConfig): Promise<GPUBuffer> {
    const cfg = validateQuantConfig(cfgIn);
    const { ctx } = this;
    const words = new ArrayBuffer(16);
    new Uint32Array(words)[0] = numGroups;
    new Float32Array(words)[1] = cfg.clipRatio;
    const params = ctx.uniform(words);
    const qp = ctx.storage(numGroups * QPARAMS_BYTES, 'quantization parameters');
    try {
      await ctx.run([{ shader: 'qparams.wgsl', constants: { WG, ...quantConstants(cfg) }, bindings: [params, stats, qp], workgroups: grid(Math.ceil(numGroups / WG)) }]);
    } finally {
      ctx.pool.release(params);
    }
    return qp;
  }

  async readQParams(qp: GPUBuffer, numGroups: number): Promise<QParams> {
    return decodeQParams(await this.ctx.read(qp, numGroups * QPARAMS_BYTES), numGroups);
  }

  /** Packed codes (4 per u32) of x. Caller releases the result. */
  async quantizeBuffer(x: GpuTensor, layout: GroupLayout, qp: GPUBuffer, cfgIn: QuantConfig): Promise<GPUBuffer> {
    const cfg = validateQuantConfig(cfgIn);
    const { ctx } = this;
    const words = Math.ceil(layout.n / 4);
    const params = ctx.uniform(layoutWords(layout));
    const codes = ctx.storage(words * 4, 'codes');
    try {
      await ctx.run([{ shader: 'quantize.wgsl', constants: { WG, ...quantConstants(cfg) }, bindings: [params, x.buffer, qp, codes], workgroups: grid(Math.ceil(words / WG)) }]);
    } finally {
      ctx.pool.release(params);
    }
    return codes;
  }

  /** Elementwise kernel x -> y over the layout (dequantize or fake-quantize). Caller releases the result. */
  private async mapBuffer(shader: string, src: GPUBuffer, layout: GroupLayout, qp: GPUBuffer, cfg: Required<QuantConfig>): Promise<GPUBuffer> {
    const { ctx } = this;
    const params = ctx.uniform(layoutWords(layout));
    const y = ctx.storage(layout.n * 4, 'output tensor');
    try {
      await ctx.run([{ shader, constants: { WG, ...quantConstants(cfg) }, bindings: [params, src, qp, y], workgroups: grid(Math.ceil(layout.n / WG)) }]);
    } finally {
      ctx.pool.release(params);
    }
    return y;
  }

  async fakeQuantizeBuffer(x: GpuTensor, layout: GroupLayout, qp: GPUBuffer, cfg: QuantConfig): Promise<GPUBuffer> {
    return this.mapBuffer('fake-quantize.wgsl', x.buffer, layout, qp, validateQuantConfig(cfg));
  }

  async dequantizeBuffer(codes: GPUBuffer, layout: GroupLayout, qp: GPUBuffer, cfg: QuantConfig): Promise<GPUBuffer> {
    return this.mapBuffer('dequantize.wgsl', codes, layout, qp, validateQuantConfig(cfg));
  }

  /** Statistics, parameters, codes and dequantized values of x, all computed on the GPU. */
  async quantize(x: TensorInput, layout: GroupLayout, cfgIn: QuantConfig): Promise<{ stats: GroupStats; qparams: QParams; codes: Codes; dequantized: Float32Array }> {
    const cfg = validateQuantConfig(cfgIn);
    const { ctx } = this;
    const inp = this.input(x);
    const held: GPUBuffer[] = [];
    try {
      const stats = await this.groupStatsBuffer(inp.t, layout);
      held.push(stats);
      const qp = await this.qparamsBuffer(stats, layout.numGroups, cfg);
      held.push(qp);
      const codes = await this.quantizeBuffer(inp.t, layout, qp, cfg);
      held.push(codes);
      const deq = await this.dequantizeBuffer(codes, layout, qp, cfg);
      held.push(deq);
      const [rs, rq, rc, rd] = await Promise.all([
        ctx.read(stats, layout.numGroups * STATS_BYTES),
        ctx.read(qp, layout.numGroups * QPARAMS_BYTES),
        ctx.read(codes, layout.n),
        ctx.read(deq, layout.n * 4),
      ]);
      const signed = cfg.scheme === 'sym' && cfg.format === 'int';
      return {
        stats: decodeGroupStats(rs, layout.numGroups),
        qparams: decodeQParams(rq, layout.numGroups),
        codes: signed ? new Int8Array(rc) : new Uint8Array(rc),
        dequantized: new Float32Array(rd),
      };
    } finally {
      ctx.pool.releaseAll(held);
      this.done(inp);
    }
  }

  /** Dequantize codes with given parameters. */
  async dequantize(codes: Codes, layout: GroupLayout, qp: QParams, cfg: QuantConfig): Promise<Float32Array> {
    const { ctx } = this;
    const bytes = new Uint8Array(Math.ceil(codes.length / 4) * 4);
    bytes.set(new Uint8Array(codes.buffer, codes.byteOffset, codes.length));
    const cb = ctx.upload(bytes, 'codes');
    const qb = ctx.upload(encodeQParams(qp), 'quantization parameters');
    try {
      const y = await this.dequantizeBuffer(cb, layout, qb, cfg);
      const out = await ctx.readF32(y, layout.n);
      ctx.pool.release(y);
      return out;
    } finally {
      ctx.pool.releaseAll([cb, qb]);
    }
  }

  /** Fake-quantize x with given parameters (or, without them, parameters computed from x on the GPU). */
  async fakeQuantize(x: TensorInput, layout: GroupLayout, cfg: QuantConfig, qparams?: QParams): Promise<Float32Array> {
    const { ctx } = this;
    const inp = this.input(x);
    const held: GPUBuffer[] = [];
    try {
      let qb: GPUBuffer;
      if (qparams) {
        qb = ctx.upload(encodeQParams(qparams), 'quantization parameters');
      } else {
        const stats = await this.groupStatsBuffer(inp.t, layout);
        held.push(stats);
        qb = await this.qparamsBuffer(stats, layout.numGroups, cfg);
      }
      held.push(qb);
      const y = await this.fakeQuantizeBuffer(inp.t, layout, qb, cfg);
      held.push(y);
      return await ctx.readF32(y, layout.n);
    } finally {
      ctx.pool.releaseAll(held);
      this.done(inp);
    }
  }

  /** MSE, SQNR and max error of y against x. */
  async errorMetrics(x: TensorInput, y: TensorInput): Promise<ErrorMetrics> {
    const { ctx } = this;
    const a = this.input(x);
    const b = this.input(y);
    const n = a.t.length;
    if (b.t.length !== n) throw new RangeError(`length mismatch: ${n} vs ${b.t.length}`);
    const numWg = Math.max(1, Math.ceil(n / ELEMS_PER_WG));
    const params = ctx.uniform(new Uint32Array([n, ELEMS_PER_WG, numWg, 0]).buffer);
    const partial = ctx.storage(numWg * 16, 'metric partials');
    try {
      await ctx.run([{ shader: 'error-metrics.wgsl', constants: { WG }, bindings: [params, a.t.buffer, b.t.buffer, partial], workgroups: grid(numWg) }]);
      const raw = await ctx.read(partial, numWg * 16);
      const f = new Float32Array(raw);
      const u = new Uint32Array(raw);
      let sse = 0;
      let ssx = 0;
      let mx = 0;
      let cnt = 0;
      for (let i = 0; i < numWg; i++) {
        sse += f[4 * i];
        ssx += f[4 * i + 1];
        mx = Math.max(mx, f[4 * i + 2]);
        cnt += u[4 * i + 3];
      }
      return finishMetrics(cnt, sse, ssx, mx);
    } finally {
      ctx.pool.releaseAll([params, partial]);
      this.done(a, b);
    }
  }

  /** Clipping and rounding error for every clip ratio, in one dispatch, from per-group statistics already on the GPU. */
  async clipSweepFromStats(x: GpuTensor, layout: GroupLayout, stats: GPUBuffer, cfgIn: QuantConfig, ratios: readonly number[]): Promise<ClipSweepPoint[]> {
    const cfg = validateQuantConfig(cfgIn);
    const { ctx } = this;
    if (ratios.length === 0) return [];
    if (ratios.length > 65535) throw new RangeError('at most 65535 clip ratios per sweep');
    for (const r of ratios) validateQuantConfig({ ...cfg, clipRatio: r });
    const numBlocks = Math.max(1, Math.ceil(layout.n / (WG * SWEEP_EPT)));
    const [gx, gy] = grid(numBlocks);
    const params = ctx.uniform(new Uint32Array([layout.n, layout.rowLen, layout.groupSize, layout.groupsPerRow, numBlocks, ratios.length, 0, 0]).buffer);
    const rb = ctx.upload(new Float32Array(ratios), 'clip ratios');
    const partial = ctx.storage(ratios.length * numBlocks * 8, 'sweep partials');
    try {
      await ctx.run([
        { shader: 'clip-sweep.wgsl', constants: { WG, EPT: SWEEP_EPT, ...quantConstants(cfg) }, bindings: [params, x.buffer, stats, rb, partial], workgroups: [gx, gy, ratios.length] },
      ]);
      const f = new Float32Array(await ctx.read(partial, ratios.length * numBlocks * 8));
      const countBuf = await this.groupStatsCount(stats, layout.numGroups);
      return ratios.map((ratio, k) => {
        let clipSse = 0;
        let roundSse = 0;
        for (let b = 0; b < numBlocks; b++) {
          clipSse += f[2 * (k * numBlocks + b)];
          roundSse += f[2 * (k * numBlocks + b) + 1];
        }
        return { ratio, clipSse, roundSse, mse: countBuf ? (clipSse + roundSse) / countBuf : 0 };
      });
    } finally {
      ctx.pool.releaseAll([params, rb, partial]);
    }
  }

  private async groupStatsCount(stats: GPUBuffer, numGroups: number): Promise<number> {
    const s = decodeGroupStats(await this.ctx.read(stats, numGroups * STATS_BYTES), numGroups);
    let c = 0;
    for (let g = 0; g < numGroups; g++) c += s.count[g];
    return c;
  }

  async clipSweep(x: TensorInput, layout: GroupLayout, cfg: QuantConfig, ratios: readonly number[]): Promise<ClipSweepPoint[]> {
    const inp = this.input(x);
    let stats: GPUBuffer | undefined;
    try {
      stats = await this.groupStatsBuffer(inp.t, layout);
      return await this.clipSweepFromStats(inp.t, layout, stats, cfg, ratios);
    } finally {
      if (stats) this.ctx.pool.release(stats);
      this.done(inp);
    }
  }
}

export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new CancelledError();
}
