/**
 * Starts and cancels an evaluation from the Evaluate page, loads and edits the history. Rows stream into the
 * slice as the worker finishes them (shown as unfinished); only a finished run is written to the history
 * (IndexedDB), so a cancelled or failed run leaves no half result behind.
 */
import { isCancelled } from '../../engine/gpu-client.ts';
import { evalHistory } from '../../engine/eval-history.ts';
import type { ModelEngine } from '../../engine/model-engine.ts';
import type { AppStore } from '../../store/index.ts';
import type { EvalPlan, EvalRun } from './eval-data.ts';

let token = 0;

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export async function loadEvalHistory(store: AppStore): Promise<void> {
  const h = await evalHistory();
  const runs = await h.list();
  store.getState().patchEval({ runs, historyLoaded: true, persistence: h.persistence });
}

export async function startEvaluation(engine: ModelEngine, store: AppStore, plan: EvalPlan, files: File[], model: { name: string; key: string }): Promise<void> {
  const mine = ++token;
  const live = () => mine === token;
  const patch = store.getState().patchEval;
  patch({ op: { status: 'running', stage: 'starting', fraction: 0 }, live: [] });
  try {
    const data =
      files.length > 0
        ? { kind: 'text-files' as const, files: await Promise.all(files.map(async (f) => ({ name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) }))) }
        : { kind: 'bundled-text' as const };
    if (!live()) return;
    const r = await engine.evaluate(
      { configs: plan.configs, data, tokens: plan.tokens, samples: plan.samples, context: plan.context, calibSamples: plan.calibSamples, calibSeqLen: plan.calibSeqLen, prompt: plan.prompt, genTokens: plan.genTokens },
      (p) => live() && patch({ op: { status: 'running', stage: p.stage, fraction: p.fraction } }),
      (row) => live() && patch({ live: [...store.getState().evaluation.live, row] }),
    );
    if (!live()) return;
    const run: EvalRun = { id: `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`, at: new Date().toISOString(), model: model.name, modelKey: model.key, data: r.data, rows: r.rows, seconds: r.seconds };
    const h = await evalHistory();
    await h.add(run);
    patch({ runs: [...store.getState().evaluation.runs, run], live: [], op: { status: 'done' } });
  } catch (e) {
    if (!live()) return;
    patch({ live: [], op: isCancelled(e) ? { status: 'cancelled' } : { status: 'error', error: errorText(e) } });
  }
}

export function cancelEvaluation(engine: ModelEngine, store: AppStore): void {
  if (store.getState().evaluation.op.status !== 'running') return;
  token++;
  engine.cancelEvaluate();
  store.getState().patchEval({ op: { status: 'cancelled' }, live: [] });
}

export async function removeEvalRun(store: AppStore, id: string): Promise<void> {
  await (await evalHistory()).remove(id);
  store.getState().patchEval({ runs: store.getState().evaluation.runs.filter((r) => r.id !== id) });
}

export async function clearEvalHistory(store: AppStore): Promise<void> {
  await (await evalHistory()).clear();
  store.getState().patchEval({ runs: [] });
}
