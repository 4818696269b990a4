/**
 * The W8A8 error evaluation of SmoothQuant on the GPU, the costly part of an alpha sweep (a matmul
 * [tokens, in] x [in, out] per linear and alpha). A group's sampled rows X, its weights W and the FP32
 * outputs Y = X W^T stay on the GPU across alphas; per alpha only the factors are uploaded:
 *   X / s and W * s        smooth-scale-columns.wgsl
 *   Q_a, Q_w                the quantizer kernels (group-stats, qparams, fake-quantize) through QuantKernels
 *   Q_a(X/s) Q_w(W*s)^T    linear.wgsl
 *   MSE, SQNR vs Y          error-metrics.wgsl
 * The CPU reference is groupErrorRef in smoothquant.ts. No Node imports.
 */
import { grid, type GpuContext } from '../gpu/context.ts';
import { encodeQParams, QuantKernels, type GpuTensor } from '../quant/gpu-kernels.ts';
import type { GroupLayout } from '../quant/layout.ts';
import { int8Scale, reciprocals, SmoothQuantError, type GroupErrorFn, type GroupSample, type LayerError, type W8A8Options } from './smoothquant.ts';

const WG = 256;
const INT8 = { bits: 8, granularity: 'channel', scheme: 'sym' } as const;

/** A group resident on the GPU: X [rows, channels], each W [out, channels] and its FP32 output Y [rows, out]. */
export interface GpuGroup {
  rows: number;
  channels: number;
  x: GpuTensor;
  linears: { name: string; out: number; w: GpuTensor; y: GpuTensor }[];
}

const rowsLayout = (rows: number, cols: number): GroupLayout => ({ n: rows * cols, rowLen: cols, groupSize: cols, groupsPerRow: 1, numGroups: rows });
const tensorLayout = (n: number): GroupLayout => ({ n, rowLen: n, groupSize: n, groupsPerRow: 1, numGroups: 1 });

export class SmoothQuantKernels {
  readonly quant: QuantKernels;
  private readonly dummy: GPUBuffer;

  constructor(readonly ctx: GpuContext) {
    this.quant = new QuantKernels(ctx);
    this.dummy = ctx.storage(16, 'no bias');
  }

  /** y [rows, out] = x [rows, k] . w [out, k]^T into a new buffer (linear.wgsl). Caller releases it. */
  private async matmul(x: GPUBuffer, w: GPUBuffer, rows: number, out: number, k: number): Promise<GpuTensor> {
    const { ctx } = this;
    const params = ctx.uniform(new Uint32Array([rows, out, k, 0]).buffer);
    const y = ctx.storage(rows * out * 4, 'linear output');
    try {
      await ctx.run([{ shader: 'linear.wgsl', constants: { ACCUMULATE: false, HAS_BIAS: false }, bindings: [params, x, w, this.dummy, y], workgroups: [Math.ceil(out / 64), Math.ceil(rows / 64)] }]);
    } finally {
      ctx.pool.release(params);
    }
    return { buffer: y, length: rows * out };
  }

  /** x [n / cols, cols] with column j multiplied by f[j] (smooth-scale-columns.wgsl). Caller releases it. */
  private async scaleColumns(x: GpuTensor, cols: number, f: GPUBuffer): Promise<GpuTensor> {
    const { ctx } = this;
    const params = ctx.uniform(new Uint32Array([x.length, cols, 0, 0]).buffer);
    const y = ctx.storage(x.length * 4, 'smoothed tensor');
    try {
      await ctx.run([{ shader: 'smooth-scale-columns.wgsl', constants: { WG }, bindings: [params, x.buffer, f, y], workgroups: grid(Math.ceil(x.length / WG)) }]);
    } finally {
      ctx.pool.release(params);
    }
    return { buffer: y, length: x.length };
  }

  /** Per-row INT8 fake quantization (per-token activations, per-output-channel weights). Caller releases it. */
  private async fakeQuantRows(x: GpuTensor, rows: number, cols: number): Promise<GpuTensor> {
    const layout = rowsLayout(rows, cols);
    const stats = await this.quant.groupStatsBuffer(x, layout);
    let qp: GPUBuffer | undefined;
    try {
      qp = await this.quant.qparamsBuffer(stats, rows, INT8);
      return { buffer: await this.quant.fakeQuantizeBuffer(x, layout, qp, INT8), length: x.length };
    } finally {
      this.ctx.pool.releaseAll(qp ? [stats, qp] : [stats]);
    }
  }

  private async fakeQuantTensor(x: GpuTensor, amax: number): Promise<GpuTensor> {
    const { scale, invScale } = int8Scale(amax);
    const qp = this.ctx.upload(encodeQParams({ scale: Float32Array.of(scale), invScale: Float32Array.of(invScale), zero: Float32Array.of(0) }), 'activation scale');
    try {
      return { buffer: await this.quant.fakeQuantizeBuffer(x, tensorLayout(x.length), qp, { ...INT8, granularity: 'tensor' }), length: x.length };
    } finally {
      this.ctx.pool.release(qp);
    }
  }

  /** Uploads a group and computes its FP32 outputs. Release with releaseGroup. */
  async uploadGroup(g: GroupSample): Promise<GpuGroup> {
    if (g.x.length !== g.rows * g.channels) throw new SmoothQuantError(`activation rows: ${g.x.length} values is not [${g.rows}, ${g.channels}]`);
    const x = this.quant.upload(g.x, 'sampled activations');
    const group: GpuGroup = { rows: g.rows, channels: g.channels, x, linears: [] };
    try {
      for (const l of g.linears) {
        if (l.weight.length !== l.out * g.channels) throw new SmoothQuantError(`${l.name}: ${l.weight.length} values is not [${l.out}, ${g.channels}]`);
        const w = this.quant.upload(l.weight, l.name);
        group.linears.push({ name: l.name, out: l.out, w, y: { buffer: this.dummy, length: 0 } });
        group.linears[group.linears.length - 1].y = await this.matmul(x.buffer, w.buffer, g.rows, l.out, g.channels);
      }
    } catch (e) {
      this.releaseGroup(group);
      throw e;
    }
    return group;
  }

  releaseGroup(g: GpuGroup): void {
    const bufs = [g.x.buffer, ...g.linears.flatMap((l) => [l.w.buffer, l.y.buffer])].filter((b) => b !== this.dummy);
    this.ctx.pool.releaseAll(bufs);
    g.linears = [];
  }

  /** W8A8 output error of every linear of the group for factors s (all ones: no smoothing). */
  async groupError(g: GpuGroup, s: Float32Array, opts: W8A8Options): Promise<LayerError[]> {
    const { ctx } = this;
    if (s.length !== g.channels) throw new SmoothQuantError(`${s.length} smoothing factors for ${g.channels} channels`);
    const held: GPUBuffer[] = [];
    try {
      const sb = ctx.upload(s, 'smoothing factors');
      held.push(sb);
      const inv = ctx.upload(reciprocals(s), 'inverse smoothing factors');
      held.push(inv);
      const xs = await this.scaleColumns(g.x, g.channels, inv);
      held.push(xs.buffer);
      let amax = opts.actAmax;
      if (opts.act === 'per-tensor' && amax === undefined) amax = (await this.quant.groupStats(xs, tensorLayout(xs.length))).absmax[0];
      const xq = opts.act === 'per-token' ? await this.fakeQuantRows(xs, g.rows, g.channels) : await this.fakeQuantTensor(xs, amax!);
      held.push(xq.buffer);
      const out: LayerError[] = [];
      for (const l of g.linears) {
        const ws = await this.scaleColumns(l.w, g.channels, sb);
        held.push(ws.buffer);
        const wq = await this.fakeQuantRows(ws, l.out, g.channels);
        held.push(wq.buffer);
        const yq = await this.matmul(xq.buffer, wq.buffer, g.rows, l.out, g.channels);
        held.push(yq.buffer);
        const m = await this.quant.errorMetrics(l.y, yq);
        out.push({ name: l.name, mse: m.mse, sqnr: m.sqnr });
      }
      return out;
    } finally {
      ctx.pool.releaseAll(held);
    }
  }

  dispose(): void {
    this.ctx.pool.release(this.dummy);
  }
}

/** A GroupErrorFn on the GPU for an uploaded group. */
export function gpuGroupError(k: SmoothQuantKernels, g: GpuGroup): GroupErrorFn {
  return (s, opts) => k.groupError(g, s, opts);
}

