/** The state of the current analysis: progress and Cancel while it runs, then how it ended. */
import type { ReactNode } from 'react';
import { useEngine } from '../../engine-context.ts';
import { fmtMs } from '../../format.ts';
import { useAppStore } from '../../store/index.ts';

export function RunStatus() {
  const engine = useEngine();
  const run = useAppStore((s) => s.playground.run);
  const result = useAppStore((s) => s.playground.result);
  const deviceStatus = useAppStore((s) => s.device.status);
  if (deviceStatus === 'unavailable') return null;

  let body: ReactNode;
  switch (run.status) {
    case 'idle':
      body = <span className="muted">{deviceStatus === 'checking' ? 'Starting the GPU…' : 'Waiting for a valid tensor and quantizer.'}</span>;
      break;
    case 'running':
      body = (
        <>
          <span className="spinner" aria-hidden />
          <span className="status-text">
            Analyzing{run.stage ? ` — ${run.stage}` : ''}…
          </span>
          <progress max={1} value={run.fraction} aria-label="analysis progress" />
          <button type="button" onClick={() => engine.cancel()} data-testid="cancel">
            Cancel
          </button>
        </>
      );
      break;
    case 'done':
      body = <span className="ok">✓ Analysis done{result ? ` in ${fmtMs(result.elapsedMs)}` : ''}</span>;
      break;
    case 'cancelled':
      body = (
        <span className="warn">
          {result?.sweep === 'missing' ? 'Cancelled before the clipping sweep finished; the numbers above are complete.' : `Cancelled${result ? ' — showing the previous result' : ''}.`}
        </span>
      );
      break;
    case 'error':
      body = (
        <span className="error" role="alert">
          Analysis failed: {run.error}
        </span>
      );
      break;
  }
  return (
    <div className={`run-status run-${run.status}`} data-testid="run-status" data-state={run.status} aria-live="polite">
      {body}
    </div>
  );
}
