/**
 * AWQ & SmoothQuant slice: the two forms, the state of each run, which result is shown (versions of
 * engine/search-cache.ts: the arrays stay out of the store) and for which model and settings, the group picked
 * in the charts, and the generation with the AWQ weights. A failed or cancelled run leaves the last finished
 * result as it was; the AWQ blocks that did finish stay listed, for a resume.
 */
import type { StateCreator } from 'zustand';
import type { AwqFormDraft, SmoothFormDraft } from '../components/search/search-data.ts';
import type { AppState } from './index.ts';

export interface SearchOp {
  status: 'idle' | 'running' | 'done' | 'cancelled' | 'error';
  stage?: string;
  fraction?: number;
  error?: string;
}

export interface SearchState {
  tab: 'awq' | 'smoothquant';
  awqForm?: AwqFormDraft;
  smoothForm?: SmoothFormDraft;
  /** Model key the forms were filled for (calibModelKey); other models get their defaults. */
  formFor?: string;
  awqOp: SearchOp;
  /** The last finished AWQ run (search-cache), and the model key it was made on. */
  awqVersion?: number;
  awqFor?: string;
  /** Blocks of the running or last unfinished run (search-cache). */
  awqBlocksVersion?: number;
  /** Model key + settings of those blocks: a resume is offered while the form still says the same. */
  awqBlocksKey?: string;
  /** `${block}:${kind}` of the group drawn in the loss and scale charts. */
  awqGroup?: string;
  smoothOp: SearchOp;
  smoothVersion?: number;
  smoothFor?: string;
  /** Norm group drawn in the difficulty chart. */
  smoothGroup?: string;
  awqGen: { status: 'idle' | 'running' | 'done' | 'error' | 'cancelled'; text?: string; error?: string; runVersion?: number };
}

export interface SearchSlice {
  search: SearchState;
  patchSearch: (patch: Partial<SearchState>) => void;
}

export const createSearchSlice: StateCreator<AppState, [], [], SearchSlice> = (set) => ({
  search: {
    tab: 'awq',
    awqOp: { status: 'idle' },
    smoothOp: { status: 'idle' },
    awqGen: { status: 'idle' },
  },
  patchSearch: (p) => set((s) => ({ search: { ...s.search, ...p } })),
});
