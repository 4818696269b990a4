/**
 * What a SmoothQuant run found: the W8A8 error of every norm group at every alpha (relative to no smoothing)
 * with the model's and each group's best alpha, the selected group's activation and weight difficulty across
 * alpha, and the table of every group before and after the folded alpha.
 */
import { useId, useMemo } from 'react';
import type { Data, Layout } from 'plotly.js-dist-min';
import type { SmoothQuantReport } from '../../../smooth/smooth-model.ts';
import type { GroupSweep } from '../../../smooth/smoothquant.ts';
import { fmt } from '../../format.ts';
import { useAppStore } from '../../store/index.ts';
import { ChartCard } from '../playground/chart-card.tsx';
import { Plot } from '../plot.tsx';
import { percentChange, relativeSweep } from './search-data.ts';

const sci = (v: number) => (Number.isFinite(v) ? v.toExponential(3) : String(v));
const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#be185d', '#65a30d', '#4f46e5', '#b45309', '#0f766e', '#7c3aed'];

export function SmoothSummary({ report }: { report: SmoothQuantReport }) {
  const change = percentChange(report.total.mseBefore, report.total.mseAfter);
  return (
    <section className="card" data-testid="smooth-summary" data-alpha={report.alpha} data-before={report.total.mseBefore} data-after={report.total.mseAfter}>
      <header className="chart-head">
        <h2>
          {report.model}: W8A8 ({report.act} activations), alpha {report.alphaMode === 'sweep-group' ? 'per group' : report.alpha}
        </h2>
        <span className="muted">
          {report.groups.length} groups · {report.data ? `${report.data.tokens} tokens of ${report.data.source}` : ''} · {report.seconds.toFixed(1)} s ({report.evaluator})
        </span>
      </header>
      <div className="metrics">
        <div className="metric">
          <span className="metric-label">Summed W8A8 output MSE, before → after</span>
          <span className="metric-value" data-testid="smooth-total">
            {sci(report.total.mseBefore)} → {sci(report.total.mseAfter)} ({fmt(change, 3)}%)
          </span>
        </div>
        <div className="metric">
          <span className="metric-label">{report.alphaMode === 'fixed' ? 'Alpha' : "Model's best alpha"}</span>
          <span className="metric-value" data-testid="smooth-alpha-value">
            {report.alpha.toFixed(2)}
          </span>
        </div>
      </div>
    </section>
  );
}

/** Every group's W8A8 error relative to its unsmoothed baseline, across alpha. */
export function SmoothSweepChart({ report, sweeps }: { report: SmoothQuantReport; sweeps: GroupSweep[] }) {
  const figure = useMemo(() => {
    const rel = relativeSweep(sweeps);
    const data: Data[] = rel.flatMap((g, i): Data[] => {
      const color = PALETTE[i % PALETTE.length];
      const bi = g.alphas.indexOf(g.best);
      return [
        { type: 'scatter', mode: 'lines', x: g.alphas, y: g.rel, name: g.group, line: { color, width: 1.5 }, legendgroup: g.group, hovertemplate: `${g.group}<br>alpha %{x:.2f}: %{y:.3f} × unsmoothed<extra></extra>` },
        { type: 'scatter', mode: 'markers', x: [g.best], y: [g.rel[bi]], name: `${g.group} best`, showlegend: false, legendgroup: g.group, marker: { color, size: 8, symbol: 'circle-open', line: { width: 2 } }, hovertemplate: `${g.group}: best alpha %{x:.2f}<extra></extra>` },
      ];
    });
    const layout: Layout = {
      xaxis: { title: { text: 'alpha' }, range: [0, 1] },
      yaxis: { title: { text: 'W8A8 output MSE / unsmoothed (log)' }, type: 'log', gridcolor: '#e2e8f0' },
      shapes: [
        { type: 'line', x0: report.alpha, x1: report.alpha, yref: 'paper', y0: 0, y1: 1, line: { color: '#0f172a', dash: 'dash', width: 1.5 } },
        { type: 'line', x0: 0, x1: 1, y0: 1, y1: 1, line: { color: '#94a3b8', dash: 'dot', width: 1 } },
      ],
      annotations: [{ x: report.alpha, yref: 'paper', y: 1, text: `model best ${report.alpha.toFixed(2)}`, showarrow: false, yanchor: 'bottom', font: { size: 11 } }],
      legend: { orientation: 'h', x: 0, y: -0.25, yanchor: 'top', font: { size: 10 } },
      margin: { l: 64, r: 16, t: 20, b: 44 },
    };
    return { data, layout };
  }, [report, sweeps]);
  return (
    <ChartCard
      title="Alpha sweep: W8A8 error of every group"
      testId="smooth-sweep-chart"
      explain={
        <p>
          For each alpha the factors s_j = max|X_j|^α / max|W_j|^(1−α) move difficulty from the activations to the weights; the group's linears then run with INT8
          per-channel weights and INT8 {report.act} activations on the captured rows. Below the dotted line smoothing helps. Circles: each group's best alpha; dashed: the model's.
        </p>
      }
    >
      <Plot data={figure.data} layout={figure.layout} height={360} />
    </ChartCard>
  );
}

/** The selected group's difficulty (max over median of the per-channel absmax) of activations and weights across alpha. */
export function SmoothDifficultyChart({ sweeps, report }: { sweeps: GroupSweep[]; report: SmoothQuantReport }) {
  const id = useId();
  const selected = useAppStore((s) => s.search.smoothGroup);
  const patch = useAppStore((s) => s.patchSearch);
  const sw = sweeps.find((s) => s.group === selected) ?? sweeps[0];
  const figure = useMemo(() => {
    if (!sw) return undefined;
    const a = sw.points.map((p) => p.alpha);
    const data: Data[] = [
      { type: 'scatter', mode: 'lines', x: a, y: sw.points.map((p) => p.activation.max), name: 'activation max |X|', line: { color: '#dc2626', width: 2 } },
      { type: 'scatter', mode: 'lines', x: a, y: sw.points.map((p) => p.weight.max), name: 'weight max |W|', line: { color: '#2563eb', width: 2 } },
      { type: 'scatter', mode: 'lines', x: a, y: sw.points.map((p) => p.activation.spread), name: 'activation spread (max / median)', line: { color: '#dc2626', dash: 'dot' } },
      { type: 'scatter', mode: 'lines', x: a, y: sw.points.map((p) => p.weight.spread), name: 'weight spread', line: { color: '#2563eb', dash: 'dot' } },
    ];
    const layout: Layout = {
      xaxis: { title: { text: 'alpha' }, range: [0, 1] },
      yaxis: { title: { text: 'per-channel absmax (log)' }, type: 'log', gridcolor: '#e2e8f0' },
      shapes: [{ type: 'line', x0: sw.bestAlpha, x1: sw.bestAlpha, yref: 'paper', y0: 0, y1: 1, line: { color: '#0f172a', dash: 'dash', width: 1 } }],
    };
    return { data, layout };
  }, [sw]);
  if (!sw || !figure) return null;
  const g = report.groups.find((x) => x.group === sw.group);
  return (
    <ChartCard
      title="Difficulty migration"
      testId="smooth-difficulty-chart"
      aside={
        <div className="field inline-field">
          <label className="field-label" htmlFor={id}>
            Group
          </label>
          <select id={id} value={sw.group} onChange={(e) => patch({ smoothGroup: e.target.value })} data-testid="smooth-group-select">
            {sweeps.map((s) => (
              <option key={s.group} value={s.group}>
                {s.group}
              </option>
            ))}
          </select>
        </div>
      }
      explain={
        <p>
          Unsmoothed: activation max {fmt(sw.baseline.activation.max)} (spread {fmt(sw.baseline.activation.spread)}), weight max {fmt(sw.baseline.weight.max)} (spread{' '}
          {fmt(sw.baseline.weight.spread)}). As alpha grows the activation outliers shrink and the weights take them on; the dashed line is this group's best alpha
          {g ? ` (${sw.bestAlpha.toFixed(2)}; folded: ${g.alpha.toFixed(2)})` : ''}.
        </p>
      }
    >
      <Plot data={figure.data} layout={figure.layout} height={280} />
    </ChartCard>
  );
}

export function SmoothTable({ report }: { report: SmoothQuantReport }) {
  return (
    <section className="card" data-testid="smooth-table">
      <h2>Groups before and after the folded alpha</h2>
      <div className="table-wrap">
        <table className="data-table">
          <thead>
            <tr>
              <th>Norm group</th>
              <th className="num">Alpha</th>
              <th className="num">Best</th>
              <th className="num">Act max → after</th>
              <th className="num">Weight max → after</th>
              <th className="num">W8A8 MSE before → after</th>
              <th className="num">SQNR dB</th>
            </tr>
          </thead>
          <tbody>
            {report.groups.map((g) => {
              const d = g.difficulty;
              const c = percentChange(g.error.before.mse, g.error.after.mse);
              return (
                <tr key={g.group} data-testid="smooth-row" data-group={g.group} data-before={g.error.before.mse} data-after={g.error.after.mse} data-best={g.bestAlpha}>
                  <td className="mono" title={g.linears.join(', ')}>
                    {g.group}
                  </td>
                  <td className="num">{g.alpha.toFixed(2)}</td>
                  <td className="num">{g.bestAlpha === undefined ? '—' : g.bestAlpha.toFixed(2)}</td>
                  <td className="num">
                    {fmt(d.activation.before.max, 3)} → {fmt(d.activation.after.max, 3)}
                  </td>
                  <td className="num">
                    {fmt(d.weight.before.max, 3)} → {fmt(d.weight.after.max, 3)}
                  </td>
                  <td className={`num ${c < 0 ? 'ok' : 'warn'}`}>
                    {sci(g.error.before.mse)} → {sci(g.error.after.mse)} ({fmt(c, 3)}%)
                  </td>
                  <td className="num">
                    {fmt(g.error.before.sqnr, 3)} → {fmt(g.error.after.sqnr, 3)}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </section>
  );
}
