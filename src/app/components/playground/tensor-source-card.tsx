/** Where the tensor comes from: a seeded synthetic distribution, or a .npy file (input or drag and drop). */
import { useId } from 'react';
import { parseSynthetic, SYNTHETIC_LABELS } from '../../engine/drafts.ts';
import { useEngine } from '../../engine-context.ts';
import { useAppStore } from '../../store/index.ts';
import type { SyntheticKind } from '../../../quant/synthetic.ts';
import { fmt } from '../../format.ts';

const KIND_HINTS: Record<SyntheticKind, string> = {
  gaussian: 'Bell-shaped, unit variance: few values far from zero.',
  laplace: 'Unit variance, heavier tails than a Gaussian: typical of trained weights.',
  llm: 'Gaussian with 4 input channels (columns) 20–60× larger, like the activation outliers of large language models.',
};

export function TensorSourceCard({ disabled }: { disabled: boolean }) {
  const engine = useEngine();
  const id = useId();
  const synthetic = useAppStore((s) => s.playground.synthetic);
  const source = useAppStore((s) => s.playground.source);
  const tensor = useAppStore((s) => s.playground.tensor);
  const sourceError = useAppStore((s) => s.playground.sourceError);
  const loadingFile = useAppStore((s) => s.playground.loadingFile);
  const setSynthetic = useAppStore((s) => s.setSynthetic);
  const chooseSynthetic = useAppStore((s) => s.chooseSynthetic);
  const parsed = parseSynthetic(synthetic);
  const usingFile = source.kind === 'npy';

  return (
    <section className="card controls-card" aria-labelledby={`${id}-title`}>
      <h2 id={`${id}-title`}>Tensor</h2>
      <fieldset disabled={disabled} className={usingFile ? 'dimmed' : undefined}>
        <div className="field">
          <label className="field-label" htmlFor={`${id}-kind`}>
            Synthetic distribution
          </label>
          <select id={`${id}-kind`} value={synthetic.kind} onChange={(e) => setSynthetic({ kind: e.target.value as SyntheticKind })} data-testid="synthetic-kind">
            {(Object.keys(SYNTHETIC_LABELS) as SyntheticKind[]).map((k) => (
              <option key={k} value={k}>
                {SYNTHETIC_LABELS[k]}
              </option>
            ))}
          </select>
          <p className="hint">{KIND_HINTS[synthetic.kind]}</p>
        </div>
        <div className="field-row">
          <NumberField label="Rows" value={synthetic.rows} onChange={(rows) => setSynthetic({ rows })} testId="synthetic-rows" />
          <NumberField label="Columns" value={synthetic.cols} onChange={(cols) => setSynthetic({ cols })} testId="synthetic-cols" />
          <NumberField label="Seed" value={synthetic.seed} onChange={(seed) => setSynthetic({ seed })} testId="synthetic-seed" />
        </div>
        {!parsed.ok && !usingFile && (
          <p className="inline-error" role="alert" data-testid="synthetic-error">
            {parsed.error}
          </p>
        )}
      </fieldset>

      <div className="divider">
        <span>or</span>
      </div>

      <fieldset disabled={disabled}>
        <label className="dropzone" htmlFor={`${id}-file`}>
          <input
            id={`${id}-file`}
            className="visually-hidden"
            type="file"
            accept=".npy"
            data-testid="npy-input"
            onChange={(e) => {
              const f = e.target.files?.[0];
              e.target.value = '';
              if (f) void engine.loadNpy(f);
            }}
          />
          <span className="dropzone-title">{loadingFile ? `Reading ${loadingFile}…` : 'Load a .npy file'}</span>
          <span className="hint">Choose or drop it anywhere on the page. 2-D is read as a weight [out, in], 1-D as one row; higher ranks keep the first axis and flatten the rest.</span>
        </label>
        {usingFile && (
          <div className="file-chip">
            <span title={source.name}>Using {source.name}</span>
            <button type="button" className="link-button" onClick={chooseSynthetic}>
              back to synthetic
            </button>
          </div>
        )}
        {sourceError && (
          <p className="inline-error" role="alert" data-testid="source-error">
            {sourceError}
          </p>
        )}
      </fieldset>

      {tensor && (
        <p className="tensor-info" data-testid="tensor-info">
          <strong>{tensor.shape[0]}</strong> × <strong>{tensor.shape[1]}</strong> = {(tensor.shape[0] * tensor.shape[1]).toLocaleString('en-US')} values, max |x| ={' '}
          {fmt(tensor.absmax)}
        </p>
      )}
    </section>
  );
}

function NumberField({ label, value, onChange, testId }: { label: string; value: string; onChange: (v: string) => void; testId: string }) {
  const id = useId();
  return (
    <div className="field">
      <label className="field-label" htmlFor={id}>
        {label}
      </label>
      <input id={id} type="text" inputMode="numeric" value={value} onChange={(e) => onChange(e.target.value)} data-testid={testId} autoComplete="off" />
    </div>
  );
}
