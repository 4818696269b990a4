/**
 * Timing of one GPU kernel and of one CPU reference, and the process's peak memory.
 *
 * GPU time comes from timestamp queries around each compute pass (GpuContext.profiling), summed over the
 * passes of one call, so buffer uploads, pipeline lookups and read-backs are not part of it. Without the
 * timestamp-query feature it is the wall time from submit to queue.onSubmittedWorkDone(), which also
 * counts the host's encoding and submission and so reads low for short kernels.
 */
import type { GpuContext } from '../src/gpu/context.ts';
import { DEFAULT_REP_PLAN, median, planReps, type RepPlan } from './stats.ts';

export type TimingMethod = 'gpu-timestamp' | 'wall-clock';

export interface GpuTiming {
  method: TimingMethod;
  reps: number;
  /** Median over the repetitions, by `method`. */
  ms: number;
  minMs: number;
  /** Median wall time of a repetition, submit to completion, including the host's work. */
  wallMs: number;
  samplesMs: number[];
  /** Whether a warm-up run at this size came before the timed ones. */
  warmUp: boolean;
  /** Why `method` is not the one asked for, if it is not. */
  note?: string;
}

export function timestampsAvailable(ctx: GpuContext): boolean {
  return ctx.hasFeature('timestamp-query');
}

/**
 * Run `op` once to build its pipelines and touch its buffers (unless `warmUp` is false: the pipelines
 * were built at a smaller size), then time as many repetitions as planReps says from the first one.
 * `op` submits the kernel and releases what it allocates.
 */
export async function timeGpu(ctx: GpuContext, op: () => Promise<unknown>, plan: RepPlan = DEFAULT_REP_PLAN, warmUp = true): Promise<GpuTiming> {
  const useTimestamps = timestampsAvailable(ctx);
  const queue = ctx.device.queue;
  ctx.profiling = useTimestamps;
  try {
    if (warmUp) await op();
    await queue.onSubmittedWorkDone();
    const gpu: number[] = [];
    const wall: number[] = [];
    const once = async () => {
      ctx.gpuTimeMs.clear();
      const t0 = performance.now();
      await op();
      await queue.onSubmittedWorkDone();
      wall.push(performance.now() - t0);
      if (useTimestamps) {
        let sum = 0;
        for (const ms of ctx.gpuTimeMs.values()) sum += ms;
        gpu.push(sum);
      }
    };
    await once();
    const reps = planReps(wall[0], plan);
    for (let r = 1; r < reps; r++) await once();
    // Some drivers quantize or zero timestamps of very short passes; wall time is the honest answer then.
    const timestampsUsable = useTimestamps && gpu.length === wall.length && gpu.every((ms) => ms > 0 && Number.isFinite(ms));
    const samples = timestampsUsable ? gpu : wall;
    return {
      method: timestampsUsable ? 'gpu-timestamp' : 'wall-clock',
      reps,
      ms: median(samples),
      minMs: Math.min(...samples),
      wallMs: median(wall),
      samplesMs: samples,
      warmUp,
      note: useTimestamps && !timestampsUsable ? 'timestamps read zero or invalid; wall-clock used' : undefined,
    };
  } finally {
    ctx.profiling = false;
    ctx.gpuTimeMs.clear();
  }
}

export interface CpuTiming {
  /** Fastest run (the first one includes JIT compilation). */
  ms: number;
  runs: number;
}

/** Keeps results of timed CPU runs reachable, so no engine can drop the work as dead. */
const sink: { last?: unknown } = {};

/** Run `fn` once, and once more when that took less than `secondRunBelowMs`; the fastest run counts. */
export function timeCpu(fn: () => unknown, secondRunBelowMs = 2000): CpuTiming {
  const times: number[] = [];
  do {
    const t0 = performance.now();
    sink.last = fn();
    times.push(performance.now() - t0);
  } while (times.length < 2 && times[0] < secondRunBelowMs);
  sink.last = undefined;
  return { ms: Math.min(...times), runs: times.length };
}

export interface MemoryPeak {
  /** Largest resident set seen by the kernel (process.resourceUsage().maxRSS). */
  maxRssBytes: number;
  /** Largest values sampled from process.memoryUsage() during the run. */
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  /** Typed arrays live outside the JS heap: the tensors and the CPU reference outputs are here. */
  arrayBuffersBytes: number;
  externalBytes: number;
}

/** Samples process.memoryUsage() every 50 ms and at each checkpoint; long synchronous CPU runs call sample() after themselves. */
export class MemoryTracker {
  private readonly peak: MemoryPeak = { maxRssBytes: 0, rssBytes: 0, heapUsedBytes: 0, heapTotalBytes: 0, arrayBuffersBytes: 0, externalBytes: 0 };
  private readonly timer: ReturnType<typeof setInterval>;

  constructor() {
    this.timer = setInterval(() => this.sample(), 50);
    this.timer.unref();
  }

  sample(): void {
    const m = process.memoryUsage();
    const p = this.peak;
    p.rssBytes = Math.max(p.rssBytes, m.rss);
    p.heapUsedBytes = Math.max(p.heapUsedBytes, m.heapUsed);
    p.heapTotalBytes = Math.max(p.heapTotalBytes, m.heapTotal);
    p.arrayBuffersBytes = Math.max(p.arrayBuffersBytes, m.arrayBuffers);
    p.externalBytes = Math.max(p.externalBytes, m.external);
  }

  stop(): MemoryPeak {
    clearInterval(this.timer);
    this.sample();
    return { ...this.peak, maxRssBytes: Math.max(this.peak.rssBytes, process.resourceUsage().maxRSS * 1024) };
  }
}
