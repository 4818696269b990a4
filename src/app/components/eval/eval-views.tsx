/**
 * The comparison: every finished evaluation of the model (kept across reloads) in one table, the rows of the
 * running evaluation marked unfinished above it, accuracy against size with the Pareto front highlighted, the
 * greedy generations of the latest run side by side, and the table as JSON or CSV.
 */
import { useId, useMemo, type ReactNode } from 'react';
import type { Data, Layout } from 'plotly.js-dist-min';
import type { EvalRow } from '../../../eval/types.ts';
import { fmt, fmtBytes } from '../../format.ts';
import { useAppStore } from '../../store/index.ts';
import { saveText } from '../calib/download.ts';
import { ChartCard } from '../playground/chart-card.tsx';
import { Plot } from '../plot.tsx';
import { historyRows, metricsOf, paretoFront, rowsToCsv, type EvalRun, type MetricDef } from './eval-data.ts';
import { clearEvalHistory, removeEvalRun } from './run-eval.ts';

function metricCell(row: EvalRow, key: string, digits: number) {
  const v = row.metrics[key];
  return v === undefined ? '—' : fmt(v, digits);
}

/** One table row: model (when every model is shown), config, size, bits, the metrics, time, then the caller's cells. */
function RowCells({ row, metrics, model, trProps, children }: { row: EvalRow; metrics: MetricDef[]; model?: string; trProps: Record<string, string | number | undefined>; children: ReactNode }) {
  return (
    <tr {...trProps}>
      {model !== undefined && <td>{model}</td>}
      <td className="mono">{row.config}</td>
      <td className="num">{fmtBytes(row.sizeBytes)}</td>
      <td className="num">{fmt(row.bitsPerWeight, 3)}</td>
      {metrics.map((m) => (
        <td key={m.key} className="num">
          {metricCell(row, m.key, m.digits)}
        </td>
      ))}
      <td className="num">{row.seconds.toFixed(1)} s</td>
      {children}
    </tr>
  );
}

export function EvalTable({ runs, live, modelName }: { runs: EvalRun[]; live: EvalRow[]; modelName: string }) {
  const rows = historyRows(runs);
  const metrics = metricsOf([...rows.map((r) => r.row), ...live]);
  const allModels = useAppStore((s) => s.evaluation.allModels);
  const persistence = useAppStore((s) => s.evaluation.persistence);
  const patch = useAppStore((s) => s.patchEval);
  const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-');
  return (
    <section className="card" data-testid="eval-table">
      <header className="chart-head">
        <h2>Runs compared</h2>
        <div className="button-row">
          <label className="toggle">
            <input type="checkbox" checked={allModels} onChange={(e) => patch({ allModels: e.target.checked })} data-testid="eval-all-models" /> every model
          </label>
          <button type="button" disabled={rows.length === 0} onClick={() => saveText(JSON.stringify({ format: 'quantlab-eval-history', version: 1, runs }, null, 2) + '\n', `quantlab-eval-${stamp}.json`, 'application/json')} data-testid="eval-export-json">
            JSON
          </button>
          <button type="button" disabled={rows.length === 0} onClick={() => saveText(rowsToCsv(rows, metrics), `quantlab-eval-${stamp}.csv`, 'text/csv')} data-testid="eval-export-csv">
            CSV
          </button>
          <button type="button" disabled={rows.length === 0} onClick={() => void clearEvalHistory(useAppStore)} data-testid="eval-clear">
            Clear
          </button>
        </div>
      </header>
      <div className="table-wrap">
        <table className="data-table">
          <thead>
            <tr>
              {allModels && <th>Model</th>}
              <th>Config</th>
              <th className="num">Size</th>
              <th className="num">Bits / weight</th>
              {metrics.map((m) => (
                <th key={m.key} className="num" title={`${m.better} is better`}>
                  {m.label} {m.better === 'lower' ? '↓' : '↑'}
                </th>
              ))}
              <th className="num">Time</th>
              <th>Run</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {live.map((row) => (
              <RowCells key={`live/${row.config}`} row={row} metrics={metrics} model={allModels ? modelName : undefined} trProps={{ className: 'row-live', 'data-testid': 'eval-live-row', 'data-config': row.config }}>
                <td className="muted">running, unfinished</td>
                <td />
              </RowCells>
            ))}
            {rows.map(({ run, row, key }, i) => (
              <RowCells
                key={key}
                row={row}
                metrics={metrics}
                model={allModels ? run.model : undefined}
                trProps={{ 'data-testid': 'eval-row', 'data-config': row.config, 'data-run': run.id, 'data-size': row.sizeBytes, 'data-ppl': row.metrics.perplexity, 'data-kl': row.metrics.kl, 'data-top1': row.metrics.top1, 'data-char': row.metrics.charAccuracy, 'data-sqnr': row.metrics.sqnr, title: row.notes.join('; ') }}
              >
                <td className="muted" title={run.data}>
                  {new Date(run.at).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' })}
                </td>
                <td>
                  {(i === 0 || rows[i - 1].run.id !== run.id) && (
                    <button type="button" className="link-button" onClick={() => void removeEvalRun(useAppStore, run.id)} data-testid="eval-remove-run" title="Remove this run (all its rows)">
                      remove
                    </button>
                  )}
                </td>
              </RowCells>
            ))}
          </tbody>
        </table>
      </div>
      {rows.length === 0 && live.length === 0 && <p className="muted">No evaluation yet. Finished runs are kept here{persistence === 'indexeddb' ? ' across reloads' : ''}.</p>}
      {persistence === 'memory' && <p className="warn">This browser refuses IndexedDB: the runs are kept until the page is closed only.</p>}
      <p className="hint">
        Language models: perplexity is exp(mean negative log-likelihood) of the held-out tokens; KL and top-1 compare each configuration's next-token distribution with FP32
        at every scored position. ONNX models: the task's accuracy (OCR characters and words against the rendered text's ground truth, detector boxes against FP32's,
        classifier top-1/top-5 against FP32's) and the outputs' SQNR and cosine against FP32 (the lowest over the outputs). Size: the quantized weights (scales and zero
        points included) plus the tensors kept in float. Hover a row for its notes.
      </p>
    </section>
  );
}

export function EvalChart({ runs }: { runs: EvalRun[] }) {
  const id = useId();
  const metricKey = useAppStore((s) => s.evaluation.metric);
  const patch = useAppStore((s) => s.patchEval);
  const metrics = metricsOf(runs.flatMap((r) => r.rows));
  const metric = metrics.find((m) => m.key === metricKey) ?? metrics[0];
  const figure = useMemo(() => {
    if (!metric) return { data: [], layout: {}, front: [] as string[] };
    const rows = historyRows(runs).filter(({ row }) => Number.isFinite(row.metrics[metric.key]));
    const pts = rows.map(({ row }) => ({ size: row.sizeBytes / 2 ** 20, value: row.metrics[metric.key] }));
    const front = new Set(paretoFront(pts, metric.better));
    const frontPts = [...front].map((i) => ({ ...pts[i], label: rows[i].row.config })).sort((a, b) => a.size - b.size);
    const data: Data[] = [
      {
        type: 'scatter',
        mode: 'markers',
        x: pts.map((p) => p.size),
        y: pts.map((p) => p.value),
        text: rows.map(({ row, run }) => `${row.config} · ${new Date(run.at).toLocaleTimeString()}`),
        name: 'runs',
        marker: { size: 9, color: rows.map((_, i) => (front.has(i) ? '#2563eb' : '#94a3b8')) },
        hovertemplate: `%{text}<br>%{x:.2f} MiB<br>${metric.label} %{y:.4g}<extra></extra>`,
      },
      {
        type: 'scatter',
        mode: 'text+lines',
        x: frontPts.map((p) => p.size),
        y: frontPts.map((p) => p.value),
        text: frontPts.map((p) => p.label),
        textposition: 'top center',
        name: 'Pareto front',
        line: { color: '#2563eb', width: 1.5, dash: 'dot', shape: 'hv' },
        hoverinfo: 'skip',
      },
    ];
    const layout: Layout = { showlegend: true, xaxis: { title: { text: 'model size (MiB)' } }, yaxis: { title: { text: `${metric.label} (${metric.better} is better)` }, gridcolor: '#e2e8f0' } };
    return { data, layout, front: frontPts.map((p) => p.label) };
  }, [runs, metric]);
  return (
    <ChartCard
      title="Accuracy against size"
      testId="eval-chart"
      aside={
        <div className="field inline-field">
          <label className="field-label" htmlFor={id}>
            Metric
          </label>
          <select id={id} value={metric?.key} onChange={(e) => patch({ metric: e.target.value })} data-testid="eval-metric">
            {metrics.map((m) => (
              <option key={m.key} value={m.key}>
                {m.label}
              </option>
            ))}
          </select>
        </div>
      }
      explain={
        <p data-testid="eval-pareto" data-front={figure.front.join(',')}>
          Every finished configuration of the runs shown. Blue: the Pareto front, where no other configuration is both smaller and better ({figure.front.join(', ') || 'none yet'}).
        </p>
      }
    >
      <Plot data={figure.data} layout={figure.layout} height={320} />
    </ChartCard>
  );
}

export function EvalGenerations({ run }: { run: EvalRun }) {
  const rows = run.rows.filter((r) => r.generation !== undefined);
  if (rows.length === 0) return null;
  return (
    <section className="card" data-testid="eval-generations">
      <h2>Greedy generations, latest run</h2>
      <div className="gen-grid">
        {rows.map((r) => (
          <div key={r.config} className="gen-cell" data-testid="eval-generation" data-config={r.config}>
            <span className="field-label mono">{r.config}</span>
            <p className="gen-text">{r.generation}</p>
          </div>
        ))}
      </div>
    </section>
  );
}
