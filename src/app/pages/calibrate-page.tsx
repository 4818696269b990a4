/**
 * The Calibrate page: run sample data through the open model, collect every activation's statistics on the GPU
 * and let each calibrator (max, moving-average min/max, percentiles, entropy, MSE) pick its range; then compare
 * them tensor by tensor (table, histogram, clipping vs rounding error), see where the outlier channels are, and
 * download the ranges (calibration JSON, TensorRT calibration cache).
 */
import { getCalibration } from '../engine/calibration-cache.ts';
import { useMemo, useState } from 'react';
import { CalibForm } from '../components/calib/calib-form.tsx';
import { CalibHistogram } from '../components/calib/calib-histogram.tsx';
import { CalibError, CalibStatus } from '../components/calib/calib-status.tsx';
import { CalibSummary } from '../components/calib/calib-summary.tsx';
import { ClipRoundChart } from '../components/calib/clip-round-chart.tsx';
import { OutlierMap } from '../components/calib/outlier-map.tsx';
import { calibModelInfo, calibModelKey } from '../components/calib/calib-data.ts';
import { cancelCalibration } from '../components/calib/run-calibration.ts';
import { useModelEngine } from '../engine-context.ts';
import type { CalibrationRun } from '../../calib/types.ts';
import { useAppStore } from '../store/index.ts';

function SelectedTensor({ run, positions }: { run: CalibrationRun; positions: string }) {
  const selected = useAppStore((s) => s.calib.selected);
  const t = run.result.tensors.find((x) => x.name === selected) ?? run.result.tensors[0];
  const s = run.summaries.find((x) => x.name === t?.name);
  if (!t) return null;
  if (!s) {
    return (
      <section className="card" data-testid="calib-no-summary">
        <p className="warn">No activation statistics came back for {t.name}; only its row in the table is available.</p>
      </section>
    );
  }
  return (
    <>
      <OutlierMap s={s} weights={run.weightChannelAbsmax} positions={positions} />
      {/* Full width each: seven calibrators' legends need the room. */}
      <CalibHistogram s={s} t={t} />
      <ClipRoundChart s={s} t={t} />
    </>
  );
}

export function CalibratePage() {
  const engine = useModelEngine();
  const d = useAppStore((s) => s.model.description);
  const deviceStatus = useAppStore((s) => s.device.status);
  const op = useAppStore((s) => s.calib.op);
  const run = getCalibration(useAppStore((s) => s.calib.runVersion));
  const runFor = useAppStore((s) => s.calib.runFor);
  // File objects are not store state: they are read into bytes when Calibrate is pressed.
  const [files, setFiles] = useState<File[]>([]);
  const info = useMemo(() => (d ? calibModelInfo(d) : undefined), [d]);
  const key = d ? calibModelKey(d) : '';
  const ours = run && runFor === key ? run : undefined;
  const positions = d?.kind === 'llama' ? 'token' : 'position';
  return (
    <div className="calibrate-page" data-testid="page-calibrate">
      <div className="page-intro">
        <h2>Calibrate</h2>
        <p>
          Run sample data through the model, collect the statistics of every activation that a quantized layer reads, and let each calibrator choose the range
          (amax) that INT8 or lower activations are clipped to. Compare the calibrators per tensor and see which channels carry the outliers.
        </p>
      </div>
      {!d || !info ? (
        <section className="card" data-testid="no-model">
          <p>
            No model is open yet. <a href="#/model">Choose one on the Model page</a>: stories15M, the PP-OCRv4 models, or your own files.
          </p>
        </section>
      ) : (
        <div className="playground-grid">
          <aside className="controls">
            <CalibForm info={info} modelKey={key} disabled={deviceStatus !== 'ready'} files={files} setFiles={setFiles} />
          </aside>
          <div className="results">
            <CalibStatus
              op={op}
              hasResult={!!ours}
              done={ours ? `Calibrated ${ours.result.tensors.length} tensors in ${ours.result.seconds.toFixed(1)} s` : 'Calibration done'}
              onCancel={() => cancelCalibration(engine, useAppStore)}
            />
            {op.status === 'error' && op.error && <CalibError error={op.error} />}
            {run && !ours && (
              <p className="warn" data-testid="calib-other-model">
                The last calibration was made on another model ({run.result.model}); calibrate this one to see its ranges.
              </p>
            )}
            {ours ? (
              <>
                <CalibSummary run={ours} kind={d.kind === 'llama' ? 'llama' : 'onnx'} />
                <SelectedTensor run={ours} positions={positions} />
              </>
            ) : (
              op.status !== 'running' && (
                <section className="card placeholder" data-testid="calib-empty">
                  <p className="muted">Choose the data and press Calibrate. The table, the outlier map and the histograms appear here when the run finishes.</p>
                </section>
              )
            )}
          </div>
        </div>
      )}
    </div>
  );
}
