/** Progress of the running calibration (phase, counts, Cancel), how the last one ended, and a clear box when it failed. */
import type { ReactNode } from 'react';
import type { CalibOp } from '../../store/calib-slice.ts';
import { progressText } from './calib-data.ts';

export function CalibStatus({ op, hasResult, done, onCancel }: { op: CalibOp; hasResult: boolean; done: ReactNode; onCancel: () => void }) {
  let body: ReactNode;
  switch (op.status) {
    case 'idle':
      return null;
    case 'running': {
      const p = op.progress;
      body = (
        <>
          <span className="spinner" aria-hidden />
          <span className="status-text" data-testid="calib-status-text">
            {progressText(p)}…
          </span>
          <progress max={1} value={p && p.total > 0 ? Math.min(1, p.done / p.total) : undefined} aria-label="calibration progress" data-testid="calib-progress" data-phase={p?.phase} />
          <button type="button" onClick={onCancel} data-testid="calib-cancel">
            Cancel
          </button>
        </>
      );
      break;
    }
    case 'done':
      body = <span className="ok">✓ {done}</span>;
      break;
    case 'cancelled':
      body = <span className="warn">Calibration cancelled{hasResult ? '; the previous result below is unchanged' : ''}.</span>;
      break;
    case 'error':
      body = <span className="error">Calibration failed{hasResult ? '; the previous result below is unchanged' : ''}.</span>;
      break;
  }
  return (
    <div className={`run-status run-${op.status}`} data-testid="calib-status" data-state={op.status} data-phase={op.progress?.phase} aria-live="polite">
      {body}
    </div>
  );
}

export function CalibError({ error }: { error: string }) {
  return (
    <div className="banner banner-error calib-error" role="alert" data-testid="calib-error">
      <h2>Calibration failed</h2>
      <p>{error}</p>
    </div>
  );
}
