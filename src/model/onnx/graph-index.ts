/**
 * Lookup tables over one ONNX graph for pattern matching: who produces a tensor, who reads it, and which
 * tensors are constants. Constants are initializers and the outputs of Constant nodes: many exporters
 * (paddle2onnx among them: all three PP-OCRv4 models have no initializers at all) store every weight as a
 * Constant node, so analysis must treat both alike.
 */
import { dataTypeBits, type OnnxDim, type OnnxGraph, type OnnxNode, type OnnxTensor } from './model.ts';
import { makeTensor, tensorToFloat32, tensorToIntegers } from './tensor-data.ts';

export interface NodeRef {
  node: OnnxNode;
  /** Position in graph.nodes. */
  index: number;
}

export interface ConsumerRef extends NodeRef {
  /** Which input of the node reads the tensor. */
  inputIndex: number;
}

export interface ConstantTensor {
  /** The tensor, named after the graph tensor it defines (a Constant node's output name). */
  tensor: OnnxTensor;
  source: 'initializer' | 'constant-node';
  /** The Constant node, for source 'constant-node'. */
  node?: NodeRef;
}

export interface GraphIndex {
  graph: OnnxGraph;
  producer: Map<string, NodeRef & { outputIndex: number }>;
  consumers: Map<string, ConsumerRef[]>;
  constants: Map<string, ConstantTensor>;
  graphInputs: Set<string>;
  graphOutputs: Set<string>;
  /** Declared shapes (graph inputs, outputs, value_info) of tensors whose rank is known. */
  shapes: Map<string, OnnxDim[]>;
}

/**
 * The tensor a Constant node defines (opset 1-21 attributes value, value_float(s), value_int(s)), named
 * after its output; undefined for string and sparse constants.
 */
export function constantNodeTensor(node: OnnxNode): OnnxTensor | undefined {
  const name = node.outputs[0] ?? '';
  for (const a of node.attributes) {
    switch (a.name) {
      case 'value':
        return a.type === 'tensor' ? { ...a.value, name } : undefined;
      case 'value_float':
        return a.type === 'float' ? makeTensor(name, [], Float32Array.of(a.value)) : undefined;
      case 'value_floats':
        return a.type === 'floats' ? makeTensor(name, [a.value.length], Float32Array.from(a.value)) : undefined;
      case 'value_int':
        return a.type === 'int' ? makeTensor(name, [], BigInt64Array.of(BigInt(a.value))) : undefined;
      case 'value_ints':
        return a.type === 'ints' ? makeTensor(name, [a.value.length], BigInt64Array.from(a.value, (v) => BigInt(v))) : undefined;
    }
  }
  return undefined;
}

export function buildGraphIndex(graph: OnnxGraph): GraphIndex {
  const producer = new Map<string, NodeRef & { outputIndex: number }>();
  const consumers = new Map<string, ConsumerRef[]>();
  const constants = new Map<string, ConstantTensor>();
  for (const t of graph.initializers) constants.set(t.name, { tensor: t, source: 'initializer' });
  graph.nodes.forEach((node, index) => {
    node.outputs.forEach((o, outputIndex) => {
      if (o) producer.set(o, { node, index, outputIndex });
    });
    node.inputs.forEach((i, inputIndex) => {
      if (!i) return;
      const list = consumers.get(i);
      if (list) list.push({ node, index, inputIndex });
      else consumers.set(i, [{ node, index, inputIndex }]);
    });
    if (node.opType === 'Constant' && isStandardDomain(node.domain)) {
      const t = constantNodeTensor(node);
      if (t) constants.set(t.name, { tensor: t, source: 'constant-node', node: { node, index } });
    }
  });
  const shapes = new Map<string, OnnxDim[]>();
  for (const v of [...graph.inputs, ...graph.outputs, ...graph.valueInfo]) {
    if (v.type?.kind === 'tensor' && v.type.shape) shapes.set(v.name, v.type.shape);
  }
  return {
    graph,
    producer,
    consumers,
    constants,
    graphInputs: new Set(graph.inputs.map((v) => v.name)),
    graphOutputs: new Set(graph.outputs.map((v) => v.name)),
    shapes,
  };
}

export function isStandardDomain(domain: string): boolean {
  return domain === '' || domain === 'ai.onnx';
}

/** Readers of `tensor` (empty when none). */
export function consumersOf(index: GraphIndex, tensor: string): ConsumerRef[] {
  return index.consumers.get(tensor) ?? [];
}

/** Element count of a constant's tensor. */
export function constantElements(c: ConstantTensor): number {
  return c.tensor.dims.reduce((a, b) => a * b, 1);
}

/** A constant scalar (or one-element tensor) as a number; undefined when `tensor` is not such a constant. */
export function constantScalar(index: GraphIndex, tensor: string): number | undefined {
  const c = index.constants.get(tensor);
  if (!c || constantElements(c) !== 1 || dataTypeBits(c.tensor.dataType) === 0) return undefined;
  try {
    return tensorToFloat32(c.tensor)[0];
  } catch {
    return undefined;
  }
}

/** A constant integer list (Reshape shapes, axes); undefined when not constant or not integers. */
export function constantIntegers(index: GraphIndex, tensor: string): number[] | undefined {
  const c = index.constants.get(tensor);
  if (!c) return undefined;
  try {
    return tensorToIntegers(c.tensor);
  } catch {
    return undefined;
  }
}

/** Ops a constant weight may pass through on its way to a layer without ceasing to be a constant weight. */
export const WEIGHT_PASS_THROUGH = new Set(['Identity', 'Cast', 'Transpose', 'DequantizeLinear']);

export interface ResolvedConstant {
  constant: ConstantTensor;
  /** Nodes from the stored constant to the tensor asked about, nearest the constant first. */
  path: NodeRef[];
}

/**
 * The stored constant behind `tensor`, following Identity / Cast / Transpose / DequantizeLinear chains
 * whose other inputs (scale, zero point) are constants too; undefined when `tensor` depends on anything
 * computed from graph inputs.
 */
export function resolveConstant(index: GraphIndex, tensor: string): ResolvedConstant | undefined {
  const path: NodeRef[] = [];
  let name = tensor;
  for (let depth = 0; depth < 16; depth++) {
    const c = index.constants.get(name);
    if (c) return { constant: c, path: path.reverse() };
    const p = index.producer.get(name);
    if (!p || !isStandardDomain(p.node.domain) || !WEIGHT_PASS_THROUGH.has(p.node.opType)) return undefined;
    const others = p.node.inputs.slice(1).filter((i) => i !== '');
    if (!others.every((i) => index.constants.has(i))) return undefined;
    path.push(p);
    name = p.node.inputs[0];
  }
  return undefined;
}

/** Integer attribute with a default; bigints (out of safe range) come back as numbers (clamped by Number()). */
export function attrInt(node: OnnxNode, name: string, fallback: number): number {
  const a = node.attributes.find((x) => x.name === name);
  return a && a.type === 'int' ? Number(a.value) : fallback;
}

export function attrInts(node: OnnxNode, name: string): number[] | undefined {
  const a = node.attributes.find((x) => x.name === name);
  return a && a.type === 'ints' ? a.value.map(Number) : undefined;
}

export function attrFloat(node: OnnxNode, name: string, fallback: number): number {
  const a = node.attributes.find((x) => x.name === name);
  return a && a.type === 'float' ? a.value : fallback;
}

/** Name to show for a node: its name, or `<op>#<index>` for unnamed nodes. */
export function nodeLabel(ref: NodeRef): string {
  return ref.node.name || `${ref.node.opType}#${ref.index}`;
}

/**
 * Moves Constant-node tensors into graph.initializers and deletes those nodes (tensor names unchanged),
 * the form onnxruntime's quantization tools and QDQ export expect. String and sparse constants stay.
 * Returns the number of constants moved.
 */
export function liftConstantsToInitializers(graph: OnnxGraph): number {
  const kept: OnnxNode[] = [];
  let moved = 0;
  const names = new Set(graph.initializers.map((t) => t.name));
  for (const node of graph.nodes) {
    const t = node.opType === 'Constant' && isStandardDomain(node.domain) && !names.has(node.outputs[0]) ? constantNodeTensor(node) : undefined;
    if (t && dataTypeBits(t.dataType) > 0) {
      graph.initializers.push(t);
      names.add(t.name);
      moved++;
    } else {
      kept.push(node);
    }
  }
  graph.nodes = kept;
  return moved;
}
