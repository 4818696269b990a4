/**
 * Node-only image decoding for the CLI and the tests: JPEG through jpeg-js, PNG through pngjs, to the
 * RgbaImage that image-preprocess.ts takes; and the bundled calibration photos read from node_modules.
 * (The browser decodes with createImageBitmap / OffscreenCanvas instead.)
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { BUNDLED_IMAGES, bundledImageSpecifier, type BundledImage } from './bundled-images.ts';
import type { RgbaImage } from './image-preprocess.ts';

const require = createRequire(import.meta.url);

/** A file that is not a JPEG or PNG image, or does not decode; the message names the file and the reason. */
export class ImageDecodeError extends Error {
  override name = 'ImageDecodeError';
}

const isJpeg = (b: Uint8Array): boolean => b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;
const isPng = (b: Uint8Array): boolean => b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47;

/**
 * Decodes a .jpg / .jpeg / .png file's bytes. The format is taken from the bytes (a PNG named .jpg still
 * decodes); `name` only labels errors.
 */
export function decodeImageBytes(name: string, bytes: Uint8Array): RgbaImage {
  const ext = path.extname(name).toLowerCase();
  const format = isJpeg(bytes) ? 'jpeg' : isPng(bytes) ? 'png' : undefined;
  if (!format) {
    const expected = ext === '.png' ? 'a PNG signature' : ext === '.jpg' || ext === '.jpeg' ? 'a JPEG signature (FF D8 FF)' : 'a JPEG or PNG signature';
    throw new ImageDecodeError(`${name}: not an image QuantLab can read: the file does not start with ${expected} (${bytes.length} bytes)`);
  }
  let img: RgbaImage;
  try {
    if (format === 'jpeg') {
      const d = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true });
      img = { width: d.width, height: d.height, data: d.data };
    } else {
      const d = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      img = { width: d.width, height: d.height, data: new Uint8Array(d.data.buffer, d.data.byteOffset, d.data.byteLength) };
    }
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    const err = new ImageDecodeError(`${name}: the ${format === 'jpeg' ? 'JPEG' : 'PNG'} data does not decode: ${reason}`);
    err.cause = e;
    throw err;
  }
  if (img.width <= 0 || img.height <= 0 || img.data.length !== img.width * img.height * 4) {
    throw new ImageDecodeError(`${name}: decoded to ${img.width}x${img.height} with ${img.data.length} bytes of pixels`);
  }
  return img;
}

export async function decodeImageFile(file: string): Promise<RgbaImage> {
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (e) {
    throw new ImageDecodeError(`${file}: cannot read: ${(e as Error).message}`);
  }
  return decodeImageBytes(file, new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
}

/** Path of a bundled photo in node_modules, or undefined when its package is not installed. */
export function bundledImagePath(img: BundledImage): string | undefined {
  try {
    return require.resolve(bundledImageSpecifier(img));
  } catch {
    return undefined;
  }
}

/** The bundled photos, decoded, with their ids; throws naming the package when one is not installed. */
export async function loadBundledImagesNode(ids?: readonly string[]): Promise<(RgbaImage & { id: string; title: string })[]> {
  const wanted = ids ? BUNDLED_IMAGES.filter((b) => ids.includes(b.id)) : BUNDLED_IMAGES;
  if (ids) {
    const unknown = ids.filter((id) => !BUNDLED_IMAGES.some((b) => b.id === id));
    if (unknown.length) throw new ImageDecodeError(`no bundled image "${unknown[0]}" (bundled: ${BUNDLED_IMAGES.map((b) => b.id).join(', ')})`);
  }
  const out: (RgbaImage & { id: string; title: string })[] = [];
  for (const b of wanted) {
    const file = bundledImagePath(b);
    if (!file) throw new ImageDecodeError(`bundled image "${b.id}": package ${b.packageName} is not installed`);
    out.push({ ...(await decodeImageFile(file)), id: b.id, title: b.title });
  }
  return out;
}
