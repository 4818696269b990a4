/**
 * Model slice: the open model's description, the whole-model quantization form (one config, per-layer
 * exceptions), the last quantization report, and the generations side by side. Plain serialisable values only;
 * the weights live in the GPU worker.
 */
import type { StateCreator } from 'zustand';
import type { ModelDescription } from '../../model/workspace.ts';
import type { ModelQuantReport } from '../../quant/model-rtn.ts';
import type { ConfigDraft } from '../engine/drafts.ts';
import type { GenerationResult } from '../worker/protocol.ts';
import type { AppState } from './index.ts';

export type OpStatus = 'idle' | 'running' | 'done' | 'cancelled' | 'error';

export interface OpState {
  status: OpStatus;
  stage?: string;
  fraction?: number;
  error?: string;
}

export interface LayerOverride {
  exclude?: boolean;
  bits?: number;
}

export interface QuantReportView extends ModelQuantReport {
  planKey: string;
  /** The base config in words (INT4 g32 asym). */
  label: string;
  modelName: string;
}

export type SortKey = 'order' | 'name' | 'params' | 'bits' | 'bytesAfter' | 'mse' | 'sqnr' | 'outlierScore';

export interface GenerationState {
  prompt: string;
  tokens: string;
  op: OpState;
  /** Which weights the running generation uses. */
  running?: 'original' | 'quantized';
  /** Text streamed so far by the running generation. */
  streaming?: string;
  original?: GenerationResult;
  quantized?: GenerationResult;
}

export interface ModelState {
  open: OpState & { target?: string };
  description?: ModelDescription;
  /** Where the open model came from, in words. */
  sourceLabel?: string;
  config: ConfigDraft;
  overrides: Record<string, LayerOverride>;
  quant: OpState;
  report?: QuantReportView;
  sort: { key: SortKey; dir: 1 | -1 };
  heatMetric: 'sqnr' | 'mse';
  gen: GenerationState;
}

export interface ModelSlice {
  model: ModelState;
  patchModel: (patch: Partial<ModelState>) => void;
  setModelConfig: (patch: Partial<ConfigDraft>) => void;
  setOverride: (layer: string, patch: LayerOverride | undefined) => void;
  patchGeneration: (patch: Partial<GenerationState>) => void;
}

export const DEFAULT_MODEL_CONFIG: ConfigDraft = { bits: 4, format: 'int', granularity: 'group', groupSize: '128', scheme: 'asym', clipRatio: 1 };

export const createModelSlice: StateCreator<AppState, [], [], ModelSlice> = (set) => ({
  model: {
    open: { status: 'idle' },
    config: DEFAULT_MODEL_CONFIG,
    overrides: {},
    quant: { status: 'idle' },
    sort: { key: 'order', dir: 1 },
    heatMetric: 'sqnr',
    gen: { prompt: 'Once upon a time', tokens: '24', op: { status: 'idle' } },
  },
  patchModel: (p) => set((s) => ({ model: { ...s.model, ...p } })),
  setModelConfig: (p) => set((s) => ({ model: { ...s.model, config: { ...s.model.config, ...p } } })),
  setOverride: (layer, p) =>
    set((s) => {
      const overrides = { ...s.model.overrides };
      if (p && (p.exclude !== undefined || p.bits !== undefined)) overrides[layer] = p;
      else delete overrides[layer];
      return { model: { ...s.model, overrides } };
    }),
  patchGeneration: (p) => set((s) => ({ model: { ...s.model, gen: { ...s.model.gen, ...p } } })),
});
