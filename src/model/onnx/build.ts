/**
 * Small constructors for hand-made graphs and graph edits (tests, QDQ / MatMulNBits export): nodes,
 * attributes, value infos, graphs and models as plain OnnxModel objects ready for serializeModel.
 */
import type { OnnxAttribute, OnnxDataType, OnnxDim, OnnxGraph, OnnxModel, OnnxNode, OnnxTensor, OnnxValueInfo, OperatorSetId } from './model.ts';

export const attr = {
  int: (name: string, value: number | bigint): OnnxAttribute => ({ name, type: 'int', value }),
  float: (name: string, value: number): OnnxAttribute => ({ name, type: 'float', value }),
  string: (name: string, value: string): OnnxAttribute => ({ name, type: 'string', value }),
  ints: (name: string, value: (number | bigint)[]): OnnxAttribute => ({ name, type: 'ints', value }),
  floats: (name: string, value: number[]): OnnxAttribute => ({ name, type: 'floats', value }),
  strings: (name: string, value: string[]): OnnxAttribute => ({ name, type: 'strings', value }),
  tensor: (name: string, value: OnnxTensor): OnnxAttribute => ({ name, type: 'tensor', value }),
  graph: (name: string, value: OnnxGraph): OnnxAttribute => ({ name, type: 'graph', value }),
};

export function makeNode(
  opType: string,
  inputs: string[],
  outputs: string[],
  attributes: OnnxAttribute[] = [],
  options: { name?: string; domain?: string } = {},
): OnnxNode {
  return { name: options.name ?? '', opType, domain: options.domain ?? '', inputs, outputs, attributes };
}

/** A Constant node whose output `tensor.name` holds `tensor` (the form paddle2onnx writes weights in). */
export function makeConstantNode(tensor: OnnxTensor, name = ''): OnnxNode {
  return makeNode('Constant', [], [tensor.name], [attr.tensor('value', tensor)], { name });
}

export function makeValueInfo(name: string, elemType: OnnxDataType = 'float32', shape?: OnnxDim[]): OnnxValueInfo {
  return { name, type: shape ? { kind: 'tensor', elemType, shape } : { kind: 'tensor', elemType } };
}

export function makeGraph(parts: Partial<OnnxGraph> & Pick<OnnxGraph, 'nodes'>): OnnxGraph {
  return {
    name: parts.name ?? 'graph',
    nodes: parts.nodes,
    initializers: parts.initializers ?? [],
    inputs: parts.inputs ?? [],
    outputs: parts.outputs ?? [],
    valueInfo: parts.valueInfo ?? [],
    ...(parts.quantizationAnnotation ? { quantizationAnnotation: parts.quantizationAnnotation } : {}),
    ...(parts.metadataProps ? { metadataProps: parts.metadataProps } : {}),
  };
}

/** A model importing the default opset `opset` (and any `extraOpsets`, e.g. com.microsoft 1). */
export function makeModel(graph: OnnxGraph, options: { opset?: number; irVersion?: number; extraOpsets?: OperatorSetId[]; producerName?: string } = {}): OnnxModel {
  return {
    irVersion: options.irVersion ?? 8,
    opsetImports: [{ domain: '', version: options.opset ?? 17 }, ...(options.extraOpsets ?? [])],
    producerName: options.producerName ?? 'QuantLab',
    producerVersion: '',
    domain: '',
    modelVersion: 0,
    docString: '',
    graph,
    metadataProps: [],
    functions: [],
  };
}
