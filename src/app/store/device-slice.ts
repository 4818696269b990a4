/** Device slice: whether WebGPU works here, and what the adapter is. */
import type { StateCreator } from 'zustand';
import type { DeviceDescription } from '../../gpu/context.ts';
import type { AppState } from './index.ts';

/**
 * checking: looking for WebGPU; ready: a device is up; unavailable: no WebGPU or no adapter (the message says
 * how to enable it); lost: the device went away (Restart GPU recovers); restarting; error: creation failed.
 */
export type DeviceStatus = 'checking' | 'ready' | 'unavailable' | 'lost' | 'restarting' | 'error';

export interface DeviceState {
  status: DeviceStatus;
  info?: DeviceDescription;
  message?: string;
}

export interface DeviceSlice {
  device: DeviceState;
  setDevice: (d: DeviceState) => void;
}

export const createDeviceSlice: StateCreator<AppState, [], [], DeviceSlice> = (set) => ({
  device: { status: 'checking' },
  setDevice: (device) => set({ device }),
});
