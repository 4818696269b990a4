/**
 * The histogram calibrators on the GPU: the MSE sweep (with its clipping / rounding split) and the entropy
 * sweep, one workgroup per candidate, and a growing |x| histogram that stays on the GPU across batches.
 * The CPU references are calibrators.ts and histogram.ts; the sweeps agree with them to f32 summation
 * accuracy (use refineBest to turn a GPU sweep into exactly the CPU's choice), the histogram bit for bit.
 */
import { grid, type GpuContext } from '../gpu/context.ts';
import type { GpuTensor } from '../quant/gpu-kernels.ts';
import { histogramInvBinWidth, HISTOGRAM_BINS } from '../quant/reference/histogram.ts';
import { binCentre, binEdge, SWEEP_START_BIN, symmetricQmax, validateHistogram } from './calibrators.ts';
import { grownRange, initialRange } from './histogram.ts';
import type { ClipRoundError, HistogramData, SweepPoint } from './types.ts';

const WG = 256;
const ENTROPY_WG = 128;
/** Elements per workgroup of abs-histogram.wgsl (as QuantKernels.absHistogram dispatches it). */
const HIST_ELEMS_PER_WG = 32768 * 4;

/** One MSE candidate: amax = centre of bin `index`, with the error split. */
export interface MseSweepPoint extends ClipRoundError {
  index: number;
  /** (clipSse + roundSse) / bins, the calibrator's value. */
  mse: number;
}

/** The GPU sweeps support INT2..INT8 (the kernels' integer tricks and one thread per level need qmax <= 127). */
function gpuQmax(bits: number): number {
  const qmax = symmetricQmax(bits);
  if (bits > 8) throw new RangeError(`the GPU calibrators support 2 to 8 bits, got ${bits}`);
  return qmax;
}

function countsAsU32(h: HistogramData): Uint32Array {
  if (h.counts instanceof Uint32Array) return h.counts;
  const out = new Uint32Array(h.counts.length);
  for (let k = 0; k < out.length; k++) {
    const c = h.counts[k];
    if (!(Number.isInteger(c) && c >= 0 && c <= 0xffffffff)) throw new RangeError(`histogram bin ${k} holds ${c}; the GPU needs integer counts below 2^32`);
    out[k] = c;
  }
  return out;
}

export class CalibKernels {
  constructor(readonly ctx: GpuContext) {}

  /** Clip / round error for thresholds given in bin widths (amax / (range / bins)). */
  private async clipRound(h: HistogramData, bits: number, amaxUnits: readonly number[]): Promise<{ clipSse: number; roundSse: number }[]> {
    const { ctx } = this;
    const qmax = gpuQmax(bits);
    const bins = h.counts.length;
    const params = ctx.uniform(new Uint32Array([bins, amaxUnits.length, 0, 0]).buffer);
    const counts = ctx.upload(countsAsU32(h), 'histogram');
    const cand = ctx.upload(new Float32Array(amaxUnits), 'clip thresholds');
    const out = ctx.storage(amaxUnits.length * 8, 'clip / round errors');
    try {
      await ctx.run([{ shader: 'calib-mse.wgsl', constants: { WG, BITS: bits, SYMMETRIC: true, FP8: false }, bindings: [params, counts, cand, out], workgroups: grid(amaxUnits.length) }]);
      const f = new Float32Array(await ctx.read(out, amaxUnits.length * 8));
      const w = h.range / bins;
      const clipUnit = (w / 2) ** 2;
      const roundUnit = (w / (2 * qmax)) ** 2;
      return amaxUnits.map((_, c) => ({ clipSse: f[2 * c] * clipUnit, roundSse: f[2 * c + 1] * roundUnit }));
    } finally {
      ctx.pool.releaseAll([params, counts, cand, out]);
    }
  }

  /** The MSE calibrator's sweep: candidates bins 128..bins-1, amax = bin centre; pick the first minimum of `mse`. */
  async mseSweep(h: HistogramData, bits: number): Promise<MseSweepPoint[]> {
    validateHistogram(h);
    const bins = h.counts.length;
    if (bins <= SWEEP_START_BIN) throw new RangeError(`the MSE calibrator needs more than ${SWEEP_START_BIN} histogram bins, got ${bins}`);
    const idx: number[] = [];
    for (let i = SWEEP_START_BIN; i < bins; i++) idx.push(i);
    const e = await this.clipRound(
      h,
      bits,
      idx.map((i) => i + 0.5),
    );
    return idx.map((index, c) => ({ index, amax: binCentre(h, index), clipSse: e[c].clipSse, roundSse: e[c].roundSse, mse: (e[c].clipSse + e[c].roundSse) / bins }));
  }

  /** Clip / round error for arbitrary thresholds (the chart of clipping versus rounding). */
  async clipRoundErrors(h: HistogramData, bits: number, amax: readonly number[]): Promise<ClipRoundError[]> {
    validateHistogram(h);
    const w = h.range / h.counts.length;
    const e = await this.clipRound(
      h,
      bits,
      amax.map((a) => (w > 0 ? a / w : 0)),
    );
    return amax.map((a, c) => ({ amax: a, ...e[c] }));
  }

  /** The entropy calibrator's sweep: stop bins 128..bins, amax = edge i, value KL(P || Q); pick the last minimum. */
  async entropySweep(h: HistogramData, bits: number): Promise<SweepPoint[]> {
    const { ctx } = this;
    validateHistogram(h);
    gpuQmax(bits);
    const bins = h.counts.length;
    if (bins <= SWEEP_START_BIN) throw new RangeError(`the entropy calibrator needs more than ${SWEEP_START_BIN} histogram bins, got ${bins}`);
    const n = bins - SWEEP_START_BIN + 1;
    const params = ctx.uniform(new Uint32Array([bins, 2 ** (bits - 1), SWEEP_START_BIN, n]).buffer);
    const counts = ctx.upload(countsAsU32(h), 'histogram');
    const out = ctx.storage(n * 8, 'entropy sweep');
    try {
      await ctx.run([{ shader: 'calib-entropy.wgsl', constants: { WG: ENTROPY_WG }, bindings: [params, counts, out], workgroups: grid(n) }]);
      const f = new Float32Array(await ctx.read(out, n * 8));
      const points: SweepPoint[] = [];
      for (let c = 0; c < n; c++) {
        const index = SWEEP_START_BIN + c;
        points.push({ index, amax: binEdge(h, index), value: f[2 * c + 1] !== 0 ? Infinity : f[2 * c] });
      }
      return points;
    } finally {
      ctx.pool.releaseAll([params, counts, out]);
    }
  }
}

/**
 * A 2048-bin |x| histogram on the GPU that grows with the data (semantics: GrowingHistogram in histogram.ts).
 * Word 2048 of the counts buffer is the non-finite count, as abs-histogram.wgsl writes it; that kernel
 * adds into the buffer with atomics, so every batch accumulates on top of the earlier ones.
 */
export class GpuGrowingHistogram {
  private counts: GPUBuffer;
  /** 0 until a batch with a nonzero value arrives. */
  range = 0;
  batches = 0;

  constructor(readonly ctx: GpuContext) {
    this.counts = ctx.storage((HISTOGRAM_BINS + 1) * 4, 'growing histogram', true);
  }

  /** The counts buffer (bins, then the non-finite count); valid until the next add() or dispose(). */
  get buffer(): GPUBuffer {
    return this.counts;
  }

  /** Adds a batch whose max |x| over finite values is `batchAbsmax`, growing the range first when needed. */
  async add(x: GpuTensor, batchAbsmax: number): Promise<void> {
    const { ctx } = this;
    if (!(Number.isFinite(batchAbsmax) && batchAbsmax >= 0)) throw new RangeError(`batch absmax must be a finite number >= 0, got ${batchAbsmax}`);
    if (this.range === 0) {
      if (batchAbsmax > 0) this.range = initialRange(batchAbsmax);
    } else if (batchAbsmax > this.range) {
      const g = grownRange(this.range, batchAbsmax);
      const params = ctx.uniform(new Uint32Array([HISTOGRAM_BINS, Math.min(g.doublings, Math.log2(HISTOGRAM_BINS)), 0, 0]).buffer);
      const grown = ctx.storage((HISTOGRAM_BINS + 1) * 4, 'growing histogram');
      try {
        await ctx.run([{ shader: 'hist-grow.wgsl', constants: { WG }, bindings: [params, this.counts, grown], workgroups: grid(Math.ceil((HISTOGRAM_BINS + 1) / WG)) }]);
      } catch (e) {
        ctx.pool.release(grown);
        throw e;
      } finally {
        ctx.pool.release(params);
      }
      ctx.pool.release(this.counts);
      this.counts = grown;
      this.range = g.range;
    }
    if (x.length > 0) {
      // Before the range is set every finite value is 0, which lands in bin 0 whatever the range.
      const words = new ArrayBuffer(16);
      new Uint32Array(words).set([x.length, 0, HIST_ELEMS_PER_WG, 0]);
      new Float32Array(words)[1] = histogramInvBinWidth(this.range || 1);
      const params = ctx.uniform(words);
      try {
        await ctx.run([{ shader: 'abs-histogram.wgsl', constants: { WG }, bindings: [params, x.buffer, this.counts], workgroups: grid(Math.ceil(x.length / HIST_ELEMS_PER_WG)) }]);
      } finally {
        ctx.pool.release(params);
      }
    }
    this.batches++;
  }

  async read(): Promise<{ counts: Uint32Array; range: number; nonFinite: number }> {
    const raw = new Uint32Array(await this.ctx.read(this.counts, (HISTOGRAM_BINS + 1) * 4));
    return { counts: raw.slice(0, HISTOGRAM_BINS), range: this.range, nonFinite: raw[HISTOGRAM_BINS] };
  }

  dispose(): void {
    this.ctx.pool.release(this.counts);
  }
}
