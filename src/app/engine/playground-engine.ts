/**
 * The Playground's engine: turns store changes into worker requests. It debounces edits, sends the tensor to
 * the worker only when the source changed, lets a newer run cancel an older one, keeps the last good result
 * when a run fails or is cancelled, and recovers from a lost device without losing the form.
 */
import { howToEnableWebGpu } from '../../gpu/errors.ts';
import type { TensorAnalysis } from '../../quant/analyze.ts';
import type { QuantConfig } from '../../quant/config.ts';
import type { SyntheticSpec } from '../../quant/synthetic.ts';
import type { AppStore } from '../store/index.ts';
import type { PlaygroundState, ResultSummary, RunState } from '../store/playground-slice.ts';
import type { Progress, TensorInfo, TensorSource } from '../worker/protocol.ts';
import { putAnalysis, putSweep } from './analysis-cache.ts';
import { parseConfig, parseSynthetic, SYNTHETIC_LABELS } from './drafts.ts';
import { isCancelled, type GpuClient } from './gpu-client.ts';

/** Long enough to swallow a slider drag or a typed number, short enough to feel live. */
export const DEBOUNCE_MS = 150;

interface Wanted {
  tensorKey: string;
  source: () => TensorSource;
  label: (info: TensorInfo) => string;
  config: QuantConfig;
}

function syntheticLabel(spec: SyntheticSpec): string {
  return `${SYNTHETIC_LABELS[spec.kind]} ${spec.rows} × ${spec.cols}, seed ${spec.seed}`;
}

function npyLabel(name: string, info: TensorInfo): string {
  const orig = `[${info.originalShape.join(', ')}] ${info.dtype}`;
  const flat = info.originalShape.length === 2 ? '' : ` → ${info.shape[0]} × ${info.shape[1]}`;
  return `${name} ${orig}${flat}`;
}

export class PlaygroundEngine {
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** The run in flight; aborting it rejects its requests at once. */
  private current: AbortController | undefined;
  /** Key of the tensor the worker holds, or null when unknown (a cancelled or failed upload). */
  private workerTensorKey: string | null = null;
  /** Tensor and config of the run in flight. */
  private currentKey: string | undefined;
  /** Tensor and config of the result on screen: asking for them again needs no work. */
  private shownKey: string | undefined;
  private version = 0;
  /** The loaded .npy file, kept so that the tensor can be sent again to a restarted worker. */
  private npy: { token: number; name: string; bytes: ArrayBuffer } | undefined;
  private npyToken = 0;
  private unsubscribe: (() => void)[] = [];

  constructor(
    private readonly client: GpuClient,
    private readonly store: AppStore,
  ) {}

  private get pg(): PlaygroundState {
    return this.store.getState().playground;
  }

  private setRun(run: RunState): void {
    this.store.getState().patchPlayground({ run });
  }

  /** Find WebGPU, start the worker's device, and run the first analysis. */
  async start(): Promise<void> {
    this.unsubscribe.push(
      this.store.subscribe((s, prev) => {
        const a = s.playground;
        const b = prev.playground;
        if (a.config !== b.config || a.synthetic !== b.synthetic || a.source !== b.source) this.schedule();
      }),
      this.client.onDeviceLost((message) => this.deviceLost(message)),
    );
    const { setDevice } = this.store.getState();
    // Checked here, before any worker exists: without WebGPU there is nothing for the worker to do.
    if (!('gpu' in navigator) || !navigator.gpu) {
      setDevice({ status: 'unavailable', message: howToEnableWebGpu() });
      return;
    }
    setDevice({ status: 'checking' });
    try {
      const info = await this.client.request('init', null);
      setDevice({ status: 'ready', info });
      this.schedule(0);
    } catch (e) {
      const err = e as Error;
      setDevice({ status: err.name === 'GpuUnavailableError' ? 'unavailable' : 'error', message: err.message });
    }
  }

  stop(): void {
    for (const u of this.unsubscribe) u();
    this.unsubscribe = [];
    clearTimeout(this.timer);
    this.current?.abort();
  }

  schedule(delay = DEBOUNCE_MS): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.run(), delay);
  }

  /** What the form asks for, or undefined when it does not parse (the form shows why). */
  private wanted(): Wanted | undefined {
    const pg = this.pg;
    const cfg = parseConfig(pg.config);
    if (!cfg.ok) return undefined;
    if (pg.source.kind === 'npy') {
      const npy = this.npy;
      if (!npy || npy.token !== pg.source.token) return undefined;
      return {
        tensorKey: `npy:${npy.token}`,
        // A copy: the kept bytes must survive the transfer for a later restart.
        source: () => ({ kind: 'npy', name: npy.name, bytes: npy.bytes.slice(0) }),
        label: (info) => npyLabel(npy.name, info),
        config: cfg.value,
      };
    }
    const spec = parseSynthetic(pg.synthetic);
    if (!spec.ok) return undefined;
    return {
      tensorKey: `synthetic:${JSON.stringify(spec.value)}`,
      source: () => ({ kind: 'synthetic', spec: spec.value }),
      label: () => syntheticLabel(spec.value),
      config: cfg.value,
    };
  }

  private async run(): Promise<void> {
    clearTimeout(this.timer);
    if (this.store.getState().device.status !== 'ready') return;
    const want = this.wanted();
    if (!want) return;
    const runKey = `${want.tensorKey}|${JSON.stringify(want.config)}`;
    // Already computing exactly this (an edit and its undo within one run): let it finish.
    if (this.current && runKey === this.currentKey) return;
    this.current?.abort();
    if (runKey === this.shownKey) {
      // Back to what is on screen (e.g. 4 -> 3 -> 4 bits while the 3-bit run was in flight).
      this.current = undefined;
      this.setRun({ status: 'done' });
      return;
    }
    const ac = new AbortController();
    this.current = ac;
    this.currentKey = runKey;
    const { signal } = ac;
    const onProgress = (p: Progress) => {
      if (this.current === ac) this.setRun({ status: 'running', stage: p.stage, fraction: p.fraction });
    };
    const t0 = performance.now();
    this.setRun({ status: 'running', stage: 'starting', fraction: 0 });
    /** Version of this run's partial result once it is on screen. */
    let shown: number | undefined;
    try {
      if (this.workerTensorKey !== want.tensorKey) {
        this.workerTensorKey = null;
        const info = await this.client.request('setTensor', want.source(), { signal, onProgress });
        this.tensorLoaded(want.tensorKey, info, want.label(info));
      }
      const onPartial = (a: TensorAnalysis) => {
        if (this.current !== ac) return;
        shown = this.showResult(a, this.pg.tensor?.label ?? '', performance.now() - t0);
        this.shownKey = runKey;
      };
      const { sweep } = await this.client.request('analyze', { config: want.config }, { signal, onProgress, onPartial });
      if (this.current !== ac || shown === undefined) return;
      putSweep(shown, sweep);
      this.patchResult(shown, { sweep: 'done', elapsedMs: performance.now() - t0 });
      this.setRun({ status: 'done' });
    } catch (e) {
      if (shown !== undefined) {
        // The numbers on screen are this run's, without their sweep: asking again must recompute.
        this.patchResult(shown, { sweep: 'missing' });
        if (this.shownKey === runKey) this.shownKey = undefined;
      }
      if (this.current !== ac) return; // a newer run owns the status now
      const err = e as Error;
      if (isCancelled(err)) this.setRun({ status: 'cancelled' });
      else {
        if (err.name === 'GpuDeviceLostError') this.store.getState().setDevice({ ...this.store.getState().device, status: 'lost', message: err.message });
        this.setRun({ status: 'error', error: err.message });
      }
    } finally {
      if (this.current === ac) this.current = undefined;
    }
  }

  private patchResult(version: number, patch: Partial<ResultSummary>): void {
    const r = this.pg.result;
    if (r?.version === version) this.store.getState().patchPlayground({ result: { ...r, ...patch } });
  }

  private tensorLoaded(key: string, info: TensorInfo, label: string): void {
    this.workerTensorKey = key;
    this.store.getState().patchPlayground({ tensor: { label, shape: info.shape, originalShape: info.originalShape, dtype: info.dtype, absmax: info.absmax } });
  }

  private showResult(a: TensorAnalysis, tensorLabel: string, elapsedMs: number): number {
    const version = ++this.version;
    putAnalysis(version, a);
    this.store.getState().patchPlayground({
      result: {
        version,
        tensorLabel,
        shape: a.shape,
        config: a.config,
        mse: a.metrics.mse,
        sqnr: a.metrics.sqnr,
        maxAbsError: a.metrics.maxAbsError,
        count: a.metrics.count,
        bitsPerWeight: a.bitsPerWeight,
        numGroups: a.numGroups,
        firstScales: a.firstGroups.scale,
        firstZeros: a.firstGroups.zero,
        tensorAbsmax: a.tensorAbsmax,
        sweep: 'pending',
        elapsedMs,
      },
    });
    return version;
  }

  /** Stop the run in flight; the result on screen stays. */
  cancel(): void {
    clearTimeout(this.timer);
    this.current?.abort();
  }

  /**
   * Load a .npy file. On success it becomes the tensor and is analyzed; on failure the message goes next to the
   * file input, and the previous tensor, result and charts stay (the worker keeps its tensor too).
   */
  async loadNpy(file: File): Promise<void> {
    const { patchPlayground } = this.store.getState();
    patchPlayground({ loadingFile: file.name, sourceError: undefined });
    try {
      const bytes = await file.arrayBuffer();
      const token = ++this.npyToken;
      const key = `npy:${token}`;
      // Sent as a copy: the original is kept for a restarted worker.
      const info = await this.client.request('setTensor', { kind: 'npy', name: file.name, bytes: bytes.slice(0) });
      this.npy = { token, name: file.name, bytes };
      this.tensorLoaded(key, info, npyLabel(file.name, info));
      patchPlayground({ source: { kind: 'npy', name: file.name, token } });
    } catch (e) {
      patchPlayground({ sourceError: `Could not load ${file.name}: ${(e as Error).message}` });
    } finally {
      patchPlayground({ loadingFile: undefined });
    }
  }

  private deviceLost(message: string): void {
    const { device, setDevice } = this.store.getState();
    if (device.status === 'unavailable' || device.status === 'restarting') return;
    setDevice({ ...device, status: 'lost', message });
    // Detached before the abort, so that the run's own handler does not report it as a cancel.
    const running = this.current;
    this.current = undefined;
    running?.abort();
    if (running) this.setRun({ status: 'error', error: message });
  }

  /** A new device (and, if the worker died, a new worker holding the same tensor); the form is untouched. */
  async restart(): Promise<void> {
    const { device, setDevice } = this.store.getState();
    setDevice({ ...device, status: 'restarting' });
    const running = this.current;
    this.current = undefined;
    running?.abort();
    this.workerTensorKey = null;
    this.shownKey = undefined;
    try {
      const info = await this.client.request('restart', null);
      setDevice({ status: 'ready', info });
      this.schedule(0);
    } catch (e) {
      const err = e as Error;
      setDevice({ status: err.name === 'GpuUnavailableError' ? 'unavailable' : 'error', message: err.message });
    }
  }

  /** Test hook: destroy the device as a driver reset would. */
  async loseDevice(): Promise<void> {
    await this.client.request('loseDevice', null);
  }
}
