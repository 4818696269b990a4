/** absmax of every input channel (column) and output channel (row): where the outliers sit. */
import { useMemo } from 'react';
import { getAnalysis } from '../../engine/analysis-cache.ts';
import { maxPool, median, topK } from '../../chart-data.ts';
import { fmt } from '../../format.ts';
import { useAppStore } from '../../store/index.ts';
import { Plot } from '../plot.tsx';
import { ChartCard } from './chart-card.tsx';

/** SVG bars get slow in the thousands; wider tensors show the max of each run of channels. */
const MAX_BARS = 512;
/** A channel this many times the median is drawn as an outlier. */
const OUTLIER_FACTOR = 5;

function bars(values: Float32Array, axis: 'x' | 'x2', yaxis: 'y' | 'y2', name: string, color: string, outlierColor: string) {
  const pooled = maxPool(values, MAX_BARS);
  const med = median(values);
  return {
    type: 'bar',
    x: pooled.x,
    y: pooled.y,
    xaxis: axis,
    yaxis,
    name,
    marker: { color: pooled.y.map((v) => (med > 0 && v > OUTLIER_FACTOR * med ? outlierColor : color)) },
    customdata: pooled.x.map((x) => Math.min(x + pooled.stride, values.length) - 1),
    hovertemplate: pooled.stride > 1 ? 'channels %{x}–%{customdata}: max %{y:.4g}<extra></extra>' : 'channel %{x}: %{y:.4g}<extra></extra>',
  };
}

export function AbsmaxChart() {
  const version = useAppStore((s) => s.playground.result?.version);
  const a = getAnalysis(version);

  const figure = useMemo(() => {
    if (!a) return undefined;
    const data = [bars(a.colAbsmax, 'x', 'y', 'input channels (columns)', '#64748b', '#dc2626'), bars(a.rowAbsmax, 'x2', 'y2', 'output channels (rows)', '#94a3b8', '#dc2626')];
    // Stacked, not side by side: each panel keeps the card's full width for its channels.
    const layout = {
      showlegend: false,
      bargap: 0.1,
      xaxis: { title: { text: `input channel (column), ${a.colAbsmax.length} in all`, standoff: 4 }, anchor: 'y' },
      yaxis: { domain: [0.6, 1], title: { text: 'max |x|' }, rangemode: 'tozero', gridcolor: '#e2e8f0' },
      xaxis2: { title: { text: `output channel (row), ${a.rowAbsmax.length} in all`, standoff: 4 }, anchor: 'y2' },
      yaxis2: { domain: [0, 0.4], title: { text: 'max |x|' }, rangemode: 'tozero', gridcolor: '#e2e8f0' },
      margin: { l: 56, r: 16, t: 8, b: 40 },
    };
    const top = topK(a.colAbsmax, 3);
    const topRows = topK(a.rowAbsmax, 3);
    return { data, layout, top, topRows, colMedian: median(a.colAbsmax), rowMedian: median(a.rowAbsmax) };
  }, [a]);

  const name = (list: { index: number; value: number }[]) => list.map((t) => `#${t.index} (${fmt(t.value)})`).join(', ');
  return (
    <ChartCard
      testId="chart-absmax"
      title="Outlier channels"
      explain={
        <>
          {figure && (
            <p data-testid="top-channels">
              Largest input channels: <strong>{name(figure.top)}</strong>; median {fmt(figure.colMedian)}. Largest rows: {name(figure.topRows)}; median{' '}
              {fmt(figure.rowMedian)}.
            </p>
          )}
          <p>
            A scale must cover the largest value it serves. One large input channel inflates the scale of every row it crosses, so the ordinary values of those
            rows fall on a few grid points. Per-group scales confine the outlier to its own g columns; SmoothQuant and AWQ rescale the channel instead. Red bars
            are more than {OUTLIER_FACTOR}× the median.
          </p>
        </>
      }
    >
      {figure ? <Plot data={figure.data} layout={figure.layout} height={340} testId="plot-absmax" /> : <div className="plot-empty" style={{ height: 340 }} />}
    </ChartCard>
  );
}
