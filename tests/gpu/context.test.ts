/**
 * The GPU context: shader includes resolve once, pipelines are cached, buffers are pooled and
 * released, limits and validation errors are reported by name, and a lost device turns every later
 * call into a GpuDeviceLostError instead of a hang or a wrong result.
 */
import { describe, expect, test } from 'vitest';
import { grid, MAX_GRID_DIM } from '../../src/gpu/context.ts';
import { GpuDeviceLostError, GpuLimitError, GpuValidationError } from '../../src/gpu/errors.ts';
import { createNodeGpuContext } from '../../src/gpu/node-gpu.ts';
import { resolveIncludes } from '../../src/gpu/shader-source.ts';
import { QuantKernels } from '../../src/quant/gpu-kernels.ts';
import { makeGroupLayout } from '../../src/quant/layout.ts';
import { gpuContext } from '../helpers/gpu.ts';

describe('shader sources', () => {
  test('#include pulls a file in once, recursively', () => {
    const files: Record<string, string> = {
      'a.wgsl': '#include "b.wgsl"\n#include "c.wgsl"\nfn a() {}',
      'b.wgsl': '#include "c.wgsl"\nfn b() {}',
      'c.wgsl': 'fn c() {}',
    };
    const src = resolveIncludes('a.wgsl', (f) => files[f]);
    expect(src.match(/fn c\(\)/g)).toHaveLength(1);
    expect(src.indexOf('fn c')).toBeLessThan(src.indexOf('fn b'));
  });
});

describe('grid', () => {
  test('covers any workgroup count within the per-dimension limit', () => {
    for (const n of [0, 1, 65535, 65536, 1_000_003, 16_777_216 / 64]) {
      const [x, y] = grid(n);
      expect(x).toBeLessThanOrEqual(MAX_GRID_DIM);
      expect(y).toBeLessThanOrEqual(MAX_GRID_DIM);
      expect(x * y).toBeGreaterThanOrEqual(n);
    }
  });
});

describe('context', () => {
  test('reports the device, with optional features only when the adapter has them', async () => {
    const ctx = await gpuContext();
    expect(ctx.description.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 2 ** 20);
    for (const f of ctx.description.features) expect(ctx.device.features.has(f)).toBe(true);
  });
  test('pipelines are cached by kernel and constants', async () => {
    const ctx = await gpuContext();
    const a = await ctx.pipeline('copy.wgsl', 'main', { WG: 64 });
    expect(await ctx.pipeline('copy.wgsl', 'main', { WG: 64 })).toBe(a);
    expect(await ctx.pipeline('copy.wgsl', 'main', { WG: 128 })).not.toBe(a);
  });
  test('the buffer pool reuses released buffers of the same size and usage', async () => {
    const ctx = await gpuContext();
    const a = ctx.storage(1000);
    ctx.pool.release(a);
    const b = ctx.storage(1000);
    expect(b).toBe(a);
    ctx.pool.release(b);
    expect(ctx.pool.liveCount).toBe(0);
  });
  test('a tensor larger than the binding limit is refused with sizes named', async () => {
    const ctx = await gpuContext();
    expect(() => ctx.checkBindingSize(ctx.description.maxStorageBufferBindingSize + 4, 'layer.weight')).toThrow(GpuLimitError);
    expect(() => ctx.checkBindingSize(ctx.description.maxStorageBufferBindingSize + 4, 'layer.weight')).toThrow(/layer\.weight needs .* MiB .* at most .* MiB/);
  });
  test('a bad dispatch becomes a GpuValidationError naming the kernel', async () => {
    const ctx = await gpuContext();
    const tiny = ctx.storage(16);
    // copy.wgsl wants (uniform, storage, storage): binding a storage buffer as the uniform is invalid.
    await expect(ctx.run([{ shader: 'copy.wgsl', bindings: [tiny, tiny, tiny], workgroups: [1] }])).rejects.toThrow(GpuValidationError);
    await expect(ctx.run([{ shader: 'copy.wgsl', bindings: [tiny, tiny, tiny], workgroups: [1] }])).rejects.toThrow(/copy\.wgsl/);
    ctx.pool.release(tiny);
  });
  test('a shader that does not compile names the file and line', async () => {
    const ctx = await gpuContext();
    await expect(ctx.pipeline('copy.wgsl', 'no_such_entry')).rejects.toThrow(/copy\.wgsl/);
  });
  test('profiling records GPU time per kernel when timestamp queries exist', async () => {
    const ctx = await gpuContext();
    if (!ctx.hasFeature('timestamp-query')) return;
    const k = new QuantKernels(ctx);
    ctx.profiling = true;
    await k.groupStats(new Float32Array(4096).fill(1), makeGroupLayout([4096], 'tensor'));
    // A run of copies alone has nothing to time and must not fail while profiling.
    const a = ctx.upload(new Float32Array(64).fill(2));
    const b = ctx.storage(256);
    await ctx.run([{ copy: { src: a, srcOffset: 0, dst: b, dstOffset: 0, size: 256 } }]);
    expect(Array.from(await ctx.readF32(b, 64))).toEqual(Array(64).fill(2));
    ctx.pool.releaseAll([a, b]);
    ctx.profiling = false;
    expect(ctx.gpuTimeMs.get('group-stats.wgsl')).toBeGreaterThanOrEqual(0);
  });
});

describe('device loss', () => {
  test('after the device is lost, calls fail with GpuDeviceLostError and the onLost callback fires', async () => {
    let reported: GpuDeviceLostError | undefined;
    const ctx = await createNodeGpuContext({ onLost: (e) => (reported = e) });
    const k = new QuantKernels(ctx);
    const x = new Float32Array([1, 2, 3, 4]);
    const before = await k.groupStats(x, makeGroupLayout([4], 'tensor'));
    expect(before.absmax[0]).toBe(4);
    ctx.device.destroy();
    await ctx.device.lost;
    await new Promise((r) => setTimeout(r, 0));
    expect(ctx.isLost).toBe(true);
    expect(reported).toBeInstanceOf(GpuDeviceLostError);
    await expect(k.groupStats(x, makeGroupLayout([4], 'tensor'))).rejects.toThrow(GpuDeviceLostError);
    await expect(k.groupStats(x, makeGroupLayout([4], 'tensor'))).rejects.toThrow(/GPU device lost/);
    // What was computed before the loss is still there.
    expect(before.absmax[0]).toBe(4);
    ctx.dispose();
  });
});
