/**
 * A view of QuantKernels that reports each top-level kernel call as a progress step and refuses to start
 * the next one once the request is cancelled. analyzeTensor only checks its signal at a few points; this
 * makes cancellation take effect at the next kernel, and gives the user a stage name instead of a spinner.
 */
import { CancelledError } from '../../gpu/errors.ts';
import type { QuantKernels } from '../../quant/gpu-kernels.ts';
import type { Progress } from './protocol.ts';

/** The kernel calls analyzeTensor makes, in order, with the words the status bar shows. */
const STAGES: Record<string, string> = {
  groupStatsBuffer: 'group statistics',
  qparamsBuffer: 'scales and zero points',
  fakeQuantizeBuffer: 'fake-quantize',
  errorMetrics: 'error metrics',
  readQParams: 'reading scales',
  groupStats: 'row absmax',
  columnStats: 'column absmax',
  absHistogram: '|x| histogram',
  clipSweepFromStats: 'clipping sweep',
};
const STAGE_COUNT = Object.keys(STAGES).length;

/** `span`: the part of the whole request's progress bar these calls cover. */
export function withProgress(kernels: QuantKernels, signal: AbortSignal, onProgress: (p: Progress) => void, span: [number, number] = [0, 1]): QuantKernels {
  let done = 0;
  return new Proxy(kernels, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof prop !== 'string' || typeof value !== 'function' || !(prop in STAGES)) return value;
      return (...args: unknown[]) => {
        if (signal.aborted) throw new CancelledError();
        onProgress({ stage: STAGES[prop], fraction: span[0] + ((span[1] - span[0]) * done) / STAGE_COUNT });
        done++;
        // Called on the real object: the kernels' own internal calls must not count as steps.
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}
