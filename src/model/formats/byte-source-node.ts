/**
 * A ByteSource over a file on disk (Node only: kept apart from byte-source.ts so browser bundles do
 * not pull in node:fs). Each read opens the file, reads the range and closes it again, so a source
 * holds no file handle and needs no disposal; the open costs microseconds next to a tensor read.
 */
import { open, stat } from 'node:fs/promises';
import { baseName, ByteSourceError, checkRange, type ByteSource } from './byte-source.ts';

/** Largest single read() call (Node rejects reads of 2 GiB and more). */
const MAX_READ = 1 << 30;

export async function nodeFileByteSource(path: string): Promise<ByteSource> {
  const st = await stat(path);
  if (!st.isFile()) throw new ByteSourceError(`${path} is not a file`);
  const src: ByteSource = {
    size: st.size,
    name: baseName(path),
    async read(offset, length) {
      checkRange(src, offset, length);
      const out = new Uint8Array(length);
      const fh = await open(path, 'r');
      try {
        let done = 0;
        while (done < length) {
          const { bytesRead } = await fh.read(out, done, Math.min(MAX_READ, length - done), offset + done);
          if (bytesRead === 0) {
            throw new ByteSourceError(`${src.name}: file ended at byte ${offset + done} while reading ${offset}..${offset + length} (did it change on disk?)`);
          }
          done += bytesRead;
        }
      } finally {
        await fh.close();
      }
      return out;
    },
  };
  return src;
}
