/**
 * The Evaluate form: which configurations to compare (the usual ones as checkboxes, any other label typed), the
 * held-out text and how much of it, the context, the calibration text of AWQ and SmoothQuant, and the prompt of
 * the side-by-side generations. Validation as the user types; Evaluate stays off while the form is wrong.
 */
import { useId } from 'react';
import { useModelEngine } from '../../engine-context.ts';
import { FileDrop } from '../file-drop.tsx';
import { useAppStore } from '../../store/index.ts';
import type { CalibModelInfo } from '../calib/calib-data.ts';
import { defaultEvalForm, ONNX_PRESET_CONFIGS, parseEvalForm, PRESET_CONFIGS, type EvalFormDraft } from './eval-data.ts';
import { startEvaluation } from './run-eval.ts';

const PRESET_HINT: Record<string, string> = {
  'rtn-int8-sym': 'symmetric, per channel (TensorRT)',
  'rtn-w8a8': 'INT8 weights + INT8 activations (QDQ, max calibration)',
  'rtn-w8a8-percentile-99.99': 'W8A8, percentile 99.99 calibration',
  fp32: 'the reference',
  fp16: 'weights rounded to float16',
  'rtn-int8': 'round-to-nearest, per channel',
  'rtn-int4-g32': 'round-to-nearest, groups of 32',
  'rtn-int4-g64': 'groups of 64',
  'rtn-int4-g128': 'groups of 128',
  'awq-int4-g32': 'AWQ scales + clip, groups of 32',
  'smoothquant-w8a8': 'alpha 0.5, INT8 per-token activations',
};

export function useEvalForm(info: CalibModelInfo, modelKey: string): [EvalFormDraft, (p: Partial<EvalFormDraft>) => void] {
  const stored = useAppStore((s) => s.evaluation.form);
  const formFor = useAppStore((s) => s.evaluation.formFor);
  const patch = useAppStore((s) => s.patchEval);
  const form = formFor === modelKey && stored ? stored : defaultEvalForm(info);
  return [form, (p) => patch({ form: { ...form, ...p }, formFor: modelKey })];
}

function TextField({ label, value, onChange, testId, numeric = true }: { label: string; value: string; onChange: (v: string) => void; testId: string; numeric?: boolean }) {
  const id = useId();
  return (
    <div className="field">
      <label className="field-label" htmlFor={id}>
        {label}
      </label>
      <input id={id} type="text" inputMode={numeric ? 'numeric' : undefined} value={value} onChange={(e) => onChange(e.target.value)} data-testid={testId} autoComplete="off" />
    </div>
  );
}

/** Language models: the held-out text, how much of it, the window, and the prompt of the generations. */
function LlamaFields({ form, set, files, setFiles }: { form: EvalFormDraft; set: (p: Partial<EvalFormDraft>) => void; files: File[]; setFiles: (f: File[]) => void }) {
  const id = useId();
  return (
    <>
      <div className="field">
        <label className="field-label" htmlFor={`${id}-source`}>
          Held-out text
        </label>
        <select id={`${id}-source`} value={form.source} onChange={(e) => set({ source: e.target.value as EvalFormDraft['source'] })} data-testid="eval-source">
          <option value="bundled-text">Moby-Dick chapters 100–135 (never used for calibration)</option>
          <option value="text-files">Your text file</option>
        </select>
      </div>
      {form.source === 'text-files' && <FileDrop id={`${id}-files`} accept=".txt,.jsonl,.json,text/plain" files={files} setFiles={setFiles} testId="eval-files" />}
      <div className="calib-size-row">
        <TextField label="Tokens scored" value={form.tokens} onChange={(tokens) => set({ tokens })} testId="eval-tokens" />
        <TextField label="Context" value={form.context} onChange={(context) => set({ context })} testId="eval-context" />
      </div>
      <p className="hint">Sliding windows of the context, each starting with BOS, half a context apart; each token is scored once, with as much context as the window gives it.</p>
    </>
  );
}

export function EvalForm({ info, model, disabled, files, setFiles }: { info: CalibModelInfo; model: { name: string; key: string }; disabled: boolean; files: File[]; setFiles: (f: File[]) => void }) {
  const id = useId();
  const engine = useModelEngine();
  const running = useAppStore((s) => s.evaluation.op.status === 'running');
  const [form, set] = useEvalForm(info, model.key);
  const parsed = parseEvalForm(form, info, files.length);
  const llm = info.kind === 'llama';
  const presets: readonly string[] = llm ? PRESET_CONFIGS : ONNX_PRESET_CONFIGS;
  const needsCalib = parsed.ok && parsed.value.configs.some((c) => c.startsWith('awq') || c.startsWith('smoothquant') || c.startsWith('rtn-w8a8'));
  const toggle = (label: string, on: boolean) => set({ presets: on ? [...form.presets, label] : form.presets.filter((p) => p !== label) });
  const run = () => {
    if (parsed.ok) void startEvaluation(engine, useAppStore, parsed.value, llm && form.source === 'text-files' ? files : [], model);
  };
  return (
    <section className="card controls-card" aria-labelledby={`${id}-title`} data-testid="eval-form">
      <h2 id={`${id}-title`}>What to compare</h2>
      <fieldset disabled={disabled || running}>
        <div className="field">
          <span className="field-label">Configurations</span>
          <div className="config-checks">
            {presets.map((c) => (
              <label key={c} className="toggle" title={PRESET_HINT[c]}>
                <input type="checkbox" checked={form.presets.includes(c)} onChange={(e) => toggle(c, e.target.checked)} data-testid={`eval-config-${c}`} />
                <span className="mono">{c}</span>
              </label>
            ))}
          </div>
        </div>
        <div className="field">
          <label className="field-label" htmlFor={`${id}-extra`}>
            More configurations
          </label>
          <input
            id={`${id}-extra`}
            type="text"
            value={form.extra}
            placeholder={llm ? 'rtn-int3-g64, awq-int4-g128-sym, smoothquant-w8a8-a0.8' : 'rtn-int4-g64, rtn-w8a8-entropy, rtn-fp8'}
            onChange={(e) => set({ extra: e.target.value })}
            data-testid="eval-extra"
            autoComplete="off"
          />
          <p className="hint">Comma-separated labels, as for quantlab eval --configs.</p>
        </div>
        {llm ? (
          <LlamaFields form={form} set={set} files={files} setFiles={setFiles} />
        ) : (
          <>
            <TextField label={info.ocrRecognizer ? 'Evaluation lines' : 'Rendered text pages'} value={form.samples} onChange={(samples) => set({ samples })} testId="eval-samples" />
            <p className="hint">
              {info.ocrRecognizer
                ? 'Lines cut from the held-out Moby-Dick chapters (100–135) and rendered with the bundled font: their text is the ground truth. W8A8 and AWQ calibrate on lines from chapters 1–99.'
                : 'The bundled photos plus pages of held-out text rendered with the bundled font; quantized outputs are compared with FP32 on them.'}
            </p>
          </>
        )}
        {needsCalib && (
          <div className="calib-size-row">
            <TextField label={llm ? 'Calibration sequences' : info.ocrRecognizer ? 'Calibration lines' : 'Calibration pages'} value={form.calibSamples} onChange={(calibSamples) => set({ calibSamples })} testId="eval-calib-samples" />
            {llm && <TextField label="Tokens each" value={form.calibSeqLen} onChange={(calibSeqLen) => set({ calibSeqLen })} testId="eval-calib-seqlen" />}
          </div>
        )}
        {llm && (
          <div className="calib-size-row">
            <TextField label="Prompt" value={form.prompt} onChange={(prompt) => set({ prompt })} testId="eval-prompt" numeric={false} />
            <TextField label="Generated tokens" value={form.genTokens} onChange={(genTokens) => set({ genTokens })} testId="eval-gen-tokens" />
          </div>
        )}
      </fieldset>
      {!parsed.ok && (
        <p className="inline-error" role="alert" data-testid="eval-form-error">
          {parsed.error}
        </p>
      )}
      <button type="button" className="primary" disabled={disabled || running || !parsed.ok} onClick={run} data-testid="eval-run">
        Evaluate {parsed.ok ? `${parsed.value.configs.length} configuration${parsed.value.configs.length === 1 ? '' : 's'}` : ''}
      </button>
    </section>
  );
}
