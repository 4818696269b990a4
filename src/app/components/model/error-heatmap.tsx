/**
 * Per-layer error at a glance: SQNR (or log10 MSE) as a heatmap. Llama models get a block × projection grid, so
 * a bad block or a bad projection type shows as a row or a column; other models fill rows of 16 layers in graph
 * order. Layers kept at full precision are gaps.
 */
import { useMemo } from 'react';
import type { Data, Layout } from 'plotly.js-dist-min';
import type { ModelDescription } from '../../../model/workspace.ts';
import type { LayerReport } from '../../../quant/model-rtn.ts';
import { useAppStore } from '../../store/index.ts';
import { Segmented } from '../segmented.tsx';
import { Plot } from '../plot.tsx';
import { ChartCard } from '../playground/chart-card.tsx';

const LLAMA_COLUMNS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const ROW = 16;

export interface HeatGrid {
  x: string[];
  y: string[];
  z: (number | null)[][];
  names: (string | null)[][];
}

/** The grid the heatmap draws; exported for tests. */
export function heatGrid(d: ModelDescription, layers: LayerReport[], metric: 'sqnr' | 'mse'): HeatGrid {
  const byName = new Map(layers.map((l) => [l.name, l]));
  const value = (name: string): number | null => {
    const r = byName.get(name);
    if (!r || !r.config) return null;
    if (metric === 'mse') return r.mse > 0 ? Math.log10(r.mse) : null;
    return Number.isFinite(r.sqnr) ? r.sqnr : null;
  };
  if (d.kind === 'llama' && d.llama) {
    const n = d.llama.config.nLayers;
    const z = Array.from({ length: n }, () => LLAMA_COLUMNS.map(() => null as number | null));
    const names = Array.from({ length: n }, () => LLAMA_COLUMNS.map(() => null as string | null));
    for (const l of d.layers) {
      const c = LLAMA_COLUMNS.indexOf(l.op);
      if (l.block < 0 || c < 0) continue;
      z[l.block][c] = value(l.name);
      names[l.block][c] = l.name;
    }
    return { x: LLAMA_COLUMNS, y: Array.from({ length: n }, (_, i) => `block ${i}`), z, names };
  }
  const rows = Math.ceil(d.layers.length / ROW);
  const z = Array.from({ length: rows }, () => Array.from({ length: ROW }, () => null as number | null));
  const names = Array.from({ length: rows }, () => Array.from({ length: ROW }, () => null as string | null));
  d.layers.forEach((l, i) => {
    z[Math.floor(i / ROW)][i % ROW] = value(l.name);
    names[Math.floor(i / ROW)][i % ROW] = l.name;
  });
  return { x: Array.from({ length: ROW }, (_, i) => `+${i}`), y: Array.from({ length: rows }, (_, r) => `layers ${r * ROW}–${Math.min(d.layers.length, (r + 1) * ROW) - 1}`), z, names };
}

export function ErrorHeatmap({ d }: { d: ModelDescription }) {
  const report = useAppStore((s) => s.model.report);
  const metric = useAppStore((s) => s.model.heatMetric);
  const patchModel = useAppStore((s) => s.patchModel);
  const figure = useMemo(() => {
    if (!report) return undefined;
    const g = heatGrid(d, report.layers, metric);
    const data: Data[] = [
      {
        type: 'heatmap',
        x: g.x,
        y: g.y,
        z: g.z,
        customdata: g.names as unknown as string[][],
        hoverongaps: false,
        // Red is bad either way: low SQNR, high MSE.
        colorscale: [
          [0, '#b91c1c'],
          [0.5, '#facc15'],
          [1, '#15803d'],
        ],
        reversescale: metric === 'mse',
        colorbar: { title: { text: metric === 'sqnr' ? 'SQNR dB' : 'log10 MSE' }, thickness: 12 },
        hovertemplate: `%{customdata}<br>${metric === 'sqnr' ? 'SQNR %{z:.2f} dB' : 'log10 MSE %{z:.2f}'}<extra></extra>`,
      } as Data,
    ];
    const layout: Partial<Layout> = {
      margin: { l: 110, r: 16, t: 8, b: 40 },
      yaxis: { autorange: 'reversed', automargin: true },
      xaxis: { side: 'bottom', automargin: true },
    };
    return { data, layout, height: Math.max(180, 60 + 28 * g.y.length) };
  }, [d, report, metric]);
  if (!figure) return null;
  return (
    <ChartCard
      title="Error by layer"
      testId="error-heatmap"
      aside={
        <Segmented<'sqnr' | 'mse'>
          label="Show"
          value={metric}
          onChange={(heatMetric) => patchModel({ heatMetric })}
          options={[
            { value: 'sqnr', label: 'SQNR' },
            { value: 'mse', label: 'log MSE' },
          ]}
        />
      }
      explain={
        <p>
          SQNR = 10·log10(Σw² / Σ(w − Q(w))²) of each layer's weight: every bit adds about 6 dB. {d.kind === 'llama' ? 'Rows are transformer blocks, columns the seven projections.' : 'Layers in graph order, 16 per row.'}{' '}
          Gaps are layers kept at full precision.
        </p>
      }
    >
      <Plot data={figure.data} layout={figure.layout as Layout} height={figure.height} testId="error-heatmap-plot" />
    </ChartCard>
  );
}
