/** Progress, Cancel and the outcome of one long model operation (open, quantize, generate). */
import type { ReactNode } from 'react';
import type { OpState } from '../../store/model-slice.ts';

export function OpStatus({ op, verb, done, onCancel, testId }: { op: OpState; verb: string; done?: ReactNode; onCancel: () => void; testId: string }) {
  let body: ReactNode = null;
  switch (op.status) {
    case 'idle':
      return null;
    case 'running':
      body = (
        <>
          <span className="spinner" aria-hidden />
          <span className="status-text">
            {verb}
            {op.stage ? ` — ${op.stage}` : ''}…
          </span>
          <progress max={1} value={op.fraction} aria-label={`${verb} progress`} />
          <button type="button" onClick={onCancel} data-testid={`${testId}-cancel`}>
            Cancel
          </button>
        </>
      );
      break;
    case 'done':
      body = <span className="ok">✓ {done ?? `${verb} done`}</span>;
      break;
    case 'cancelled':
      body = <span className="warn">{verb} cancelled; what you had before is unchanged.</span>;
      break;
    case 'error':
      body = (
        <span className="error" role="alert">
          {verb} failed: {op.error}
        </span>
      );
      break;
  }
  return (
    <div className={`run-status run-${op.status}`} data-testid={testId} data-state={op.status} aria-live="polite">
      {body}
    </div>
  );
}
