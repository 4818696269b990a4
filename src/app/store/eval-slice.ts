/**
 * Evaluate slice: the form (for the model it was filled for), the running evaluation (its progress and the rows
 * finished so far, shown as unfinished), the history loaded from IndexedDB, and the chart's metric. A cancelled
 * or failed run adds nothing to the history; the rows it had finished disappear with it.
 */
import type { StateCreator } from 'zustand';
import type { EvalRow } from '../../eval/types.ts';
import type { EvalFormDraft, EvalRun } from '../components/eval/eval-data.ts';
import type { AppState } from './index.ts';

export interface EvalOp {
  status: 'idle' | 'running' | 'done' | 'cancelled' | 'error';
  stage?: string;
  fraction?: number;
  error?: string;
}

export interface EvalState {
  form?: EvalFormDraft;
  formFor?: string;
  op: EvalOp;
  /** Rows of the running evaluation. */
  live: EvalRow[];
  /** Finished runs (IndexedDB), newest last as loaded. */
  runs: EvalRun[];
  historyLoaded: boolean;
  persistence?: 'indexeddb' | 'memory';
  /** Metric on the chart's y axis. */
  metric: string;
  /** Show the runs of every model, not only the open one. */
  allModels: boolean;
}

export interface EvalSlice {
  evaluation: EvalState;
  patchEval: (patch: Partial<EvalState>) => void;
}

export const createEvalSlice: StateCreator<AppState, [], [], EvalSlice> = (set) => ({
  evaluation: { op: { status: 'idle' }, live: [], runs: [], historyLoaded: false, metric: 'perplexity', allModels: false },
  patchEval: (p) => set((s) => ({ evaluation: { ...s.evaluation, ...p } })),
});
