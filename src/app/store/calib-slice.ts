/**
 * Calibrate slice: the calibration form (for the model it was filled for), the state of the running calibration,
 * the last finished run with the model it belongs to, and how the views show it (selected tensor, sort, 2D or
 * 3D outlier map). A failed or cancelled run leaves the last run as it was. The chosen files are not here: File objects
 * stay in the page until Calibrate reads them.
 *
 * The run itself (histograms, per-channel absmax, the channel x token snapshots: large typed arrays) is kept in
 * engine/calibration-cache.ts; the slice holds its version number only.
 */
import type { StateCreator } from 'zustand';
import type { CalibProgress } from '../../calib/types.ts';
import type { CalibFormDraft, CalibSort } from '../components/calib/calib-data.ts';
import type { AppState } from './index.ts';

export interface CalibOp {
  status: 'idle' | 'running' | 'done' | 'cancelled' | 'error';
  progress?: CalibProgress;
  error?: string;
}

export interface CalibState {
  /** The form as typed; only used while `formFor` is the open model's key (otherwise the model's defaults). */
  form?: CalibFormDraft;
  formFor?: string;
  op: CalibOp;
  /** Version of the last finished run in engine/calibration-cache.ts (its typed arrays stay out of the store). */
  runVersion?: number;
  /** calibModelKey of the model the run was made on. */
  runFor?: string;
  /** Tensor shown in the outlier map, histogram and clip/round chart. */
  selected?: string;
  sort: CalibSort;
  mapView: '2d' | '3d';
}

export interface CalibSlice {
  calib: CalibState;
  patchCalib: (patch: Partial<CalibState>) => void;
}

export const createCalibSlice: StateCreator<AppState, [], [], CalibSlice> = (set) => ({
  calib: {
    op: { status: 'idle' },
    sort: { key: 'order', dir: 1 },
    mapView: '2d',
  },
  patchCalib: (p) => set((s) => ({ calib: { ...s.calib, ...p } })),
});
