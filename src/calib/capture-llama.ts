/**
 * Activation statistics of a Llama-family model from the WGSL forward pass: every calibration sequence
 * runs through LlamaGpu with capture enabled, and after each forward chunk the input of every linear
 * layer (4 capture points per block) is added to its ActivationStatsGpu while it is still on the GPU.
 * No Node imports.
 */
import { CancelledError } from '../gpu/errors.ts';
import type { LlamaGpu } from '../model/llama/forward-gpu.ts';
import { ActivationStatsGpu, type ActivationStatsOptions } from './activation-stats.ts';
import type { ActivationSummary, CalibProgress } from './types.ts';

export async function captureLlamaStats(
  llm: LlamaGpu,
  sequences: number[][],
  opts: ActivationStatsOptions & { signal?: AbortSignal; onProgress?: (p: CalibProgress) => void } = {},
): Promise<ActivationSummary[]> {
  const points = llm.enableCapture();
  const stats = points.map((p) => new ActivationStatsGpu(llm.ctx, p.name, p.layers, p.cols, opts));
  try {
    const total = sequences.reduce((a, s) => a + s.length, 0);
    let done = 0;
    for (let i = 0; i < sequences.length; i++) {
      if (opts.signal?.aborted) throw new CancelledError('calibration cancelled');
      const seq = sequences[i];
      if (seq.length > llm.config.seqLen) throw new RangeError(`sequence ${i} has ${seq.length} tokens; the model's context is ${llm.config.seqLen}`);
      llm.reset();
      await llm.forward(seq, {
        signal: opts.signal,
        onChunk: async (rows) => {
          for (let k = 0; k < points.length; k++) {
            await stats[k].add({ buffer: points[k].buffer, length: rows * points[k].cols }, rows);
          }
          done += rows;
          opts.onProgress?.({ phase: 'capture', done, total, label: `sequence ${i + 1} of ${sequences.length}` });
        },
      });
    }
    const out: ActivationSummary[] = [];
    for (const s of stats) out.push(await s.summary());
    return out;
  } finally {
    for (const s of stats) s.dispose();
    llm.disableCapture();
    llm.reset();
  }
}
