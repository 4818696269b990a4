/**
 * WGSL sources: one file per kernel in shaders/, loaded as strings by the environment (Vite ?raw glob in
 * the browser, the file system in Node). `#include "file.wgsl"` lines pull in shared helper files.
 */
export type ShaderLoader = (fileName: string) => string;

const INCLUDE = /^[ \t]*#include\s+"([^"]+)"[ \t]*$/gm;

export function resolveIncludes(fileName: string, load: ShaderLoader, seen = new Set<string>()): string {
  if (seen.has(fileName)) return '';
  seen.add(fileName);
  return load(fileName).replace(INCLUDE, (_m, inc: string) => resolveIncludes(inc, load, seen));
}
