/**
 * What the last calibration produced, in one card: how many tensors, from which data, which calibrator wins
 * most often, the downloads (calibration JSON, TensorRT calibration cache), and the per-tensor table.
 */
import { useMemo, useState } from 'react';
import { trtCalibrationCache } from '../../../calib/trt-cache.ts';
import { CALIB_METHODS, type CalibrationRun } from '../../../calib/types.ts';
import { fmtInt } from '../../format.ts';
import { METHOD_STYLE, bestCounts, safeFileStem } from './calib-data.ts';
import { CalibTable } from './calib-table.tsx';
import { saveText } from './download.ts';

function Downloads({ run, kind }: { run: CalibrationRun; kind: 'llama' | 'onnx' }) {
  const [error, setError] = useState<string>();
  const r = run.result;
  const stem = safeFileStem(r.model);
  const noCache = kind === 'llama' ? 'A TensorRT calibration cache names ONNX tensors; a Llama checkpoint has none (export it to ONNX first).' : undefined;
  const save = (make: () => string, name: string, type: string) => {
    try {
      saveText(make(), name, type);
      setError(undefined);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };
  return (
    <div className="calib-downloads">
      <div className="button-row">
        <button type="button" onClick={() => save(() => JSON.stringify(r, null, 2) + '\n', `${stem}.calibration.json`, 'application/json')} data-testid="calib-download-json">
          Download calibration JSON
        </button>
        <button
          type="button"
          disabled={!!noCache}
          title={noCache}
          onClick={() => save(() => trtCalibrationCache(r), `${stem}.calibration.cache`, 'text/plain')}
          data-testid="calib-download-cache"
        >
          Download TensorRT calibration cache
        </button>
      </div>
      <p className="hint">
        The JSON holds every calibrator's amax and SQNR per tensor; <code>quantlab calibrate</code> writes the same format. The cache stores {METHOD_STYLE[r.method]?.label ?? r.method}{' '}
        amax / 127 per tensor, as TensorRT's implicit INT8 reads it{r.bits !== 8 ? ` (it is INT8 only: the ${r.bits}-bit choice of amax is written as is)` : ''}.
        {noCache ? ` ${noCache}` : ''}
      </p>
      {error && (
        <p className="inline-error" role="alert" data-testid="calib-download-error">
          {error}
        </p>
      )}
    </div>
  );
}

export function CalibSummary({ run, kind }: { run: CalibrationRun; kind: 'llama' | 'onnx' }) {
  const r = run.result;
  const wins = useMemo(() => bestCounts(r.tensors, CALIB_METHODS), [r]);
  const data = r.data;
  const shape = data.sequenceLength ? `${fmtInt(data.samples)} × ${fmtInt(data.sequenceLength)} tokens` : `${fmtInt(data.samples)} samples`;
  return (
    <section className="card" data-testid="calib-result" aria-label="Calibration result">
      <header className="chart-head">
        <h2>
          {r.model}: INT{r.bits} activation ranges
        </h2>
        <span className="muted">{r.seconds.toFixed(1)} s</span>
      </header>
      <p data-testid="calib-summary" data-tensors={r.tensors.length} data-top-method={wins[0]?.method}>
        {r.tensors.length} tensors calibrated from {data.source} ({shape}, {fmtInt(data.tokens)} {kind === 'llama' ? 'tokens' : 'positions'}). Best SQNR most often:{' '}
        {wins.length === 0
          ? '–'
          : wins.map((w, i) => (
              <span key={w.method}>
                {i > 0 ? ', ' : ''}
                <strong style={{ color: METHOD_STYLE[w.method].color }}>{METHOD_STYLE[w.method].label}</strong> ({w.count} of {r.tensors.length})
              </span>
            ))}
        . Exported with {METHOD_STYLE[r.method]?.label ?? r.method}.
      </p>
      {data.note && (
        <p className="warn" data-testid="calib-data-note">
          {data.note}
        </p>
      )}
      <Downloads run={run} kind={kind} />
      <p className="hint">Click a row to see that tensor below; click a column to sort. The best SQNR of each row is highlighted.</p>
      <CalibTable run={run} />
    </section>
  );
}
