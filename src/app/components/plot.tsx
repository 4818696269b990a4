/**
 * A plotly chart that updates in place: every render calls Plotly.react on the same element, which diffs the
 * figure instead of rebuilding it. plotly.js is loaded on first use, so the shell paints before its 4 MB arrive.
 */
import { useEffect, useRef } from 'react';
import type { Config, Data, Layout } from 'plotly.js-dist-min';

type PlotlyModule = typeof import('plotly.js-dist-min').default;
let plotly: Promise<PlotlyModule> | undefined;
function loadPlotly(): Promise<PlotlyModule> {
  plotly ??= import('plotly.js-dist-min').then((m) => m.default);
  return plotly;
}

const BASE_LAYOUT: Layout = {
  margin: { l: 56, r: 16, t: 8, b: 44 },
  paper_bgcolor: 'rgba(0,0,0,0)',
  plot_bgcolor: 'rgba(0,0,0,0)',
  font: { family: 'Inter, system-ui, -apple-system, "Segoe UI", sans-serif', size: 12, color: '#334155' },
  legend: { orientation: 'h', x: 0, y: 1.02, yanchor: 'bottom', bgcolor: 'rgba(0,0,0,0)' },
  autosize: true,
};

const CONFIG: Config = {
  responsive: true,
  displaylogo: false,
  modeBarButtonsToRemove: ['select2d', 'lasso2d', 'autoScale2d', 'toImage'],
};

export function Plot({ data, layout, height = 300, testId }: { data: Data[]; layout: Layout; height?: number; testId?: string }) {
  const ref = useRef<HTMLDivElement>(null);

  useEffect(() => {
    let live = true;
    const el = ref.current;
    void loadPlotly().then((P) => {
      if (live && el) void P.react(el, data, { ...BASE_LAYOUT, height, ...layout }, CONFIG);
    });
    return () => {
      live = false;
    };
  }, [data, layout, height]);

  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    // Plotly only follows window resizes; a card that changes width (or a hidden tab shown again) needs this.
    const ro = new ResizeObserver(() => {
      if (el.offsetWidth > 0 && el.querySelector('.main-svg')) void loadPlotly().then((P) => P.Plots.resize(el));
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      void loadPlotly().then((P) => P.purge(el));
    };
  }, []);

  return <div ref={ref} className="plot" style={{ height }} data-testid={testId} />;
}
