/**
 * ONNX external data (onnx/docs/ExternalData.md): a tensor with data_location = EXTERNAL keeps its bytes in
 * another file, named by `location` relative to the model's folder, at `offset` for `length` bytes. Models
 * over protobuf's 2 GiB limit always store weights this way.
 *
 * The files are found through a caller-supplied reader, so the same code serves the browser (the files the
 * user dropped together with the model) and Node (files next to the model: load-node.ts).
 */
import { OnnxExternalDataError, dataTypeBits, type OnnxGraph, type OnnxModel, type OnnxTensor } from './model.ts';
import { tensorByteLength } from './tensor-data.ts';

/** Bytes of the whole external data file at `location` (relative to the model), or undefined when there is no such file. */
export type ExternalDataReader = (location: string) => Promise<Uint8Array | undefined>;

/**
 * Ranged access to external data files, for files too large to hold whole (fs.readFile stops at 2 GiB,
 * browsers at a few GiB per ArrayBuffer): each tensor is read on its own.
 */
export interface ExternalDataSource {
  /** Byte size of the file at `location`, or undefined when there is no such file. */
  size(location: string): Promise<number | undefined>;
  /** `length` bytes at `offset` of the file (the caller has checked the range against size()). */
  read(location: string, offset: number, length: number): Promise<Uint8Array>;
}

/** A whole-file reader as a ranged source (each file read once; tensors are views of it). */
export function sourceFromReader(reader: ExternalDataReader): ExternalDataSource {
  const cache = new Map<string, Promise<Uint8Array | undefined>>();
  const whole = (location: string): Promise<Uint8Array | undefined> => {
    let p = cache.get(location);
    if (!p) {
      p = reader(location);
      cache.set(location, p);
    }
    return p;
  };
  return {
    size: async (location) => (await whole(location))?.length,
    read: async (location, offset, length) => (await whole(location))!.subarray(offset, offset + length),
  };
}

function asSource(r: ExternalDataReader | ExternalDataSource): ExternalDataSource {
  return typeof r === 'function' ? sourceFromReader(r) : r;
}

/**
 * `location` as a clean relative path ("./a/b.bin" -> "a/b.bin"). Absolute paths and ".." are refused, as
 * onnx's checker does: a model must not make the loader read files outside its folder.
 */
export function normalizeExternalLocation(location: string): string {
  const p = location.replace(/\\/g, '/');
  if (p.startsWith('/') || /^[a-zA-Z]:\//.test(p)) {
    throw new OnnxExternalDataError(`external data location "${location}" is an absolute path; ONNX requires a path relative to the model file`);
  }
  const segments = p.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) {
    throw new OnnxExternalDataError(`external data location "${location}" leaves the model's folder ("..")`);
  }
  if (segments.length === 0) throw new OnnxExternalDataError(`external data location "${location}" names no file`);
  return segments.join('/');
}

/** Every tensor of a graph, its subgraphs and attribute tensors (Constant values live there). */
export function* allTensors(graph: OnnxGraph): Generator<OnnxTensor> {
  yield* graph.initializers;
  for (const n of graph.nodes) {
    for (const a of n.attributes) {
      if (a.type === 'tensor') yield a.value;
      else if (a.type === 'tensors') yield* a.value;
      else if (a.type === 'graph') yield* allTensors(a.value);
      else if (a.type === 'graphs') for (const g of a.value) yield* allTensors(g);
    }
  }
}

/** External tensors of the model, by normalized file location. */
export function externalTensorsByFile(model: OnnxModel): Map<string, OnnxTensor[]> {
  const byFile = new Map<string, OnnxTensor[]>();
  for (const t of allTensors(model.graph)) {
    if (t.data.location !== 'external') continue;
    const file = normalizeExternalLocation(t.data.file);
    const list = byFile.get(file);
    if (list) list.push(t);
    else byFile.set(file, [t]);
  }
  return byFile;
}

function listNames(tensors: OnnxTensor[]): string {
  const shown = tensors.slice(0, 3).map((t) => `"${t.name}"`).join(', ');
  return tensors.length > 3 ? `${shown} and ${tensors.length - 3} more` : shown;
}

/**
 * Checks every external tensor against its file (present, long enough, the right byte count) and, unless
 * `load` is false, reads its bytes into `data.bytes`. Throws OnnxExternalDataError naming the file that is
 * missing or too short. With `load: false`, read tensors later, one at a time, with loadExternalTensor.
 */
export async function resolveExternalData(
  model: OnnxModel,
  readExternalData: ExternalDataReader | ExternalDataSource,
  options: { load?: boolean } = {},
): Promise<void> {
  const source = asSource(readExternalData);
  for (const [file, tensors] of externalTensorsByFile(model)) {
    const size = await source.size(file);
    if (size === undefined) {
      throw new OnnxExternalDataError(
        `external data file "${file}" is missing: the model keeps tensor${tensors.length > 1 ? 's' : ''} ${listNames(tensors)} in it. ` +
          'Load it together with the model (same folder, same name).',
      );
    }
    for (const t of tensors) {
      const range = externalRange(t, file, size);
      if (options.load ?? true) (t.data as { bytes?: Uint8Array }).bytes = await source.read(file, range.offset, range.length);
    }
  }
}

/** Offset and length of an external tensor, checked against the file size and the tensor's dims. */
function externalRange(t: OnnxTensor, file: string, size: number): { offset: number; length: number } {
  if (t.data.location !== 'external') throw new OnnxExternalDataError(`tensor "${t.name}" is not stored externally`);
  const need = tensorByteLength(t);
  const length = t.data.length ?? need;
  const { offset } = t.data;
  if (offset + length > size) {
    throw new OnnxExternalDataError(
      `external data file "${file}" has ${size} bytes, but tensor "${t.name}" is at bytes ${offset}..${offset + length} (file truncated, or not the one this model was saved with?)`,
    );
  }
  if (dataTypeBits(t.dataType) > 0 && length !== need) {
    throw new OnnxExternalDataError(`tensor "${t.name}" in "${file}": ${length} bytes stored, dims [${t.dims.join(', ')}] of ${t.dataType} need ${need}`);
  }
  return { offset, length };
}

/** Reads one external tensor's bytes into `data.bytes` (no-op when already loaded) and returns them. */
export async function loadExternalTensor(t: OnnxTensor, readExternalData: ExternalDataReader | ExternalDataSource): Promise<Uint8Array> {
  if (t.data.location !== 'external') throw new OnnxExternalDataError(`tensor "${t.name}" is not stored externally`);
  if (t.data.bytes) return t.data.bytes;
  const source = asSource(readExternalData);
  const file = normalizeExternalLocation(t.data.file);
  const size = await source.size(file);
  if (size === undefined) throw new OnnxExternalDataError(`external data file "${file}" of tensor "${t.name}" is missing`);
  const { offset, length } = externalRange(t, file, size);
  const bytes = await source.read(file, offset, length);
  t.data.bytes = bytes;
  return bytes;
}

/** Drops loaded external bytes (after a layer is processed) so a large model need not stay in memory. */
export function unloadExternalTensor(t: OnnxTensor): void {
  if (t.data.location === 'external') delete t.data.bytes;
}

/** A file the user picked or dropped (a browser File, or anything with a name, a size and slice()). */
export interface NamedBlob {
  name: string;
  size: number;
  /** Path within a dropped folder, when the browser gives one. */
  webkitRelativePath?: string;
  slice(start?: number, end?: number): { arrayBuffer(): Promise<ArrayBuffer> };
}

/**
 * Ranged source over files the user dropped together with the model: a location matches a file by its
 * relative path inside a dropped folder, or else by its base name. Only the tensors' ranges are read.
 */
export function externalDataFromFiles(files: Iterable<NamedBlob>): ExternalDataSource {
  const list = [...files];
  const find = (location: string): NamedBlob | undefined => {
    const want = normalizeExternalLocation(location);
    const base = want.slice(want.lastIndexOf('/') + 1);
    const byPath = list.find((f) => f.webkitRelativePath && f.webkitRelativePath.replace(/\\/g, '/').endsWith(`/${want}`));
    return byPath ?? list.find((f) => f.name === want) ?? list.find((f) => f.name === base);
  };
  return {
    size: async (location) => find(location)?.size,
    read: async (location, offset, length) => new Uint8Array(await find(location)!.slice(offset, offset + length).arrayBuffer()),
  };
}

/** Reader over in-memory buffers by location (tests, or data already fetched). */
export function externalDataFromMap(files: ReadonlyMap<string, Uint8Array> | Record<string, Uint8Array>): ExternalDataReader {
  const map = files instanceof Map ? files : new Map(Object.entries(files));
  return async (location: string) => map.get(normalizeExternalLocation(location)) ?? map.get(location);
}
