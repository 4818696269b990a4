/**
 * WebGPU in Node through the npm `webgpu` package (Dawn). Dawn needs a Vulkan driver; on a machine
 * without a GPU, Debian's chromium ships SwiftShader's Vulkan driver, which we select when no hardware
 * adapter is found (or always, with QUANTLAB_ADAPTER=swiftshader).
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
  // Without a runtime dir, the Vulkan loader prints a warning on every start; give it a private one.
  if (!process.env.XDG_RUNTIME_DIR) process.env.XDG_RUNTIME_DIR = mkdtempSync(join(tmpdir(), 'quantlab-xdg-'));
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
        '"chromium" (for its SwiftShader Vulkan driver) and "libvulkan1": sudo apt-get install -y chromium libvulkan1',
    );
  }
  return GpuContext.create({ gpu, loadShader: nodeShaderLoader, onLost: opts.onLost, adapterOptions: { forceFallbackAdapter: true } });
}
