/** Small image files written for CLI tests. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';

/** A directory `name` under `parent` holding one 16 x 12 PNG (a.png) with a fixed pattern. */
export function pngDir(parent: string, name: string): string {
  const d = join(parent, name);
  mkdirSync(d, { recursive: true });
  const png = new PNG({ width: 16, height: 12 });
  for (let i = 0; i < png.data.length; i++) png.data[i] = (i * 37) % 256;
  writeFileSync(join(d, 'a.png'), PNG.sync.write(png));
  return d;
}
