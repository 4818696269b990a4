/** |x| histogram with the quantization grid of the first group and its clip threshold on top. */
import { useMemo } from 'react';
import { getAnalysis } from '../../engine/analysis-cache.ts';
import { gridMagnitudes, gridTop, mergeBins, verticalSegments } from '../../chart-data.ts';
import { fmt } from '../../format.ts';
import { useAppStore } from '../../store/index.ts';
import { Plot } from '../plot.tsx';
import { ChartCard } from './chart-card.tsx';

/** 2048 bins merged 8 to 1: 256 bars read well at card width and keep the shape of the tails. */
const MERGE = 8;

export function HistogramChart() {
  const version = useAppStore((s) => s.playground.result?.version);
  const logY = useAppStore((s) => s.playground.logHistogram);
  const setLogY = useAppStore((s) => s.setLogHistogram);
  const a = getAnalysis(version);

  const figure = useMemo(() => {
    if (!a) return undefined;
    const cfg = a.config;
    const hist = mergeBins(a.histogram.counts, a.histogram.range, MERGE);
    const scale = a.firstGroups.scale[0];
    const zero = a.firstGroups.zero[0];
    const grid = gridMagnitudes(cfg, scale, zero).filter((v) => v <= a.histogram.range * 1.02);
    const dense = grid.length > 40;
    const seg = verticalSegments(grid, 0, 1);
    // Per-tensor clips every value at r·amax; otherwise each group clips at its own r·absmax, of which
    // the first group's (the top of its grid) is the one drawn.
    const clipAt = cfg.granularity === 'tensor' ? cfg.clipRatio * a.tensorAbsmax : gridTop(cfg, scale, zero);
    const data = [
      {
        type: 'bar',
        x: hist.x,
        y: hist.y,
        width: hist.width,
        name: 'count of |x|',
        marker: { color: '#64748b' },
        hovertemplate: '|x| ≈ %{x:.3g}<br>%{y} values<extra></extra>',
      },
      {
        type: 'scatter',
        mode: 'lines',
        x: seg.x,
        y: seg.y,
        yaxis: 'y2',
        name: `grid of ${cfg.granularity === 'tensor' ? 'the tensor' : 'group 0'} (${grid.length} magnitudes)`,
        line: { color: 'rgba(37, 99, 235, 0.75)', width: dense ? 0.6 : 1.4 },
        hoverinfo: 'skip',
      },
      {
        type: 'scatter',
        mode: 'lines',
        x: [clipAt, clipAt],
        y: [0, 1],
        yaxis: 'y2',
        name: `clip t = ${fmt(clipAt)}`,
        line: { color: '#dc2626', width: 2, dash: 'dash' },
        hoverinfo: 'skip',
      },
    ];
    const layout = {
      bargap: 0,
      xaxis: { title: { text: '|x|' }, range: [0, a.histogram.range * 1.02], zeroline: false },
      yaxis: { title: { text: 'values per bin' }, type: logY ? 'log' : 'linear', rangemode: 'tozero', gridcolor: '#e2e8f0' },
      yaxis2: { overlaying: 'y', range: [0, 1], visible: false, fixedrange: true },
      showlegend: true,
    };
    return { data, layout, gridCount: grid.length, clipAt };
  }, [a, logY]);

  const cfg = a?.config;
  const where = !cfg ? '' : cfg.granularity === 'tensor' ? 'the tensor' : cfg.granularity === 'channel' ? 'row 0' : `group 0 (row 0, the first ${cfg.groupSize} columns)`;
  return (
    <ChartCard
      testId="chart-histogram"
      title="Values and the quantization grid"
      aside={
        <label className="toggle">
          <input type="checkbox" checked={logY} onChange={(e) => setLogY(e.target.checked)} data-testid="log-y" /> log scale
        </label>
      }
      explain={
        <>
          <p>
            Bars: how many values have each magnitude |x| (2048 bins merged 8 to 1). Blue lines: the magnitudes {where} can represent, x′ = (q − z)·s; a value
            between two lines is rounded to the nearer one (half to even), a value beyond the red line is clipped to it.
          </p>
          <p className="formula">
            symmetric s = amax / (2<sup>b−1</sup> − 1), z = 0 &nbsp;·&nbsp; affine s = (max − min) / (2<sup>b</sup> − 1), z = round(−min / s)
          </p>
          {cfg && cfg.granularity !== 'tensor' && <p>Other {cfg.granularity === 'channel' ? 'rows' : 'groups'} have their own scale, hence their own grid.</p>}
        </>
      }
    >
      {figure ? <Plot data={figure.data} layout={figure.layout} height={320} testId="plot-histogram" /> : <div className="plot-empty" style={{ height: 320 }} />}
    </ChartCard>
  );
}
