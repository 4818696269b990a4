/**
 * Pieces the ONNX exporters share: the per-layer report, the export error, fresh tensor names that cannot
 * collide with anything the graph already names, and the lab's own quantization of a layer's weight
 * (CPU reference, quant/reference) so that exported codes are exactly the codes the lab simulates.
 */
import { loadExternalTensor } from '../model/onnx/external-data.ts';
import type { QuantizableLayer } from '../model/onnx/analyze.ts';
import type { OnnxModel, OnnxTensor } from '../model/onnx/model.ts';
import { tensorToFloat32 } from '../model/onnx/tensor-data.ts';
import { weightToOutIn } from '../model/onnx/weight-view.ts';
import type { OnnxModelHandle } from '../model/workspace.ts';
import { validateQuantConfig, type QuantConfig } from '../quant/config.ts';
import { makeGroupLayout, type GroupLayout } from '../quant/layout.ts';
import { qparamsRef, quantizeRef, type Codes, type QParams } from '../quant/reference/quantize.ts';
import { groupStatsRef } from '../quant/reference/stats.ts';

/** A whole export refused: the message says why (bad options, a graph the format cannot express). */
export class OnnxExportError extends Error {
  override name = 'OnnxExportError';
}

/** What happened to one quantizable layer. */
export interface OnnxExportLayerEntry {
  /** QuantizableLayer.name (node name, or `<op>#<index>`). */
  layer: string;
  op: string;
  status: 'quantized' | 'skipped';
  /** Why the layer stays FP32 (skipped), or a warning about a quantized one. */
  reason?: string;
  /** The stored weight tensor. */
  weight?: string;
}

export interface OnnxExportResult {
  /** The serialized ModelProto. */
  bytes: Uint8Array;
  /** The exported model, for callers that edit it further. */
  model: OnnxModel;
  report: OnnxExportLayerEntry[];
  /** Graph-level notes (opset raised, ops converted). */
  notes: string[];
}

/**
 * Fresh names: every name the model already uses (tensors, value infos, initializers, node names, graph
 * inputs and outputs) is taken, and each call returns `base`, or `base_1`, `base_2`... the first free one.
 */
export function nameAllocator(model: OnnxModel): (base: string) => string {
  const g = model.graph;
  const used = new Set<string>();
  for (const v of [...g.inputs, ...g.outputs, ...g.valueInfo]) used.add(v.name);
  for (const t of g.initializers) used.add(t.name);
  for (const n of g.nodes) {
    if (n.name) used.add(n.name);
    for (const x of [...n.inputs, ...n.outputs]) if (x) used.add(x);
  }
  return (base: string) => {
    const clean = base.replace(/[^A-Za-z0-9_.:/-]/g, '_');
    let name = clean;
    for (let k = 1; used.has(name); k++) name = `${clean}_${k}`;
    used.add(name);
    return name;
  };
}

/** A layer's weight as the lab sees it: the stored tensor (constant folding applied) and its [out, in] view. */
export async function layerWeight(h: OnnxModelHandle, l: QuantizableLayer, replaced?: ReadonlyMap<string, OnnxTensor>): Promise<{ tensor: OnnxTensor; outIn: Float32Array }> {
  let t = replaced?.get(l.weight);
  if (!t) {
    const c = h.index.constants.get(l.weight);
    if (!c) throw new OnnxExportError(`${l.name}: its weight ${l.weight} is not a constant`);
    t = c.tensor;
    if (t.data.location === 'external' && !t.data.bytes) {
      if (!h.external) throw new OnnxExportError(`${l.name}: ${l.weight} is in an external data file that was not given`);
      await loadExternalTensor(t, h.external);
    }
  }
  const outIn = weightToOutIn(l, tensorToFloat32(t));
  for (let i = 0; i < outIn.length; i++) {
    if (!Number.isFinite(outIn[i])) throw new OnnxExportError(`${l.name}: its weight has a non-finite value (${outIn[i]}) at ${i}`);
  }
  return { tensor: t, outIn };
}

/** The lab's quantization of an [out, in] weight: group layout, scales / zero points and codes (CPU reference). */
export interface LabQuantized {
  layout: GroupLayout;
  qp: QParams;
  /** [out, in] row-major: Int8Array for symmetric, Uint8Array for asymmetric. */
  codes: Codes;
  quant: Required<QuantConfig>;
}

export function labQuantize(outIn: Float32Array, shape: readonly [number, number], quant: QuantConfig): LabQuantized {
  const q = validateQuantConfig(quant);
  const layout = makeGroupLayout(shape, q.granularity, q.groupSize);
  const qp = qparamsRef(groupStatsRef(outIn, layout), q);
  return { layout, qp, codes: quantizeRef(outIn, layout, qp, q), quant: q };
}

/**
 * Why the exporters leave a layer alone, shared by all formats (the same rules as the ONNX evaluation's
 * onnxEvalLayers): already quantized, not float32, a weight reached through anything but Transpose /
 * Identity, not a constant, or shared with a layer already taken.
 */
export function commonSkipReason(h: OnnxModelHandle, l: QuantizableLayer, taken: ReadonlyMap<string, string>): string | undefined {
  if (l.alreadyQuantized) return 'its weight is already quantized (DequantizeLinear)';
  if (l.weightDataType !== 'float32') return `its weight is ${l.weightDataType}; only float32 weights are exported quantized`;
  if (l.weightPath.some((op) => op !== 'Transpose' && op !== 'Identity')) return `it reads its weight through ${l.weightPath.join(', ')}`;
  if (!h.index.constants.has(l.weight)) return `its weight ${l.weight} is not a constant`;
  if (taken.has(l.weight)) return `it shares its weight ${l.weight} with ${taken.get(l.weight)}, which was quantized in its own view`;
  return undefined;
}

/** Layers asked for by name that the model does not have: an error naming them. */
export function checkLayerNames(h: OnnxModelHandle, names: readonly string[] | undefined): Set<string> | undefined {
  if (!names) return undefined;
  const known = new Set([...h.analysis.layers.map((l) => l.name), ...h.analysis.skipped.map((l) => l.name)]);
  const unknown = names.filter((n) => !known.has(n));
  if (unknown.length) throw new OnnxExportError(`${h.name} has no quantizable layer named ${unknown.join(', ')}`);
  return new Set(names);
}
