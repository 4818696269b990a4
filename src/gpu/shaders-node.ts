/** Shader loader for Node: reads shaders/*.wgsl next to the package's src/. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ShaderLoader } from './shader-source.ts';

const dir = fileURLToPath(new URL('../../shaders/', import.meta.url));
const cache = new Map<string, string>();

export const nodeShaderLoader: ShaderLoader = (fileName) => {
  let src = cache.get(fileName);
  if (src === undefined) {
    src = readFileSync(dir + fileName, 'utf8');
    cache.set(fileName, src);
  }
  return src;
};
