/**
 * ONNX QDQ INT8 export for TensorRT explicit quantization (REFERENCE.md section 5; onnx-tensorrt
 * QuantDequantLinearHelper, pytorch-quantization's export): every exported layer's weight becomes an INT8
 * initializer read through DequantizeLinear (per output channel: axis = QuantizableLayer.outAxis of the
 * stored weight, scale = amax_w / 127 float32, zero point int8 0), and the activation input of every
 * Conv / ConvTranspose / MatMul / Gemm with a calibrated amax gets QuantizeLinear -> DequantizeLinear
 * (per tensor, scale amax / 127, zero point int8 0), the placement TensorRT fuses into INT8 kernels.
 * Weight codes and scales are the lab's own (quant/reference, INT8 symmetric per channel, narrow range
 * [-127, 127]), so the exported model computes exactly the lab's W8A8 simulation.
 *
 * Per-channel DequantizeLinear needs opset >= 13: older models are raised to 13 by onnx-opset.ts, which
 * rewrites the ops whose encoding changed and refuses the whole export, naming the ops, when one would
 * change meaning. SmoothQuant (or any other constant folding) is applied first when `folded` is given
 * (smoothOnnxConstants / awqOnnxConstants output): the exported weights are quantized after folding.
 */
import type { QuantizableLayer } from '../model/onnx/analyze.ts';
import { makeNode, attr } from '../model/onnx/build.ts';
import { opsetVersion, type OnnxModel, type OnnxNode, type OnnxTensor } from '../model/onnx/model.ts';
import { serializeModel } from '../model/onnx/serialize.ts';
import { makeTensor } from '../model/onnx/tensor-data.ts';
import { outInToWeight } from '../model/onnx/weight-view.ts';
import type { OnnxModelHandle } from '../model/workspace.ts';
import { fround } from '../quant/reference/f32.ts';
import { replaceConstants } from '../smooth/fold-onnx.ts';
import {
  checkLayerNames,
  commonSkipReason,
  labQuantize,
  layerWeight,
  nameAllocator,
  OnnxExportError,
  type OnnxExportLayerEntry,
  type OnnxExportResult,
} from './onnx-export-common.ts';
import { upgradeOpset } from './onnx-opset.ts';

export { OnnxExportError };

/** TensorRT needs opset 13 for per-axis DequantizeLinear. */
export const QDQ_MIN_OPSET = 13;

export interface OnnxQdqOptions {
  /** Per-tensor activation amax by ONNX value name (calibrateActivationAmax, or a calibration JSON's chosen method). */
  actAmax: ReadonlyMap<string, number>;
  /** Only these layers (QuantizableLayer.name); default every quantizable layer. */
  layers?: readonly string[];
  /** Constants to fold in before quantizing (SmoothQuant / AWQ scales: smoothOnnxConstants output). */
  folded?: ReadonlyMap<string, OnnxTensor>;
  /**
   * Layers whose activation has no amax: 'weight-only' (default) exports their INT8 weights with FP
   * activations and says so in the report; 'skip' leaves them FP32.
   */
  missingAmax?: 'weight-only' | 'skip';
  /** Opset to export at (default: the model's, raised to 13 when lower). */
  opset?: number;
}

export interface OnnxQdqLayerEntry extends OnnxExportLayerEntry {
  /** Per-channel axis of the stored weight and the number of scales. */
  axis?: number;
  channels?: number;
  /** Activation scale (amax / 127), when the activation is quantized. */
  actScale?: number;
  /** Names of the tensors written for this layer. */
  tensors?: { weightInt8: string; weightScale: string; activationDq?: string };
}

export interface OnnxQdqResult extends OnnxExportResult {
  report: OnnxQdqLayerEntry[];
}

const INT8_QUANT = { bits: 8, granularity: 'channel', scheme: 'sym' } as const;

/** The lab's INT8 per-channel weight of a layer in its stored layout: int8 codes and one scale per output channel. */
export function qdqWeight(l: QuantizableLayer, outIn: Float32Array): { codes: Int8Array; scales: Float32Array } {
  const q = labQuantize(outIn, [l.outChannels, l.inChannels], INT8_QUANT);
  const stored = outInToWeight(l, Float32Array.from(q.codes));
  return { codes: Int8Array.from(stored), scales: q.qp.scale.slice() };
}

/**
 * Exports `h` as an ONNX QDQ INT8 model for TensorRT. Layers that cannot be exported stay FP32 and are
 * listed with the reason; a graph that cannot be expressed at opset >= 13 without changing meaning, or
 * bad options (unknown layer names, a non-finite or negative amax), refuse the whole export.
 */
export async function exportOnnxQdqInt8(h: OnnxModelHandle, opts: OnnxQdqOptions): Promise<OnnxQdqResult> {
  const wanted = checkLayerNames(h, opts.layers);
  for (const [t, a] of opts.actAmax) {
    if (!(Number.isFinite(a) && a >= 0)) throw new OnnxExportError(`activation ${t}: amax ${a} is not a finite number >= 0`);
  }
  const notes: string[] = [];
  const opset = Math.max(opts.opset ?? opsetVersion(h.model) ?? 1, QDQ_MIN_OPSET);
  const rank = (t: string) => h.index.shapes.get(t)?.length;
  const up = upgradeOpset(h.model, opset, rank);
  notes.push(...up.notes);
  let model: OnnxModel = up.model;
  if (opts.folded?.size) {
    model = replaceConstants(model, opts.folded);
    notes.push(`${opts.folded.size} constants folded in before quantization (SmoothQuant / AWQ scales)`);
  }
  const fresh = nameAllocator(model);
  const report: OnnxQdqLayerEntry[] = [];
  const taken = new Map<string, string>();
  const weightDq: OnnxNode[] = [];
  const newInits: OnnxTensor[] = [];
  const quantizedWeights = new Set<string>();
  const exported: QuantizableLayer[] = [];

  for (const s of h.analysis.skipped) {
    if (!wanted || wanted.has(s.name)) report.push({ layer: s.name, op: s.op, status: 'skipped', reason: s.reason });
  }
  for (const l of h.analysis.layers) {
    if (wanted && !wanted.has(l.name)) continue;
    const entry: OnnxQdqLayerEntry = { layer: l.name, op: l.op, status: 'skipped', weight: l.weight };
    report.push(entry);
    const owner = taken.get(l.weight);
    if (owner && !l.alreadyQuantized) {
      // Tied weight: the DequantizeLinear output keeps the weight's name, so this layer reads the INT8 weight too.
      Object.assign(entry, { status: 'quantized', reason: `shares its weight with ${owner}: reads the same INT8 weight (per-channel axis of ${owner})` });
      exported.push(l);
      continue;
    }
    let reason = commonSkipReason(h, l, taken);
    if (!reason && l.op === 'ConvTranspose' && l.groups > 1) {
      reason = `grouped ConvTranspose (group ${l.groups}): its ${l.outChannels} output channels span axes 0 and 1 of the weight, which one per-axis DequantizeLinear cannot scale`;
    }
    if (!reason && !opts.actAmax.has(l.activation) && opts.missingAmax === 'skip') reason = `its activation ${l.activation} has no amax`;
    if (reason) {
      entry.reason = reason;
      continue;
    }
    taken.set(l.weight, l.name);
    const { tensor, outIn } = await layerWeight(h, l, opts.folded);
    const { codes, scales } = qdqWeight(l, outIn);
    const base = l.weight;
    const wq = fresh(`${base}_int8`);
    const ws = fresh(`${base}_scale`);
    const wz = fresh(`${base}_zero_point`);
    newInits.push(makeTensor(wq, tensor.dims, codes), makeTensor(ws, [scales.length], scales), makeTensor(wz, [scales.length], new Int8Array(scales.length)));
    // The DequantizeLinear output takes the weight's own name, so Transpose / Identity paths and every
    // reader of the weight are unchanged.
    weightDq.push(makeNode('DequantizeLinear', [wq, ws, wz], [l.weight], [attr.int('axis', l.outAxis)], { name: fresh(`${base}_DequantizeLinear`) }));
    quantizedWeights.add(l.weight);
    Object.assign(entry, { status: 'quantized', axis: l.outAxis, channels: scales.length, tensors: { weightInt8: wq, weightScale: ws } });
    exported.push(l);
  }

  // Remove the float weights: initializers by name, Constant nodes by output.
  const g = model.graph;
  const initializers = [...g.initializers.filter((t) => !quantizedWeights.has(t.name)), ...newInits];
  const kept = g.nodes.filter((n) => !(n.opType === 'Constant' && quantizedWeights.has(n.outputs[0])));

  // Activation Q -> DQ, one pair per tensor, placed right before the first quantized reader.
  const dqOf = new Map<string, string>();
  const before = new Map<OnnxNode, OnnxNode[]>();
  const replacedInputs = new Map<OnnxNode, OnnxNode>();
  for (const l of [...exported].sort((a, b) => a.nodeIndex - b.nodeIndex)) {
    const entry = report.find((e) => e.layer === l.name)!;
    const a = opts.actAmax.get(l.activation);
    if (a === undefined) {
      entry.reason = `weight-only: its activation ${l.activation} has no amax, so it stays FP (TensorRT runs the layer in floating point)`;
      continue;
    }
    if (a === 0) {
      entry.reason = `weight-only: its activation ${l.activation} was 0 throughout calibration`;
      continue;
    }
    const orig = up.nodeAt[l.nodeIndex];
    let dq = dqOf.get(l.activation);
    const scale = fround(a / 127);
    if (!dq) {
      const base = l.activation;
      const s = fresh(`${base}_act_scale`);
      const z = fresh(`${base}_act_zero_point`);
      const q = fresh(`${base}_act_int8`);
      dq = fresh(`${base}_act_dequantized`);
      initializers.push(makeTensor(s, [], Float32Array.of(scale)), makeTensor(z, [], new Int8Array(1)));
      before.set(orig, [
        ...(before.get(orig) ?? []),
        makeNode('QuantizeLinear', [l.activation, s, z], [q], [], { name: fresh(`${base}_QuantizeLinear`) }),
        makeNode('DequantizeLinear', [q, s, z], [dq], [], { name: fresh(`${base}_DequantizeLinear`) }),
      ]);
      dqOf.set(l.activation, dq);
    }
    const node = replacedInputs.get(orig) ?? { ...orig, inputs: [...orig.inputs] };
    replacedInputs.set(orig, node);
    node.inputs = node.inputs.map((x, i) => (x === l.activation && i !== l.weightInput ? dq! : x));
    entry.actScale = scale;
    entry.tensors = { weightInt8: '', weightScale: '', ...entry.tensors, activationDq: dq };
  }
  const nodes: OnnxNode[] = [...weightDq];
  for (const n of kept) nodes.push(...(before.get(n) ?? []), replacedInputs.get(n) ?? n);
  const inputs = g.inputs.filter((v) => !quantizedWeights.has(v.name));
  const out: OnnxModel = { ...model, graph: { ...g, nodes, initializers, inputs } };
  const quantized = report.filter((e) => e.status === 'quantized').length;
  if (quantized === 0) throw new OnnxExportError(`${h.name}: no layer can be exported as INT8: ${report.map((e) => `${e.layer}: ${e.reason}`).join('; ') || 'no quantizable layers'}`);
  return { bytes: serializeModel(out), model: out, report, notes };
}
