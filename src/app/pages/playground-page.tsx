/** The Playground: pick a tensor and a quantizer on the left, read the error and see why on the right. */
import { useState } from 'react';
import { AbsmaxChart } from '../components/playground/absmax-chart.tsx';
import { HistogramChart } from '../components/playground/histogram-chart.tsx';
import { MetricsPanel } from '../components/playground/metrics-panel.tsx';
import { QuantizerCard } from '../components/playground/quantizer-card.tsx';
import { RunStatus } from '../components/playground/run-status.tsx';
import { ScalesCard } from '../components/playground/scales-card.tsx';
import { SweepChart } from '../components/playground/sweep-chart.tsx';
import { TensorSourceCard } from '../components/playground/tensor-source-card.tsx';
import { useEngine } from '../engine-context.ts';
import { useFileDrop } from '../hooks/use-file-drop.ts';
import { useAppStore } from '../store/index.ts';

export function PlaygroundPage() {
  const engine = useEngine();
  const deviceStatus = useAppStore((s) => s.device.status);
  const onPlayground = useAppStore((s) => s.section === 'playground');
  const disabled = deviceStatus === 'unavailable';
  const hasResult = useAppStore((s) => s.playground.result !== undefined);
  const [onFiles] = useState(() => (files: File[]) => void engine.loadNpy(files[0]));
  const dragging = useFileDrop(onPlayground && !disabled, onFiles);

  return (
    <div className="playground" data-testid="page-playground">
      <div className="page-intro">
        <h2>Playground</h2>
        <p>Quantize one tensor and see what it costs: the error, the grid the values land on, the trade between clipping and rounding, and the outlier channels that make low bit widths hard.</p>
      </div>
      <div className="playground-grid">
        <aside className="controls">
          <TensorSourceCard disabled={disabled} />
          <QuantizerCard disabled={disabled} />
        </aside>
        <div className="results">
          <RunStatus />
          <MetricsPanel />
          {/* Without a GPU there will be no result: empty chart frames would only suggest otherwise. */}
          {(hasResult || !disabled) && (
            <>
              <HistogramChart />
              <div className="chart-row">
                <SweepChart />
                <AbsmaxChart />
              </div>
              <ScalesCard />
            </>
          )}
        </div>
      </div>
      {dragging && (
        <div className="drop-overlay" aria-hidden>
          <div>Drop the .npy file to load it</div>
        </div>
      )}
    </div>
  );
}
