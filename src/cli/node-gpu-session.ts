/** Run CLI work on a Node WebGPU context (Dawn) that is disposed afterwards, whatever happens. */
import type { GpuContext } from '../gpu/context.ts';
import { createNodeGpuContext } from '../gpu/node-gpu.ts';

export async function withNodeGpu<T>(work: (ctx: GpuContext) => Promise<T>): Promise<T> {
  const ctx = await createNodeGpuContext();
  try {
    return await work(ctx);
  } finally {
    ctx.dispose();
  }
}
