/** Shader loader for Vite builds: every shaders/*.wgsl bundled as a string. */
import type { ShaderLoader } from './shader-source.ts';

const files = import.meta.glob('../../shaders/*.wgsl', { query: '?raw', import: 'default', eager: true }) as Record<string, string>;

export const browserShaderLoader: ShaderLoader = (fileName) => {
  const src = files[`../../shaders/${fileName}`];
  if (src === undefined) throw new Error(`shader ${fileName} is not bundled`);
  return src;
};
