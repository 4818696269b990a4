/**
 * The Evaluate page's data, without React: the form (which configurations, how much held-out text, the context,
 * the calibration text of AWQ and SmoothQuant), the metrics each model kind reports and which way is better, the
 * Pareto front of accuracy against size, and the comparison table as CSV.
 */
import { parseEvalConfigs } from '../../../eval/configs.ts';
import { parseOnnxEvalConfigs } from '../../../eval/onnx-eval.ts';
import type { EvalRow } from '../../../eval/types.ts';
import type { Parsed } from '../../engine/drafts.ts';
import type { CalibModelInfo } from '../calib/calib-data.ts';

/** The configurations offered as checkboxes, per model kind; any other label goes in the free field. */
export const PRESET_CONFIGS = ['fp32', 'fp16', 'rtn-int8', 'rtn-int4-g32', 'rtn-int4-g64', 'rtn-int4-g128', 'awq-int4-g32', 'smoothquant-w8a8'] as const;
export const ONNX_PRESET_CONFIGS = ['fp32', 'fp16', 'rtn-int8', 'rtn-int8-sym', 'rtn-w8a8', 'rtn-w8a8-percentile-99.99', 'rtn-int4-g32', 'awq-int4-g32'] as const;

export interface EvalFormDraft {
  presets: string[];
  /** More labels, comma-separated (e.g. rtn-int3-g64, awq-int4-g128-sym). */
  extra: string;
  source: 'bundled-text' | 'text-files';
  /** ONNX models: evaluation lines (recogniser) or rendered pages besides the photos. */
  samples: string;
  tokens: string;
  context: string;
  calibSamples: string;
  calibSeqLen: string;
  prompt: string;
  genTokens: string;
}

export interface EvalPlan {
  configs: string[];
  samples: number;
  tokens: number;
  context: number;
  calibSamples: number;
  calibSeqLen: number;
  prompt: string;
  genTokens: number;
}

export function defaultEvalForm(info: CalibModelInfo): EvalFormDraft {
  const ctx = info.maxSeqLen ?? 512;
  return {
    presets: info.kind === 'llama' ? ['fp32', 'rtn-int8', 'rtn-int4-g32'] : ['fp32', 'rtn-int8', 'rtn-w8a8'],
    extra: '',
    source: 'bundled-text',
    samples: info.ocrRecognizer ? '32' : '2',
    tokens: String(Math.min(512, ctx * 2)),
    context: String(Math.min(ctx, 256)),
    calibSamples: '4',
    calibSeqLen: String(Math.min(ctx, 64)),
    prompt: 'Once upon a time',
    genTokens: '32',
  };
}

function whole(text: string, what: string, lo: number, hi: number): Parsed<number> {
  const t = text.trim();
  if (!/^\d+$/.test(t)) return { ok: false, error: `${what} must be a whole number from ${lo} to ${hi}.` };
  const v = Number(t);
  if (v < lo || v > hi) return { ok: false, error: `${what} must be from ${lo} to ${hi} (got ${v}).` };
  return { ok: true, value: v };
}

export function parseEvalForm(form: EvalFormDraft, info: CalibModelInfo, fileCount: number): Parsed<EvalPlan> {
  const onnx = info.kind !== 'llama';
  if (!onnx && !info.hasTokenizer) return { ok: false, error: 'Perplexity needs the tokenizer, which this checkpoint lacks.' };
  if (!onnx && form.source === 'text-files' && fileCount === 0) return { ok: false, error: 'Choose a text file to evaluate on.' };
  const presets = form.presets.filter((p) => (onnx ? (ONNX_PRESET_CONFIGS as readonly string[]) : (PRESET_CONFIGS as readonly string[])).includes(p));
  const labels = [...presets, ...form.extra.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean)];
  const unique = [...new Set(labels)];
  if (unique.length === 0) return { ok: false, error: 'Choose at least one configuration.' };
  try {
    if (onnx) parseOnnxEvalConfigs(unique.join(','));
    else parseEvalConfigs(unique.join(','));
  } catch (e) {
    return { ok: false, error: e instanceof Error ? e.message : String(e) };
  }
  const samples = whole(form.samples, info.ocrRecognizer ? 'Evaluation lines' : 'Rendered pages', 1, 1024);
  if (onnx && !samples.ok) return samples;
  const maxCtx = info.maxSeqLen ?? 4096;
  const context = whole(form.context, 'Context', 2, maxCtx);
  if (!context.ok) return context;
  const tokens = whole(form.tokens, 'Tokens to score', 1, 1 << 20);
  if (!tokens.ok) return tokens;
  const needsCalib = unique.some((l) => l.startsWith('awq') || l.startsWith('smoothquant') || l.startsWith('rtn-w8a8'));
  const calibSamples = whole(form.calibSamples, 'Calibration sequences', 1, 4096);
  const calibSeqLen = whole(form.calibSeqLen, 'Calibration tokens each', 2, maxCtx);
  if (needsCalib && !calibSamples.ok) return calibSamples;
  if (needsCalib && !calibSeqLen.ok) return calibSeqLen;
  const genTokens = whole(form.genTokens, 'Generated tokens', 0, 512);
  if (!genTokens.ok) return genTokens;
  return {
    ok: true,
    value: {
      configs: unique,
      samples: onnx && samples.ok ? samples.value : 0,
      tokens: tokens.value,
      context: context.value,
      calibSamples: calibSamples.ok ? calibSamples.value : 4,
      calibSeqLen: calibSeqLen.ok ? calibSeqLen.value : 64,
      prompt: form.prompt,
      genTokens: form.prompt.trim() ? genTokens.value : 0,
    },
  };
}

export interface MetricDef {
  key: string;
  label: string;
  /** Which way is better. */
  better: 'lower' | 'higher';
  digits: number;
}

export const LLAMA_METRICS: MetricDef[] = [
  { key: 'perplexity', label: 'Perplexity', better: 'lower', digits: 4 },
  { key: 'kl', label: 'KL to FP32 (nats)', better: 'lower', digits: 3 },
  { key: 'top1', label: 'Top-1 agreement', better: 'higher', digits: 4 },
];

/** ONNX rows (eval/onnx-eval.ts): task metrics where the task is known, output SQNR and cosine always. */
export const ONNX_METRICS: MetricDef[] = [
  { key: 'charAccuracy', label: 'Char accuracy', better: 'higher', digits: 4 },
  { key: 'wordAccuracy', label: 'Word accuracy', better: 'higher', digits: 4 },
  { key: 'boxF1', label: 'Box F1 vs FP32', better: 'higher', digits: 3 },
  { key: 'top5', label: 'Top-5 agreement', better: 'higher', digits: 4 },
  { key: 'sqnr', label: 'Output SQNR (dB)', better: 'higher', digits: 3 },
  { key: 'cosine', label: 'Output cosine', better: 'higher', digits: 5 },
];

const ALL_METRICS = [...LLAMA_METRICS, ...ONNX_METRICS];

/** The metrics the rows report, in the order above (top1 serves both kinds). */
export function metricsOf(rows: readonly EvalRow[]): MetricDef[] {
  return ALL_METRICS.filter((m) => rows.some((r) => r.metrics[m.key] !== undefined));
}

/** A finished evaluation as the history keeps it. */
export interface EvalRun {
  id: string;
  /** ISO time the run finished. */
  at: string;
  model: string;
  /** calibModelKey of the model. */
  modelKey: string;
  /** Held-out data, in words (source, tokens, context). */
  data: string;
  rows: EvalRow[];
  seconds: number;
}

/** Table rows: every row of every run, newest run first, each with its run. */
export function historyRows(runs: readonly EvalRun[]): { run: EvalRun; row: EvalRow; key: string }[] {
  return [...runs].sort((a, b) => b.at.localeCompare(a.at)).flatMap((run) => run.rows.map((row) => ({ run, row, key: `${run.id}/${row.config}` })));
}

/**
 * Indices of the points no other point beats on both axes: smaller size and a better metric (ties on both
 * count as not dominating). The accuracy-against-size trade-off worth looking at.
 */
export function paretoFront(points: readonly { size: number; value: number }[], better: 'lower' | 'higher'): number[] {
  const good = (a: number, b: number) => (better === 'lower' ? a <= b : a >= b);
  const strictly = (a: number, b: number) => (better === 'lower' ? a < b : a > b);
  const out: number[] = [];
  points.forEach((p, i) => {
    if (!Number.isFinite(p.value) || !Number.isFinite(p.size)) return;
    const dominated = points.some((q, j) => j !== i && Number.isFinite(q.value) && q.size <= p.size && good(q.value, p.value) && (q.size < p.size || strictly(q.value, p.value)));
    if (!dominated) out.push(i);
  });
  return out;
}

function csvField(v: string | number | undefined): string {
  const s = v === undefined ? '' : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The comparison table as CSV (RFC 4180 quoting), one line per row, metrics as columns. */
export function rowsToCsv(rows: readonly { run: EvalRun; row: EvalRow }[], metrics: readonly MetricDef[]): string {
  const head = ['model', 'config', 'method', 'size_bytes', 'bits_per_weight', ...metrics.map((m) => m.key), 'tokens', 'seconds', 'data', 'finished', 'generation'];
  const lines = rows.map(({ run, row }) =>
    [run.model, row.config, row.method, row.sizeBytes, row.bitsPerWeight, ...metrics.map((m) => row.metrics[m.key]), row.metrics.tokens, row.seconds.toFixed(3), run.data, run.at, row.generation].map(csvField).join(','),
  );
  return [head.join(','), ...lines].join('\r\n') + '\r\n';
}
