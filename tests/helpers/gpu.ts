/** One Node WebGPU context (Dawn) per test file. */
import { afterAll } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import { createNodeGpuContext } from '../../src/gpu/node-gpu.ts';

let ctx: Promise<GpuContext> | undefined;

export function gpuContext(): Promise<GpuContext> {
  if (!ctx) {
    ctx = createNodeGpuContext();
    afterAll(async () => (await ctx!).dispose());
  }
  return ctx;
}
