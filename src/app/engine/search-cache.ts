/**
 * The AWQ and SmoothQuant results of the AWQ & SmoothQuant page, with their typed arrays (per-channel scales and
 * activation means, per-alpha sweeps), kept outside React and zustand. The store holds version numbers; the page
 * looks the results up by them. The AWQ blocks that have arrived from the running (or an unfinished) run are kept
 * here as well, so they can be drawn while the run goes on and offered for a resume after a cancel.
 */
import type { AwqBlockPartial, AwqRun, SmoothRun } from '../worker/protocol.ts';

let counter = 0;
let awqRun: { version: number; run: AwqRun } | undefined;
let awqBlocks: { version: number; blocks: AwqBlockPartial[] } | undefined;
let smoothRun: { version: number; run: SmoothRun } | undefined;

export function putAwqRun(run: AwqRun): number {
  awqRun = { version: ++counter, run };
  return awqRun.version;
}

export function getAwqRun(version: number | undefined): AwqRun | undefined {
  return awqRun && awqRun.version === version ? awqRun.run : undefined;
}

/** Start a new list of arrived blocks (a fresh run), or keep adding to the current one (a resume). */
export function resetAwqBlocks(): number {
  awqBlocks = { version: ++counter, blocks: [] };
  return awqBlocks.version;
}

/** Add an arrived block; returns the list's new version. Blocks kept by a resume replace their earlier copy. */
export function addAwqBlock(p: AwqBlockPartial): number {
  const blocks = (awqBlocks?.blocks ?? []).filter((b) => b.block.block !== p.block.block);
  blocks.push(p);
  blocks.sort((a, b) => a.block.block - b.block.block);
  awqBlocks = { version: ++counter, blocks };
  return awqBlocks.version;
}

export function getAwqBlocks(version: number | undefined): AwqBlockPartial[] {
  return awqBlocks && awqBlocks.version === version ? awqBlocks.blocks : [];
}

export function putSmoothRun(run: SmoothRun): number {
  smoothRun = { version: ++counter, run };
  return smoothRun.version;
}

export function getSmoothRun(version: number | undefined): SmoothRun | undefined {
  return smoothRun && smoothRun.version === version ? smoothRun.run : undefined;
}
