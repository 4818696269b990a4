/**
 * The data SmoothQuant needs for each norm -> linears group of a Llama-family model: the calibration
 * statistic max|X_j| of the group's input (captureLlamaStats, NaN/Inf refused), sampled rows of that input
 * for the W8A8 error evaluation (captureLlamaRows) and the group's weights. Shared by `quantlab smoothquant`
 * and the lab's worker. No Node imports.
 */
import { captureLlamaStats } from '../calib/capture-llama.ts';
import { checkSummaries } from '../calib/result.ts';
import type { CalibProgress } from '../calib/types.ts';
import type { LlamaGpu } from '../model/llama/forward-gpu.ts';
import type { LlamaCheckpoint } from '../model/llama/model.ts';
import { captureLlamaRows } from './capture-rows.ts';
import { llamaCapturePoint, llamaSmoothGroups } from './fold-llama.ts';
import type { SmoothGroupData } from './smooth-model.ts';
import { SmoothQuantError } from './smoothquant.ts';

export async function llamaSmoothData(
  llm: LlamaGpu,
  ckpt: Pick<LlamaCheckpoint, 'config' | 'tensors' | 'loadTensor'>,
  sequences: number[][],
  maxRows: number,
  opts: { signal?: AbortSignal; onProgress?: (p: CalibProgress) => void } = {},
): Promise<SmoothGroupData[]> {
  const groups = llamaSmoothGroups(ckpt.config);
  const summaries = await captureLlamaStats(llm, sequences, opts);
  checkSummaries(summaries);
  opts.onProgress?.({ phase: 'capture', done: 0, total: 1, label: `keeping up to ${maxRows} rows per group` });
  const rows = await captureLlamaRows(llm, sequences, groups.map((g) => llamaCapturePoint(g.prev)), maxRows);
  const byName = new Map(summaries.map((s) => [s.name, s]));
  const out: SmoothGroupData[] = [];
  for (const g of groups) {
    const point = llamaCapturePoint(g.prev);
    const s = byName.get(point);
    const sample = rows.get(point);
    if (!s || !sample) throw new SmoothQuantError(`no activations were captured for ${point}`);
    const linears = [];
    for (const name of g.linears) {
      const info = ckpt.tensors.find((t) => t.name === name);
      if (!info) throw new SmoothQuantError(`the checkpoint has no ${name}`);
      linears.push({ name, weight: await ckpt.loadTensor(name), out: info.shape[0] });
    }
    out.push({ name: g.prev, linears, channels: ckpt.config.dim, actAbsmax: s.channelAbsmax, sample });
  }
  return out;
}
