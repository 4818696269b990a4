/** Byte sources (browser Blob/File, Node file, in-memory, sub-range) return exactly the requested bytes and refuse reads past their end. */
import { describe, expect, test } from 'vitest';
import { nodeFileByteSource } from '../../src/model/formats/byte-source-node.ts';
import { blobByteSource, ByteSourceError, bytesByteSource, subByteSource } from '../../src/model/formats/byte-source.ts';
import { STORIES15M_DATA } from './tiny-llama.ts';

const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) & 0xff);

describe('byte sources', () => {
  test('Blob, File and in-memory sources agree, and sub-sources offset their reads', async () => {
    const sources = [blobByteSource(new Blob([bytes])), blobByteSource(new File([bytes], 'model.gguf')), bytesByteSource(bytes, 'mem')];
    expect(sources.map((s) => s.name)).toEqual(['blob', 'model.gguf', 'mem']);
    for (const s of sources) {
      expect(s.size).toBe(1000);
      expect(await s.read(10, 5)).toEqual(bytes.slice(10, 15));
      expect(await s.read(1000, 0)).toEqual(new Uint8Array(0));
      await expect(s.read(998, 5)).rejects.toThrow(ByteSourceError);
      const sub = subByteSource(s, 100, 50, 'inner.bin');
      expect(await sub.read(0, 3)).toEqual(bytes.slice(100, 103));
      await expect(sub.read(48, 3)).rejects.toThrow('inner.bin: read of bytes 48..51 is past the end of the file (50 bytes)');
    }
    expect(() => subByteSource(sources[2], 990, 20, 'x')).toThrow(ByteSourceError);
  });

  test('a Node file source reads ranges of a file on disk', async () => {
    const src = await nodeFileByteSource(STORIES15M_DATA);
    expect(src.name).toBe('llama2.data');
    expect(src.size).toBe(61_248_745);
    const head = await src.read(0, 28);
    expect(Array.from(new Int32Array(head.buffer))).toEqual([288, 768, 6, 6, 6, 32000, 256]);
    await expect(src.read(src.size - 2, 4)).rejects.toThrow(/past the end of the file/);
    await expect(nodeFileByteSource('/nonexistent/model.bin')).rejects.toThrow(/ENOENT/);
  });
});
