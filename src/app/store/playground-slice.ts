/**
 * Playground slice: the tensor source and quantizer form, the state of the current run, and a summary of the
 * last finished analysis. Only small plain values live here; the analysis arrays (histogram, absmax, sweep)
 * stay in the engine's analysis cache, found by `result.version`.
 */
import type { StateCreator } from 'zustand';
import type { QuantConfig } from '../../quant/config.ts';
import type { ConfigDraft, SyntheticDraft } from '../engine/drafts.ts';
import type { AppState } from './index.ts';

/** Which tensor the user picked: the synthetic form, or a loaded .npy file (its bytes are kept by the engine). */
export type ActiveSource = { kind: 'synthetic' } | { kind: 'npy'; name: string; token: number };

/** The tensor the worker holds for the active source. */
export interface TensorSummary {
  label: string;
  shape: [number, number];
  originalShape: number[];
  dtype: string;
  absmax: number;
}

export type RunStatus = 'idle' | 'running' | 'done' | 'cancelled' | 'error';

export interface RunState {
  status: RunStatus;
  stage?: string;
  fraction?: number;
  error?: string;
}

export interface ResultSummary {
  /** Key of the full analysis in the engine's cache. */
  version: number;
  tensorLabel: string;
  shape: [number, number];
  config: Required<QuantConfig>;
  mse: number;
  sqnr: number;
  maxAbsError: number;
  count: number;
  bitsPerWeight: number;
  numGroups: number;
  firstScales: number[];
  firstZeros: number[];
  tensorAbsmax: number;
  /** The clipping sweep arrives after the rest; it is missing when its run was cancelled or failed. */
  sweep: 'pending' | 'done' | 'missing';
  /** Time from the request to the numbers (partial) and, once done, to the sweep. */
  elapsedMs: number;
}

export interface PlaygroundState {
  synthetic: SyntheticDraft;
  source: ActiveSource;
  tensor?: TensorSummary;
  /** A file that could not be loaded; the previous tensor and result stay. */
  sourceError?: string;
  /** Name of the file being read, while it is. */
  loadingFile?: string;
  config: ConfigDraft;
  run: RunState;
  result?: ResultSummary;
  logHistogram: boolean;
}

export interface PlaygroundSlice {
  playground: PlaygroundState;
  setSynthetic: (patch: Partial<SyntheticDraft>) => void;
  chooseSynthetic: () => void;
  setConfig: (patch: Partial<ConfigDraft>) => void;
  setLogHistogram: (on: boolean) => void;
  patchPlayground: (patch: Partial<PlaygroundState>) => void;
}

export const DEFAULT_SYNTHETIC: SyntheticDraft = { kind: 'llm', rows: '256', cols: '512', seed: '1' };

export const DEFAULT_CONFIG: ConfigDraft = { bits: 4, format: 'int', granularity: 'channel', groupSize: '128', scheme: 'sym', clipRatio: 1 };

export const createPlaygroundSlice: StateCreator<AppState, [], [], PlaygroundSlice> = (set) => {
  const patch = (p: Partial<PlaygroundState>) => set((s) => ({ playground: { ...s.playground, ...p } }));
  return {
    playground: {
      synthetic: DEFAULT_SYNTHETIC,
      source: { kind: 'synthetic' },
      config: DEFAULT_CONFIG,
      run: { status: 'idle' },
      logHistogram: true,
    },
    // Editing the synthetic form means the user wants the synthetic tensor again.
    setSynthetic: (p) => set((s) => ({ playground: { ...s.playground, synthetic: { ...s.playground.synthetic, ...p }, source: { kind: 'synthetic' }, sourceError: undefined } })),
    chooseSynthetic: () => patch({ source: { kind: 'synthetic' }, sourceError: undefined }),
    setConfig: (p) => set((s) => ({ playground: { ...s.playground, config: { ...s.playground.config, ...p } } })),
    setLogHistogram: (logHistogram) => patch({ logHistogram }),
    patchPlayground: patch,
  };
};
