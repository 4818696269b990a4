/**
 * Side-by-side evaluation of an ONNX model under several quantization configurations, run by onnxruntime
 * (the OrtRuntime of ort-runtime.ts: onnxruntime-node in the CLI, onnxruntime-web in the lab's worker):
 * every configuration is a copy of the graph with fake-quantized weights (and, for W8A8, QuantizeLinear ->
 * DequantizeLinear pairs on the layer inputs), run on the same evaluation inputs as the FP32 model.
 *
 * Metrics per row (EvalRow.metrics):
 *  - every output: `sqnr:<output>` = 10 log10(sum y^2 / sum (y - y')^2) over all evaluation samples (dB,
 *    Infinity when equal) and `cosine:<output>` = mean over samples of the cosine between the FP32 and the
 *    configuration's output of that sample (axis 0 indexes samples); `sqnr` and `cosine` are the minima
 *    over the outputs;
 *  - the task's metrics (onnx-task.ts): OCR recogniser `charAccuracy`, `wordAccuracy`, `lineAccuracy`
 *    against the ground truth (ocr-decode.ts; FP32 included, so the scale is visible) and `charAgreement`,
 *    `textAgreement` with the FP32 text; OCR detector `boxPrecision`, `boxRecall`, `boxF1` against the
 *    FP32 boxes and `boxes` (ocr-det-boxes.ts); classifier `top1` (argmax equals FP32's) and `top5`
 *    (FP32's argmax among the top 5). An unknown task gets SQNR / cosine only and a note in every row.
 *
 * Configurations (labels of configs.ts plus rtn-w8a8, see parseOnnxEvalConfig). Quantized: every MatMul,
 * Gemm, Conv and ConvTranspose weight in [out, in] view (weight-view.ts) with a float32 stored weight read
 * directly or through Transpose / Identity; other float constants (biases, norms) stay FP32.
 *  - fp16: those weights rounded to float16;
 *  - rtn-*: round to nearest with the label's quantizer (CPU reference, quant/reference);
 *  - awq-*: awqOnnx on the calibration batches (norm -> MatMul groups scaled, every MatMul / Gemm clipped),
 *    and the Conv / ConvTranspose layers, which AWQ leaves alone, RTN with the same quantizer so that the
 *    comparison with rtn-* is about the linears;
 *  - rtn-w8a8[-<calibrator>]: INT8 symmetric per-channel weights, INT8 per-tensor activations at the input
 *    of every quantized layer with amax from the calibration batches (calibrators.ts, default 'max'),
 *    scale amax / 127, zero point 0: QuantizeLinear -> dequantize (Cast * scale, see insertActivationQdq)
 *    inserted in the graph, so onnxruntime itself rounds (half to even) and saturates the activations to
 *    [-128, 127] as a deployed QDQ model would. Opset < 10 has no QuantizeLinear; there the com.microsoft
 *    contrib op (same kernel) is used rather than raising the opset, which would change older ops' meaning.
 * Calibration batches must not be evaluation inputs. No Node imports: the browser worker bundles this file.
 */
import { awqOnnx, awqOnnxConstants, AwqError } from '../awq/awq-onnx.ts';
import { calibrateTensor, MovingAverageMinMax } from '../calib/calibrators.ts';
import { GrowingHistogram } from '../calib/histogram.ts';
import { characterAccuracy, ctcGreedyDecode, lineAccuracy, wordAccuracy } from '../calib/ocr-decode.ts';
import { buildCaptureModel, captureActivations, planCapture, type CaptureBatch } from '../calib/onnx-capture.ts';
import type { FloatTensor, OrtRuntime } from '../calib/ort-runtime.ts';
import type { RgbaImage } from '../calib/image-preprocess.ts';
import { renderTextLine, type OpenTypeFont } from '../calib/text-render.ts';
import { CALIB_METHODS, type CalibMethod } from '../calib/types.ts';
import type { GpuContext } from '../gpu/context.ts';
import { CancelledError } from '../gpu/errors.ts';
import { roundToF16 } from '../model/formats/half.ts';
import type { QuantizableLayer } from '../model/onnx/analyze.ts';
import { attr, makeNode } from '../model/onnx/build.ts';
import { loadExternalTensor } from '../model/onnx/external-data.ts';
import { dataTypeCode, opsetVersion, type OnnxModel, type OnnxNode, type OnnxTensor } from '../model/onnx/model.ts';
import { makeTensor, tensorToFloat32 } from '../model/onnx/tensor-data.ts';
import { outInToWeight, weightToOutIn } from '../model/onnx/weight-view.ts';
import type { OnnxModelHandle } from '../model/workspace.ts';
import { validateQuantConfig, type QuantConfig } from '../quant/config.ts';
import { makeGroupLayout } from '../quant/layout.ts';
import { quantizedBytes } from '../quant/model-rtn.ts';
import { fround } from '../quant/reference/f32.ts';
import { fakeQuantizeRef, qparamsRef } from '../quant/reference/quantize.ts';
import { groupStatsRef } from '../quant/reference/stats.ts';
import { replaceConstants } from '../smooth/fold-onnx.ts';
import { mulberry32 } from '../util/random.ts';
import { parseEvalConfig } from './configs.ts';
import { boxAgreement, dbBoxesOfOutput, matchBoxes, type DbPostprocessOptions, type DetBox } from './ocr-det-boxes.ts';
import { checkTaskOnDims, detectOnnxTask, type OnnxTask } from './onnx-task.ts';
import { EvalError, type EvalConfig, type EvalProgress, type EvalRow } from './types.ts';

export const DEFAULT_ONNX_EVAL_CONFIGS = 'fp32,fp16,rtn-int8,rtn-w8a8,rtn-int4-g32,awq-int4-g32';

/** An evaluation configuration of an ONNX model: configs.ts' EvalConfig, plus the W8A8 calibrator. */
export interface OnnxEvalConfig extends EvalConfig {
  /** rtn-w8a8: the calibrator whose per-tensor amax sets the activation scales. */
  actCalibrator?: CalibMethod;
}

/**
 * One configuration from its label: configs.ts' forms (fp32, fp16, rtn-*, awq-*) and
 * `rtn-w8a8[-<calibrator>]` (calibrator: max (default), ma-minmax, percentile-99.9 / -99.99 / -99.999,
 * entropy, mse). smoothquant-* is refused (Llama models only).
 */
export function parseOnnxEvalConfig(raw: string): OnnxEvalConfig {
  const label = raw.trim().toLowerCase();
  const m = /^rtn-w8a8(?:-(.+))?$/.exec(label);
  if (m) {
    const method = (m[1] ?? 'max') as CalibMethod;
    if (!CALIB_METHODS.includes(method)) throw new EvalError(`config '${label}': unknown activation calibrator '${m[1]}' (known: ${CALIB_METHODS.join(', ')})`);
    return {
      label,
      method: 'rtn',
      quant: validateQuantConfig({ bits: 8, granularity: 'channel', scheme: 'sym' }),
      act: { bits: 8, granularity: 'per-tensor' },
      actCalibrator: method,
    };
  }
  const c = parseEvalConfig(raw);
  if (c.method === 'smoothquant') {
    throw new EvalError(`config '${c.label}': SmoothQuant is evaluated on Llama models; for ONNX models use rtn-w8a8[-<calibrator>] (INT8 per-channel weights, INT8 per-tensor activations)`);
  }
  return c;
}

/** A comma-separated list of ONNX configurations, each once. */
export function parseOnnxEvalConfigs(list: string): OnnxEvalConfig[] {
  const parts = list.split(',').map((s) => s.trim());
  if (parts.every((p) => p === '')) throw new EvalError('no configs given');
  const out: OnnxEvalConfig[] = [];
  for (const p of parts) {
    if (p === '') throw new EvalError(`empty config name in '${list}'`);
    const c = parseOnnxEvalConfig(p);
    if (out.some((o) => o.label === c.label)) throw new EvalError(`config '${c.label}' is given twice`);
    out.push(c);
  }
  return out;
}

/** What an ONNX evaluation ran on, with its rows (the ONNX counterpart of types.ts EvalReport). */
export interface OnnxEvalReport {
  format: 'quantlab-eval';
  version: 1;
  model: string;
  /** The runtime that ran the model (OrtRuntime.name). */
  runtime: string;
  task: OnnxTask;
  data: { source: string; samples: number };
  /** Calibration data of the configs that need it (awq, rtn-w8a8). */
  calibration?: { source: string; samples: number };
  rows: EvalRow[];
  seconds: number;
}

// ---------------------------------------------------------------------------------------------------
// Layers and weights

export interface OnnxEvalLayers {
  /** Layers whose weights the configurations quantize, each stored weight once. */
  layers: QuantizableLayer[];
  /** Layers left in FP32, with why. */
  skipped: { name: string; reason: string }[];
}

/** The layers every configuration quantizes (see the file comment), and those it leaves alone. */
export function onnxEvalLayers(h: Pick<OnnxModelHandle, 'analysis' | 'index'>): OnnxEvalLayers {
  const layers: QuantizableLayer[] = [];
  const skipped: OnnxEvalLayers['skipped'] = [];
  const weights = new Map<string, string>();
  for (const l of h.analysis.layers) {
    let reason: string | undefined;
    if (l.alreadyQuantized) reason = 'already quantized';
    else if (l.weightDataType !== 'float32') reason = `its weight is ${l.weightDataType}; only float32 weights are quantized`;
    else if (l.weightPath.some((op) => op !== 'Transpose' && op !== 'Identity')) reason = `it reads its weight through ${l.weightPath.join(', ')}`;
    else if (!h.index.constants.has(l.weight)) reason = `its weight ${l.weight} is not a constant`;
    else if (weights.has(l.weight)) reason = `shares its weight with ${weights.get(l.weight)} (quantized once, in that layer's view)`;
    if (reason) skipped.push({ name: l.name, reason });
    else {
      weights.set(l.weight, l.name);
      layers.push(l);
    }
  }
  return { layers, skipped };
}

async function storedWeight(h: OnnxModelHandle, l: QuantizableLayer): Promise<{ tensor: OnnxTensor; outIn: Float32Array }> {
  const c = h.index.constants.get(l.weight);
  if (!c) throw new EvalError(`${h.name}: the weight ${l.weight} of ${l.name} is not a constant`);
  const t = c.tensor;
  if (t.data.location === 'external' && !t.data.bytes) {
    if (!h.external) throw new EvalError(`${h.name}: ${l.weight} is in an external data file that was not given`);
    await loadExternalTensor(t, h.external);
  }
  const outIn = weightToOutIn(l, tensorToFloat32(t));
  for (let i = 0; i < outIn.length; i++) if (!Number.isFinite(outIn[i])) throw new EvalError(`${h.name}: layer ${l.name} has a non-finite weight (${outIn[i]})`);
  return { tensor: t, outIn };
}

/** Round-to-nearest fake quantization of an [out, in] weight with the CPU reference (the spec of the GPU kernels). */
export function fakeQuantizeOutIn(w: Float32Array, shape: readonly [number, number], quant: QuantConfig): Float32Array {
  const q = validateQuantConfig(quant);
  const layout = makeGroupLayout(shape, q.granularity, q.groupSize);
  return fakeQuantizeRef(w, layout, qparamsRef(groupStatsRef(w, layout), q), q);
}

/**
 * New constants for `layers`: each weight replaced, in its stored layout, by `transform` of its [out, in]
 * view. Feed the map to replaceConstants (smooth/fold-onnx.ts).
 */
export async function transformedWeights(
  h: OnnxModelHandle,
  layers: readonly QuantizableLayer[],
  transform: (l: QuantizableLayer, outIn: Float32Array) => Float32Array,
  signal?: AbortSignal,
): Promise<Map<string, OnnxTensor>> {
  const out = new Map<string, OnnxTensor>();
  for (const l of layers) {
    if (signal?.aborted) throw new CancelledError('evaluation cancelled');
    const { tensor, outIn } = await storedWeight(h, l);
    out.set(l.weight, makeTensor(tensor.name, tensor.dims, outInToWeight(l, transform(l, outIn))));
  }
  return out;
}

/** Bytes of a quantized [out, in] weight: packed codes, fp16 scales, packed zero points (model-rtn.ts). */
function layerBytes(l: QuantizableLayer, q: Required<QuantConfig>): number {
  const layout = makeGroupLayout([l.outChannels, l.inChannels], q.granularity, q.groupSize);
  return quantizedBytes(q, layout.n, layout.numGroups);
}

/** Size of the model when `layers` take `bytes(l)` each and every other float constant stays float32. */
function modelSize(h: OnnxModelHandle, layers: readonly QuantizableLayer[], bytes: (l: QuantizableLayer) => number): { bitsPerWeight: number; sizeBytes: number } {
  const params = layers.reduce((a, l) => a + l.params, 0);
  const quantBytes = layers.reduce((a, l) => a + bytes(l), 0);
  const rest = Math.max(0, h.analysis.summary.totalParams - params);
  return { bitsPerWeight: params ? (8 * quantBytes) / params : 32, sizeBytes: rest * 4 + quantBytes };
}

function quantNote(q: Required<QuantConfig>): string {
  const g = q.granularity === 'group' ? `groups of ${q.groupSize}` : q.granularity === 'channel' ? 'per output channel' : 'per tensor';
  const f = q.format === 'fp8-e4m3' ? 'FP8 E4M3' : `INT${q.bits} ${q.scheme === 'sym' ? 'symmetric' : 'asymmetric'}`;
  return `${f}, ${g} (fp16 scales${q.scheme === 'asym' ? `, ${q.bits}-bit zero points` : ''})`;
}

// ---------------------------------------------------------------------------------------------------
// Activation calibration and QDQ

/**
 * Per-tensor amax of the inputs of `layers` over the calibration batches, by the chosen calibrator
 * (calibrators.ts, on a CPU GrowingHistogram: the same numbers `quantlab calibrate` reports). Keyed by
 * the ONNX value name.
 */
export async function calibrateActivationAmax(
  h: OnnxModelHandle,
  runtime: OrtRuntime,
  batches: readonly CaptureBatch[],
  layers: readonly string[],
  method: CalibMethod,
  opts: { bits?: number; signal?: AbortSignal; onProgress?: (p: EvalProgress) => void } = {},
): Promise<Map<string, number>> {
  const bits = opts.bits ?? 8;
  const wanted = new Set(layers);
  const plan = planCapture(h);
  const targets = plan.targets.filter((t) => t.layers.some((l) => wanted.has(l)));
  const needsHistogram = method !== 'max' && method !== 'ma-minmax';
  const acc = new Map<string, { absmax: number; ema: MovingAverageMinMax; hist?: GrowingHistogram; bad: number }>();
  await captureActivations(
    h,
    runtime,
    batches,
    (t) => {
      const tensor = targets.find((x) => x.name === t.name)?.tensor ?? t.name;
      let a = acc.get(tensor);
      if (!a) acc.set(tensor, (a = { absmax: 0, ema: new MovingAverageMinMax(), hist: needsHistogram ? new GrowingHistogram() : undefined, bad: 0 }));
      const n = t.rows * t.channels;
      let lo = Infinity;
      let hi = -Infinity;
      for (let i = 0; i < n; i++) {
        const v = t.data[i];
        if (!Number.isFinite(v)) {
          a.bad++;
          continue;
        }
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      if (lo <= hi) {
        a.absmax = Math.max(a.absmax, Math.abs(lo), Math.abs(hi));
        a.ema.addBatch(lo, hi);
      }
      a.hist?.add(t.data.subarray(0, n));
    },
    {
      plan: { ...plan, targets },
      signal: opts.signal,
      totalBatches: batches.length,
      onProgress: opts.onProgress && ((p) => opts.onProgress!({ done: p.done, total: p.total, label: `calibrating activations: ${p.label}` })),
    },
  );
  const out = new Map<string, number>();
  for (const [tensor, a] of acc) {
    if (a.bad > 0) throw new EvalError(`${h.name}: activation ${tensor} has ${a.bad} NaN/Inf values on the calibration data`);
    if (!a.hist || a.absmax === 0) {
      out.set(tensor, method === 'ma-minmax' && a.ema.batches > 0 ? a.ema.amax : a.absmax);
      continue;
    }
    const choice = calibrateTensor({ counts: a.hist.counts, range: a.hist.range }, { absmax: a.absmax, movingMin: a.ema.min, movingMax: a.ema.max }, bits);
    out.set(tensor, choice.amax[method]);
  }
  return out;
}

/**
 * A copy of `model` with QuantizeLinear -> dequantize on the activation input of every layer whose
 * activation has an amax: symmetric INT`bits`, scale fround(amax / (2^(bits-1) - 1)), zero point int8 0,
 * one pair per tensor shared by all its quantized readers, placed right before the first of them. The
 * dequantization is Cast(int8 -> float) * scale, which is what DequantizeLinear computes with a zero point
 * of 0, written out so that onnxruntime's QDQ graph transformers do not recognise a QDQ node unit: its
 * WeightBiasQuantization pass (onnxruntime/core/optimizer/qdq_transformer/weight_bias_quantization.cc)
 * would otherwise re-quantize a Conv / Gemm's float weights per tensor and the QDQ fusions would switch to
 * integer kernels, so the run would no longer simulate this configuration's per-channel weights. Tensors
 * with amax 0 (never nonzero in calibration) are left alone and listed in `unquantized`.
 */
export function insertActivationQdq(
  model: OnnxModel,
  layers: readonly QuantizableLayer[],
  amax: ReadonlyMap<string, number>,
  bits = 8,
): { model: OnnxModel; scales: Map<string, number>; unquantized: string[] } {
  if (!(Number.isInteger(bits) && bits >= 2 && bits <= 8)) throw new EvalError(`activation bits must be 2..8, got ${bits}`);
  const qmax = 2 ** (bits - 1) - 1;
  const opset = opsetVersion(model) ?? 1;
  const domain = opset >= 10 ? '' : 'com.microsoft';
  const g = model.graph;
  const used = new Set<string>([...g.inputs.map((i) => i.name), ...g.initializers.map((t) => t.name), ...g.nodes.flatMap((n) => [...n.inputs, ...n.outputs])]);
  const fresh = (base: string): string => {
    let name = base;
    for (let k = 1; used.has(name); k++) name = `${base}_${k}`;
    used.add(name);
    return name;
  };
  const nodes: OnnxNode[] = g.nodes.map((n) => ({ ...n, inputs: [...n.inputs] }));
  const scales = new Map<string, number>();
  const unquantized: string[] = [];
  const dqOf = new Map<string, string>();
  const before = new Map<number, OnnxNode[]>();
  const initializers: OnnxTensor[] = [];
  for (const l of [...layers].sort((a, b) => a.nodeIndex - b.nodeIndex)) {
    const t = l.activation;
    const a = amax.get(t);
    if (a === undefined) continue;
    const node = nodes[l.nodeIndex];
    const at = node.inputs.findIndex((x, i) => x === t && i !== l.weightInput);
    if (at < 0) throw new EvalError(`layer ${l.name} does not read ${t}`);
    if (!(Number.isFinite(a) && a >= 0)) throw new EvalError(`activation ${t}: amax ${a} is not a finite number >= 0`);
    if (a === 0) {
      if (!unquantized.includes(t)) unquantized.push(t);
      continue;
    }
    let dq = dqOf.get(t);
    if (!dq) {
      const scale = fround(a / qmax);
      scales.set(t, scale);
      const base = t.replace(/[^A-Za-z0-9_.]/g, '_');
      const sName = fresh(`${base}_act_scale`);
      const zName = fresh(`${base}_act_zero_point`);
      const q = fresh(`${base}_act_quantized`);
      dq = fresh(`${base}_act_dequantized`);
      initializers.push(makeTensor(sName, [], new Float32Array([scale])), makeTensor(zName, [], new Int8Array([0])));
      const qf = fresh(`${base}_act_quantized_float`);
      const pair = [
        makeNode('QuantizeLinear', [t, sName, zName], [q], [], { name: fresh(`${base}_QuantizeLinear`), domain }),
        // DequantizeLinear with zero point 0, written as Cast + Mul (the same arithmetic: float(q) * scale),
        // see the file comment.
        makeNode('Cast', [q], [qf], [attr.int('to', dataTypeCode('float32'))], { name: fresh(`${base}_DequantizeLinear_cast`) }),
        makeNode('Mul', [qf, sName], [dq], [], { name: fresh(`${base}_DequantizeLinear_scale`) }),
      ];
      before.set(l.nodeIndex, [...(before.get(l.nodeIndex) ?? []), ...pair]);
      dqOf.set(t, dq);
    }
    node.inputs[at] = dq;
  }
  const ordered: OnnxNode[] = [];
  nodes.forEach((n, i) => ordered.push(...(before.get(i) ?? []), n));
  const opsetImports =
    domain === '' || model.opsetImports.some((o) => o.domain === domain) ? model.opsetImports : [...model.opsetImports, { domain, version: 1 }];
  return { model: { ...model, opsetImports, graph: { ...g, nodes: ordered, initializers: [...g.initializers, ...initializers] } }, scales, unquantized };
}

// ---------------------------------------------------------------------------------------------------
// Output comparison

interface OutputAcc {
  sumSq: number;
  sse: number;
  cosSum: number;
  samples: number;
  nonFinite: number;
}

function compareOutput(acc: OutputAcc, ref: FloatTensor, out: FloatTensor, name: string): void {
  if (ref.data.length !== out.data.length || ref.dims.join() !== out.dims.join()) {
    throw new EvalError(`output ${name} is [${out.dims.join(', ')}], FP32 gave [${ref.dims.join(', ')}]`);
  }
  const samples = ref.dims.length > 0 && ref.dims[0] > 0 ? ref.dims[0] : 1;
  const per = ref.data.length / samples;
  for (let s = 0; s < samples; s++) {
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let i = s * per; i < (s + 1) * per; i++) {
      const a = ref.data[i];
      const b = out.data[i];
      if (!Number.isFinite(b)) {
        acc.nonFinite++;
        continue;
      }
      dot += a * b;
      na += a * a;
      nb += b * b;
      acc.sse += (a - b) * (a - b);
    }
    acc.sumSq += na;
    acc.cosSum += na === 0 && nb === 0 ? 1 : na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
    acc.samples++;
  }
}

function sqnrDb(sumSq: number, sse: number): number {
  if (sse === 0) return Infinity;
  return 10 * Math.log10(sumSq / sse);
}

function argmaxRow(data: Float32Array, offset: number, k: number): number {
  let best = 0;
  for (let c = 1; c < k; c++) if (data[offset + c] > data[offset + best]) best = c;
  return best;
}

function topK(data: Float32Array, offset: number, k: number, n: number): Set<number> {
  const idx = Array.from({ length: k }, (_, c) => c).sort((a, b) => data[offset + b] - data[offset + a] || a - b);
  return new Set(idx.slice(0, n));
}

/** What the FP32 pass leaves for the task metrics. */
interface TaskReference {
  texts: string[];
  boxes: DetBox[][];
  top1: number[];
}

/** The task metrics' accumulator of one configuration. */
class TaskMetrics {
  private texts: string[] = [];
  private boxCounts = { matched: 0, predicted: 0, reference: 0 };
  private top1 = 0;
  private top5 = 0;
  private samples = 0;

  constructor(
    private readonly task: OnnxTask,
    private readonly charset: readonly string[] | undefined,
    private readonly det: DbPostprocessOptions & { iouThreshold?: number },
  ) {}

  /** Adds one batch's task output; `ref` (FP32) is filled in when `into` is given (the FP32 pass). */
  add(out: FloatTensor, ref: TaskReference, into?: TaskReference): void {
    const first = this.samples;
    switch (this.task.kind) {
      case 'ocr-rec': {
        const lines = ctcGreedyDecode(out.data, out.dims, this.charset!);
        for (const l of lines) {
          this.texts.push(l.text);
          into?.texts.push(l.text);
        }
        this.samples += lines.length;
        break;
      }
      case 'ocr-det': {
        const images = dbBoxesOfOutput(out.data, out.dims, this.det);
        images.forEach((boxes, i) => {
          into?.boxes.push(boxes);
          const m = matchBoxes(boxes, ref.boxes[first + i] ?? boxes, this.det.iouThreshold ?? 0.5);
          this.boxCounts.matched += m.matched;
          this.boxCounts.predicted += m.predicted;
          this.boxCounts.reference += m.reference;
        });
        this.samples += images.length;
        break;
      }
      case 'classifier': {
        const [n, k] = out.dims;
        for (let s = 0; s < n; s++) {
          const a = argmaxRow(out.data, s * k, k);
          into?.top1.push(a);
          const r = ref.top1[first + s] ?? a;
          if (a === r) this.top1++;
          if (topK(out.data, s * k, k, Math.min(5, k)).has(r)) this.top5++;
        }
        this.samples += n;
        break;
      }
      case 'unknown':
        break;
    }
  }

  metrics(ref: TaskReference, truths: readonly string[] | undefined): Record<string, number> {
    switch (this.task.kind) {
      case 'ocr-rec': {
        const n = this.texts.length;
        const m: Record<string, number> = {
          charAgreement: this.texts.reduce((s, t, i) => s + characterAccuracy(t, ref.texts[i]), 0) / Math.max(1, n),
          textAgreement: lineAccuracy(this.texts, ref.texts.slice(0, n)),
          lines: n,
        };
        if (truths) {
          if (truths.length !== n) throw new EvalError(`${truths.length} ground-truth lines for ${n} recognised lines`);
          m.charAccuracy = this.texts.reduce((s, t, i) => s + characterAccuracy(t, truths[i]), 0) / Math.max(1, n);
          m.wordAccuracy = this.texts.reduce((s, t, i) => s + wordAccuracy(t, truths[i]), 0) / Math.max(1, n);
          m.lineAccuracy = lineAccuracy(this.texts, truths);
        }
        return m;
      }
      case 'ocr-det': {
        const a = boxAgreement(this.boxCounts);
        return { boxPrecision: a.precision, boxRecall: a.recall, boxF1: a.f1, boxes: this.boxCounts.predicted, fp32Boxes: this.boxCounts.reference };
      }
      case 'classifier':
        return { top1: this.top1 / Math.max(1, this.samples), top5: this.top5 / Math.max(1, this.samples) };
      case 'unknown':
        return {};
    }
  }

  get decoded(): readonly string[] {
    return this.texts;
  }
}

// ---------------------------------------------------------------------------------------------------
// The evaluation

export interface OnnxEvalOptions {
  configs: readonly OnnxEvalConfig[];
  /** Evaluation inputs, one feed set per batch (preprocessed: image-preprocess.ts). */
  batches: readonly CaptureBatch[];
  /** OCR recogniser: the ground-truth text of every evaluated line, in batch order. */
  truths?: readonly string[];
  /** OCR recogniser: class index -> string (ocr-decode.ts ppocrCharset); needed to find and score the task. */
  charset?: readonly string[];
  /** Calibration inputs of awq and rtn-w8a8; never the evaluation inputs. */
  calibration?: readonly CaptureBatch[];
  /** Per-tensor activation amax to use instead of calibrating (e.g. from `quantlab calibrate`), keyed by ONNX value. */
  actAmax?: ReadonlyMap<string, number>;
  /** The task, instead of detecting it from the shapes (onnx-task.ts). */
  task?: OnnxTask;
  /** Detector post-processing and matching (ocr-det-boxes.ts defaults). */
  det?: DbPostprocessOptions & { iouThreshold?: number };
  /** AWQ settings (awq-onnx.ts; default CPU reference unless a non-software GPU context is given). */
  awq?: { duo?: boolean; clip?: boolean; grid?: number; compute?: 'auto' | 'gpu' | 'cpu'; maxRows?: number };
  ctx?: GpuContext;
  /** Most bytes of FP32 outputs kept for the comparison (default 512 MiB); beyond it FP32 reruns per config. */
  maxCacheBytes?: number;
  signal?: AbortSignal;
  onProgress?: (p: EvalProgress) => void;
  /** Each row as it is finished. */
  onRow?: (row: EvalRow) => void;
}

export interface OnnxEvalResult {
  rows: EvalRow[];
  task: OnnxTask;
  /** Samples evaluated (axis 0 of the task output, or of the first output). */
  samples: number;
  /** OCR recogniser: the FP32 model's text of every line. */
  fp32Texts?: string[];
  runtime: string;
}

/** What one configuration runs: its model, size and notes. */
interface Prepared {
  model: OnnxModel;
  bitsPerWeight: number;
  sizeBytes: number;
  notes: string[];
}

function cancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new CancelledError('evaluation cancelled');
}

/** Runs `f`, turning an abort of `signal` (whatever the callee threw) into a CancelledError. */
async function guard<T>(signal: AbortSignal | undefined, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (signal?.aborted && !(e instanceof CancelledError)) throw new CancelledError('evaluation cancelled');
    throw e;
  }
}

function graphShapes(h: OnnxModelHandle) {
  const dims = (v: OnnxModel['graph']['inputs'][number]) => (v.type?.kind === 'tensor' ? v.type.shape : undefined);
  return {
    inputs: h.model.graph.inputs.filter((i) => !h.index.constants.has(i.name)).map((i) => ({ name: i.name, shape: dims(i) })),
    outputs: h.model.graph.outputs.map((o) => ({ name: o.name, shape: dims(o) })),
  };
}

/**
 * Evaluates every configuration against the FP32 model on the same inputs (see the file comment). Throws
 * EvalError for bad settings (no configs, awq / rtn-w8a8 without calibration data, truths that do not
 * match the lines), CancelledError when `signal` aborts.
 */
export async function evaluateOnnx(h: OnnxModelHandle, runtime: OrtRuntime, opts: OnnxEvalOptions): Promise<OnnxEvalResult> {
  const { configs, batches, signal } = opts;
  if (configs.length === 0) throw new EvalError('no configuration to evaluate');
  if (batches.length === 0) throw new EvalError('no evaluation inputs');
  for (const c of configs) {
    if (c.method === 'smoothquant') throw new EvalError(`config '${c.label}': SmoothQuant is evaluated on Llama models; use rtn-w8a8 for ONNX models`);
    if ((c.method === 'awq' || (c.act && !opts.actAmax)) && !opts.calibration?.length) throw new EvalError(`config '${c.label}' needs calibration inputs (distinct from the evaluation inputs)`);
  }
  const plan = onnxEvalLayers(h);
  const charsetSize = opts.charset?.length;
  let task = opts.task ?? detectOnnxTask(graphShapes(h).inputs, graphShapes(h).outputs, { charsetSize });
  const det = opts.det ?? {};
  const units = batches.length * (configs.filter((c) => c.method !== 'fp32').length + 1);
  let done = 0;
  const progress = (label: string) => opts.onProgress?.({ done, total: units, label });

  const rows: EvalRow[] = [];
  const baseBytes = await buildCaptureModel(h, []);
  const fp32 = await guard(signal, () => runtime.createSession(baseBytes));
  try {
    const outputNames = [...fp32.outputNames];
    const cache: (Record<string, FloatTensor> | undefined)[] = [];
    let cacheBytes = 0;
    const maxCache = opts.maxCacheBytes ?? 512 * 2 ** 20;
    const ref: TaskReference = { texts: [], boxes: [], top1: [] };
    const t0 = performance.now();
    let fp32Task: TaskMetrics | undefined;
    let samples = 0;
    for (const [i, feeds] of batches.entries()) {
      cancelled(signal);
      progress(`fp32: batch ${i + 1} of ${batches.length}`);
      const out = await guard(signal, () => fp32.run(feeds, outputNames));
      if (i === 0) {
        task = checkTaskOnDims(task, task.output ? out[task.output]?.dims : undefined, { charsetSize });
        fp32Task = new TaskMetrics(task, opts.charset, det);
      }
      fp32Task!.add(task.output ? out[task.output] : out[outputNames[0]], ref, ref);
      const counted = out[task.output ?? outputNames[0]];
      samples += counted.dims.length ? counted.dims[0] : 1;
      const bytes = Object.values(out).reduce((a, t) => a + t.data.byteLength, 0);
      if (cacheBytes + bytes <= maxCache) {
        cache[i] = out;
        cacheBytes += bytes;
      }
      done++;
    }
    const truths = task.kind === 'ocr-rec' ? opts.truths : undefined;
    if (truths && truths.length !== ref.texts.length) throw new EvalError(`${truths.length} ground-truth lines for ${ref.texts.length} evaluated lines`);
    const fp32Seconds = (performance.now() - t0) / 1000;
    const fp32Metrics = fp32Task!.metrics(ref, truths);
    const taskNotes = task.note ? [task.note] : [];
    const skippedNote = plan.skipped.length ? [`left in FP32: ${plan.skipped.map((s) => `${s.name} (${s.reason})`).join('; ')}`] : [];

    for (const cfg of configs) {
      cancelled(signal);
      const t1 = performance.now();
      if (cfg.method === 'fp32') {
        const metrics: Record<string, number> = { sqnr: Infinity, cosine: 1 };
        for (const o of outputNames) {
          metrics[`sqnr:${o}`] = Infinity;
          metrics[`cosine:${o}`] = 1;
        }
        const row: EvalRow = {
          config: cfg.label,
          method: 'fp32',
          bitsPerWeight: 32,
          sizeBytes: h.analysis.summary.totalParams * 4,
          metrics: { ...metrics, ...fp32Metrics },
          seconds: fp32Seconds,
          notes: ['the reference: SQNR, cosine and agreements compare every row with it', ...taskNotes],
        };
        rows.push(row);
        opts.onRow?.(row);
        continue;
      }
      const prepared = await guard(signal, () =>
        prepareOnnx(h, runtime, cfg, plan, opts, (label) => progress(`${cfg.label}: ${label}`)),
      );
      const session = await guard(signal, () => buildCaptureModel({ ...h, model: prepared.model }, []).then((b) => runtime.createSession(b)));
      const accs = new Map<string, OutputAcc>(outputNames.map((o) => [o, { sumSq: 0, sse: 0, cosSum: 0, samples: 0, nonFinite: 0 }]));
      const taskAcc = new TaskMetrics(task, opts.charset, det);
      try {
        for (const [i, feeds] of batches.entries()) {
          cancelled(signal);
          progress(`${cfg.label}: batch ${i + 1} of ${batches.length}`);
          const out = await guard(signal, () => session.run(feeds, outputNames));
          const reference = cache[i] ?? (await guard(signal, () => fp32.run(feeds, outputNames)));
          for (const o of outputNames) compareOutput(accs.get(o)!, reference[o], out[o], o);
          if (task.kind !== 'unknown') taskAcc.add(out[task.output!], ref);
          done++;
        }
      } finally {
        await session.release();
      }
      const metrics: Record<string, number> = {};
      let minSqnr = Infinity;
      let minCos = Infinity;
      let nonFinite = 0;
      for (const o of outputNames) {
        const a = accs.get(o)!;
        const s = sqnrDb(a.sumSq, a.sse);
        const c = a.cosSum / Math.max(1, a.samples);
        metrics[`sqnr:${o}`] = s;
        metrics[`cosine:${o}`] = c;
        minSqnr = Math.min(minSqnr, s);
        minCos = Math.min(minCos, c);
        nonFinite += a.nonFinite;
      }
      const row: EvalRow = {
        config: cfg.label,
        method: cfg.method,
        bitsPerWeight: prepared.bitsPerWeight,
        sizeBytes: prepared.sizeBytes,
        metrics: { sqnr: minSqnr, cosine: minCos, ...metrics, ...taskAcc.metrics(ref, truths) },
        seconds: (performance.now() - t1) / 1000,
        notes: [
          ...prepared.notes,
          ...(nonFinite ? [`${nonFinite} output values were NaN/Inf (left out of SQNR and cosine)`] : []),
          ...(outputNames.length > 1 ? [`outputs: ${outputNames.map((o) => `${o} ${metrics[`sqnr:${o}`].toFixed(2)} dB, cosine ${metrics[`cosine:${o}`].toFixed(5)}`).join('; ')}`] : []),
          ...skippedNote,
          ...taskNotes,
        ],
      };
      rows.push(row);
      opts.onRow?.(row);
    }
    progress('done');
    return { rows, task, samples, fp32Texts: task.kind === 'ocr-rec' ? ref.texts : undefined, runtime: runtime.name };
  } finally {
    await fp32.release();
  }
}

/**
 * The model one configuration runs (weights replaced, activation quantization inserted), its size and the
 * notes of its row; fp32 gives the model unchanged. The same preparation evaluateOnnx does, for exports
 * and tests.
 */
export async function prepareOnnxConfig(
  h: OnnxModelHandle,
  runtime: OrtRuntime,
  cfg: OnnxEvalConfig,
  opts: Pick<OnnxEvalOptions, 'calibration' | 'actAmax' | 'awq' | 'ctx' | 'signal' | 'onProgress'> = {},
): Promise<{ model: OnnxModel; bitsPerWeight: number; sizeBytes: number; notes: string[] }> {
  if (cfg.method === 'fp32') return { model: h.model, bitsPerWeight: 32, sizeBytes: h.analysis.summary.totalParams * 4, notes: [] };
  if ((cfg.method === 'awq' || (cfg.act && !opts.actAmax)) && !opts.calibration?.length) throw new EvalError(`config '${cfg.label}' needs calibration inputs`);
  return guard(opts.signal, () => prepareOnnx(h, runtime, cfg, onnxEvalLayers(h), { configs: [], batches: [], ...opts }, (label) => opts.onProgress?.({ done: 0, total: 0, label })));
}

async function prepareOnnx(
  h: OnnxModelHandle,
  runtime: OrtRuntime,
  cfg: OnnxEvalConfig,
  plan: OnnxEvalLayers,
  opts: OnnxEvalOptions,
  progress: (label: string) => void,
): Promise<Prepared> {
  const { layers } = plan;
  const signal = opts.signal;
  const convNote = (ls: readonly QuantizableLayer[]) => `${ls.length} layers (${[...new Set(ls.map((l) => l.op))].join(', ')})`;
  switch (cfg.method) {
    case 'fp16': {
      progress('rounding weights to float16');
      const replaced = await transformedWeights(h, layers, (_l, w) => roundToF16(w), signal);
      return { model: replaceConstants(h.model, replaced), ...modelSize(h, layers, (l) => 2 * l.params), notes: [`weights of ${convNote(layers)} rounded to float16; biases and other constants FP32`] };
    }
    case 'rtn': {
      const q = cfg.quant!;
      progress('quantizing weights (round to nearest)');
      const replaced = await transformedWeights(h, layers, (l, w) => fakeQuantizeOutIn(w, [l.outChannels, l.inChannels], q), signal);
      let model = replaceConstants(h.model, replaced);
      const notes = [`round to nearest: weights of ${convNote(layers)} ${quantNote(q)}`];
      if (cfg.act) {
        const method = cfg.actCalibrator ?? 'max';
        let amax: ReadonlyMap<string, number>;
        if (opts.actAmax) {
          amax = opts.actAmax;
          notes.push(`INT${cfg.act.bits} activations per tensor at every quantized layer's input, amax given by the caller`);
        } else {
          amax = await calibrateActivationAmax(h, runtime, opts.calibration!, layers.map((l) => l.name), method, { bits: cfg.act.bits, signal, onProgress: (p) => progress(p.label) });
          notes.push(`INT${cfg.act.bits} activations per tensor (QuantizeLinear, then Cast * scale: zero point 0) at every quantized layer's input, amax by '${method}' on ${opts.calibration!.length} calibration batches`);
        }
        const missing = layers.filter((l) => !amax.has(l.activation)).map((l) => l.name);
        const r = insertActivationQdq(model, layers, amax, cfg.act.bits);
        model = r.model;
        if (opsetVersion(h.model) !== undefined && opsetVersion(h.model)! < 10) notes.push(`opset ${opsetVersion(h.model)} has no QuantizeLinear: com.microsoft QuantizeLinear used`);
        if (missing.length) notes.push(`activations not quantized (no amax): inputs of ${missing.join(', ')}`);
        if (r.unquantized.length) notes.push(`activations always 0 in calibration, not quantized: ${r.unquantized.join(', ')}`);
      }
      return { model, ...modelSize(h, layers, (l) => layerBytes(l, q)), notes };
    }
    case 'awq': {
      const q = cfg.quant!;
      let replaced = new Map<string, OnnxTensor>();
      const notes: string[] = [];
      let awqLayers = new Set<string>();
      try {
        const r = await awqOnnx(h, runtime, opts.calibration!, {
          quant: q,
          duo: opts.awq?.duo,
          clip: opts.awq?.clip,
          grid: opts.awq?.grid,
          compute: opts.awq?.compute ?? (opts.ctx ? 'auto' : 'cpu'),
          ctx: opts.ctx,
          maxRows: opts.awq?.maxRows,
          signal,
          totalBatches: opts.calibration!.length,
          onProgress: (p) => progress(`AWQ ${p.label}`),
        });
        replaced = await awqOnnxConstants(h, r);
        awqLayers = new Set(r.weights.keys());
        notes.push(
          `AWQ on ${opts.calibration!.length} calibration batches (${r.seconds.toFixed(1)} s): ${r.groups.length} norm -> linear groups scaled, ${r.weights.size} MatMul / Gemm layers clipped and quantized, ${quantNote(q)}`,
        );
      } catch (e) {
        if (!(e instanceof AwqError) || !/has no MatMul \/ Gemm layer/.test(e.message)) throw e;
        notes.push('AWQ: the model has no MatMul / Gemm layer to scale; every layer is round-to-nearest');
      }
      const rest = layers.filter((l) => !awqLayers.has(l.name) && !replaced.has(l.weight));
      if (rest.length) {
        progress('quantizing the other layers (round to nearest)');
        for (const [k, v] of await transformedWeights(h, rest, (l, w) => fakeQuantizeOutIn(w, [l.outChannels, l.inChannels], q), signal)) replaced.set(k, v);
        notes.push(`${convNote(rest)} that AWQ leaves alone: round to nearest, ${quantNote(q)}`);
      }
      const quantized = layers.filter((l) => awqLayers.has(l.name) || rest.includes(l));
      return { model: replaceConstants(h.model, replaced), ...modelSize(h, quantized, (l) => layerBytes(l, q)), notes };
    }
    default:
      throw new EvalError(`${cfg.label}: method ${cfg.method} is not evaluated on ONNX models`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Evaluation data

/** Seed of the recogniser's evaluation lines (calibration lines use CALIB_LINE_SEED, from other chapters). */
export const EVAL_LINE_SEED = 2;

/**
 * A page of text lines for the detector, black on white: lines of random height (24..47 px) stacked top to
 * bottom at random left offsets, reproducible from `seed`; lines wider than the page are skipped.
 * Returns the image and the line strings placed.
 */
export function renderTextPage(font: OpenTypeFont, lines: readonly string[], opts: { width?: number; height?: number; seed: number }): { image: RgbaImage; lines: string[] } {
  const width = opts.width ?? 640;
  const height = opts.height ?? 480;
  const random = mulberry32(opts.seed);
  const data = new Uint8ClampedArray(width * height * 4).fill(255);
  const placed: string[] = [];
  let y = 8 + Math.floor(random() * 16);
  for (const text of lines) {
    const lh = 24 + Math.floor(random() * 24);
    if (y + lh > height - 8) break;
    const img = renderTextLine(font, text, { height: lh });
    if (img.width > width - 16) continue;
    const x = 8 + Math.floor(random() * (width - 16 - img.width + 1));
    for (let r = 0; r < img.height; r++) {
      const src = img.data.subarray(r * img.width * 4, (r + 1) * img.width * 4);
      data.set(src, ((y + r) * width + x) * 4);
    }
    placed.push(text);
    y += lh + 4 + Math.floor(random() * 12);
  }
  return { image: { width, height, data }, lines: placed };
}
