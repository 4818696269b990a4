/**
 * SmoothQuant over a whole model, format-independent: for every norm -> linears group (its weights, the
 * calibration maxima max|X_j| of its input and sampled rows of it) run the alpha sweep (or one alpha) with
 * the W8A8 evaluation on the GPU or the CPU, choose the alpha (the one minimising the error summed over all
 * groups, or each group's best), and return the factors to fold with the report `quantlab smoothquant`
 * writes. No Node imports.
 */
import { CancelledError } from '../gpu/errors.ts';
import type { SampledRows } from './capture-rows.ts';
import { gpuGroupError, type SmoothQuantKernels } from './smoothquant-gpu.ts';
import {
  alphaSweepGroup,
  bestModelAlpha,
  checkAlpha,
  cpuGroupError,
  DEFAULT_ALPHAS,
  difficultyMigration,
  smoothingFactors,
  SmoothQuantError,
  weightColumnAbsmax,
  type ActQuant,
  type Difficulty,
  type GroupSweep,
  type LayerError,
  type LinearWeight,
} from './smoothquant.ts';

export interface SmoothGroupData {
  /** The norm whose weight the factors fold into (Llama tensor name, ONNX norm node). */
  name: string;
  linears: LinearWeight[];
  channels: number;
  /** Calibration statistic max|X_j| of the group's input (ActivationSummary.channelAbsmax). */
  actAbsmax: Float32Array;
  sample: SampledRows;
}

export interface SmoothQuantOptions {
  /** One alpha, or a sweep over `alphas`. */
  alpha: number | 'sweep';
  alphas?: readonly number[];
  act: ActQuant;
  /** With a sweep: fold each group's best alpha instead of the model's best. */
  perGroup?: boolean;
  /** The GPU evaluator; the CPU reference without it. */
  kernels?: SmoothQuantKernels;
  onGroup?: (done: number, total: number, name: string) => void;
  signal?: AbortSignal;
}

interface ErrorSummary {
  layers: LayerError[];
  /** Sum of the linears' output MSE. */
  mse: number;
  /** Mean of the linears' output SQNR, dB. */
  sqnr: number;
}

export interface SmoothQuantGroupReport {
  group: string;
  linears: string[];
  channels: number;
  rows: number;
  alpha: number;
  bestAlpha?: number;
  factors: { min: number; max: number; median: number; geomean: number };
  difficulty: { activation: { before: Difficulty; after: Difficulty }; weight: { before: Difficulty; after: Difficulty } };
  error: { before: ErrorSummary; after: ErrorSummary };
  sweep?: { alpha: number; mse: number; activationSpread: number; weightSpread: number }[];
}

export interface SmoothQuantReport {
  format: 'quantlab-smoothquant';
  version: 1;
  model: string;
  /** Activation quantization of the W8A8 evaluation. */
  act: ActQuant;
  alphaMode: 'fixed' | 'sweep-model' | 'sweep-group';
  /** The alpha folded (per model); per group in `groups` when alphaMode is sweep-group. */
  alpha: number;
  evaluator: 'gpu' | 'cpu';
  groups: SmoothQuantGroupReport[];
  total: { mseBefore: number; mseAfter: number };
  data?: { source: string; samples: number; sequenceLength?: number; tokens: number };
  seconds: number;
}

function summarize(layers: LayerError[]): ErrorSummary {
  const finite = layers.map((l) => l.sqnr).filter(Number.isFinite);
  return { layers, mse: layers.reduce((a, l) => a + l.mse, 0), sqnr: finite.length ? finite.reduce((a, b) => a + b, 0) / finite.length : Infinity };
}

function factorSummary(s: Float32Array): SmoothQuantGroupReport['factors'] {
  const v = Float64Array.from(s).sort();
  const n = v.length;
  const median = n % 2 ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return { min: v[0], max: v[n - 1], median, geomean: Math.exp(v.reduce((a, x) => a + Math.log(x), 0) / n) };
}

/** Sweeps (or evaluates one alpha for) every group and chooses the factors to fold, keyed by group name. */
export async function smoothModel(model: string, groups: readonly SmoothGroupData[], opts: SmoothQuantOptions): Promise<{ report: SmoothQuantReport; factors: Map<string, Float32Array>; sweeps: GroupSweep[] }> {
  const t0 = performance.now();
  if (groups.length === 0) throw new SmoothQuantError(`${model} has no norm -> linear group to smooth`);
  if (opts.alpha !== 'sweep') checkAlpha(opts.alpha);
  const alphas = opts.alpha === 'sweep' ? (opts.alphas ?? DEFAULT_ALPHAS) : [opts.alpha];
  const sweeps: GroupSweep[] = [];
  const wcol = new Map<string, Float32Array>();
  for (const [i, g] of groups.entries()) {
    if (opts.signal?.aborted) throw new CancelledError('SmoothQuant cancelled');
    if (g.sample.channels !== g.channels || g.actAbsmax.length !== g.channels) {
      throw new SmoothQuantError(`${g.name}: ${g.channels} channels, but the statistics have ${g.actAbsmax.length} and the rows ${g.sample.channels}`);
    }
    if (g.sample.rows === 0) throw new SmoothQuantError(`${g.name}: no activation rows were captured`);
    const w = weightColumnAbsmax(g.linears, g.channels);
    wcol.set(g.name, w);
    const sample = { channels: g.channels, rows: g.sample.rows, x: g.sample.data, linears: g.linears };
    const k = opts.kernels;
    const gpu = k ? await k.uploadGroup(sample) : undefined;
    try {
      const error = k && gpu ? gpuGroupError(k, gpu) : cpuGroupError(sample);
      sweeps.push(await alphaSweepGroup({ group: g.name, linears: g.linears.map((l) => l.name), actAbsmax: g.actAbsmax, weightColAbsmax: w, error }, alphas, opts.act));
    } finally {
      if (k && gpu) k.releaseGroup(gpu);
    }
    opts.onGroup?.(i + 1, groups.length, g.name);
  }
  const modelBest = bestModelAlpha(sweeps);
  const alphaMode = opts.alpha !== 'sweep' ? 'fixed' : opts.perGroup ? 'sweep-group' : 'sweep-model';
  const factors = new Map<string, Float32Array>();
  const reports: SmoothQuantGroupReport[] = sweeps.map((sw, i) => {
    const g = groups[i];
    const alpha = alphaMode === 'sweep-group' ? sw.bestAlpha : modelBest.alpha;
    const point = sw.points.find((p) => p.alpha === alpha)!;
    const w = wcol.get(g.name)!;
    const s = smoothingFactors(g.actAbsmax, w, alpha);
    factors.set(g.name, s);
    return {
      group: g.name,
      linears: sw.linears,
      channels: g.channels,
      rows: g.sample.rows,
      alpha,
      ...(opts.alpha === 'sweep' ? { bestAlpha: sw.bestAlpha } : {}),
      factors: factorSummary(s),
      difficulty: difficultyMigration(g.actAbsmax, w, s),
      error: { before: summarize(sw.baseline.layers), after: summarize(point.layers) },
      ...(opts.alpha === 'sweep' ? { sweep: sw.points.map((p) => ({ alpha: p.alpha, mse: p.mse, activationSpread: p.activation.spread, weightSpread: p.weight.spread })) } : {}),
    };
  });
  return {
    report: {
      format: 'quantlab-smoothquant',
      version: 1,
      model,
      act: opts.act,
      alphaMode,
      alpha: modelBest.alpha,
      evaluator: opts.kernels ? 'gpu' : 'cpu',
      groups: reports,
      total: { mseBefore: reports.reduce((a, r) => a + r.error.before.mse, 0), mseAfter: reports.reduce((a, r) => a + r.error.after.mse, 0) },
      seconds: (performance.now() - t0) / 1000,
    },
    factors,
    sweeps,
  };
}
