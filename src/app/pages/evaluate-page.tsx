/**
 * The Evaluate page: compare configurations of the open language model with FP32 on held-out text (perplexity,
 * KL divergence, top-1 agreement, greedy generations), in one table kept across reloads with an accuracy-against-
 * size chart, exportable as JSON or CSV.
 */
import { useEffect, useMemo, useState } from 'react';
import { calibModelInfo, calibModelKey } from '../components/calib/calib-data.ts';
import { EvalForm } from '../components/eval/eval-form.tsx';
import { EvalChart, EvalGenerations, EvalTable } from '../components/eval/eval-views.tsx';
import { cancelEvaluation, loadEvalHistory } from '../components/eval/run-eval.ts';
import { OpStatus } from '../components/model/op-status.tsx';
import { useModelEngine } from '../engine-context.ts';
import { useAppStore } from '../store/index.ts';

export function EvaluatePage() {
  const engine = useModelEngine();
  const d = useAppStore((s) => s.model.description);
  const deviceStatus = useAppStore((s) => s.device.status);
  const ev = useAppStore((s) => s.evaluation);
  const [files, setFiles] = useState<File[]>([]);
  const info = useMemo(() => (d ? calibModelInfo(d) : undefined), [d]);
  const key = d ? calibModelKey(d) : '';
  useEffect(() => {
    if (!ev.historyLoaded) void loadEvalHistory(useAppStore);
  }, [ev.historyLoaded]);
  const shown = ev.allModels ? ev.runs : ev.runs.filter((r) => r.modelKey === key);
  const latest = [...shown].sort((a, b) => b.at.localeCompare(a.at))[0];
  return (
    <div className="evaluate-page" data-testid="page-evaluate">
      <div className="page-intro">
        <h2>Evaluate</h2>
        <p>
          Measure what quantization costs: each configuration runs on data the calibration never saw and is compared with the full-precision model (language models:
          perplexity, KL and top-1 token by token; ONNX models: OCR accuracy against known text, detector boxes, classifier agreement, output SQNR through
          onnxruntime-web, with W8A8 simulated by QuantizeLinear nodes). Runs are kept in this browser, so configurations evaluated at different times can be compared.
        </p>
      </div>
      {!d || !info ? (
        <section className="card" data-testid="no-model">
          <p>
            No model is open yet. <a href="#/model">Choose one on the Model page</a>.
          </p>
        </section>
      ) : (
        <div className="playground-grid">
          <aside className="controls">
            <EvalForm info={info} model={{ name: d.name, key }} disabled={deviceStatus !== 'ready'} files={files} setFiles={setFiles} />
          </aside>
          <div className="results">
            <OpStatus op={ev.op} verb="Evaluation" done="Evaluation done; added to the table" onCancel={() => cancelEvaluation(engine, useAppStore)} testId="eval-status" />
            <EvalTable runs={shown} live={ev.live} modelName={d.name} />
            {shown.length > 0 && <EvalChart runs={shown} />}
            {latest && <EvalGenerations run={latest} />}
          </div>
        </div>
      )}
    </div>
  );
}
