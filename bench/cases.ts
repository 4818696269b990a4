/**
 * What the benchmark measures at one size: a synthetic LLM-like weight [n / 4096, 4096] on the GPU, the
 * inputs each kernel needs (statistics, parameters, codes) computed once beforehand, and one case per
 * kernel and configuration with the bytes it moves, its GPU call and its CPU reference on the same input.
 *
 * Byte models count what a kernel must read and write in device memory, each byte once: x is 4n bytes,
 * packed codes n bytes, GroupStats 32 bytes and QParams 16 bytes per group. Re-reads that a cache
 * absorbs (a group's parameters read by every element of the group, global histogram atomics) are not
 * counted, so GB/s is the useful bandwidth, comparable with the copy kernel's 8n bytes.
 */
import type { GpuContext } from '../src/gpu/context.ts';
import { grid } from '../src/gpu/context.ts';
import type { QuantConfig } from '../src/quant/config.ts';
import { encodeQParams, QuantKernels, type GpuTensor } from '../src/quant/gpu-kernels.ts';
import { makeGroupLayout, type GroupLayout } from '../src/quant/layout.ts';
import { absHistogramRef, HISTOGRAM_BINS } from '../src/quant/reference/histogram.ts';
import { clipSweepRef, errorMetricsRef } from '../src/quant/reference/metrics.ts';
import { dequantizeRef, fakeQuantizeRef, qparamsRef, quantizeRef, type QParams } from '../src/quant/reference/quantize.ts';
import { columnStatsRef, groupStatsRef, type GroupStats } from '../src/quant/reference/stats.ts';
import { syntheticTensor } from '../src/quant/synthetic.ts';

/** Row length of the benchmark tensors: a typical LLM hidden size. */
export const COLS = 4096;
const STATS_BYTES = 32;
const QPARAMS_BYTES = 16;
/**
 * Mirrors of src/quant/gpu-kernels.ts's dispatch constants, for the byte models of the partial buffers
 * (tests/bench/cases.test.ts reads gpu-kernels.ts and fails when they drift apart).
 */
export const DISPATCH = {
  /** Threads per workgroup of every quantization kernel (and of the bench's copy kernel). */
  WG: 256,
  /** Elements per workgroup of error-metrics (one 16-byte partial each) and, times 4, of abs-histogram. */
  ELEMS_PER_WG: 32768,
  /** Elements per thread of the clip sweep: one 8-byte partial per ratio per WG * SWEEP_EPT elements. */
  SWEEP_EPT: 32,
  /** Groups longer than this (when there are fewer than STATS_CHUNK_MAX_GROUPS) are reduced in chunks of this many elements, then combined. */
  STATS_CHUNK: 16384,
  STATS_CHUNK_MAX_GROUPS: 2048,
  /** Column statistics: chunks of max(COL_MIN_ROWS, ceil(rows / COL_MAX_CHUNKS)) rows. */
  COL_MIN_ROWS: 64,
  COL_MAX_CHUNKS: 1024,
} as const;
const { WG, ELEMS_PER_WG, SWEEP_EPT, STATS_CHUNK, STATS_CHUNK_MAX_GROUPS, COL_MIN_ROWS, COL_MAX_CHUNKS } = DISPATCH;

/** Every kernel Fixture.cases() measures, in run order (copy first): what `--only` words are matched against. */
export const KERNEL_NAMES = ['copy', 'group-stats', 'column-stats', 'abs-histogram', 'qparams', 'quantize', 'dequantize', 'fake-quantize', 'error-metrics', 'clip-sweep'] as const;

export const INT4_ASYM_G128: QuantConfig = { bits: 4, granularity: 'group', groupSize: 128, scheme: 'asym' };
export const INT4_ASYM_G32: QuantConfig = { bits: 4, granularity: 'group', groupSize: 32, scheme: 'asym' };
export const INT8_SYM_CHANNEL: QuantConfig = { bits: 8, granularity: 'channel', scheme: 'sym' };

/** 16 evenly spaced clip ratios from 0.25 to 1 (the Playground sweeps 40 from 0.05). */
export const SWEEP_RATIOS: readonly number[] = Array.from({ length: 16 }, (_, i) => Math.fround(0.25 + (0.75 * i) / 15));
/** The CPU clip sweep takes about as long as 16 fake-quantizations: measure it on at most this many elements and scale. */
export const SWEEP_CPU_MAX_ELEMENTS = 2 ** 18;

export type Bound = 'baseline' | 'memory' | 'compute';

export interface CpuReference {
  run(): unknown;
  /** Elements the run covers; the time is scaled by the case's elements / this when fewer. */
  elements: number;
  note?: string;
}

export interface KernelCase {
  kernel: string;
  config: string;
  /** Compute passes one call dispatches (their GPU times are summed). */
  shaders: string[];
  bound: Bound;
  /** Elements processed by one call (n, or n times the number of ratios for the sweep). */
  elements: number;
  bytes: number;
  byteModel: string;
  /** One call on the resident input; releases what it allocates. */
  gpu(): Promise<unknown>;
  cpu: CpuReference;
}

/** The inputs each kernel reads besides x, computed on the CPU by the references and uploaded. */
interface Prepared {
  statsG32: GroupStats;
  statsG128: GroupStats;
  qpG32: QParams;
  qpG128: QParams;
  qpChannel: QParams;
  codesG128: Uint8Array;
  fakeQuantG32: Float32Array;
}

/** GroupStats as the kernels store them: 32 bytes per group (min, max, absmax, sum |x|, count, non-finite, 2 pad words). */
export function encodeGroupStats(s: GroupStats): ArrayBuffer {
  const numGroups = s.min.length;
  const raw = new ArrayBuffer(numGroups * STATS_BYTES);
  const f = new Float32Array(raw);
  const u = new Uint32Array(raw);
  for (let g = 0; g < numGroups; g++) {
    const o = 8 * g;
    f[o] = s.min[g];
    f[o + 1] = s.max[g];
    f[o + 2] = s.absmax[g];
    f[o + 3] = s.meanAbs[g] * s.count[g];
    u[o + 4] = s.count[g];
    u[o + 5] = s.nonFinite[g];
  }
  return raw;
}

/** The partial buffers of the reductions at n elements, as QuantKernels dispatches them (see DISPATCH). */
export function partials(n: number, rows = n / COLS): { statsChunks: number; statsChunked: boolean; colRowsPerChunk: number; colChunks: number; metricWgs: number; sweepBlocks: number } {
  // Per-tensor statistics: one group of n elements, chunked when longer than STATS_CHUNK.
  const numGroups = 1;
  const statsChunked = n > STATS_CHUNK && numGroups < STATS_CHUNK_MAX_GROUPS;
  const colRowsPerChunk = Math.max(COL_MIN_ROWS, Math.ceil(rows / COL_MAX_CHUNKS));
  return {
    statsChunked,
    statsChunks: statsChunked ? Math.ceil(n / STATS_CHUNK) : 1,
    colRowsPerChunk,
    colChunks: Math.ceil(rows / colRowsPerChunk),
    metricWgs: Math.max(1, Math.ceil(n / ELEMS_PER_WG)),
    sweepBlocks: Math.max(1, Math.ceil(n / (WG * SWEEP_EPT))),
  };
}

/** One size's tensor, on the CPU and on the GPU, with every kernel's prepared inputs (only the copy case's without `prepare`). */
export class Fixture {
  readonly rows: number;
  readonly layouts: { tensor: GroupLayout; channel: GroupLayout; g32: GroupLayout; g128: GroupLayout };
  readonly absmax: number;
  private readonly held: GPUBuffer[] = [];
  private gpuIn!: { x: GpuTensor; copyDst: GPUBuffer; copyParams: GPUBuffer; statsG32: GPUBuffer; statsG128: GPUBuffer; qpG32: GPUBuffer; qpG128: GPUBuffer; qpChannel: GPUBuffer; codesG128: GPUBuffer; fakeQuantG32: GPUBuffer };
  private cpuIn!: Prepared;

  private constructor(
    readonly k: QuantKernels,
    readonly n: number,
    readonly x: Float32Array,
    /** False: only the copy case, nothing computed beforehand (`--only model`). */
    readonly prepared: boolean,
  ) {
    this.rows = n / COLS;
    const shape = [this.rows, COLS];
    this.layouts = {
      tensor: makeGroupLayout(shape, 'tensor'),
      channel: makeGroupLayout(shape, 'channel'),
      g32: makeGroupLayout(shape, 'group', 32),
      g128: makeGroupLayout(shape, 'group', 128),
    };
    let m = 0;
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
    this.absmax = m > 0 ? m : 1;
  }

  get ctx(): GpuContext {
    return this.k.ctx;
  }

  /**
   * Build the tensor and the statistics, parameters, codes and fake-quantized tensor the cases read.
   * They come from the CPU reference (the spec; the kernel tests hold the GPU results equal to it) and
   * are uploaded: on a software adapter the CPU is many times faster than the GPU at this. Without
   * `prepare` only the copy case is available and none of this is computed.
   */
  static async create(ctx: GpuContext, n: number, opts: { seed?: number; prepare?: boolean } = {}): Promise<Fixture> {
    if (n % COLS !== 0) throw new RangeError(`size ${n} is not a multiple of ${COLS}`);
    const prepare = opts.prepare ?? true;
    const x = syntheticTensor({ kind: 'llm', rows: n / COLS, cols: COLS, seed: opts.seed ?? 1 });
    const f = new Fixture(new QuantKernels(ctx), n, x, prepare);
    const { held, layouts: L } = f;
    const up = (data: ArrayBufferView | ArrayBuffer, what: string) => {
      const b = ctx.upload(data instanceof ArrayBuffer ? new Uint8Array(data) : data, what);
      held.push(b);
      return b;
    };
    const copyDst = ctx.storage(n * 4, 'copy destination');
    const copyParams = ctx.uniform(new Uint32Array([n / 4, 0, 0, 0]).buffer);
    held.push(copyDst, copyParams);
    const xBuf = up(x, 'benchmark tensor');
    if (!prepare) {
      f.gpuIn = { x: { buffer: xBuf, length: n }, copyDst, copyParams } as Fixture['gpuIn'];
      await ctx.device.queue.onSubmittedWorkDone();
      return f;
    }
    const statsG32 = groupStatsRef(x, L.g32);
    const statsG128 = groupStatsRef(x, L.g128);
    const qpG32 = qparamsRef(statsG32, INT4_ASYM_G32);
    const qpG128 = qparamsRef(statsG128, INT4_ASYM_G128);
    const qpChannel = qparamsRef(groupStatsRef(x, L.channel), INT8_SYM_CHANNEL);
    const codesG128 = quantizeRef(x, L.g128, qpG128, INT4_ASYM_G128) as Uint8Array;
    const fakeQuantG32 = fakeQuantizeRef(x, L.g32, qpG32, INT4_ASYM_G32);
    f.cpuIn = { statsG32, statsG128, qpG32, qpG128, qpChannel, codesG128, fakeQuantG32 };
    f.gpuIn = {
      x: { buffer: xBuf, length: n },
      statsG32: up(encodeGroupStats(statsG32), 'group statistics g32'),
      statsG128: up(encodeGroupStats(statsG128), 'group statistics g128'),
      qpG32: up(encodeQParams(qpG32), 'qparams g32'),
      qpG128: up(encodeQParams(qpG128), 'qparams g128'),
      qpChannel: up(encodeQParams(qpChannel), 'qparams per channel'),
      codesG128: up(codesG128, 'codes g128'),
      fakeQuantG32: up(fakeQuantG32, 'fake-quantized g32'),
      copyDst,
      copyParams,
    };
    await ctx.device.queue.onSubmittedWorkDone();
    return f;
  }

  /** Every case at this size, the copy baseline first (only it when the fixture was not prepared). */
  cases(): KernelCase[] {
    const { k, ctx, n, x, layouts: L, gpuIn: g, cpuIn: c } = this;
    const release = (b: GPUBuffer) => k.release(b);
    const xBytes = 4 * n;
    const statsOut = (layout: GroupLayout) => STATS_BYTES * layout.numGroups;
    const qpIn = (layout: GroupLayout) => QPARAMS_BYTES * layout.numGroups;

    // Per-tensor statistics of more than STATS_CHUNK elements take the chunked path: one partial per
    // chunk, then a combine pass (QuantKernels.groupStatsBuffer).
    const { statsChunked: chunked, statsChunks: segs, colRowsPerChunk, colChunks, metricWgs, sweepBlocks } = partials(n, this.rows);
    const R = SWEEP_RATIOS.length;
    const sweepCpuN = Math.min(n, SWEEP_CPU_MAX_ELEMENTS);
    const sweepCpuLayout = makeGroupLayout([sweepCpuN / COLS, COLS], 'group', 128);

    const all: KernelCase[] = [
      {
        kernel: 'copy',
        config: 'vec4 f32 (baseline)',
        shaders: ['copy.wgsl'],
        bound: 'baseline',
        elements: n,
        bytes: 2 * xBytes,
        byteModel: '4n read + 4n written',
        gpu: () => ctx.run([{ shader: 'copy.wgsl', constants: { WG }, bindings: [g.copyParams, g.x.buffer, g.copyDst], workgroups: grid(Math.ceil(n / 4 / WG)) }]),
        cpu: { run: () => x.slice(), elements: n, note: 'Float32Array.slice (memcpy)' },
      },
      {
        kernel: 'group-stats',
        config: 'per-group g32',
        shaders: ['group-stats.wgsl'],
        bound: 'memory',
        elements: n,
        bytes: xBytes + statsOut(L.g32),
        byteModel: '4n read + 32 B GroupStats written per group',
        gpu: () => k.groupStatsBuffer(g.x, L.g32).then(release),
        cpu: { run: () => groupStatsRef(x, L.g32), elements: n },
      },
      {
        kernel: 'group-stats',
        config: 'per-tensor',
        shaders: chunked ? ['group-stats.wgsl', 'group-stats-combine.wgsl'] : ['group-stats.wgsl'],
        bound: 'memory',
        elements: n,
        bytes: xBytes + (chunked ? 2 * STATS_BYTES * segs : 0) + STATS_BYTES,
        byteModel: chunked ? `4n read + 32 B partial per ${STATS_CHUNK}-element chunk written and read again by the combine pass + 32 B result` : '4n read + 32 B result',
        gpu: () => k.groupStatsBuffer(g.x, L.tensor).then(release),
        cpu: { run: () => groupStatsRef(x, L.tensor), elements: n },
      },
      {
        kernel: 'column-stats',
        config: `[n/${COLS}, ${COLS}]`,
        shaders: ['column-stats.wgsl', 'group-stats-combine.wgsl'],
        bound: 'memory',
        elements: n,
        bytes: xBytes + 2 * STATS_BYTES * COLS * colChunks + STATS_BYTES * COLS,
        byteModel: `4n read + 32 B partial per column per ${colRowsPerChunk}-row chunk written and read again by the combine pass + 32 B per column`,
        gpu: () => k.columnStats(g.x, this.rows, COLS),
        cpu: { run: () => columnStatsRef(x, this.rows, COLS), elements: n },
      },
      {
        kernel: 'abs-histogram',
        config: `${HISTOGRAM_BINS} bins`,
        shaders: ['abs-histogram.wgsl'],
        bound: 'memory',
        elements: n,
        bytes: xBytes + 4 * (HISTOGRAM_BINS + 1),
        byteModel: '4n read + 2049 counters (global atomics per workgroup, cache-resident, counted once)',
        gpu: () => k.absHistogram(g.x, this.absmax),
        cpu: { run: () => absHistogramRef(x, this.absmax), elements: n },
      },
      {
        kernel: 'qparams',
        config: 'asym int4, n/32 groups',
        shaders: ['qparams.wgsl'],
        bound: 'memory',
        elements: L.g32.numGroups,
        bytes: statsOut(L.g32) + qpIn(L.g32),
        byteModel: '32 B GroupStats read + 16 B QParams written per group',
        gpu: () => k.qparamsBuffer(g.statsG32, L.g32.numGroups, INT4_ASYM_G32).then(release),
        cpu: { run: () => qparamsRef(c.statsG32, INT4_ASYM_G32), elements: L.g32.numGroups },
      },
      {
        kernel: 'quantize',
        config: 'asym int4 g128',
        shaders: ['quantize.wgsl'],
        bound: 'memory',
        elements: n,
        bytes: xBytes + n + qpIn(L.g128),
        byteModel: '4n read + n written (codes packed 4 per u32) + 16 B QParams read per group',
        gpu: () => k.quantizeBuffer(g.x, L.g128, g.qpG128, INT4_ASYM_G128).then(release),
        cpu: { run: () => quantizeRef(x, L.g128, c.qpG128, INT4_ASYM_G128), elements: n },
      },
      {
        kernel: 'quantize',
        config: 'sym int8 per-channel',
        shaders: ['quantize.wgsl'],
        bound: 'memory',
        elements: n,
        bytes: xBytes + n + qpIn(L.channel),
        byteModel: '4n read + n written (codes packed 4 per u32) + 16 B QParams read per row',
        gpu: () => k.quantizeBuffer(g.x, L.channel, g.qpChannel, INT8_SYM_CHANNEL).then(release),
        cpu: { run: () => quantizeRef(x, L.channel, c.qpChannel, INT8_SYM_CHANNEL), elements: n },
      },
      {
        kernel: 'dequantize',
        config: 'asym int4 g128',
        shaders: ['dequantize.wgsl'],
        bound: 'memory',
        elements: n,
        bytes: n + qpIn(L.g128) + xBytes,
        byteModel: 'n read (codes) + 16 B QParams read per group + 4n written',
        gpu: () => k.dequantizeBuffer(g.codesG128, L.g128, g.qpG128, INT4_ASYM_G128).then(release),
        cpu: { run: () => dequantizeRef(c.codesG128, L.g128, c.qpG128, INT4_ASYM_G128), elements: n },
      },
      {
        kernel: 'fake-quantize',
        config: 'asym int4 g32',
        shaders: ['fake-quantize.wgsl'],
        bound: 'memory',
        elements: n,
        bytes: 2 * xBytes + qpIn(L.g32),
        byteModel: '4n read + 4n written + 16 B QParams read per group',
        gpu: () => k.fakeQuantizeBuffer(g.x, L.g32, g.qpG32, INT4_ASYM_G32).then(release),
        cpu: { run: () => fakeQuantizeRef(x, L.g32, c.qpG32, INT4_ASYM_G32), elements: n },
      },
      {
        kernel: 'error-metrics',
        config: 'x vs fake-quant g32',
        shaders: ['error-metrics.wgsl'],
        bound: 'memory',
        elements: n,
        bytes: 2 * xBytes + 16 * metricWgs,
        byteModel: `4n read (x) + 4n read (y) + 16 B partial per ${ELEMS_PER_WG} elements`,
        gpu: () => k.errorMetrics(g.x, { buffer: g.fakeQuantG32, length: n }),
        cpu: { run: () => errorMetricsRef(x, c.fakeQuantG32), elements: n },
      },
      {
        kernel: 'clip-sweep',
        config: `asym int4 g128, ${R} ratios`,
        shaders: ['clip-sweep.wgsl'],
        bound: 'compute',
        elements: n * R,
        bytes: R * (xBytes + statsOut(L.g128) + 8 * sweepBlocks),
        byteModel: `per ratio: 4n read (each ratio slice reads x again) + 32 B GroupStats read per group + 8 B partial per ${WG * SWEEP_EPT}-element block`,
        gpu: () => k.clipSweepFromStats(g.x, L.g128, g.statsG128, INT4_ASYM_G128, SWEEP_RATIOS),
        cpu: {
          run: () => clipSweepRef(x.subarray(0, sweepCpuN), sweepCpuLayout, c.statsG128, INT4_ASYM_G128, SWEEP_RATIOS),
          elements: sweepCpuN * R,
          note: sweepCpuN < n ? `CPU reference measured on the first ${sweepCpuN} elements and scaled linearly` : undefined,
        },
      },
    ];
    return this.prepared ? all : all.filter((c) => c.kernel === 'copy');
  }

  release(): void {
    this.ctx.pool.releaseAll(this.held);
    this.held.length = 0;
  }
}
