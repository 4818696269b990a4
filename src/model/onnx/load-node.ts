/**
 * Node-only: reading a .onnx file and the external data files next to it, and writing a model back
 * (with its external data file when the weights go there). Kept out of load.ts so the browser bundle never
 * sees node: imports.
 */
import { open, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ExternalDataSource } from './external-data.ts';
import { normalizeExternalLocation } from './external-data.ts';
import { loadModel } from './load.ts';
import type { OnnxModel } from './model.ts';
import { serializeModel, serializeModelWithExternalData, type ExternalDataOptions, type SerializeOptions } from './serialize.ts';

/**
 * Ranged source for external data files in `folder` (the model's folder): each tensor is read with its own
 * positioned read, so data files beyond fs.readFile's 2 GiB limit work. A missing file has size undefined.
 */
export function externalDataFromFolder(folder: string): ExternalDataSource {
  const resolve = (location: string): string => path.join(folder, normalizeExternalLocation(location));
  return {
    async size(location) {
      try {
        const s = await stat(resolve(location));
        return s.isFile() ? s.size : undefined;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw e;
      }
    },
    async read(location, offset, length) {
      const handle = await open(resolve(location), 'r');
      try {
        const out = new Uint8Array(length);
        let done = 0;
        while (done < length) {
          const { bytesRead } = await handle.read(out, done, length - done, offset + done);
          if (bytesRead === 0) throw new Error(`${resolve(location)} ended at byte ${offset + done}, expected ${offset + length}`);
          done += bytesRead;
        }
        return out;
      } finally {
        await handle.close();
      }
    },
  };
}

/**
 * Reads and parses `file`, with external data from the same folder: read now, or with
 * `{ loadExternalData: false }` only checked, to be read per tensor with loadExternalTensor.
 */
export async function loadModelFile(file: string, options: { loadExternalData?: boolean } = {}): Promise<OnnxModel> {
  const buf = await readFile(file);
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  return loadModel(bytes, { readExternalData: externalDataFromFolder(path.dirname(file)), loadExternalData: options.loadExternalData });
}

/**
 * Writes `model` to `file`. With `externalData`, initializers above the size threshold go to that file in
 * the same folder (required above 2 GiB). Returns the paths written.
 */
export async function saveModelFile(
  file: string,
  model: OnnxModel,
  options: SerializeOptions & { externalData?: Omit<ExternalDataOptions, 'location'> & { location?: string } } = {},
): Promise<string[]> {
  if (!options.externalData) {
    await writeFile(file, serializeModel(model, options));
    return [file];
  }
  const location = options.externalData.location ?? `${path.basename(file)}.data`;
  const out = serializeModelWithExternalData(model, { ...options.externalData, location });
  const dataFile = path.join(path.dirname(file), normalizeExternalLocation(location));
  await writeFile(dataFile, out.externalData.parts);
  await writeFile(file, out.model);
  return [file, dataFile];
}
