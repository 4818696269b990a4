/**
 * What an AWQ run found, block by block: the per-block progress, the output error of every block under RTN and
 * under AWQ, the loss at every ratio of every group (relative to RTN's) as a heatmap, the selected group's loss
 * curve with RTN's loss at ratio 0, its chosen scales against the activation means, each linear's own error and
 * clip, and greedy generation with the AWQ weights.
 */
import { useId, useMemo, useState } from 'react';
import type { Data, Layout } from 'plotly.js-dist-min';
import type { AwqBlockReport, AwqGroupReport, AwqLinearReport } from '../../../awq/awq-llama.ts';
import { useModelEngine } from '../../engine-context.ts';
import { fmt } from '../../format.ts';
import { useAppStore } from '../../store/index.ts';
import { ChartCard } from '../playground/chart-card.tsx';
import { Plot } from '../plot.tsx';
import { OpStatus } from '../model/op-status.tsx';
import { cancelGenerateWithAwq, generateWithAwq } from './run-search.ts';
import { awqGroupKey, awqGroupLabel, awqTotals, percentChange, relativeLossGrid, topScaleChannels } from './search-data.ts';

export interface AwqView {
  groups: AwqGroupReport[];
  linears: AwqLinearReport[];
  blocks: AwqBlockReport[];
  nLayers: number;
  /** Blocks kept from an earlier run, by block index. */
  kept: Set<number>;
}

const sci = (v: number) => (Number.isFinite(v) ? v.toExponential(3) : String(v));

/** One chip per block: done (with AWQ's change against RTN), kept from an earlier run, running, or waiting. */
export function AwqBlockSteps({ view, running }: { view: AwqView; running: boolean }) {
  const done = new Map(view.blocks.map((b) => [b.block, b]));
  const next = running ? Array.from({ length: view.nLayers }, (_, i) => i).find((i) => !done.has(i)) : undefined;
  return (
    <ol className="block-steps" aria-label="AWQ progress by block" data-testid="awq-steps">
      {Array.from({ length: view.nLayers }, (_, i) => {
        const b = done.get(i);
        const state = b ? (view.kept.has(i) ? 'kept' : 'done') : i === next ? 'running' : 'waiting';
        return (
          <li key={i} className={`block-step step-${state}`} data-testid={`awq-step-${i}`} data-state={state} title={b ? `RTN ${sci(b.rtnError)} → AWQ ${sci(b.awqError)}` : undefined}>
            <span className="block-step-name">block {i}</span>
            <span className="block-step-value">
              {b ? `${fmt(percentChange(b.rtnError, b.awqError), 3)}%${view.kept.has(i) ? ' (kept)' : ''}` : state === 'running' ? 'searching…' : '—'}
            </span>
          </li>
        );
      })}
    </ol>
  );
}

/** Summed block errors and the per-block bars: RTN against AWQ, attention and MLP stacked. */
export function AwqBlockErrors({ view, complete }: { view: AwqView; complete: boolean }) {
  const t = awqTotals(view.blocks);
  const figure = useMemo(() => {
    const x = view.blocks.map((b) => `block ${b.block}`);
    const bar = (name: string, y: number[], color: string, group: string, pattern?: string): Data => ({
      type: 'bar',
      name,
      x,
      y,
      offsetgroup: group,
      marker: { color, ...(pattern ? { pattern: { shape: pattern, fgcolor: '#fff', size: 5 } } : {}) },
      hovertemplate: `${name}<br>%{x}: %{y:.3e}<extra></extra>`,
    });
    const data: Data[] = [
      bar('RTN attention', view.blocks.map((b) => b.attention.rtn), '#94a3b8', 'rtn'),
      bar('RTN MLP', view.blocks.map((b) => b.mlp.rtn), '#cbd5e1', 'rtn', '/'),
      bar('AWQ attention', view.blocks.map((b) => b.attention.awq), '#2563eb', 'awq'),
      bar('AWQ MLP', view.blocks.map((b) => b.mlp.awq), '#93c5fd', 'awq', '/'),
    ];
    const layout: Layout = { barmode: 'stack', yaxis: { title: { text: 'output MSE (attention + MLP)' }, exponentformat: 'power', gridcolor: '#e2e8f0' } } as Layout;
    return { data, layout };
  }, [view.blocks]);
  return (
    <ChartCard
      title="Block output error: RTN against AWQ"
      testId="awq-block-errors"
      aside={
        <span className="muted" data-testid="awq-total" data-rtn={t.rtn} data-awq={t.awq}>
          {complete ? '' : `${view.blocks.length} of ${view.nLayers} blocks · `}summed {sci(t.rtn)} → {sci(t.awq)} ({fmt(-t.lowerPercent, 3)}%), AWQ lower in {t.blocksBetter} of {view.blocks.length}
        </span>
      }
      explain={
        <p>
          Each block's attention and MLP run on their full-precision calibration inputs with all their linears quantized, RTN weights against AWQ's; the bar is the
          output MSE against the full-precision output. This is the error AWQ sets out to reduce: the scale search minimises it group by group.
        </p>
      }
    >
      <Plot data={figure.data} layout={figure.layout} height={280} />
    </ChartCard>
  );
}

/** Every group's loss at every ratio relative to RTN's, with the chosen ratio marked. */
export function AwqLossHeatmap({ view }: { view: AwqView }) {
  const figure = useMemo(() => {
    const g = relativeLossGrid(view.groups);
    const finite = g.z.flat().filter((v): v is number => v !== null);
    const data: Data[] = [
      {
        type: 'heatmap',
        x: g.ratios,
        y: g.labels,
        z: g.z,
        zmin: Math.min(...finite, 1),
        zmax: Math.max(1, Math.min(Math.max(...finite, 1), 2)),
        colorscale: [
          [0, '#1d4ed8'],
          [0.5, '#f8fafc'],
          [1, '#dc2626'],
        ],
        colorbar: { title: { text: 'loss / RTN' }, thickness: 12 },
        hovertemplate: '%{y}<br>ratio %{x:.2f}: %{z:.3f} × RTN<extra></extra>',
      } as Data,
      {
        type: 'scatter',
        mode: 'markers',
        x: g.best.map((i) => g.ratios[i]),
        y: g.labels,
        name: 'chosen ratio',
        marker: { symbol: 'star', size: 10, color: '#0f172a' },
        hovertemplate: '%{y}<br>chosen ratio %{x:.2f}<extra></extra>',
      },
    ];
    const layout: Layout = {
      margin: { l: 170, r: 16, t: 8, b: 44 },
      showlegend: false,
      xaxis: { title: { text: 'ratio r (s = x_mean^r …)' } },
      yaxis: { autorange: 'reversed', automargin: true },
    };
    return { data, layout, height: Math.max(220, 60 + 18 * g.labels.length) };
  }, [view.groups]);
  return (
    <ChartCard
      title="Loss against ratio, every group"
      testId="awq-loss-heatmap"
      explain={
        <p>
          One row per scale search (4 per block; v → o only without grouped-query sharing). Colour: the inspected module's output MSE at that ratio divided by
          RTN's (ratio 0 with duo scaling still rescales by the weights, so it can differ from 1). Blue is better than RTN; the star is the ratio kept.
        </p>
      }
    >
      <Plot data={figure.data} layout={figure.layout} height={figure.height} />
    </ChartCard>
  );
}

export function AwqGroupPicker({ view }: { view: AwqView }) {
  const id = useId();
  const selected = useAppStore((s) => s.search.awqGroup);
  const patch = useAppStore((s) => s.patchSearch);
  return (
    <div className="field inline-field">
      <label className="field-label" htmlFor={id}>
        Group
      </label>
      <select id={id} value={selected ?? ''} onChange={(e) => patch({ awqGroup: e.target.value })} data-testid="awq-group-select">
        {view.groups.map((g) => (
          <option key={awqGroupKey(g)} value={awqGroupKey(g)}>
            {awqGroupLabel(g)}
          </option>
        ))}
      </select>
    </div>
  );
}

/** The selected group's search: loss per ratio (RTN at ratio 0 beside it) and the scales it chose. */
export function AwqGroupCharts({ group }: { group: AwqGroupReport }) {
  const loss = useMemo(() => {
    const data: Data[] = [
      { type: 'scatter', mode: 'lines+markers', x: group.ratios, y: group.losses, name: 'AWQ scales', line: { color: '#2563eb', width: 2 }, marker: { size: 5 }, hovertemplate: 'ratio %{x:.2f}: %{y:.4e}<extra></extra>' },
      { type: 'scatter', mode: 'markers', x: [0], y: [group.rtnLoss], name: 'RTN (no scaling)', marker: { symbol: 'x', size: 12, color: '#dc2626' }, hovertemplate: 'RTN: %{y:.4e}<extra></extra>' },
      { type: 'scatter', mode: 'markers', x: [group.bestRatio], y: [group.losses[group.bestIndex]], name: 'chosen', marker: { symbol: 'star', size: 14, color: '#0f172a' }, hovertemplate: 'chosen ratio %{x:.2f}: %{y:.4e}<extra></extra>' },
    ];
    const layout: Layout = { xaxis: { title: { text: 'ratio r' }, range: [-0.03, 1] }, yaxis: { title: { text: `output MSE of the ${group.inspected}` }, exponentformat: 'power', gridcolor: '#e2e8f0' } };
    return { data, layout };
  }, [group]);
  const scales = useMemo(() => {
    const top = new Set(topScaleChannels(group.scales, 5));
    const idx = Array.from(group.scales, (_, j) => j);
    const pts = (sel: number[], name: string, color: string, size: number): Data => ({
      type: 'scatter',
      mode: 'markers',
      x: sel.map((j) => group.xMean[j]),
      y: sel.map((j) => group.scales[j]),
      text: sel.map((j) => `channel ${j}`),
      name,
      marker: { color, size },
      hovertemplate: '%{text}<br>mean |x| %{x:.3g}<br>scale %{y:.3g}<extra></extra>',
    });
    const data: Data[] = [pts(idx.filter((j) => !top.has(j)), 'channels', '#64748b', 5), pts([...top], 'largest 5 scales', '#dc2626', 9)];
    const layout: Layout = {
      xaxis: { title: { text: 'activation mean |x| (log)' }, type: 'log', exponentformat: 'power' },
      yaxis: { title: { text: 'AWQ scale s (log)' }, type: 'log', exponentformat: 'power', gridcolor: '#e2e8f0' },
    };
    return { data, layout };
  }, [group]);
  const gain = percentChange(group.rtnLoss, group.losses[group.bestIndex]);
  return (
    <div className="chart-pair">
      <ChartCard
        title={`Loss against ratio: ${awqGroupLabel(group)}`}
        testId="awq-loss-chart"
        aside={
          <span className="muted" data-testid="awq-group-best" data-ratio={group.bestRatio} data-loss={group.losses[group.bestIndex]} data-rtn={group.rtnLoss}>
            r = {group.bestRatio.toFixed(2)}, {fmt(gain, 3)}% vs RTN
          </span>
        }
        explain={
          <p>
            For each ratio the group's weights are scaled by s, quantized, scaled back, and the {group.inspected === 'linear' ? 'linear (exact Gram-matrix loss over every calibration token)' : `whole ${group.inspected} runs through the WGSL forward pass`}; the
            loss is its output MSE against full precision. The cross is plain RTN.
          </p>
        }
      >
        <Plot data={loss.data} layout={loss.layout} height={260} />
      </ChartCard>
      <ChartCard
        title="Chosen scales against activation means"
        testId="awq-scales-chart"
        aside={
          <span className="muted" data-testid="awq-top-channels" data-channels={topScaleChannels(group.scales, 5).join(',')}>
            largest: {topScaleChannels(group.scales, 5).map((j) => `#${j}`).join(', ')}
          </span>
        }
        explain={<p>One point per input channel of {group.linears.map((n) => n.split('.').pop()).join(', ')}: AWQ scales up the channels whose activations are large, so their weights lose less to rounding.</p>}
      >
        <Plot data={scales.data} layout={scales.layout} height={260} />
      </ChartCard>
    </div>
  );
}

export function AwqLinearTable({ linears }: { linears: AwqLinearReport[] }) {
  return (
    <section className="card" data-testid="awq-linears">
      <h2>Each linear on its own inputs</h2>
      <div className="table-wrap">
        <table className="data-table">
          <thead>
            <tr>
              <th>Linear</th>
              <th className="num">RTN output MSE</th>
              <th className="num">AWQ output MSE</th>
              <th className="num">Change</th>
              <th className="num">Mean clip</th>
            </tr>
          </thead>
          <tbody>
            {linears.map((l) => {
              const c = percentChange(l.rtnError, l.awqError);
              return (
                <tr key={l.name} data-testid="awq-linear-row" data-name={l.name}>
                  <td className="mono">{l.name}</td>
                  <td className="num">{sci(l.rtnError)}</td>
                  <td className="num">{sci(l.awqError)}</td>
                  <td className={`num ${c < 0 ? 'ok' : 'warn'}`}>{fmt(c, 3)}%</td>
                  <td className="num">{l.clipMean === undefined ? '—' : l.clipMean.toFixed(3)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      <p className="hint">
        A linear whose input AWQ rescaled for another layer (v for o, up for down) may lose on its own while its group wins. Mean clip: the clip thresholds relative to
        each group's max (1 = none; q and k are not clipped).
      </p>
    </section>
  );
}

/** Greedy generation with the finished run's weights, next to nothing else: the Quantize page has RTN's. */
export function AwqGenerate({ runVersion, canGenerate, disabled }: { runVersion: number; canGenerate: boolean; disabled: boolean }) {
  const id = useId();
  const engine = useModelEngine();
  const gen = useAppStore((s) => s.search.awqGen);
  const [prompt, setPrompt] = useState('Once upon a time');
  const [tokens, setTokens] = useState('48');
  const n = Number(tokens);
  const ok = Number.isInteger(n) && n >= 1 && n <= 512 && prompt.trim() !== '';
  const mine = gen.runVersion === runVersion;
  if (!canGenerate) return null;
  return (
    <section className="card" aria-labelledby={`${id}-title`} data-testid="awq-generate">
      <h2 id={`${id}-title`}>Generate with the AWQ weights</h2>
      <div className="field-row">
        <label className="field" htmlFor={`${id}-prompt`}>
          <span className="field-label">Prompt</span>
          <input id={`${id}-prompt`} type="text" value={prompt} onChange={(e) => setPrompt(e.target.value)} disabled={gen.status === 'running'} data-testid="awq-gen-prompt" />
        </label>
        <label className="field" htmlFor={`${id}-tokens`}>
          <span className="field-label">Tokens</span>
          <input id={`${id}-tokens`} type="text" inputMode="numeric" value={tokens} onChange={(e) => setTokens(e.target.value)} disabled={gen.status === 'running'} data-testid="awq-gen-tokens" />
        </label>
      </div>
      <div className="button-row">
        <button type="button" className="primary" disabled={disabled || !ok || gen.status === 'running'} onClick={() => void generateWithAwq(engine, useAppStore, prompt, n, runVersion)} data-testid="awq-gen-run">
          Generate
        </button>
      </div>
      {!ok && <p className="inline-error">Enter a prompt and 1 to 512 tokens.</p>}
      {mine && <OpStatus op={{ status: gen.status, error: gen.error }} verb="Generating" onCancel={() => cancelGenerateWithAwq(engine, useAppStore)} testId="awq-gen-status" />}
      {mine && gen.text !== undefined && (
        <p className="gen-text" data-testid="awq-gen-text">
          <span className="muted">{prompt}</span>
          {gen.text}
        </p>
      )}
      <p className="hint">Greedy decoding with the fake-quantized AWQ weights in the original model's basis. The Quantize page generates with the original and RTN weights.</p>
    </section>
  );
}
