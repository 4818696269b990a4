/**
 * Running statistics of one activation tensor, accumulated on the GPU batch by batch so that no batch
 * has to be kept: per-channel min / max / max|x| / sum|x| (column-stats.wgsl partials merged into the running state by
 * group-stats-combine.wgsl), per-token min / max / max|x| (act-row-stats.wgsl, or group-stats.wgsl for short rows), the growing 2048-bin |x| histogram, NaN/Inf counts,
 * the exponential moving average of per-batch min / max, and a snapshot of the first tokens for the
 * channel x token view. The host reads back one small vector per batch (the per-token statistics): it
 * needs the batch's range to grow the histogram before adding the batch.
 * No Node imports: the browser worker uses this file.
 */
import { grid, type GpuContext } from '../gpu/context.ts';
import { decodeGroupStats, QuantKernels, type GpuTensor } from '../quant/gpu-kernels.ts';
import { GpuGrowingHistogram } from './gpu-calib.ts';
import { MovingAverageMinMax } from './calibrators.ts';
import type { ActivationSummary } from './types.ts';

const WG = 256;
const STATS_BYTES = 32;
const ROW_STATS_BYTES = 16;

export interface ActivationStatsOptions {
  /** Tokens whose max |x| is kept for the outlier view (the first ones seen). Default 4096. */
  tokenLimit?: number;
  /** Tokens of the first batch kept as |x| [tokens, channels] for the channel x token map. Default 64. */
  snapshotTokens?: number;
}

/** The per-batch host-side part of the statistics (shared by the GPU accumulator and the CPU reference). */
export class BatchTotals {
  tokens = 0;
  batches = 0;
  nonFinite = 0;
  min = Infinity;
  max = -Infinity;
  absmax = 0;
  readonly ema = new MovingAverageMinMax();
  readonly tokenAbsmax: number[] = [];

  constructor(readonly tokenLimit: number) {}

  /** Row statistics of one batch: min, max, absmax and non-finite count per row. */
  addRows(rowMin: ArrayLike<number>, rowMax: ArrayLike<number>, rowAbsmax: ArrayLike<number>, rowBad: ArrayLike<number>, rowHasFinite: (r: number) => boolean): { batchAbsmax: number } {
    let bmin = Infinity;
    let bmax = -Infinity;
    let babs = 0;
    for (let r = 0; r < rowMin.length; r++) {
      this.nonFinite += rowBad[r];
      if (this.tokenAbsmax.length < this.tokenLimit) this.tokenAbsmax.push(rowAbsmax[r]);
      if (!rowHasFinite(r)) continue;
      bmin = Math.min(bmin, rowMin[r]);
      bmax = Math.max(bmax, rowMax[r]);
      babs = Math.max(babs, rowAbsmax[r]);
    }
    this.tokens += rowMin.length;
    this.batches++;
    if (bmin <= bmax) {
      this.min = Math.min(this.min, bmin);
      this.max = Math.max(this.max, bmax);
      this.absmax = Math.max(this.absmax, babs);
      this.ema.addBatch(bmin, bmax);
    }
    return { batchAbsmax: babs };
  }
}

export class ActivationStatsGpu {
  private state: GPUBuffer;
  private readonly hist: GpuGrowingHistogram;
  private readonly kernels: QuantKernels;
  private readonly totals: BatchTotals;
  private snapshot?: { tokens: number; data: Float32Array };
  private readonly snapshotTokens: number;
  private disposed = false;

  constructor(
    readonly ctx: GpuContext,
    readonly name: string,
    readonly layers: string[],
    readonly channels: number,
    opts: ActivationStatsOptions = {},
  ) {
    if (!(Number.isInteger(channels) && channels > 0)) throw new RangeError(`activation ${name}: channel count must be a positive integer, got ${channels}`);
    this.state = ctx.storage(channels * STATS_BYTES, `statistics of ${name}`);
    this.hist = new GpuGrowingHistogram(ctx);
    this.kernels = new QuantKernels(ctx);
    this.totals = new BatchTotals(opts.tokenLimit ?? 4096);
    this.snapshotTokens = opts.snapshotTokens ?? 64;
  }

  /** Add a batch: x holds [rows, channels] row-major (rows * channels floats from offset 0). */
  async add(x: GpuTensor, rows: number): Promise<void> {
    if (this.disposed) throw new Error(`statistics of ${this.name} were disposed`);
    const { ctx, channels: cols } = this;
    if (rows <= 0) return;
    if (x.length < rows * cols) throw new RangeError(`activation ${this.name}: batch of ${rows} x ${cols} needs ${rows * cols} values, the buffer has ${x.length}`);
    const rowsPerChunk = Math.max(64, Math.ceil(rows / 1024));
    const numChunks = Math.ceil(rows / rowsPerChunk);
    const colParams = ctx.uniform(new Uint32Array([rows, cols, rowsPerChunk, numChunks]).buffer);
    const partial = ctx.storage(cols * numChunks * STATS_BYTES, 'column partials');
    const mergeParams = ctx.uniform(new Uint32Array([cols, numChunks, this.totals.batches === 0 ? 1 : 0, 0]).buffer);
    let rowStats: GPUBuffer | undefined;
    try {
      await ctx.run([
        { shader: 'column-stats.wgsl', constants: { WG }, bindings: [colParams, x.buffer, partial], workgroups: [Math.ceil(cols / WG), numChunks] },
        { shader: 'group-stats-combine.wgsl', constants: { WG, ACCUMULATE: true }, bindings: [mergeParams, partial, this.state], workgroups: grid(Math.ceil(cols / WG)) },
      ]);
      const { batchAbsmax } = await this.addRowStats(x, rows, (b) => (rowStats = b));
      await this.hist.add({ buffer: x.buffer, length: rows * cols }, batchAbsmax);
      if (!this.snapshot && this.snapshotTokens > 0) {
        const t = Math.min(rows, this.snapshotTokens);
        const data = new Float32Array(await ctx.read(x.buffer, t * cols * 4));
        for (let i = 0; i < data.length; i++) data[i] = Math.abs(data[i]);
        this.snapshot = { tokens: t, data };
      }
    } finally {
      ctx.pool.releaseAll([colParams, partial, mergeParams, ...(rowStats ? [rowStats] : [])]);
    }
  }

  /**
   * Per-token min / max / max|x| / NaN count of a batch, read back and added to the totals. Rows of at most 64
   * values go through the quantizer's group-stats.wgsl (one thread per row, no reduction tree); longer rows
   * through act-row-stats.wgsl (one workgroup per row), which is faster there (512 x 768 on SwiftShader: 62 ms
   * against 510 ms with group-stats' 256-thread tree; 7680 x 64: 484 ms against 108 ms the other way round).
   */
  private async addRowStats(x: GpuTensor, rows: number, hold: (b: GPUBuffer) => void): Promise<{ batchAbsmax: number }> {
    const { ctx, channels: cols } = this;
    if (cols <= 64) {
      const b = await this.kernels.groupStatsBuffer(x, { n: rows * cols, rowLen: cols, groupSize: cols, groupsPerRow: 1, numGroups: rows });
      hold(b);
      const r = decodeGroupStats(await ctx.read(b, rows * STATS_BYTES), rows);
      return this.totals.addRows(r.min, r.max, r.absmax, r.nonFinite, (k) => r.count[k] > 0);
    }
    const params = ctx.uniform(new Uint32Array([rows, cols, 0, 0]).buffer);
    const b = ctx.storage(rows * ROW_STATS_BYTES, 'row statistics');
    hold(b);
    try {
      await ctx.run([{ shader: 'act-row-stats.wgsl', constants: { WG: 64 }, bindings: [params, x.buffer, b], workgroups: grid(rows) }]);
    } finally {
      ctx.pool.release(params);
    }
    const raw = await ctx.read(b, rows * ROW_STATS_BYTES);
    const f = new Float32Array(raw);
    const u = new Uint32Array(raw);
    const pick = (k: number) => Array.from({ length: rows }, (_, r) => f[4 * r + k]);
    const bad = Array.from({ length: rows }, (_, r) => u[4 * r + 3]);
    return this.totals.addRows(pick(0), pick(1), pick(2), bad, (r) => bad[r] < cols);
  }

  /** Everything accumulated so far (the state stays on the GPU; more batches may follow). */
  async summary(): Promise<ActivationSummary> {
    const { ctx, channels } = this;
    const t = this.totals;
    const channelAbsmax = new Float32Array(channels);
    const channelMeanAbs = new Float32Array(channels);
    if (t.batches > 0) {
      const s = decodeGroupStats(await ctx.read(this.state, channels * STATS_BYTES), channels);
      for (let c = 0; c < channels; c++) {
        channelAbsmax[c] = s.count[c] ? s.absmax[c] : 0;
        channelMeanAbs[c] = s.meanAbs[c];
      }
    }
    const h = await this.hist.read();
    return summaryFrom(this.name, this.layers, channels, t, channelAbsmax, channelMeanAbs, { counts: h.counts, range: h.range }, this.snapshot);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.ctx.pool.release(this.state);
    this.hist.dispose();
  }
}

export function summaryFrom(
  name: string,
  layers: string[],
  channels: number,
  t: BatchTotals,
  channelAbsmax: Float32Array,
  channelMeanAbs: Float32Array,
  histogram: { counts: Uint32Array; range: number },
  snapshot?: { tokens: number; data: Float32Array },
): ActivationSummary {
  const any = t.min <= t.max;
  return {
    name,
    layers,
    channels,
    tokens: t.tokens,
    batches: t.batches,
    nonFinite: t.nonFinite,
    min: any ? t.min : 0,
    max: any ? t.max : 0,
    absmax: t.absmax,
    channelAbsmax,
    channelMeanAbs,
    tokenAbsmax: Float32Array.from(t.tokenAbsmax),
    movingMin: t.ema.batches ? t.ema.min : 0,
    movingMax: t.ema.batches ? t.ema.max : 0,
    histogram,
    snapshot,
  };
}
