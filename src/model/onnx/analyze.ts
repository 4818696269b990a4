/**
 * What a quantization run needs to know about an ONNX graph:
 *  - the quantizable layers (MatMul / Gemm with a constant weight, Conv / ConvTranspose) and how each
 *    weight maps onto QuantLab's [out, in] row-major view (quant/layout.ts);
 *  - the norm -> linear groups that SmoothQuant and AWQ fold scales through (REFERENCE.md sections 3-4;
 *    smoothquant smooth.py smooth_ln_fcs, llm-awq auto_scale.py), fused or decomposed;
 *  - a summary: op histogram, parameter counts, ops the pipeline will leave alone.
 * Only the top-level graph is analysed; If/Loop/Scan bodies and model-local functions are reported, not
 * searched.
 */
import {
  attrInt,
  attrInts,
  buildGraphIndex,
  consumersOf,
  constantElements,
  constantIntegers,
  constantScalar,
  isStandardDomain,
  nodeLabel,
  resolveConstant,
  type ConstantTensor,
  type GraphIndex,
  type NodeRef,
} from './graph-index.ts';
import type { OnnxDataType, OnnxModel, OnnxNode } from './model.ts';

export type QuantizableOp = 'MatMul' | 'Gemm' | 'Conv' | 'ConvTranspose';

export interface QuantizableLayer {
  /** Node name, or `<op>#<index>` when the node has none. */
  name: string;
  nodeIndex: number;
  op: QuantizableOp;
  /** Graph tensor holding the stored weight: an initializer, or a Constant node's output. */
  weight: string;
  weightSource: 'initializer' | 'constant-node';
  /** Dims of the stored weight. */
  weightShape: number[];
  weightDataType: OnnxDataType;
  /** Op types between the stored weight and the layer's input, nearest the weight first (e.g. ['Transpose']). */
  weightPath: string[];
  /** Which input of the node the weight reaches (1 for MatMul(X, W), 0 for MatMul(W, X)). */
  weightInput: number;
  /** Rows of the [out, in] view: output channels. */
  outChannels: number;
  /** Columns of the [out, in] view: inputs per output (in / groups x kernel elements for convolutions). */
  inChannels: number;
  /**
   * Axis of the stored weight that indexes output channels, the per-channel axis for QDQ export:
   * 0 for Conv [O, I/g, kh, kw], Gemm transB=1 [N, K] and MatMul(W, X); 1 for MatMul B [K, N], Gemm transB=0
   * and ConvTranspose [I, O/g, kh, kw].
   */
  outAxis: number;
  /** True when the stored layout is not [out, in] row-major; weightToOutIn (weight-view.ts) rearranges it. */
  needsRearrange: boolean;
  /** Elements of the stored weight. */
  params: number;
  /** Bias tensor: Gemm C, Conv / ConvTranspose B, or the constant of an Add right after a MatMul. */
  bias?: string;
  /** The Add node that applies the bias of a MatMul (MatMul + Add, as most exporters write Linear). */
  biasAdd?: string;
  /** The activation input: the tensor calibration must capture for this layer. */
  activation: string;
  /** Axis of the activation that holds the input channels: -1 (MatMul / Gemm rows), -2 (MatMul(W, X), Gemm transA) or 1 (NCHW convolutions). */
  activationChannelAxis: number;
  /** Convolution groups (1 otherwise). */
  groups: number;
  /** Depthwise convolution: one input channel per group, groups > 1. */
  depthwise: boolean;
  /** The weight reaches the layer through DequantizeLinear: it is already quantized. */
  alreadyQuantized: boolean;
  /** Names of other layers that read the same stored weight (tied weights). */
  sharesWeightWith: string[];
}

export interface SkippedLayer {
  name: string;
  nodeIndex: number;
  op: QuantizableOp;
  reason: string;
}

export type NormKind = 'layernorm' | 'rmsnorm';

export interface NormLinearGroup {
  kind: NormKind;
  /** The fused op type (LayerNormalization, SkipLayerNormalization, ...), or 'decomposed'. */
  form: string;
  /** Nodes making up the norm: the fused node, or the decomposed chain from ReduceMean to the affine Add. */
  nodes: string[];
  /** Tensor the norm normalizes. */
  input: string;
  /** Tensor the linear layers read (the norm's output). */
  output: string;
  /** Scale (gamma) tensor: SmoothQuant / AWQ divide it by the smoothing scales. */
  gamma: string;
  /** Shift (beta) tensor, when present; divided as well. */
  beta?: string;
  /** Normalized channels: gamma's element count. */
  channels: number;
  /** Quantizable MatMul / Gemm layers (QuantizableLayer.name) reading the output, directly or through a channel-preserving Reshape. */
  linears: string[];
  /**
   * Other readers of the output (residual Adds, Convs...). Shape and Size are not listed: they read no values.
   * Folding scales into gamma would change what these see, so smoothing must not fold when any exist.
   */
  otherConsumers: string[];
  /** Safe to fold smoothing scales into gamma/beta: linears only, not a graph output, gamma and beta not shared. */
  foldable: boolean;
}

export interface UnsupportedOp {
  op: string;
  count: number;
  reason: string;
}

export interface ModelSummary {
  irVersion: number;
  /** Default-domain opset. */
  opset: number | undefined;
  producer: string;
  nodeCount: number;
  initializerCount: number;
  /** Constant nodes holding a tensor (weights when the exporter writes no initializers). */
  constantNodeCount: number;
  /** Node count by op type; non-default domains as `domain:op`. */
  opHistogram: Record<string, number>;
  /** Elements of all floating-point constants (initializers and Constant nodes). */
  totalParams: number;
  /** Elements of the weights of quantizable layers (each shared weight once). */
  quantizableParams: number;
  /** Quantizable layers by op. */
  layersByOp: Record<string, number>;
  normGroupCount: number;
  /** Norms found (fused or decomposed), whether or not they feed a linear. */
  normCount: number;
  /** Ops the pipeline will not quantize or look into, with why. Informational. */
  unsupported: UnsupportedOp[];
  /** Subgraph attributes (If / Loop / Scan bodies) in the top-level graph; not analysed. */
  subgraphCount: number;
  localFunctionCount: number;
}

export interface ModelAnalysis {
  layers: QuantizableLayer[];
  skipped: SkippedLayer[];
  normGroups: NormLinearGroup[];
  summary: ModelSummary;
}

// ---------------------------------------------------------------------------------------------
// Quantizable layers

const FLOAT_TYPES = new Set<OnnxDataType>(['float32', 'float16', 'bfloat16', 'float64']);

function product(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

interface WeightInfo {
  constant: ConstantTensor;
  path: NodeRef[];
  /** Shape the layer sees (after the path's Transposes). */
  effectiveShape: number[];
  /** The 2-D path transposes an odd number of times. */
  transposed: boolean;
  alreadyQuantized: boolean;
}

/** The constant weight behind `tensor`, or a reason it is not one. */
function weightBehind(index: GraphIndex, tensor: string): WeightInfo | string {
  if (!tensor) return 'weight input is missing';
  const r = resolveConstant(index, tensor);
  if (!r) {
    if (index.graphInputs.has(tensor)) return `weight "${tensor}" is a graph input, not a constant`;
    return `weight "${tensor}" is computed at run time, not a constant`;
  }
  let shape = [...r.constant.tensor.dims];
  let transposed = false;
  let alreadyQuantized = false;
  for (const step of r.path) {
    if (step.node.opType === 'Transpose') {
      // Default perm reverses the axes.
      const perm = attrInts(step.node, 'perm') ?? [...shape.keys()].reverse();
      if (shape.length !== 2) return `weight "${r.constant.tensor.name}" passes through a ${shape.length}-D Transpose`;
      if (perm[0] === 1 && perm[1] === 0) transposed = !transposed;
      shape = perm.map((p) => shape[p]);
    } else if (step.node.opType === 'DequantizeLinear') {
      alreadyQuantized = true;
    }
  }
  if (!alreadyQuantized && !FLOAT_TYPES.has(r.constant.tensor.dataType)) {
    return `weight "${r.constant.tensor.name}" is ${r.constant.tensor.dataType}, not floating point`;
  }
  return { constant: r.constant, path: r.path, effectiveShape: shape, transposed, alreadyQuantized };
}

/** Bias of a MatMul written as MatMul + Add(constant [N]) (or [1, N]), when the Add is the only reader. */
function matmulBiasAdd(index: GraphIndex, node: OnnxNode, n: number): { bias: string; add: string } | undefined {
  const readers = consumersOf(index, node.outputs[0]);
  if (readers.length !== 1) return undefined;
  const add = readers[0];
  if (add.node.opType !== 'Add' || !isStandardDomain(add.node.domain)) return undefined;
  const other = add.node.inputs[1 - add.inputIndex];
  const c = other ? resolveConstant(index, other) : undefined;
  if (!c || c.path.length > 0) return undefined;
  const dims = c.constant.tensor.dims;
  if (product(dims) !== n || (dims.length > 0 && dims[dims.length - 1] !== n)) return undefined;
  return { bias: other, add: nodeLabel(add) };
}

function makeLayer(
  ref: NodeRef,
  op: QuantizableOp,
  w: WeightInfo,
  view: Pick<QuantizableLayer, 'outChannels' | 'inChannels' | 'outAxis' | 'needsRearrange' | 'weightInput' | 'activation' | 'activationChannelAxis'>,
  extra: Partial<Pick<QuantizableLayer, 'bias' | 'biasAdd' | 'groups' | 'depthwise'>> = {},
): QuantizableLayer {
  const t = w.constant.tensor;
  const layer: QuantizableLayer = {
    name: nodeLabel(ref),
    nodeIndex: ref.index,
    op,
    weight: t.name,
    weightSource: w.constant.source,
    weightShape: [...t.dims],
    weightDataType: t.dataType,
    weightPath: w.path.map((p) => p.node.opType),
    ...view,
    params: product(t.dims),
    groups: extra.groups ?? 1,
    depthwise: extra.depthwise ?? false,
    alreadyQuantized: w.alreadyQuantized,
    sharesWeightWith: [],
  };
  if (extra.bias) layer.bias = extra.bias;
  if (extra.biasAdd) layer.biasAdd = extra.biasAdd;
  return layer;
}

function matmulLayer(index: GraphIndex, ref: NodeRef): QuantizableLayer | string {
  const node = ref.node;
  const [a, b] = node.inputs;
  let wb = weightBehind(index, b);
  let weightInput = 1;
  if (typeof wb === 'string') {
    // MatMul(W, X): the constant on the left, output channels are W's rows.
    const wa = weightBehind(index, a);
    if (typeof wa === 'string') return wb;
    wb = wa;
    weightInput = 0;
  }
  const w = wb;
  const shape = w.effectiveShape;
  if (shape.length !== 2) return `constant ${weightInput === 1 ? 'B' : 'A'} is ${shape.length}-D ([${shape.join(', ')}]), not a 2-D weight`;
  if (weightInput === 1) {
    // B is [K, N] = [in, out]: stored as is it needs a transpose; behind a Transpose it is already [out, in].
    const [k, n] = shape;
    const bias = matmulBiasAdd(index, node, n);
    return makeLayer(
      ref,
      'MatMul',
      w,
      { outChannels: n, inChannels: k, outAxis: w.transposed ? 0 : 1, needsRearrange: !w.transposed, weightInput, activation: a, activationChannelAxis: -1 },
      bias ? { bias: bias.bias, biasAdd: bias.add } : {},
    );
  }
  const [m, k] = shape;
  return makeLayer(ref, 'MatMul', w, {
    outChannels: m, inChannels: k, outAxis: w.transposed ? 1 : 0, needsRearrange: w.transposed, weightInput, activation: b, activationChannelAxis: -2,
  });
}

function gemmLayer(index: GraphIndex, ref: NodeRef): QuantizableLayer | string {
  const node = ref.node;
  const w = weightBehind(index, node.inputs[1]);
  if (typeof w === 'string') return w;
  if (w.effectiveShape.length !== 2) return `B is ${w.effectiveShape.length}-D, Gemm needs 2-D`;
  const transB = attrInt(node, 'transB', 0) !== 0;
  const transA = attrInt(node, 'transA', 0) !== 0;
  // Gemm computes A' x B' with B' = transB ? B^T : B, B' being [K, N]. Stored [N, K] (transB) is [out, in].
  const storedIsOutIn = transB !== w.transposed;
  const [r0, r1] = w.effectiveShape;
  const [k, n] = transB ? [r1, r0] : [r0, r1];
  const bias = node.inputs[2] || undefined;
  return makeLayer(
    ref,
    'Gemm',
    w,
    { outChannels: n, inChannels: k, outAxis: storedIsOutIn ? 0 : 1, needsRearrange: !storedIsOutIn, weightInput: 1, activation: node.inputs[0], activationChannelAxis: transA ? -2 : -1 },
    bias ? { bias } : {},
  );
}

function convLayer(index: GraphIndex, ref: NodeRef, op: 'Conv' | 'ConvTranspose'): QuantizableLayer | string {
  const node = ref.node;
  const w = weightBehind(index, node.inputs[1]);
  if (typeof w === 'string') return w;
  if (w.path.some((p) => p.node.opType === 'Transpose')) return 'convolution weight passes through a Transpose';
  const shape = w.effectiveShape;
  if (shape.length < 3) return `weight is ${shape.length}-D, a convolution needs at least 3-D`;
  const groups = attrInt(node, 'group', 1);
  const kernel = product(shape.slice(2));
  const bias = node.inputs[2] || undefined;
  if (op === 'Conv') {
    // [O, I/g, k...]: rows are output channels, the trailing axes flatten into the row.
    return makeLayer(
      ref,
      'Conv',
      w,
      { outChannels: shape[0], inChannels: shape[1] * kernel, outAxis: 0, needsRearrange: false, weightInput: 1, activation: node.inputs[0], activationChannelAxis: 1 },
      { bias, groups, depthwise: groups > 1 && shape[1] === 1 },
    );
  }
  // ConvTranspose [I, O/g, k...]: output channel o = group * O/g + oc reads W[group * I/g + ic, oc, k...].
  if (shape[0] % groups !== 0) return `ConvTranspose weight dim 0 (${shape[0]}) is not a multiple of group ${groups}`;
  return makeLayer(
    ref,
    'ConvTranspose',
    w,
    { outChannels: shape[1] * groups, inChannels: (shape[0] / groups) * kernel, outAxis: 1, needsRearrange: true, weightInput: 1, activation: node.inputs[0], activationChannelAxis: 1 },
    { bias, groups, depthwise: groups > 1 && shape[0] / groups === 1 && shape[1] === 1 },
  );
}

const QUANTIZABLE_OPS = new Set<string>(['MatMul', 'Gemm', 'Conv', 'ConvTranspose']);

export function findQuantizableLayers(index: GraphIndex): { layers: QuantizableLayer[]; skipped: SkippedLayer[] } {
  const layers: QuantizableLayer[] = [];
  const skipped: SkippedLayer[] = [];
  index.graph.nodes.forEach((node, i) => {
    if (!QUANTIZABLE_OPS.has(node.opType) || !isStandardDomain(node.domain)) return;
    const ref = { node, index: i };
    const op = node.opType as QuantizableOp;
    const result = op === 'MatMul' ? matmulLayer(index, ref) : op === 'Gemm' ? gemmLayer(index, ref) : convLayer(index, ref, op);
    if (typeof result === 'string') skipped.push({ name: nodeLabel(ref), nodeIndex: i, op, reason: result });
    else layers.push(result);
  });
  const byWeight = new Map<string, QuantizableLayer[]>();
  for (const l of layers) byWeight.set(l.weight, [...(byWeight.get(l.weight) ?? []), l]);
  for (const group of byWeight.values()) {
    if (group.length < 2) continue;
    for (const l of group) l.sharesWeightWith = group.filter((o) => o !== l).map((o) => o.name);
  }
  return { layers, skipped };
}

// ---------------------------------------------------------------------------------------------
// Norms

/** A norm found in the graph, whether or not it feeds a linear. */
export interface NormMatch {
  kind: NormKind;
  form: string;
  nodes: NodeRef[];
  input: string;
  output: string;
  gamma: string;
  beta?: string;
  channels: number;
}

/** The single reader of `tensor` with op in `ops`, if `tensor` has exactly one reader. */
function onlyReader(index: GraphIndex, tensor: string, ops: readonly string[]): (NodeRef & { inputIndex: number }) | undefined {
  const readers = consumersOf(index, tensor).filter((c) => c.node.opType !== 'Shape' && c.node.opType !== 'Size');
  if (readers.length !== 1) return undefined;
  const r = readers[0];
  return ops.includes(r.node.opType) && isStandardDomain(r.node.domain) ? r : undefined;
}

function producerOf(index: GraphIndex, tensor: string, ops: readonly string[]): NodeRef | undefined {
  const p = index.producer.get(tensor);
  return p && ops.includes(p.node.opType) && isStandardDomain(p.node.domain) ? p : undefined;
}

/** The other input of a binary node, given one of its inputs. */
function otherInput(node: OnnxNode, tensor: string): string | undefined {
  if (node.inputs.length !== 2) return undefined;
  if (node.inputs[0] === tensor) return node.inputs[1];
  if (node.inputs[1] === tensor) return node.inputs[0];
  return undefined;
}

/** Input of a squaring node: Pow(x, 2) or Mul(x, x). */
function squaredInput(index: GraphIndex, tensor: string): { x: string; node: NodeRef } | undefined {
  const p = producerOf(index, tensor, ['Pow', 'Mul']);
  if (!p) return undefined;
  const [a, b] = p.node.inputs;
  if (p.node.opType === 'Pow' && constantScalar(index, b) === 2) return { x: a, node: p };
  if (p.node.opType === 'Mul' && a === b) return { x: a, node: p };
  return undefined;
}

/**
 * True when ReduceMean reduces only the last axis (axes attribute, or input from opset 18): -1, or
 * rank - 1 when value_info declares the rank of one of `sameRank` (tensors of the input's rank: inside a
 * norm every tensor up to the reductions has the rank of the norm input).
 */
function reducesLastAxis(index: GraphIndex, node: OnnxNode, sameRank: readonly string[]): boolean {
  const axes = attrInts(node, 'axes') ?? (node.inputs[1] ? constantIntegers(index, node.inputs[1]) : undefined);
  if (!axes || axes.length !== 1) return false;
  if (axes[0] === -1) return true;
  const rank = sameRank.map((t) => index.shapes.get(t)?.length).find((r) => r !== undefined);
  return rank !== undefined && axes[0] === rank - 1;
}

/**
 * A decomposed LayerNorm or RMSNorm ending at the variance ReduceMean `v`:
 *   LayerNorm: m = ReduceMean(x); c = Sub(x, m); ReduceMean(Pow(c, 2)) = v; n = c / Sqrt(v + eps); y = n * gamma (+ beta)
 *   RMSNorm:   c = x;                             ReduceMean(Pow(c, 2)) = v; n = c / Sqrt(v + eps); y = n * gamma
 * The division may be Mul by Reciprocal(Sqrt), by Rsqrt, or by Pow(., -0.5); a Cast may sit before the gamma Mul.
 */
function matchDecomposedNorm(index: GraphIndex, v: NodeRef): NormMatch | undefined {
  const sq = squaredInput(index, v.node.inputs[0]);
  if (!sq) return undefined;
  const c = sq.x;
  const nodes: NodeRef[] = [sq.node, v];

  // v + eps
  const addEps = onlyReader(index, v.node.outputs[0], ['Add']);
  if (!addEps || constantScalar(index, otherInput(addEps.node, v.node.outputs[0]) ?? '') === undefined) return undefined;
  nodes.push(addEps);
  const varEps = addEps.node.outputs[0];

  // n = c / sqrt(varEps), in one of its spellings
  let n: string | undefined;
  const step = onlyReader(index, varEps, ['Sqrt', 'Pow', 'Rsqrt']);
  if (!step) return undefined;
  nodes.push(step);
  const powExp = step.node.opType === 'Pow' ? constantScalar(index, step.node.inputs[1]) : undefined;
  if (step.node.opType === 'Sqrt' || powExp === 0.5) {
    const s = step.node.outputs[0];
    const div = onlyReader(index, s, ['Div', 'Reciprocal']);
    if (div?.node.opType === 'Div' && div.node.inputs[0] === c && div.node.inputs[1] === s) {
      nodes.push(div);
      n = div.node.outputs[0];
    } else if (div?.node.opType === 'Reciprocal') {
      const mul = onlyReader(index, div.node.outputs[0], ['Mul']);
      if (mul && otherInput(mul.node, div.node.outputs[0]) === c) {
        nodes.push(div, mul);
        n = mul.node.outputs[0];
      }
    }
  } else if (step.node.opType === 'Rsqrt' || powExp === -0.5) {
    const mul = onlyReader(index, step.node.outputs[0], ['Mul']);
    if (mul && otherInput(mul.node, step.node.outputs[0]) === c) {
      nodes.push(mul);
      n = mul.node.outputs[0];
    }
  }
  if (n === undefined) return undefined;

  // LayerNorm or RMSNorm: is c = x - mean(x)?
  let kind: NormKind = 'rmsnorm';
  let input = c;
  const sub = producerOf(index, c, ['Sub']);
  if (sub) {
    const mean = producerOf(index, sub.node.inputs[1], ['ReduceMean']);
    if (mean && mean.node.inputs[0] === sub.node.inputs[0] && reducesLastAxis(index, mean.node, [sub.node.inputs[0], c, v.node.inputs[0]])) {
      kind = 'layernorm';
      input = sub.node.inputs[0];
      nodes.unshift(mean, sub);
    }
  }
  if (!reducesLastAxis(index, v.node, [v.node.inputs[0], c, input])) return undefined;

  // Optional Cast, then y = n * gamma
  let cur = n;
  const cast = onlyReader(index, cur, ['Cast']);
  if (cast) {
    nodes.push(cast);
    cur = cast.node.outputs[0];
  }
  const mulGamma = onlyReader(index, cur, ['Mul']);
  const gamma = mulGamma ? otherInput(mulGamma.node, cur) : undefined;
  const gammaConst = gamma ? resolveConstant(index, gamma) : undefined;
  if (!mulGamma || !gamma || !gammaConst) return undefined;
  nodes.push(mulGamma);
  let output = mulGamma.node.outputs[0];
  const channels = constantElements(gammaConst.constant);
  let beta: string | undefined;
  if (kind === 'layernorm') {
    const addBeta = onlyReader(index, output, ['Add']);
    const b = addBeta ? otherInput(addBeta.node, output) : undefined;
    if (addBeta && b && resolveConstant(index, b)) {
      nodes.push(addBeta);
      beta = b;
      output = addBeta.node.outputs[0];
    }
  }
  return { kind, form: 'decomposed', nodes, input, output, gamma, beta, channels };
}

/** Fused norm ops: input positions of gamma and beta, and the norm kind. */
const FUSED_NORMS: Record<string, { kind: NormKind; gamma: number; beta?: number }> = {
  LayerNormalization: { kind: 'layernorm', gamma: 1, beta: 2 },
  SimplifiedLayerNormalization: { kind: 'rmsnorm', gamma: 1 },
  RMSNormalization: { kind: 'rmsnorm', gamma: 1 },
  SkipLayerNormalization: { kind: 'layernorm', gamma: 2, beta: 3 },
  SkipSimplifiedLayerNormalization: { kind: 'rmsnorm', gamma: 2 },
};

function matchFusedNorm(index: GraphIndex, ref: NodeRef): NormMatch | undefined {
  const spec = FUSED_NORMS[ref.node.opType];
  if (!spec) return undefined;
  const gamma = ref.node.inputs[spec.gamma];
  const g = gamma ? resolveConstant(index, gamma) : undefined;
  if (!g) return undefined;
  const beta = spec.beta !== undefined ? ref.node.inputs[spec.beta] || undefined : undefined;
  const out: NormMatch = {
    kind: spec.kind,
    form: ref.node.opType,
    nodes: [ref],
    input: ref.node.inputs[0],
    output: ref.node.outputs[0],
    gamma,
    channels: constantElements(g.constant),
  };
  if (beta) out.beta = beta;
  return out;
}

export function findNorms(index: GraphIndex): NormMatch[] {
  const norms: NormMatch[] = [];
  const used = new Set<OnnxNode>();
  index.graph.nodes.forEach((node, i) => {
    const ref = { node, index: i };
    let found: NormMatch | undefined;
    if (FUSED_NORMS[node.opType]) found = matchFusedNorm(index, ref);
    else if (node.opType === 'ReduceMean' && isStandardDomain(node.domain) && !used.has(node)) found = matchDecomposedNorm(index, ref);
    if (found && !found.nodes.some((r) => used.has(r.node))) {
      for (const r of found.nodes) used.add(r.node);
      norms.push(found);
    }
  });
  return norms;
}

/** Readers of a norm output, seen through Reshapes that keep the last axis (= channels). */
function normReaders(index: GraphIndex, tensor: string, channels: number, depth = 0): { via: string; reader: NodeRef & { inputIndex: number } }[] {
  const out: { via: string; reader: NodeRef & { inputIndex: number } }[] = [];
  for (const c of consumersOf(index, tensor)) {
    if (c.node.opType === 'Reshape' && isStandardDomain(c.node.domain) && c.inputIndex === 0 && depth < 2) {
      const shape = constantIntegers(index, c.node.inputs[1]);
      if (shape && shape[shape.length - 1] === channels) {
        out.push(...normReaders(index, c.node.outputs[0], channels, depth + 1));
        continue;
      }
    }
    out.push({ via: tensor, reader: c });
  }
  return out;
}

export function findNormLinearGroups(index: GraphIndex, layers: QuantizableLayer[], norms = findNorms(index)): NormLinearGroup[] {
  const byNode = new Map<number, QuantizableLayer>();
  for (const l of layers) byNode.set(l.nodeIndex, l);
  const groups: NormLinearGroup[] = [];
  for (const norm of norms) {
    const linears: string[] = [];
    const others: string[] = [];
    for (const { via, reader } of normReaders(index, norm.output, norm.channels)) {
      const op = reader.node.opType;
      if (op === 'Shape' || op === 'Size') continue;
      const layer = byNode.get(reader.index);
      const isLinear =
        layer !== undefined &&
        (layer.op === 'MatMul' || layer.op === 'Gemm') &&
        layer.activation === via &&
        layer.activationChannelAxis === -1 &&
        layer.inChannels === norm.channels;
      if (isLinear) linears.push(layer.name);
      else others.push(nodeLabel(reader));
    }
    if (linears.length === 0) continue;
    const sharedAffine = [norm.gamma, norm.beta].some((t) => t !== undefined && consumersOf(index, t).length > 1);
    groups.push({
      kind: norm.kind,
      form: norm.form,
      nodes: norm.nodes.map(nodeLabel),
      input: norm.input,
      output: norm.output,
      gamma: norm.gamma,
      ...(norm.beta ? { beta: norm.beta } : {}),
      channels: norm.channels,
      linears,
      otherConsumers: others,
      foldable: others.length === 0 && !index.graphOutputs.has(norm.output) && !sharedAffine,
    });
  }
  return groups;
}

// ---------------------------------------------------------------------------------------------
// Summary

const ALREADY_QUANTIZED = new Set([
  'QuantizeLinear', 'DequantizeLinear', 'DynamicQuantizeLinear', 'QLinearConv', 'QLinearMatMul', 'MatMulInteger',
  'ConvInteger', 'MatMulNBits', 'MatMulIntegerToFloat', 'DynamicQuantizeMatMul', 'QAttention', 'GatherBlockQuantized',
]);
const RECURRENT = new Set(['LSTM', 'GRU', 'RNN']);
const CONTROL_FLOW = new Set(['If', 'Loop', 'Scan']);
/** Smallest constant (elements, 2-D or more) counted as a weight an op carries. */
const WEIGHT_MIN_ELEMENTS = 1024;

function opKey(node: OnnxNode): string {
  return isStandardDomain(node.domain) ? node.opType : `${node.domain}:${node.opType}`;
}

function unsupportedOps(index: GraphIndex, layerNodes: Set<number>): UnsupportedOp[] {
  const found = new Map<string, UnsupportedOp>();
  const add = (op: string, reason: string): void => {
    const key = `${op}\u0000${reason}`;
    const u = found.get(key);
    if (u) u.count++;
    else found.set(key, { op, count: 1, reason });
  };
  index.graph.nodes.forEach((node, i) => {
    const op = opKey(node);
    if (ALREADY_QUANTIZED.has(node.opType)) return add(op, 'already quantized');
    if (CONTROL_FLOW.has(node.opType)) return add(op, 'control flow: subgraph bodies are not analysed');
    if (!isStandardDomain(node.domain) && !FUSED_NORMS[node.opType]) return add(op, `op from domain "${node.domain}": not quantized`);
    if (RECURRENT.has(node.opType)) return add(op, 'recurrent weights are not quantized');
    if (node.opType === 'BatchNormalization') return add(op, 'fold into the preceding convolution before quantizing');
    if (layerNodes.has(i) || node.opType === 'Constant') return;
    const carriesWeight = node.inputs.some((t) => {
      const c = t ? index.constants.get(t) : undefined;
      return c !== undefined && FLOAT_TYPES.has(c.tensor.dataType) && c.tensor.dims.length >= 2 && constantElements(c) >= WEIGHT_MIN_ELEMENTS;
    });
    if (carriesWeight) add(op, node.opType === 'Gather' ? 'embedding table (Gather) is not quantized' : 'has constant weights but is not a quantizable layer');
  });
  return [...found.values()];
}

function countSubgraphs(model: OnnxModel): number {
  let n = 0;
  for (const node of model.graph.nodes) for (const a of node.attributes) n += a.type === 'graph' ? 1 : a.type === 'graphs' ? a.value.length : 0;
  return n;
}

export function analyzeModel(model: OnnxModel): ModelAnalysis {
  const index = buildGraphIndex(model.graph);
  const { layers, skipped } = findQuantizableLayers(index);
  const norms = findNorms(index);
  const normGroups = findNormLinearGroups(index, layers, norms);

  const opHistogram: Record<string, number> = {};
  for (const n of model.graph.nodes) opHistogram[opKey(n)] = (opHistogram[opKey(n)] ?? 0) + 1;
  let totalParams = 0;
  let constantNodeCount = 0;
  for (const c of index.constants.values()) {
    if (c.source === 'constant-node') constantNodeCount++;
    if (FLOAT_TYPES.has(c.tensor.dataType)) totalParams += constantElements(c);
  }
  const weights = new Map<string, number>();
  const layersByOp: Record<string, number> = {};
  for (const l of layers) {
    weights.set(l.weight, l.params);
    layersByOp[l.op] = (layersByOp[l.op] ?? 0) + 1;
  }
  let quantizableParams = 0;
  for (const p of weights.values()) quantizableParams += p;

  const opset = model.opsetImports.filter((o) => isStandardDomain(o.domain)).map((o) => o.version);
  return {
    layers,
    skipped,
    normGroups,
    summary: {
      irVersion: model.irVersion,
      opset: opset.length ? Math.max(...opset) : undefined,
      producer: [model.producerName, model.producerVersion].filter(Boolean).join(' '),
      nodeCount: model.graph.nodes.length,
      initializerCount: model.graph.initializers.length,
      constantNodeCount,
      opHistogram,
      totalParams,
      quantizableParams,
      layersByOp,
      normGroupCount: normGroups.length,
      normCount: norms.length,
      unsupported: unsupportedOps(index, new Set(layers.map((l) => l.nodeIndex))),
      subgraphCount: countSubgraphs(model),
      localFunctionCount: model.functions.length,
    },
  };
}
