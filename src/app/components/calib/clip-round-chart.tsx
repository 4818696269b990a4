/**
 * The trade-off every calibrator makes: a smaller amax clips more values (clipping error grows) but gives a
 * finer grid (rounding error shrinks). The curves come from the tensor's histogram on the main thread; each
 * calibrator's choice is marked on the total.
 */
import { useMemo } from 'react';
import type { Data, Layout } from 'plotly.js-dist-min';
import { clipRoundCurve, clipRoundError } from '../../../calib/calibrators.ts';
import { CALIB_METHODS, type ActivationSummary, type TensorCalibration } from '../../../calib/types.ts';
import { fmt } from '../../format.ts';
import { ChartCard } from '../playground/chart-card.tsx';
import { Plot } from '../plot.tsx';
import { amaxMarkers, clipRoundSeries, histogramTotal } from './calib-data.ts';

/** Candidates drawn: smooth at card width, and 256 × 2048 bins stays a few milliseconds. */
const POINTS = 256;

export function ClipRoundChart({ s, t }: { s: ActivationSummary; t: TensorCalibration }) {
  const figure = useMemo(() => {
    const count = histogramTotal(s.histogram.counts);
    let curve;
    try {
      curve = clipRoundSeries(clipRoundCurve(s.histogram, t.bits, POINTS), count);
    } catch (e) {
      return { error: e instanceof Error ? e.message : String(e) };
    }
    const markers = amaxMarkers(t.amax, CALIB_METHODS).map((m) => {
      const e = clipRoundError(s.histogram, m.amax, t.bits);
      return { ...m, total: (e.clipSse + e.roundSse) / Math.max(1, count) };
    });
    const line = (name: string, y: number[], color: string, dash = 'solid', width = 2): Data => ({
      type: 'scatter',
      mode: 'lines',
      x: curve.amax,
      y: y.map((v) => (v > 0 ? v : null)),
      name,
      line: { color, dash, width },
      hovertemplate: `${name}<br>amax %{x:.4g}: %{y:.3e}<extra></extra>`,
    });
    const data: Data[] = [
      line('clipping error', curve.clip, '#f97316', 'dot'),
      line('rounding error', curve.round, '#0ea5e9', 'dot'),
      line('total MSE', curve.total, '#0f172a', 'solid', 2.5),
      ...markers.map(
        (m): Data => ({
          type: 'scatter',
          mode: 'markers',
          x: [m.amax],
          y: [m.total > 0 ? m.total : null],
          name: m.label,
          marker: { color: m.color, size: 10, symbol: 'diamond', line: { color: '#fff', width: 1 } },
          hovertemplate: `${m.label}<br>amax ${fmt(m.amax)}<br>MSE %{y:.3e}<extra></extra>`,
        }),
      ),
    ];
    const lo = Math.min(curve.amax[0] ?? 0, ...markers.map((m) => m.amax));
    const hi = Math.max(curve.amax[curve.amax.length - 1] ?? 0, ...markers.map((m) => m.amax));
    const layout: Layout = {
      showlegend: true,
      // Above the plot: with seven calibrators an inset legend would hide the lines it names.
      margin: { l: 64, r: 16, t: 8, b: 44 },
      legend: { orientation: 'h', x: 0, y: 1.02, yanchor: 'bottom', font: { size: 11 } },
      xaxis: { title: { text: 'amax (clip threshold, |x| units)' }, range: [lo * 0.95, hi * 1.02] },
      yaxis: { title: { text: 'MSE per value (log scale)' }, type: 'log', exponentformat: 'power', gridcolor: '#e2e8f0' },
    };
    return { data, layout };
  }, [s, t]);
  return (
    <ChartCard
      title="Clipping vs rounding error"
      testId="clip-round-chart"
      explain={
        <p>
          INT{t.bits} symmetric with threshold amax, from the histogram's bin centres: values above amax contribute (|x| − amax)², the rest (x − Q(x))² with a
          grid step of amax / {2 ** (t.bits - 1) - 1}; both divided by the number of values. The MSE calibrator sits at the minimum of the total; entropy
          minimises KL divergence instead, so it may sit off it.
        </p>
      }
    >
      {'error' in figure ? (
        <div className="plot-empty" style={{ height: 360 }}>
          No curve for this tensor: {figure.error}
        </div>
      ) : (
        <Plot data={figure.data} layout={figure.layout} height={360} testId="clip-round-plot" />
      )}
    </ChartCard>
  );
}
