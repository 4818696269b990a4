/** The 2048-bin |x| histogram of one activation tensor with each calibrator's amax drawn on it. */
import { useMemo } from 'react';
import type { Data, Layout } from 'plotly.js-dist-min';
import { CALIB_METHODS, type ActivationSummary, type TensorCalibration } from '../../../calib/types.ts';
import { fmt } from '../../format.ts';
import { ChartCard } from '../playground/chart-card.tsx';
import { Plot } from '../plot.tsx';
import { amaxMarkers, histogramBars, histogramTotal } from './calib-data.ts';

export function CalibHistogram({ s, t }: { s: ActivationSummary; t: TensorCalibration }) {
  const figure = useMemo(() => {
    const bars = histogramBars(s.histogram);
    const markers = amaxMarkers(t.amax, CALIB_METHODS);
    const data: Data[] = [
      {
        type: 'bar',
        x: bars.x,
        // Empty bins have no bar on a log axis; null keeps Plotly from warning about log(0).
        y: bars.y.map((c) => (c > 0 ? c : null)),
        width: bars.width,
        name: 'values per bin',
        marker: { color: '#94a3b8', line: { width: 0 } },
        hovertemplate: '|x| ≈ %{x:.4g}<br>%{y} values<extra></extra>',
      },
      ...markers.map(
        (m): Data => ({
          type: 'scatter',
          mode: 'lines',
          x: [m.amax, m.amax],
          y: [0, 1],
          yaxis: 'y2',
          name: `${m.label}: ${fmt(m.amax)}`,
          line: { color: m.color, dash: m.dash, width: 2 },
          hovertemplate: `${m.label}<br>amax = ${fmt(m.amax)}<br>SQNR ${fmt(t.sqnrDb[m.method])} dB<extra></extra>`,
        }),
      ),
    ];
    const layout: Layout = {
      bargap: 0,
      showlegend: true,
      // Above the plot: with seven calibrators an inset legend would hide the lines it names.
      margin: { l: 64, r: 16, t: 8, b: 44 },
      legend: { orientation: 'h', x: 0, y: 1.02, yanchor: 'bottom', font: { size: 11 } },
      xaxis: { title: { text: '|x| (activation magnitude)' }, range: [0, s.histogram.range * 1.02], zeroline: false },
      yaxis: { title: { text: 'values per bin (log scale)' }, type: 'log', dtick: 1, gridcolor: '#e2e8f0' },
      yaxis2: { overlaying: 'y', range: [0, 1], visible: false, fixedrange: true },
    };
    return { data, layout, total: histogramTotal(s.histogram.counts), width: bars.width };
  }, [s, t]);
  return (
    <ChartCard
      title="Histogram and calibrated ranges"
      testId="calib-histogram"
      explain={
        <p>
          {figure.total.toLocaleString('en-US')} values of |x| in {s.histogram.counts.length} bins of width {fmt(figure.width)}; each line is the amax a calibrator
          picks. Values beyond it are clipped, the rest rounded to a grid of step amax / {2 ** (t.bits - 1) - 1} (INT{t.bits}, symmetric). Max keeps every value;
          percentiles and entropy cut the rare tail to get a finer grid for the rest.
        </p>
      }
    >
      <Plot data={figure.data} layout={figure.layout} height={360} testId="calib-histogram-plot" />
    </ChartCard>
  );
}
