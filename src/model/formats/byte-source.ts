/**
 * Random-access byte sources for checkpoint loaders. A loader reads a header first and then each
 * tensor's bytes when asked, so a multi-gigabyte model never has to sit in one ArrayBuffer.
 * No Node imports here: the browser bundles this file; the Node file source is byte-source-node.ts.
 */

/** A file (or part of one) that can be read at any offset. */
export interface ByteSource {
  /** Total bytes. */
  readonly size: number;
  /** File name, used in error messages and to recognise formats by extension. */
  readonly name: string;
  /** Exactly `length` bytes from `offset`; rejects with ByteSourceError when the range leaves the source. */
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** A read outside a source, or a failed read; the message names the file and the range. */
export class ByteSourceError extends Error {
  override name = 'ByteSourceError';
}

export function checkRange(src: { size: number; name: string }, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new ByteSourceError(`${src.name}: bad read of ${length} bytes at offset ${offset}`);
  }
  if (offset + length > src.size) {
    throw new ByteSourceError(`${src.name}: read of bytes ${offset}..${offset + length} is past the end of the file (${src.size} bytes)`);
  }
}

/** A browser Blob or File (also available in Node 20 as the global Blob). */
export function blobByteSource(blob: Blob, name?: string): ByteSource {
  const fileName = name ?? ((blob as Partial<File>).name || 'blob');
  return {
    size: blob.size,
    name: fileName,
    async read(offset, length) {
      checkRange(this, offset, length);
      return new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
    },
  };
}

/** Bytes already in memory (tests, writers' output). Reads return copies, so callers may keep or modify them. */
export function bytesByteSource(bytes: Uint8Array, name: string): ByteSource {
  return {
    size: bytes.length,
    name,
    async read(offset, length) {
      checkRange(this, offset, length);
      return bytes.slice(offset, offset + length);
    },
  };
}

/** The bytes [offset, offset + length) of another source, seen as a source of its own (a file packed inside another). */
export function subByteSource(src: ByteSource, offset: number, length: number, name: string): ByteSource {
  checkRange(src, offset, length);
  return {
    size: length,
    name,
    async read(o, n) {
      checkRange(this, o, n);
      return src.read(offset + o, n);
    },
  };
}

/** Reads a whole (small) source as UTF-8 text, e.g. config.json. */
export async function readText(src: ByteSource): Promise<string> {
  return new TextDecoder().decode(await src.read(0, src.size));
}

/** The file name without directories (sources from Node carry a path; error messages use the base name). */
export function baseName(name: string): string {
  const i = Math.max(name.lastIndexOf('/'), name.lastIndexOf('\\'));
  return i >= 0 ? name.slice(i + 1) : name;
}
