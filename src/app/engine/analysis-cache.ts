/**
 * The last analysis, with its arrays (histogram, absmax, clipping sweep), kept outside React and zustand.
 * The store holds only its version number; charts look it up by that number and re-render when it changes.
 * The sweep arrives after the rest (it is the slowest kernel), so it is stored apart.
 */
import type { TensorAnalysis } from '../../quant/analyze.ts';
import type { ClipSweepPoint } from '../../quant/reference/metrics.ts';

let latest: { version: number; analysis: TensorAnalysis; sweep?: ClipSweepPoint[] } | undefined;

export function putAnalysis(version: number, analysis: TensorAnalysis): void {
  latest = { version, analysis };
}

export function putSweep(version: number, sweep: ClipSweepPoint[]): void {
  if (latest?.version === version) latest.sweep = sweep;
}

/** The analysis of that version, or undefined if a newer one replaced it. */
export function getAnalysis(version: number | undefined): TensorAnalysis | undefined {
  return latest && latest.version === version ? latest.analysis : undefined;
}

export function getSweep(version: number | undefined): ClipSweepPoint[] | undefined {
  return latest && latest.version === version ? latest.sweep : undefined;
}
