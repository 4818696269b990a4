/** The Playground: pick a tensor and a quantizer on the left, read the error and see why on the right. */
import { useEffect, useState } from 'react';
import { AbsmaxChart } from '../components/playground/absmax-chart.tsx';
import { DeviceBanner } from '../components/playground/device-banner.tsx';
import { HistogramChart } from '../components/playground/histogram-chart.tsx';
import { MetricsPanel } from '../components/playground/metrics-panel.tsx';
import { QuantizerCard } from '../components/playground/quantizer-card.tsx';
import { RunStatus } from '../components/playground/run-status.tsx';
import { ScalesCard } from '../components/playground/scales-card.tsx';
import { SweepChart } from '../components/playground/sweep-chart.tsx';
import { TensorSourceCard } from '../components/playground/tensor-source-card.tsx';
import { useEngine } from '../engine-context.ts';
import { useAppStore } from '../store/index.ts';

/** Accept a file dropped anywhere on the window while the Playground is open. */
function useFileDrop(enabled: boolean, onFile: (f: File) => void): boolean {
  const [over, setOver] = useState(false);
  useEffect(() => {
    if (!enabled) return;
    let depth = 0;
    const hasFiles = (e: DragEvent) => Array.from(e.dataTransfer?.types ?? []).includes('Files');
    const enter = (e: DragEvent) => {
      if (!hasFiles(e)) return;
      depth++;
      setOver(true);
    };
    const leave = (e: DragEvent) => {
      if (!hasFiles(e)) return;
      depth = Math.max(0, depth - 1);
      if (depth === 0) setOver(false);
    };
    const overFn = (e: DragEvent) => {
      if (hasFiles(e)) e.preventDefault();
    };
    const drop = (e: DragEvent) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      depth = 0;
      setOver(false);
      const f = e.dataTransfer?.files[0];
      if (f) onFile(f);
    };
    window.addEventListener('dragenter', enter);
    window.addEventListener('dragleave', leave);
    window.addEventListener('dragover', overFn);
    window.addEventListener('drop', drop);
    return () => {
      window.removeEventListener('dragenter', enter);
      window.removeEventListener('dragleave', leave);
      window.removeEventListener('dragover', overFn);
      window.removeEventListener('drop', drop);
    };
  }, [enabled, onFile]);
  return over;
}

export function PlaygroundPage() {
  const engine = useEngine();
  const deviceStatus = useAppStore((s) => s.device.status);
  const onPlayground = useAppStore((s) => s.section === 'playground');
  const disabled = deviceStatus === 'unavailable';
  const hasResult = useAppStore((s) => s.playground.result !== undefined);
  const [onFile] = useState(() => (f: File) => void engine.loadNpy(f));
  const dragging = useFileDrop(onPlayground && !disabled, onFile);

  return (
    <div className="playground" data-testid="page-playground">
      <div className="page-intro">
        <h2>Playground</h2>
        <p>Quantize one tensor and see what it costs: the error, the grid the values land on, the trade between clipping and rounding, and the outlier channels that make low bit widths hard.</p>
      </div>
      <DeviceBanner />
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
