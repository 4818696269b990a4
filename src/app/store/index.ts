/** The app store: one zustand store made of slices, holding only serialisable UI state. */
import { create } from 'zustand';
import { createCalibSlice, type CalibSlice } from './calib-slice.ts';
import { createDeviceSlice, type DeviceSlice } from './device-slice.ts';
import { createModelSlice, type ModelSlice } from './model-slice.ts';
import { createPlaygroundSlice, type PlaygroundSlice } from './playground-slice.ts';
import { createRouteSlice, type RouteSlice } from './route-slice.ts';
import { createSearchSlice, type SearchSlice } from './search-slice.ts';
import { createEvalSlice, type EvalSlice } from './eval-slice.ts';

export type AppState = DeviceSlice & PlaygroundSlice & RouteSlice & ModelSlice & CalibSlice & SearchSlice & EvalSlice;

export const useAppStore = create<AppState>()((...a) => ({
  ...createDeviceSlice(...a),
  ...createPlaygroundSlice(...a),
  ...createRouteSlice(...a),
  ...createModelSlice(...a),
  ...createCalibSlice(...a),
  ...createSearchSlice(...a),
  ...createEvalSlice(...a),
}));

export type AppStore = typeof useAppStore;
