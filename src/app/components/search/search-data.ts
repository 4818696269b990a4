/**
 * The AWQ & SmoothQuant page's data, without React: the two forms (defaults per model, validation as the user
 * types) and the series the charts draw from a run (relative loss per ratio, block errors, the alpha sweep).
 */
import type { AwqBlockReport, AwqGroupReport } from '../../../awq/awq-llama.ts';
import { validateQuantConfig, QuantConfigError, type QuantConfig } from '../../../quant/config.ts';
import type { GroupSweep, ActQuant } from '../../../smooth/smoothquant.ts';
import type { Parsed } from '../../engine/drafts.ts';
import { parseCalibForm, type CalibModelInfo, type CalibSourceKind } from '../calib/calib-data.ts';

export type LlamaSourceKind = Extract<CalibSourceKind, 'bundled-text' | 'text-files' | 'generated'>;

interface DataDraft {
  source: LlamaSourceKind;
  samples: string;
  seqLen: string;
}

export interface AwqFormDraft extends DataDraft {
  bits: number;
  granularity: 'group' | 'channel';
  groupSize: string;
  scheme: 'asym' | 'sym';
  duo: boolean;
  clip: boolean;
}

export interface SmoothFormDraft extends DataDraft {
  /** "sweep" or a number in [0, 1]. */
  alpha: string;
  act: ActQuant;
  perGroup: boolean;
  rows: string;
}

/**
 * Data defaults: llm-awq's 128 x 512 for models with a long context; a short run for small ones, where the
 * WGSL forward pass of every ratio dominates (on a software adapter, about 10 tokens/s).
 */
function dataDefaults(info: CalibModelInfo): DataDraft {
  const ctx = info.maxSeqLen ?? 512;
  const big = ctx >= 512;
  return { source: info.hasTokenizer ? 'bundled-text' : 'generated', samples: String(big ? 128 : 4), seqLen: String(big ? 512 : Math.min(ctx, 64)) };
}

export function defaultAwqForm(info: CalibModelInfo): AwqFormDraft {
  return { ...dataDefaults(info), bits: 4, granularity: 'group', groupSize: '128', scheme: 'asym', duo: true, clip: true };
}

export function defaultSmoothForm(info: CalibModelInfo): SmoothFormDraft {
  return { ...dataDefaults(info), alpha: 'sweep', act: 'per-token', perGroup: false, rows: '512' };
}

function parseData(form: DataDraft, info: CalibModelInfo, fileCount: number): Parsed<{ samples: number; seqLen: number }> {
  const p = parseCalibForm({ source: form.source, samples: form.samples, seqLen: form.seqLen, bits: 8, method: 'max' }, info, fileCount);
  if (!p.ok) return p;
  return { ok: true, value: { samples: p.value.samples, seqLen: p.value.seqLen ?? info.maxSeqLen ?? 512 } };
}

export function parseAwqForm(form: AwqFormDraft, info: CalibModelInfo, fileCount: number): Parsed<{ samples: number; seqLen: number; quant: QuantConfig }> {
  if (info.kind !== 'llama') return { ok: false, error: 'AWQ in the lab runs on Llama-family checkpoints; for ONNX models use quantlab awq.' };
  const data = parseData(form, info, fileCount);
  if (!data.ok) return data;
  let groupSize: number | undefined;
  if (form.granularity === 'group') {
    const t = form.groupSize.trim();
    if (!/^\d+$/.test(t) || Number(t) < 1) return { ok: false, error: 'Group size must be a whole number of at least 1.' };
    groupSize = Number(t);
  }
  try {
    const quant = validateQuantConfig({ bits: form.bits, granularity: form.granularity, groupSize, scheme: form.scheme });
    return { ok: true, value: { ...data.value, quant } };
  } catch (e) {
    if (e instanceof QuantConfigError) return { ok: false, error: e.message };
    throw e;
  }
}

export function parseSmoothForm(form: SmoothFormDraft, info: CalibModelInfo, fileCount: number): Parsed<{ samples: number; seqLen: number; alpha: number | 'sweep'; rows: number }> {
  if (info.kind !== 'llama') return { ok: false, error: 'SmoothQuant in the lab runs on Llama-family checkpoints; for ONNX models use quantlab smoothquant.' };
  const data = parseData(form, info, fileCount);
  if (!data.ok) return data;
  const a = form.alpha.trim();
  let alpha: number | 'sweep';
  if (a === 'sweep') alpha = 'sweep';
  else {
    const v = Number(a);
    if (a === '' || !(v >= 0 && v <= 1)) return { ok: false, error: 'Alpha must be a number from 0 to 1, or a sweep.' };
    alpha = v;
  }
  if (form.perGroup && alpha !== 'sweep') return { ok: false, error: "Each group's own alpha needs a sweep." };
  const r = form.rows.trim();
  if (!/^\d+$/.test(r) || Number(r) < 1 || Number(r) > 65536) return { ok: false, error: 'Rows must be a whole number from 1 to 65536.' };
  return { ok: true, value: { ...data.value, alpha, rows: Number(r) } };
}

/** The settings an AWQ run's blocks belong to: a resume is offered only while the form says the same. */
export function awqSettingsKey(modelKey: string, form: AwqFormDraft, fileNames: string[]): string {
  return JSON.stringify([modelKey, form.source, form.samples.trim(), form.seqLen.trim(), form.bits, form.granularity, form.granularity === 'group' ? form.groupSize.trim() : '', form.scheme, form.duo, form.clip, form.source === 'text-files' ? fileNames : []]);
}

export const GROUP_KIND_LABEL: Record<AwqGroupReport['kind'], string> = {
  qkv: 'norm → q, k, v',
  v_o: 'v → o',
  gate_up: 'norm → gate, up',
  up_down: 'up → down',
};

export function awqGroupKey(g: Pick<AwqGroupReport, 'block' | 'kind'>): string {
  return `${g.block}:${g.kind}`;
}

export function awqGroupLabel(g: Pick<AwqGroupReport, 'block' | 'kind'>): string {
  return `block ${g.block} · ${GROUP_KIND_LABEL[g.kind]}`;
}

/**
 * Loss at every ratio relative to RTN's (1 = no better than round-to-nearest), one row per group: the heatmap
 * of every layer's search. `best` is each row's chosen ratio index.
 */
export function relativeLossGrid(groups: readonly AwqGroupReport[]): { labels: string[]; ratios: number[]; z: (number | null)[][]; best: number[] } {
  const ratios = groups[0]?.ratios ?? [];
  return {
    labels: groups.map(awqGroupLabel),
    ratios,
    z: groups.map((g) => g.losses.map((l) => (g.rtnLoss > 0 && Number.isFinite(l) ? l / g.rtnLoss : null))),
    best: groups.map((g) => g.bestIndex),
  };
}

/** Summed attention + MLP output error of the blocks, RTN and AWQ, and how much lower AWQ's is (percent). */
export function awqTotals(blocks: readonly AwqBlockReport[]): { rtn: number; awq: number; lowerPercent: number; blocksBetter: number } {
  const rtn = blocks.reduce((a, b) => a + b.rtnError, 0);
  const awq = blocks.reduce((a, b) => a + b.awqError, 0);
  return { rtn, awq, lowerPercent: rtn > 0 ? (1 - awq / rtn) * 100 : 0, blocksBetter: blocks.filter((b) => b.awqError < b.rtnError).length };
}

/** The k channels with the largest AWQ scales: the ones AWQ protects. */
export function topScaleChannels(scales: Float32Array, k: number): number[] {
  return Array.from(scales, (s, j) => [s, j] as const)
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .slice(0, k)
    .map((e) => e[1]);
}

/** Per group, the W8A8 error at every alpha relative to the unsmoothed baseline (1 = no change). */
export function relativeSweep(sweeps: readonly GroupSweep[]): { group: string; alphas: number[]; rel: number[]; best: number }[] {
  return sweeps.map((s) => ({
    group: s.group,
    alphas: s.points.map((p) => p.alpha),
    rel: s.points.map((p) => (s.baseline.mse > 0 ? p.mse / s.baseline.mse : 1)),
    best: s.bestAlpha,
  }));
}

/** Percent change from before to after (negative = lower). */
export function percentChange(before: number, after: number): number {
  return before > 0 ? (after / before - 1) * 100 : 0;
}
