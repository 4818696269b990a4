/**
 * The last finished calibration, with its arrays (histograms, per-channel and per-token statistics, the
 * channel x token snapshots, weight magnitudes), kept outside React and zustand. The store holds its version
 * number; the Calibrate page looks the run up by that number and re-renders when it changes.
 */
import type { CalibrationRun } from '../../calib/types.ts';

let latest: { version: number; run: CalibrationRun } | undefined;
let counter = 0;

/** Keep a run; returns its version for the store. */
export function putCalibration(run: CalibrationRun): number {
  latest = { version: ++counter, run };
  return latest.version;
}

/** The run of that version, or undefined if a newer one replaced it. */
export function getCalibration(version: number | undefined): CalibrationRun | undefined {
  return latest && latest.version === version ? latest.run : undefined;
}
