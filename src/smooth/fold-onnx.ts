/**
 * Folding SmoothQuant factors into an ONNX graph: for a foldable norm -> linears group (model/onnx/analyze.ts
 * NormLinearGroup), gamma (and beta) divided by s, every linear's input column j multiplied by s_j. The
 * weight is read and written back in its stored layout (MatMul B [in, out], Gemm transB, a Transpose on the
 * way) through the analysis' weight view (weight-view.ts), so the graph itself is untouched: only constants
 * change, and the FP32 model computes the same outputs up to float rounding. No Node imports.
 */
import type { NormLinearGroup, QuantizableLayer } from '../model/onnx/analyze.ts';
import { attr } from '../model/onnx/build.ts';
import { loadExternalTensor } from '../model/onnx/external-data.ts';
import type { OnnxModel, OnnxTensor } from '../model/onnx/model.ts';
import { makeTensor, tensorElementCount, tensorToFloat32 } from '../model/onnx/tensor-data.ts';
import { outInToWeight, weightToOutIn } from '../model/onnx/weight-view.ts';
import type { OnnxModelHandle } from '../model/workspace.ts';
import { fround } from '../quant/reference/f32.ts';
import { SmoothQuantError } from './smoothquant.ts';

/** A group SmoothQuant can fold into, or why it cannot. */
export interface OnnxSmoothGroup {
  /** The norm's last node (or its output): the group's name in reports. */
  name: string;
  group: NormLinearGroup;
  layers: QuantizableLayer[];
  /** Why the group is left alone; absent when it can be smoothed. */
  skip?: string;
}

function groupName(g: NormLinearGroup): string {
  return g.nodes[g.nodes.length - 1] ?? g.output;
}

/**
 * The norm -> linear groups of the analysis, each with the reason it cannot be smoothed, if any: not
 * foldable (other readers of the norm output), gamma or beta computed rather than stored, a weight shared
 * with a layer outside the group, already quantized, or not float32.
 */
export function onnxSmoothGroups(h: OnnxModelHandle): OnnxSmoothGroup[] {
  const byName = new Map(h.analysis.layers.map((l) => [l.name, l]));
  return h.analysis.normGroups.map((group) => {
    const layers = group.linears.map((n) => byName.get(n)!);
    const name = groupName(group);
    const inGroup = new Set(group.linears);
    let skip: string | undefined;
    if (!group.foldable) skip = `the norm output is also read by ${group.otherConsumers.join(', ') || 'a graph output or a shared scale'}`;
    for (const t of [group.gamma, group.beta]) {
      if (skip || t === undefined) continue;
      const c = h.index.constants.get(t);
      if (!c) skip = `the norm's scale/shift ${t} is computed, not a stored constant`;
      else if (c.tensor.dataType !== 'float32') skip = `the norm's scale/shift ${t} is ${c.tensor.dataType}; only float32 is folded`;
      else if (tensorElementCount(c.tensor) !== group.channels) skip = `the norm's scale/shift ${t} has ${tensorElementCount(c.tensor)} values for ${group.channels} channels`;
    }
    for (const l of layers) {
      if (skip) break;
      if (l.alreadyQuantized) skip = `${l.name} is already quantized`;
      else if (l.weightDataType !== 'float32') skip = `${l.name} stores its weight as ${l.weightDataType}; only float32 is folded`;
      else if (l.weightPath.some((op) => op !== 'Transpose' && op !== 'Identity')) skip = `${l.name} reads its weight through ${l.weightPath.join(', ')}`;
      else if (l.sharesWeightWith.some((o) => !inGroup.has(o))) skip = `${l.name} shares its weight with ${l.sharesWeightWith.filter((o) => !inGroup.has(o)).join(', ')} outside the group`;
    }
    return skip ? { name, group, layers, skip } : { name, group, layers };
  });
}

async function constantValues(h: OnnxModelHandle, name: string): Promise<{ tensor: OnnxTensor; values: Float32Array }> {
  const c = h.index.constants.get(name);
  if (!c) throw new SmoothQuantError(`${h.name}: ${name} is not a constant`);
  const t = c.tensor;
  if (t.data.location === 'external' && !t.data.bytes) {
    if (!h.external) throw new SmoothQuantError(`${h.name}: ${name} is in an external data file that was not given`);
    await loadExternalTensor(t, h.external);
  }
  return { tensor: t, values: tensorToFloat32(t) };
}

/** The [out, in] weights of a group's linears (each stored weight once), as SmoothQuant reads them. */
export async function onnxGroupWeights(h: OnnxModelHandle, g: OnnxSmoothGroup): Promise<{ name: string; weight: Float32Array; out: number }[]> {
  const out: { name: string; weight: Float32Array; out: number }[] = [];
  for (const l of g.layers) {
    const { values } = await constantValues(h, l.weight);
    out.push({ name: l.name, weight: weightToOutIn(l, values), out: l.outChannels });
  }
  return out;
}

/**
 * New constants for the smoothed groups: name -> tensor (same name, dims and type). `factors` maps a group
 * name (OnnxSmoothGroup.name) to its s; groups without factors are left alone.
 */
export async function smoothOnnxConstants(h: OnnxModelHandle, groups: readonly OnnxSmoothGroup[], factors: ReadonlyMap<string, Float32Array>): Promise<Map<string, OnnxTensor>> {
  const replaced = new Map<string, OnnxTensor>();
  for (const g of groups) {
    const s = factors.get(g.name);
    if (!s) continue;
    if (g.skip) throw new SmoothQuantError(`${g.name} cannot be smoothed: ${g.skip}`);
    if (s.length !== g.group.channels) throw new SmoothQuantError(`${g.name}: ${s.length} factors for ${g.group.channels} channels`);
    for (const t of [g.group.gamma, g.group.beta]) {
      if (t === undefined) continue;
      if (replaced.has(t)) throw new SmoothQuantError(`${t} belongs to two groups`);
      const { tensor, values } = await constantValues(h, t);
      replaced.set(t, makeTensor(tensor.name, tensor.dims, values.map((v, j) => fround(v / s[j]))));
    }
    const done = new Set<string>();
    for (const l of g.layers) {
      if (done.has(l.weight)) continue;
      done.add(l.weight);
      if (replaced.has(l.weight)) throw new SmoothQuantError(`the weight ${l.weight} of ${l.name} belongs to two groups`);
      const { tensor, values } = await constantValues(h, l.weight);
      const w = weightToOutIn(l, values);
      const c = l.inChannels;
      for (let i = 0; i < w.length; i++) w[i] = fround(w[i] * s[i % c]);
      replaced.set(l.weight, makeTensor(tensor.name, tensor.dims, outInToWeight(l, w)));
    }
  }
  return replaced;
}

/** The model with constants replaced: initializers by name, Constant nodes by their output. */
export function replaceConstants(model: OnnxModel, replaced: ReadonlyMap<string, OnnxTensor>): OnnxModel {
  const nodes = model.graph.nodes.map((n) => {
    if (n.opType !== 'Constant' || !replaced.has(n.outputs[0])) return n;
    return { ...n, attributes: [...n.attributes.filter((a) => a.name !== 'value'), attr.tensor('value', replaced.get(n.outputs[0])!)] };
  });
  const initializers = model.graph.initializers.map((t) => replaced.get(t.name) ?? t);
  return { ...model, graph: { ...model.graph, nodes, initializers } };
}
