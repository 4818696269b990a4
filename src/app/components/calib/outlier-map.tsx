/**
 * Where one activation tensor's outliers sit: |x| over channels and the first tokens (a heatmap, or a 3D surface
 * as in the SmoothQuant paper's figures), the per-channel max |x| with the largest channels named, and the
 * per-input-channel max |w| of the layers that read the tensor, side by side: SmoothQuant moves scale from the
 * activation's outlier channels into exactly these weight columns.
 */
import { useMemo } from 'react';
import type { Data, Layout } from 'plotly.js-dist-min';
import type { ActivationSummary } from '../../../calib/types.ts';
import { maxPool, median } from '../../chart-data.ts';
import { fmt } from '../../format.ts';
import { useAppStore } from '../../store/index.ts';
import { ChartCard } from '../playground/chart-card.tsx';
import { Plot } from '../plot.tsx';
import { describeOutlier, snapshotGrid, topOutlierChannels } from './calib-data.ts';

/** Heatmap cells stay cheap up to ~1000 columns; a WebGL surface is smoother with fewer. */
const MAP_COLUMNS = { '2d': 1024, '3d': 320 } as const;
/** SVG bars get slow in the thousands; wider tensors show the max of each run of channels. */
const MAX_BARS = 512;
const TOP_K = 8;
const LAYER_COLORS = ['#2563eb', '#0d9488', '#9333ea', '#ea580c', '#db2777', '#65a30d'];

function channelRange(x: number, stride: number, n: number): string {
  return stride > 1 ? `channels ${x}–${Math.min(x + stride, n) - 1}` : `channel ${x}`;
}

function MapPlot({ s, positions }: { s: ActivationSummary; positions: string }) {
  const view = useAppStore((st) => st.calib.mapView);
  const figure = useMemo(() => {
    if (!s.snapshot || s.snapshot.tokens === 0) return undefined;
    const g = snapshotGrid(s.snapshot, s.channels, MAP_COLUMNS[view]);
    const xTitle = g.stride > 1 ? `channel (max over runs of ${g.stride})` : 'channel';
    const hover = `${g.stride > 1 ? 'channels from %{x}' : 'channel %{x}'}<br>${positions} %{y}<br>|x| = %{z:.4g}<extra></extra>`;
    if (view === '3d') {
      const data: Data[] = [{ type: 'surface', x: g.x, y: g.y, z: g.z, colorscale: 'Viridis', colorbar: { title: { text: '|x|' }, thickness: 12 }, hovertemplate: hover }];
      const layout: Layout = {
        margin: { l: 0, r: 0, t: 0, b: 0 },
        scene: {
          xaxis: { title: { text: xTitle } },
          yaxis: { title: { text: positions } },
          zaxis: { title: { text: '|x|' } },
          camera: { eye: { x: 1.6, y: -1.6, z: 0.9 } },
          aspectmode: 'manual',
          aspectratio: { x: 1.6, y: 1, z: 0.7 },
        },
      };
      return { data, layout, tokens: g.y.length };
    }
    const data: Data[] = [{ type: 'heatmap', x: g.x, y: g.y, z: g.z, colorscale: 'Viridis', colorbar: { title: { text: '|x|' }, thickness: 12 }, hovertemplate: hover }];
    const layout: Layout = {
      margin: { l: 56, r: 16, t: 8, b: 44 },
      xaxis: { title: { text: xTitle } },
      yaxis: { title: { text: `${positions} (first ${g.y.length})` }, autorange: 'reversed' },
    };
    return { data, layout, tokens: g.y.length };
  }, [s, view, positions]);
  if (!figure) return <div className="plot-empty">No channel × {positions} snapshot was kept for this tensor.</div>;
  return <Plot data={figure.data} layout={figure.layout} height={view === '3d' ? 460 : 340} testId="outlier-map-plot" />;
}

function ActivationBars({ s }: { s: ActivationSummary }) {
  const top = useMemo(() => topOutlierChannels(s.channelAbsmax, TOP_K), [s]);
  const figure = useMemo(() => {
    const pooled = maxPool(s.channelAbsmax, MAX_BARS);
    const med = median(s.channelAbsmax);
    const topSet = new Set(top.slice(0, 3).map((t) => t.channel));
    const isTop = (x: number) => {
      for (let c = x; c < Math.min(x + pooled.stride, s.channels); c++) if (topSet.has(c)) return true;
      return false;
    };
    const data: Data[] = [
      {
        type: 'bar',
        x: pooled.x,
        y: pooled.y,
        name: 'max |x| per channel',
        marker: { color: pooled.x.map((x) => (isTop(x) ? '#dc2626' : '#64748b')) },
        customdata: pooled.x.map((x) => channelRange(x, pooled.stride, s.channels)),
        hovertemplate: '%{customdata}: %{y:.4g}<extra></extra>',
      },
      {
        type: 'scatter',
        mode: 'lines',
        x: [0, s.channels],
        y: [med, med],
        name: `median ${fmt(med, 3)}`,
        line: { color: '#2563eb', dash: 'dash', width: 1.5 },
        hoverinfo: 'skip',
      },
    ];
    const layout: Layout = {
      bargap: 0,
      showlegend: true,
      xaxis: { title: { text: pooled.stride > 1 ? `input channel (max over runs of ${pooled.stride})` : 'input channel' } },
      yaxis: { title: { text: 'max |x|' }, rangemode: 'tozero', gridcolor: '#e2e8f0' },
    };
    return { data, layout };
  }, [s, top]);
  return (
    <div className="outlier-panel" data-testid="channel-bars">
      <h3>Activation: max |x| per channel</h3>
      <Plot data={figure.data} layout={figure.layout} height={260} testId="channel-bars-plot" />
      <ol className="outlier-top" data-testid="outlier-top" aria-label="largest channels">
        {top.map((o) => (
          <li key={o.channel} data-channel={o.channel} data-value={o.absmax} data-ratio={o.ratio}>
            {describeOutlier(o)}
          </li>
        ))}
      </ol>
    </div>
  );
}

function WeightBars({ s, weights }: { s: ActivationSummary; weights: Record<string, Float32Array> }) {
  const layers = useMemo(() => s.layers.filter((l) => weights[l]), [s, weights]);
  const figure = useMemo(() => {
    if (layers.length === 0) return undefined;
    const marks = topOutlierChannels(s.channelAbsmax, 3).map((o) => o.channel);
    let stride = 1;
    const data: Data[] = layers.map((l, i) => {
      const pooled = maxPool(weights[l], MAX_BARS);
      stride = Math.max(stride, pooled.stride);
      return {
        type: 'bar',
        x: pooled.x,
        y: pooled.y,
        name: l,
        opacity: layers.length > 1 ? 0.6 : 1,
        marker: { color: LAYER_COLORS[i % LAYER_COLORS.length] },
        customdata: pooled.x.map((x) => channelRange(x, pooled.stride, weights[l].length)),
        hovertemplate: `${l}<br>%{customdata}: max |w| %{y:.4g}<extra></extra>`,
      };
    });
    const layout: Layout = {
      bargap: 0,
      barmode: 'overlay',
      showlegend: true,
      xaxis: { title: { text: stride > 1 ? `input channel (max over runs of ${stride})` : 'input channel' } },
      yaxis: { title: { text: 'max |w| over output channels' }, rangemode: 'tozero', gridcolor: '#e2e8f0' },
      // The activation's three largest channels, to see whether the weights are small or large there.
      shapes: marks.map((c) => ({ type: 'line', x0: c, x1: c, yref: 'paper', y0: 0, y1: 1, line: { color: '#dc2626', dash: 'dot', width: 1 } })),
    };
    return { data, layout };
  }, [s, layers, weights]);
  return (
    <div className="outlier-panel" data-testid="weight-bars" data-layers={layers.join(',')}>
      <h3>Weights reading it: max |w| per input channel</h3>
      {figure ? (
        <Plot data={figure.data} layout={figure.layout} height={260} testId="weight-bars-plot" />
      ) : (
        <div className="plot-empty" style={{ height: 260 }}>
          No weight statistics for {s.layers.join(', ') || 'the layers reading this tensor'}.
        </div>
      )}
      <p className="hint">Dotted red lines: the activation's three largest channels.</p>
    </div>
  );
}

export function OutlierMap({ s, weights, positions }: { s: ActivationSummary; weights: Record<string, Float32Array>; positions: string }) {
  const view = useAppStore((st) => st.calib.mapView);
  const patch = useAppStore((st) => st.patchCalib);
  const snapTokens = s.snapshot?.tokens ?? 0;
  return (
    <ChartCard
      title={`Outliers: ${s.name}`}
      testId="outlier-map"
      aside={
        <label className="toggle">
          <input type="checkbox" checked={view === '3d'} onChange={(e) => patch({ mapView: e.target.checked ? '3d' : '2d' })} data-testid="outlier-3d" /> 3D surface
        </label>
      }
      explain={
        <>
          <p>
            |x| of the first {snapTokens} {positions}s (rows) in every channel (columns). Outlier channels show as bright vertical stripes: large in every{' '}
            {positions}, so one per-tensor scale spends most of its grid on a few channels (Xiao et al., SmoothQuant, 2023, figures 4 and 9).
          </p>
          <p>
            Read by {s.layers.join(', ') || '–'}. Over all {s.tokens.toLocaleString('en-US')} {positions}s seen: max |x| {fmt(s.absmax)}, min {fmt(s.min)}, max {fmt(s.max)}.
          </p>
        </>
      }
    >
      <div data-view={view} data-testid="outlier-map-view">
        <MapPlot s={s} positions={positions} />
      </div>
      <div className="chart-row outlier-bars">
        <ActivationBars s={s} />
        <WeightBars s={s} weights={weights} />
      </div>
    </ChartCard>
  );
}
