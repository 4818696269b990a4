/**
 * WebGPU in Node through the npm `webgpu` package (Dawn). Dawn needs a Vulkan driver; on a machine
 * without a GPU, Debian's chromium ships SwiftShader's Vulkan driver, which we select when no hardware
 * adapter is found (or always, with QUANTLAB_ADAPTER=swiftshader).
 */
import { existsSync } from 'node:fs';
import { GpuContext } from './context.ts';
import { GpuUnavailableError } from './errors.ts';
import { nodeShaderLoader } from './shaders-node.ts';

const SWIFTSHADER_ICD = ['/usr/lib/chromium/vk_swiftshader_icd.json', '/usr/lib/chromium-browser/vk_swiftshader_icd.json'];

type DawnModule = { create: (flags: string[]) => GPU; globals: Record<string, unknown> };

async function loadDawn(): Promise<DawnModule> {
  try {
    return (await import('webgpu')) as unknown as DawnModule;
  } catch (e) {
    throw new GpuUnavailableError(`the npm package "webgpu" (Dawn) could not be loaded: ${(e as Error).message}. Run npm install.`);
  }
}

export async function createNodeGpuContext(opts: { onLost?: Parameters<typeof GpuContext.create>[0]['onLost'] } = {}): Promise<GpuContext> {
  const dawn = await loadDawn();
  Object.assign(globalThis, dawn.globals);
  const wantSwiftshader = process.env.QUANTLAB_ADAPTER === 'swiftshader';
  if (!wantSwiftshader) {
    const gpu = dawn.create([]);
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (adapter) return GpuContext.create({ gpu, loadShader: nodeShaderLoader, onLost: opts.onLost, adapterOptions: { powerPreference: 'high-performance' } });
  }
  const icd = SWIFTSHADER_ICD.find((p) => existsSync(p));
  if (!process.env.VK_ICD_FILENAMES && icd) process.env.VK_ICD_FILENAMES = icd;
  const gpu = dawn.create([]);
  const adapter = await gpu.requestAdapter({ forceFallbackAdapter: true });
  if (!adapter) {
    throw new GpuUnavailableError(
      'No WebGPU adapter in Node. Dawn needs a Vulkan driver: install a GPU driver, or the Debian packages ' +
        '"chromium" (for SwiftShader) and "libvulkan1" (npm test installs them when run as root).',
    );
  }
  return GpuContext.create({ gpu, loadShader: nodeShaderLoader, onLost: opts.onLost, adapterOptions: { forceFallbackAdapter: true } });
}
