/**
 * The numbers of the last analysis. Each value carries data-value = String(the full-precision number), so tests
 * (and curious users with devtools) can compare exactly; the text shows four significant digits.
 */
import { fmt } from '../../format.ts';
import { useAppStore } from '../../store/index.ts';
import type { QuantConfig } from '../../../quant/config.ts';

export function describeConfig(c: Required<QuantConfig>): string {
  const fmtName = c.format === 'fp8-e4m3' ? 'FP8 E4M3' : `INT${c.bits}`;
  const gran = c.granularity === 'tensor' ? 'per-tensor' : c.granularity === 'channel' ? 'per-channel' : `per-group g=${c.groupSize}`;
  const scheme = c.format === 'fp8-e4m3' ? '' : c.scheme === 'sym' ? ', symmetric' : ', asymmetric';
  const clip = c.clipRatio < 1 ? `, clip r=${c.clipRatio}` : '';
  return `${fmtName} ${gran}${scheme}${clip}`;
}

function groupsHint(shape: [number, number], groups: number): string {
  const per = (shape[0] * shape[1]) / groups;
  // The last group of a row is partial when g does not divide the row: then the size is an average.
  return Number.isInteger(per) ? `${per.toLocaleString('en-US')} values share each scale` : `about ${fmt(per)} values share each scale`;
}

function Metric({ testId, label, value, unit, hint }: { testId: string; label: string; value: number; unit?: string; hint: string }) {
  return (
    <div className="metric">
      <span className="metric-label">{label}</span>
      <span className="metric-value" data-testid={testId} data-value={String(value)}>
        {fmt(value)}
        {unit && <span className="unit"> {unit}</span>}
      </span>
      <span className="metric-hint">{hint}</span>
    </div>
  );
}

export function MetricsPanel() {
  const r = useAppStore((s) => s.playground.result);
  const deviceStatus = useAppStore((s) => s.device.status);
  if (!r) {
    return (
      <section className="card metrics-card placeholder" data-testid="metrics">
        <p className="muted">{deviceStatus === 'unavailable' ? 'No analysis without WebGPU.' : 'The error numbers appear here after the first analysis.'}</p>
      </section>
    );
  }
  const asym = r.config.scheme === 'asym' && r.config.format === 'int';
  const perGroup = r.numGroups === 1 ? 'one fp16 scale' : `${r.numGroups.toLocaleString('en-US')} fp16 scales`;
  return (
    <section className="card metrics-card" data-testid="metrics" data-result-config={JSON.stringify(r.config)} data-result-version={r.version} aria-label="Error metrics">
      <header className="metrics-head">
        <h2>{describeConfig(r.config)}</h2>
        <span className="muted" data-testid="result-tensor">
          {r.tensorLabel}
        </span>
      </header>
      <div className="metrics">
        <Metric testId="metric-mse" label="MSE" value={r.mse} hint="mean of (x − x′)²" />
        <Metric testId="metric-sqnr" label="SQNR" value={r.sqnr} unit="dB" hint="10·log₁₀(Σx² / Σ(x − x′)²)" />
        <Metric testId="metric-max-error" label="Max abs error" value={r.maxAbsError} hint="largest |x − x′|" />
        <Metric
          testId="metric-bpw"
          label="Bits per weight"
          value={r.bitsPerWeight}
          hint={`${r.config.bits} + ${perGroup}${asym ? ` and ${r.config.bits}-bit zero points` : ''}, spread over ${r.count.toLocaleString('en-US')} values`}
        />
        <Metric testId="metric-groups" label="Groups" value={r.numGroups} hint={groupsHint(r.shape, r.numGroups)} />
      </div>
    </section>
  );
}
