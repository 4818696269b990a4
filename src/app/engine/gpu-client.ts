/**
 * The UI thread's handle on the GPU worker: request(type, payload, {onProgress, signal}) -> Promise of the
 * typed result. Aborting the signal rejects the promise at once with a CancelledError and tells the worker
 * to stop; a result that arrives later is dropped. Lives outside React: results can be large typed arrays.
 */
import { CancelledError } from '../../gpu/errors.ts';
import type { ErrorData, FromWorker, PartialOf, Progress, RequestMap, RequestType, ToWorker } from '../worker/protocol.ts';

/** An error raised in the worker, rebuilt with its original class name. */
export class WorkerError extends Error {
  constructor(data: ErrorData) {
    super(data.message);
    this.name = data.name;
  }
}

export function isCancelled(e: unknown): boolean {
  return e instanceof Error && e.name === 'CancelledError';
}

export interface RequestOptions<P = unknown> {
  onProgress?: (p: Progress) => void;
  /** Early part of the result, for requests that have one (analyze: everything but the sweep). */
  onPartial?: (p: P) => void;
  signal?: AbortSignal;
  transfer?: Transferable[];
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  onProgress?: (p: Progress) => void;
  onPartial?: (p: unknown) => void;
}

export class GpuClient {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly lostListeners = new Set<(message: string) => void>();

  /** Called when the device is lost outside any request, or the worker itself dies. */
  onDeviceLost(fn: (message: string) => void): () => void {
    this.lostListeners.add(fn);
    return () => this.lostListeners.delete(fn);
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(new URL('../worker/gpu-worker.ts', import.meta.url), { type: 'module', name: 'quantlab-gpu' });
    w.onmessage = (ev: MessageEvent<FromWorker>) => this.receive(ev.data);
    w.onerror = (ev) => {
      // An uncaught error kills every request in flight; the next request starts a fresh worker.
      const message = `The GPU worker stopped: ${ev.message || 'unknown error'}`;
      this.failAll(new WorkerError({ name: 'WorkerCrashError', message }));
      this.worker?.terminate();
      this.worker = undefined;
      for (const fn of this.lostListeners) fn(message);
    };
    this.worker = w;
    return w;
  }

  private receive(msg: FromWorker): void {
    if (msg.type === 'deviceLost') {
      for (const fn of this.lostListeners) fn(msg.message);
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p) return;
    if (msg.type === 'progress') {
      p.onProgress?.(msg.progress);
      return;
    }
    if (msg.type === 'partial') {
      p.onPartial?.(msg.partial);
      return;
    }
    this.pending.delete(msg.id);
    if (msg.type === 'result') p.resolve(msg.result);
    else p.reject(new WorkerError(msg.error));
  }

  private failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  request<K extends RequestType>(kind: K, payload: RequestMap[K]['payload'], opts: RequestOptions<PartialOf<K>> = {}): Promise<RequestMap[K]['result']> {
    if (opts.signal?.aborted) return Promise.reject(new CancelledError());
    const worker = this.ensureWorker();
    const id = this.nextId++;
    return new Promise<RequestMap[K]['result']>((resolve, reject) => {
      const onAbort = () => {
        if (!this.pending.delete(id)) return;
        worker.postMessage({ type: 'cancel', id } satisfies ToWorker);
        reject(new CancelledError());
      };
      this.pending.set(id, {
        resolve: (v) => {
          opts.signal?.removeEventListener('abort', onAbort);
          resolve(v as RequestMap[K]['result']);
        },
        reject: (e) => {
          opts.signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
        onProgress: opts.onProgress,
        onPartial: opts.onPartial as ((p: unknown) => void) | undefined,
      });
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      worker.postMessage({ type: 'request', id, kind, payload } as ToWorker, opts.transfer ?? []);
    });
  }

  /** Stop the worker and reject everything in flight. */
  dispose(): void {
    this.failAll(new CancelledError('the GPU worker was stopped'));
    this.worker?.terminate();
    this.worker = undefined;
  }
}
