/** Clipping error against rounding error over the clip ratio, with the chosen and the best ratio marked. */
import { useEffect, useMemo, useRef } from 'react';
import { getAnalysis, getSweep } from '../../engine/analysis-cache.ts';
import { fmt } from '../../format.ts';
import { useAppStore } from '../../store/index.ts';
import { Plot } from '../plot.tsx';
import { ChartCard } from './chart-card.tsx';

/** A log axis cannot show 0 (no clipping at r = 1): leave the point out instead. */
const positive = (v: number) => (v > 0 ? v : null);

export function SweepChart() {
  const version = useAppStore((s) => s.playground.result?.version);
  const state = useAppStore((s) => s.playground.result?.sweep);
  const running = useAppStore((s) => s.playground.run.status === 'running');
  const a = getAnalysis(version);
  const sweep = state === 'done' ? getSweep(version) : undefined;

  const figure = useMemo(() => {
    if (!a || !sweep || sweep.length === 0) return undefined;
    const n = a.metrics.count || 1;
    const r = sweep.map((p) => p.ratio);
    const best = sweep.reduce((b, p) => (p.mse < b.mse ? p : b), sweep[0]);
    const chosen = a.config.clipRatio;
    const data = [
      { type: 'scatter', mode: 'lines', x: r, y: sweep.map((p) => positive(p.clipSse / n)), name: 'clipping', line: { color: '#ea580c', width: 2 } },
      { type: 'scatter', mode: 'lines', x: r, y: sweep.map((p) => positive(p.roundSse / n)), name: 'rounding', line: { color: '#2563eb', width: 2 } },
      { type: 'scatter', mode: 'lines', x: r, y: sweep.map((p) => positive(p.mse)), name: 'total (MSE)', line: { color: '#0f172a', width: 3 } },
      {
        type: 'scatter',
        mode: 'markers',
        x: [best.ratio],
        y: [best.mse],
        name: `best r = ${best.ratio.toFixed(2)}`,
        marker: { color: '#16a34a', size: 10, symbol: 'diamond' },
      },
    ];
    const layout = {
      xaxis: { title: { text: 'clip ratio r = t / amax' }, range: [0, 1.02] },
      // dtick 1 on a log axis: one label per decade, not the crowded 2 and 5 in between.
      yaxis: { title: { text: 'squared error per value' }, type: 'log', dtick: 1, exponentformat: 'power', gridcolor: '#e2e8f0' },
      shapes: [{ type: 'line', xref: 'x', yref: 'paper', x0: chosen, x1: chosen, y0: 0, y1: 1, line: { color: '#dc2626', width: 2, dash: 'dash' } }],
      annotations: [{ x: chosen, y: 1, xref: 'x', yref: 'paper', text: `r = ${chosen.toFixed(2)}`, showarrow: false, yanchor: 'bottom', xanchor: chosen > 0.85 ? 'right' : 'center', font: { color: '#dc2626' } }],
      margin: { l: 64, r: 16, t: 24, b: 44 },
    };
    return { data, layout, best };
  }, [a, sweep]);
  // While the next sweep runs, the previous one stays drawn (dimmed) so the chart updates in place.
  const kept = useRef(figure);
  useEffect(() => {
    if (figure) kept.current = figure;
  }, [figure]);
  const drawn = figure ?? kept.current;

  return (
    <ChartCard
      testId="chart-sweep"
      title="Clipping vs. rounding"
      explain={
        <>
          <p>
            Clip at t = r·amax and the step becomes s ∝ t. Every value inside ±t then carries a rounding error of about s²/12 (uniform over ±s/2), every value
            beyond t loses |x| − t. Lowering r cuts the rounding error quadratically but clips more of the tail; the total is smallest where the two balance.
          </p>
          {figure && (
            <p>
              Here the lowest MSE is {fmt(figure.best.mse)} at r = {figure.best.ratio.toFixed(2)}; the red line is your r.
            </p>
          )}
        </>
      }
    >
      <div className="plot-stack">
        {drawn ? <Plot data={drawn.data} layout={drawn.layout} height={300} testId="plot-sweep" /> : <div className="plot-empty" style={{ height: 300 }} />}
        {state !== 'done' && state !== undefined && (
          <div className="plot-overlay" data-testid="sweep-placeholder">
            {state === 'pending' || running ? (
              <span>
                <span className="spinner" aria-hidden /> Sweeping the clip ratio…
              </span>
            ) : (
              <span>Not computed: the run stopped before the sweep finished.</span>
            )}
          </div>
        )}
      </div>
    </ChartCard>
  );
}
