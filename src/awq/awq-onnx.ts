/**
 * AWQ for an ONNX graph's norm -> linears groups (model/onnx/analyze.ts NormLinearGroup), following
 * llm-awq's run_awq / AutoAWQ's quantizer (REFERENCE.md section 4):
 *  1. the calibration batches run through onnxruntime with the inputs of the MatMul / Gemm layers added
 *     as graph outputs (calib/onnx-capture.ts); the first `maxRows` rows of each input are kept as
 *     [rows, channels] (tokens: every position of a sequence or feature map, flattened as the capture does);
 *  2. per foldable group (smooth/fold-onnx.ts onnxSmoothGroups without a skip reason), the 20-ratio scale
 *     search on the norm's output X. Deviation from llm-awq: there is no WGSL forward pass for arbitrary ONNX
 *     modules, so the inspected module is the group's linears themselves. Their weights are stacked along the
 *     output axis into one [sum(out), in] matrix (quantization groups run along rows, so each linear is
 *     quantized exactly as on its own; AutoAWQ also computes w_mean over torch.cat of the linears' weights)
 *     and searched with the exact Gram-matrix loss over every row. That loss is the MSE of the concatenated
 *     output, sum_l out_l * MSE_l / sum_l out_l: the output-size-weighted mean of the linears' own output
 *     MSEs, which is what every group loss in the report is;
 *  3. per linear, the clip search on the scaled weight W*s with the inputs divided by s, then the final
 *     quantization. Every other MatMul / Gemm (outside a group, or in a group that cannot be folded) gets
 *     round-to-nearest with the clip search on its own captured input (s = 1), as AutoAWQ clips every linear.
 *     Unlike llm-awq, which skips the clip search for q and k, every linear is clipped: an ONNX graph does
 *     not say which MatMul feeds a softmax. Conv / ConvTranspose layers are left in FP32.
 *     Partial last groups (a group size that does not divide the input width) are quantized as the
 *     lab's quantizer does everywhere (quant/layout.ts); AutoAWQ itself asserts in % group_size == 0.
 *  4. applying (awqOnnxConstants): the scales fold into the norm (gamma and beta divided by s) and every
 *     linear of the group stores the dequantized Q(clip(W*s)) in its stored layout: the weights sit on each
 *     group's integer grid, as an INT4 export needs them. The FP32 model computes what the lab simulates
 *     with the effective weights Q(clip(W*s))/s in the original basis (AwqOnnxLinear.effective) and the
 *     original norm, up to float rounding.
 * Reported per group: losses at every ratio, the chosen ratio, RTN's loss, scales, x_mean; per linear: its
 * own output MSE on its captured input under RTN and under AWQ, and the mean clip threshold.
 * No Node imports: the browser worker can run it.
 */
import { CancelledError } from '../gpu/errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import { captureActivations, planCapture, type CaptureBatch } from '../calib/onnx-capture.ts';
import type { OrtRuntime } from '../calib/ort-runtime.ts';
import type { QuantizableLayer } from '../model/onnx/analyze.ts';
import type { OnnxTensor } from '../model/onnx/model.ts';
import { makeTensor } from '../model/onnx/tensor-data.ts';
import { outInToWeight } from '../model/onnx/weight-view.ts';
import type { OnnxModelHandle } from '../model/workspace.ts';
import type { QuantConfig } from '../quant/config.ts';
import { dequantizeRef } from '../quant/reference/quantize.ts';
import { onnxGroupWeights, onnxSmoothGroups, smoothOnnxConstants, type OnnxSmoothGroup } from '../smooth/fold-onnx.ts';
import { AwqError } from './awq-llama.ts';
import { GpuAwq } from './gpu-awq.ts';
import {
  awqClipRef,
  awqLayout,
  awqLossGram,
  awqQuantConfig,
  awqSearchRef,
  divideColumns,
  gramMatrix,
  quantizeScaledRef,
  scaleColumns,
  type AwqClipResult,
  type AwqConfig,
  type AwqQuantized,
  type AwqSearchResult,
} from './reference.ts';

export { AwqError };

/** Default rows kept per captured input. */
export const AWQ_ONNX_DEFAULT_ROWS = 4096;

/** Rows of one captured layer input, row-major [rows, channels]. */
export interface AwqOnnxInput {
  /** The ONNX value captured. */
  name: string;
  /** Layers reading it. */
  layers: string[];
  channels: number;
  rows: number;
  data: Float32Array;
}

export interface AwqOnnxOptions {
  quant: QuantConfig;
  /** AutoAWQ's duo scaling (default true) or llm-awq's x-only. */
  duo?: boolean;
  /** Clip search (default true, for every linear). */
  clip?: boolean;
  grid?: number;
  /**
   * Where the searches and the quantization run: the WGSL kernels of GpuAwq (needs `ctx`) or their CPU
   * reference. 'auto' (default): the GPU when a context is given and it is not a software adapter.
   */
  compute?: 'auto' | 'gpu' | 'cpu';
  ctx?: GpuContext;
  signal?: AbortSignal;
  onProgress?: (p: { done: number; total: number; label: string }) => void;
}

export interface AwqOnnxGroupReport {
  /** The norm's name (OnnxSmoothGroup.name): the op the scales fold into. */
  name: string;
  /** The norm output the linears read. */
  input: string;
  linears: string[];
  /** Always 'linears': the stacked linears of the group, not a module forward pass (see the file comment). */
  inspected: 'linears';
  rows: number;
  ratios: number[];
  /** MSE of the concatenated outputs of the group's linears at every ratio. */
  losses: number[];
  bestIndex: number;
  bestRatio: number;
  /** The same loss with plain RTN weights (s = 1). */
  rtnLoss: number;
  /** The same loss with the final weights (after the clip search). */
  awqLoss: number;
  scales: Float32Array;
  xMean: Float32Array;
}

export interface AwqOnnxLinearReport {
  name: string;
  /** The group whose scales it takes; absent for linears quantized on their own (RTN + clip search). */
  group?: string;
  shape: [number, number];
  rows: number;
  /** Output MSE of the linear alone on its captured input: RTN weights, then AWQ's. */
  rtnError: number;
  awqError: number;
  /** Mean of the chosen clip thresholds relative to the group max (1 = no clipping); undefined when not searched. */
  clipMean?: number;
}

export interface AwqOnnxLinear {
  layer: QuantizableLayer;
  /** Column scales (ones for linears outside a group). */
  scales: Float32Array;
  /** Q(clip(W*s))/s in the original basis, [out, in]: what the lab runs with the original norm. */
  effective: Float32Array;
  /** Q(clip(W*s)) dequantized in the scaled basis, [out, in]: what the written model stores. */
  scaled: Float32Array;
  /** Plain round-to-nearest Q(W), [out, in]: the baseline of rtnError. */
  rtn: Float32Array;
}

export interface AwqOnnxResult {
  groups: AwqOnnxGroupReport[];
  linears: AwqOnnxLinearReport[];
  /** Layers and groups left alone, with why. */
  skipped: { name: string; reason: string }[];
  /** Per quantized layer, its weights (see AwqOnnxLinear). */
  weights: Map<string, AwqOnnxLinear>;
  /** Summed single-linear output MSEs over every quantized linear. */
  total: { rtnError: number; awqError: number };
  seconds: number;
}

/** Why a layer cannot be quantized here, or undefined. */
function layerSkipReason(l: QuantizableLayer): string | undefined {
  if (l.op !== 'MatMul' && l.op !== 'Gemm') return `${l.op} layers are left in FP32 (AWQ here covers MatMul / Gemm linears)`;
  if (l.alreadyQuantized) return 'already quantized';
  if (l.weightDataType !== 'float32') return `its weight is ${l.weightDataType}; only float32 is quantized`;
  if (l.weightPath.some((op) => op !== 'Transpose' && op !== 'Identity')) return `it reads its weight through ${l.weightPath.join(', ')}`;
  if (l.sharesWeightWith.length > 0) return `it shares its weight with ${l.sharesWeightWith.join(', ')}`;
  return undefined;
}

/** The linears AWQ quantizes and the groups whose scales it searches, with what it leaves alone. */
export function awqOnnxPlan(h: OnnxModelHandle): { groups: OnnxSmoothGroup[]; layers: QuantizableLayer[]; skipped: { name: string; reason: string }[] } {
  const skipped: { name: string; reason: string }[] = [];
  const capturable = new Set(planCapture(h).targets.flatMap((t) => t.layers));
  const layers: QuantizableLayer[] = [];
  for (const l of h.analysis.layers) {
    const reason = layerSkipReason(l) ?? (capturable.has(l.name) ? undefined : 'its input cannot be captured (a constant)');
    if (reason) skipped.push({ name: l.name, reason });
    else layers.push(l);
  }
  const ok = new Set(layers.map((l) => l.name));
  const groups: OnnxSmoothGroup[] = [];
  for (const g of onnxSmoothGroups(h)) {
    const bad = g.layers.find((l) => !ok.has(l.name) || l.inChannels !== g.group.channels);
    const reason = g.skip ?? (bad ? `${bad.name} ${ok.has(bad.name) ? `reads ${bad.inChannels} channels of the norm's ${g.group.channels}` : 'is not quantized'}` : undefined);
    if (reason) skipped.push({ name: g.name, reason: `group not scaled (its linears are quantized on their own): ${reason}` });
    else groups.push(g);
  }
  return { groups, layers, skipped };
}

/** Counts NaN and Inf of a run of values. */
function nonFinite(data: Float32Array, n: number): number {
  let bad = 0;
  for (let i = 0; i < n; i++) if (!Number.isFinite(data[i])) bad++;
  return bad;
}

/**
 * The first `maxRows` rows of the input of every layer in `layers`, keyed by layer name (layers reading the
 * same tensor share one AwqOnnxInput). Every row seen is checked: NaN or Inf anywhere stops it with an
 * AwqError naming the tensor.
 */
export async function captureAwqOnnxInputs(
  h: OnnxModelHandle,
  runtime: OrtRuntime,
  batches: AsyncIterable<CaptureBatch> | Iterable<CaptureBatch>,
  layers: readonly string[],
  opts: { maxRows?: number; signal?: AbortSignal; totalBatches?: number; onProgress?: (p: { done: number; total: number; label: string }) => void } = {},
): Promise<Map<string, AwqOnnxInput>> {
  const maxRows = opts.maxRows ?? AWQ_ONNX_DEFAULT_ROWS;
  const plan = planCapture(h);
  const wanted = new Set(layers);
  const targets = plan.targets.filter((t) => t.layers.some((l) => wanted.has(l)));
  const kept = new Map(targets.map((t) => [t.name, { chunks: [] as Float32Array[], rows: 0, bad: 0, seen: 0 }]));
  await captureActivations(
    h,
    runtime,
    batches,
    (t) => {
      const k = kept.get(t.name);
      if (!k) return;
      k.bad += nonFinite(t.data, t.rows * t.channels);
      k.seen += t.rows;
      const take = Math.min(t.rows, maxRows - k.rows);
      if (take > 0) {
        k.chunks.push(t.data.slice(0, take * t.channels));
        k.rows += take;
      }
    },
    {
      plan: { ...plan, targets },
      signal: opts.signal,
      totalBatches: opts.totalBatches,
      onProgress: opts.onProgress && ((p) => opts.onProgress!({ done: p.done, total: p.total, label: 'capturing layer inputs' })),
    },
  );
  const out = new Map<string, AwqOnnxInput>();
  for (const t of targets) {
    const k = kept.get(t.name)!;
    const readers = t.layers.filter((l) => wanted.has(l));
    if (k.bad > 0) throw new AwqError(`activation ${t.tensor} (input of ${readers.join(', ')}) contains ${k.bad} NaN/Inf values over ${k.seen} rows`);
    if (k.rows === 0) throw new AwqError(`activation ${t.tensor} (input of ${readers.join(', ')}) was not captured: no calibration rows`);
    const data = new Float32Array(k.rows * t.channels);
    let o = 0;
    for (const c of k.chunks) {
      data.set(c, o);
      o += c.length;
    }
    const input: AwqOnnxInput = { name: t.tensor, layers: readers, channels: t.channels, rows: k.rows, data };
    for (const l of readers) out.set(l, input);
  }
  return out;
}

interface AwqOps {
  search(w: Float32Array, shape: readonly number[], x: Float32Array, tokens: number, cfg: AwqConfig): Promise<AwqSearchResult>;
  clip(ws: Float32Array, shape: readonly number[], xs: Float32Array, tokens: number, q: QuantConfig): Promise<AwqClipResult>;
  quantizeScaled(w: Float32Array, shape: readonly number[], s: Float32Array, q: QuantConfig, maxVal?: Float32Array): Promise<AwqQuantized>;
}

function awqOps(opts: AwqOnnxOptions): AwqOps {
  const ctx = opts.ctx;
  const compute = opts.compute ?? 'auto';
  if (compute === 'gpu' && !ctx) throw new AwqError("compute: 'gpu' needs a GPU context");
  if (ctx && (compute === 'gpu' || (compute === 'auto' && !ctx.isSoftware))) {
    const g = new GpuAwq(ctx);
    return { search: (...a) => g.search(...a), clip: (...a) => g.clip(...a), quantizeScaled: (...a) => g.quantizeScaled(...a) };
  }
  return {
    search: async (...a) => awqSearchRef(...a),
    clip: async (...a) => awqClipRef(...a),
    quantizeScaled: async (...a) => quantizeScaledRef(...a),
  };
}

function checkInput(x: AwqOnnxInput, l: QuantizableLayer): void {
  if (x.channels !== l.inChannels) throw new AwqError(`${l.name}: its captured input ${x.name} has ${x.channels} channels, its weight ${l.inChannels} inputs`);
  const bad = nonFinite(x.data, x.data.length);
  if (bad > 0) throw new AwqError(`activation ${x.name} (input of ${l.name}) contains ${bad} NaN/Inf values`);
}

/**
 * The scale searches of the groups, the clip searches and the quantization of every linear (see the file
 * comment), on captured inputs keyed by layer name (captureAwqOnnxInputs).
 */
export async function awqOnnxSearch(h: OnnxModelHandle, inputs: ReadonlyMap<string, AwqOnnxInput>, opts: AwqOnnxOptions): Promise<AwqOnnxResult> {
  const t0 = performance.now();
  const quant = awqQuantConfig(opts.quant);
  const duo = opts.duo ?? true;
  const clip = opts.clip ?? true;
  const grid = opts.grid ?? 20;
  const ops = awqOps(opts);
  const plan = awqOnnxPlan(h);
  if (plan.layers.length === 0) {
    throw new AwqError(`${h.name} has no MatMul / Gemm layer AWQ can quantize${plan.skipped.length ? ` (${plan.skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')})` : ''}`);
  }
  const inputOf = (l: QuantizableLayer): AwqOnnxInput => {
    const x = inputs.get(l.name);
    if (!x) throw new AwqError(`${l.name}: its input was not captured`);
    checkInput(x, l);
    return x;
  };
  for (const l of plan.layers) {
    awqLayout([l.outChannels, l.inChannels], quant);
    inputOf(l);
  }
  const total = plan.layers.length + plan.groups.length;
  let done = 0;
  const step = (label: string) => {
    if (opts.signal?.aborted) throw new CancelledError('AWQ cancelled');
    opts.onProgress?.({ done, total, label });
  };
  const weightsOf = new Map<string, Float32Array>();
  for (const g of plan.groups) for (const w of await onnxGroupWeights(h, g)) weightsOf.set(w.name, w.weight);
  const loadWeight = async (l: QuantizableLayer) => {
    if (!weightsOf.has(l.name)) {
      const [w] = await onnxGroupWeights(h, { name: l.name, group: undefined as never, layers: [l] });
      weightsOf.set(l.name, w.weight);
    }
    return weightsOf.get(l.name)!;
  };

  const groups: AwqOnnxGroupReport[] = [];
  const scalesOf = new Map<string, { s: Float32Array; group: string }>();
  for (const g of plan.groups) {
    step(`${g.name}: scale search over ${g.layers.map((l) => l.name).join(', ')}`);
    const x = inputOf(g.layers[0]);
    const inDim = g.group.channels;
    const outs = g.layers.map((l) => l.outChannels);
    const stacked = new Float32Array(outs.reduce((a, b) => a + b, 0) * inDim);
    let off = 0;
    for (const l of g.layers) {
      const w = await loadWeight(l);
      stacked.set(w, off);
      off += w.length;
    }
    const r = await ops.search(stacked, [stacked.length / inDim, inDim], x.data, x.rows, { quant, duo, grid, loss: 'gram' });
    for (const l of g.layers) scalesOf.set(l.name, { s: r.scales, group: g.name });
    groups.push({
      name: g.name,
      input: g.group.output,
      linears: g.layers.map((l) => l.name),
      inspected: 'linears',
      rows: x.rows,
      ratios: r.ratios,
      losses: r.losses,
      bestIndex: r.bestIndex,
      bestRatio: r.bestRatio,
      rtnLoss: r.rtnLoss,
      awqLoss: NaN,
      scales: r.scales,
      xMean: r.xMean,
    });
    done++;
  }

  const linears: AwqOnnxLinearReport[] = [];
  const weights = new Map<string, AwqOnnxLinear>();
  const grams = new Map<AwqOnnxInput, Float64Array>();
  for (const l of plan.layers) {
    step(`${l.name}: ${clip ? 'clip search and ' : ''}quantization`);
    const shape: [number, number] = [l.outChannels, l.inChannels];
    const w = await loadWeight(l);
    const x = inputOf(l);
    const sg = scalesOf.get(l.name);
    const s = sg?.s ?? new Float32Array(l.inChannels).fill(1);
    let maxVal: Float32Array | undefined;
    let clipMean: number | undefined;
    if (clip) {
      const c = await ops.clip(scaleColumns(w, shape, s), shape, sg ? divideColumns(x.data, x.rows, s) : x.data, x.rows, quant);
      maxVal = c.maxVal;
      let sum = 0;
      for (let i = 0; i < c.maxVal.length; i++) sum += c.origMax[i] > 0 ? c.maxVal[i] / c.origMax[i] : 1;
      clipMean = sum / c.maxVal.length;
    }
    const q = await ops.quantizeScaled(w, shape, s, quant, maxVal);
    const scaled = dequantizeRef(q.codes, awqLayout(shape, quant), q.qparams, quant);
    const rtn = sg || clip ? (await ops.quantizeScaled(w, shape, new Float32Array(l.inChannels).fill(1), quant)).weight : q.weight;
    if (!grams.has(x)) grams.set(x, gramMatrix(x.data, x.rows, x.channels));
    const G = grams.get(x)!;
    linears.push({ name: l.name, group: sg?.group, shape, rows: x.rows, rtnError: awqLossGram(G, w, rtn, shape, x.rows), awqError: awqLossGram(G, w, q.weight, shape, x.rows), clipMean });
    weights.set(l.name, { layer: l, scales: s, effective: q.weight, scaled, rtn });
    done++;
  }
  for (const g of groups) {
    let sse = 0;
    let outs = 0;
    for (const n of g.linears) {
      const r = linears.find((x) => x.name === n)!;
      sse += r.awqError * r.shape[0];
      outs += r.shape[0];
    }
    g.awqLoss = sse / outs;
  }
  opts.onProgress?.({ done: total, total, label: 'done' });
  return {
    groups,
    linears,
    skipped: plan.skipped,
    weights,
    total: { rtnError: linears.reduce((a, r) => a + r.rtnError, 0), awqError: linears.reduce((a, r) => a + r.awqError, 0) },
    seconds: (performance.now() - t0) / 1000,
  };
}

/** Capture (captureAwqOnnxInputs) and search (awqOnnxSearch) in one call. */
export async function awqOnnx(
  h: OnnxModelHandle,
  runtime: OrtRuntime,
  batches: AsyncIterable<CaptureBatch> | Iterable<CaptureBatch>,
  opts: AwqOnnxOptions & { maxRows?: number; totalBatches?: number },
): Promise<AwqOnnxResult & { inputs: Map<string, AwqOnnxInput> }> {
  const t0 = performance.now();
  const plan = awqOnnxPlan(h);
  if (plan.layers.length === 0) {
    throw new AwqError(`${h.name} has no MatMul / Gemm layer AWQ can quantize${plan.skipped.length ? ` (${plan.skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')})` : ''}`);
  }
  awqQuantConfig(opts.quant);
  const inputs = await captureAwqOnnxInputs(
    h,
    runtime,
    batches,
    plan.layers.map((l) => l.name),
    opts,
  );
  const r = await awqOnnxSearch(h, inputs, opts);
  return { ...r, inputs, seconds: (performance.now() - t0) / 1000 };
}

/**
 * The constants of the AWQ model: each searched group's gamma and beta divided by its scales, and every
 * quantized linear's weight replaced by Q(clip(W*s)) (dequantized, float32) in its stored layout. Feed the
 * map to replaceConstants (smooth/fold-onnx.ts).
 */
export async function awqOnnxConstants(h: OnnxModelHandle, r: Pick<AwqOnnxResult, 'groups' | 'weights'>): Promise<Map<string, OnnxTensor>> {
  const all = new Map(onnxSmoothGroups(h).map((g) => [g.name, g]));
  const groups = r.groups.map((g) => {
    const sg = all.get(g.name);
    if (!sg) throw new AwqError(`${h.name} has no norm group ${g.name}`);
    return sg;
  });
  const replaced = await smoothOnnxConstants(h, groups, new Map(r.groups.map((g) => [g.name, g.scales])));
  for (const [name, q] of r.weights) {
    const c = h.index.constants.get(q.layer.weight);
    if (!c) throw new AwqError(`${name}: its weight ${q.layer.weight} is not a constant`);
    replaced.set(q.layer.weight, makeTensor(c.tensor.name, c.tensor.dims, outInToWeight(q.layer, q.scaled)));
  }
  return replaced;
}
