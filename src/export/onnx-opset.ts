/**
 * Raising a model's default-domain opset for export (TensorRT per-channel DequantizeLinear needs opset
 * >= 13, blocked INT4 DequantizeLinear opset 21), keeping every node's meaning. For each op this table
 * lists the opset versions at which its definition changed in a way that alters what an existing node
 * computes or how it is encoded (onnx/docs/Changelog.md); an op whose node falls between its model
 * opset and the target at such a version is either rewritten (Clip 11, Slice 10, Squeeze / Unsqueeze /
 * Split 13, Reduce* axes 18 / ReduceSum 13, Pad 11, Dropout 12, Softmax-family 13: the last axis kept,
 * any other written out as Flatten -> op -> Reshape, the pre-13 definition) or refused, and ops missing
 * from the table are refused as unknown: the caller gets the names
 * instead of a silently different model. Only the top-level graph is handled; a model with subgraphs or
 * local functions is refused. Clip bounds and Pad values moved to inputs are written as float32 (a float16
 * model then fails onnxruntime's type check at load rather than computing something else).
 */
import { attr, makeNode } from '../model/onnx/build.ts';
import { opsetVersion, type OnnxAttribute, type OnnxModel, type OnnxNode, type OnnxTensor } from '../model/onnx/model.ts';
import { makeTensor } from '../model/onnx/tensor-data.ts';
import { nameAllocator, OnnxExportError } from './onnx-export-common.ts';

/** Opset versions at which an op's meaning (or node encoding) changed; [] = unchanged since opset 7. */
const BREAKING: Record<string, number[]> = {
  // Elementwise and activations: multidirectional broadcasting since 7, later versions add types only.
  Add: [], Sub: [], Mul: [], Div: [], Pow: [], Sqrt: [], Exp: [], Log: [], Neg: [], Abs: [], Reciprocal: [], Erf: [],
  Relu: [], Sigmoid: [], HardSigmoid: [], HardSwish: [], Tanh: [], LeakyRelu: [], Elu: [], Selu: [], PRelu: [],
  Softplus: [], Softsign: [], Floor: [], Ceil: [], Round: [], Sign: [], Sin: [], Cos: [], Not: [], And: [], Or: [], Xor: [],
  Equal: [], Greater: [], Less: [], GreaterOrEqual: [], LessOrEqual: [], Where: [], Min: [], Max: [], Mean: [], Sum: [],
  // Shape ops: later versions add optional attributes whose defaults keep the old behaviour.
  Identity: [], Constant: [], Cast: [], Shape: [], Size: [], Reshape: [5], Transpose: [], Concat: [], Flatten: [],
  Gather: [], GatherElements: [], Expand: [], Tile: [6], ConstantOfShape: [], Range: [], Unsqueeze: [13], Squeeze: [13],
  Slice: [10], Split: [13], Pad: [11],
  // Linear ops and pooling.
  MatMul: [], Gemm: [], Conv: [], ConvTranspose: [], BatchNormalization: [9], InstanceNormalization: [],
  AveragePool: [], MaxPool: [], GlobalAveragePool: [], GlobalMaxPool: [], LpNormalization: [],
  Clip: [11], Dropout: [12], Softmax: [13], LogSoftmax: [13], Hardmax: [13], Resize: [11], Upsample: [10],
  ReduceMean: [18], ReduceMax: [18], ReduceMin: [18], ReduceProd: [18], ReduceL1: [18], ReduceL2: [18],
  ReduceLogSum: [18], ReduceLogSumExp: [18], ReduceSumSquare: [18], ReduceSum: [13],
  ArgMax: [], ArgMin: [], TopK: [10], Einsum: [], LayerNormalization: [], Gelu: [], CumSum: [], OneHot: [],
  QuantizeLinear: [], DequantizeLinear: [], Trilu: [], ScatterND: [], GatherND: [], NonZero: [], Mod: [],
  DepthToSpace: [], SpaceToDepth: [], InstanceNorm: [], MatMulInteger: [], ConvInteger: [],
};

/** Ops with a rewrite below: breaking versions they can cross. */
const REWRITABLE = new Set(['Clip', 'Slice', 'Squeeze', 'Unsqueeze', 'Split', 'Pad', 'Dropout', 'ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceSumSquare', 'ReduceSum', 'Softmax', 'LogSoftmax', 'Hardmax']);

export interface OpsetUpgrade {
  model: OnnxModel;
  /** What was rewritten, e.g. "Clip: 28 nodes rewritten for opset 13". */
  notes: string[];
  /** For each node index of the original graph, that node in the new graph (rewrites add nodes, so indices shift). */
  nodeAt: OnnxNode[];
}

function getAttr(n: OnnxNode, name: string): OnnxAttribute | undefined {
  return n.attributes.find((a) => a.name === name);
}

function withoutAttrs(n: OnnxNode, names: string[]): OnnxAttribute[] {
  return n.attributes.filter((a) => !names.includes(a.name));
}

function ints(a: OnnxAttribute | undefined): number[] | undefined {
  return a && a.type === 'ints' ? a.value.map(Number) : undefined;
}

/**
 * The model at default-domain opset `target` (>= its own), nodes rewritten where their encoding changed.
 * Throws OnnxExportError naming every op (and node) that would change meaning and has no rewrite.
 */
export function upgradeOpset(model: OnnxModel, target: number, rank?: (tensor: string) => number | undefined): OpsetUpgrade {
  const from = opsetVersion(model) ?? 1;
  if (from >= target) return { model, notes: [], nodeAt: model.graph.nodes };
  if (from < 7) throw new OnnxExportError(`opset ${from} predates broadcasting (opset 7); the exporter raises opsets 7 and newer only`);
  const g = model.graph;
  if (model.functions.length) throw new OnnxExportError(`the model has ${model.functions.length} local functions, which the opset upgrade does not rewrite`);
  const withGraphs = g.nodes.filter((n) => n.attributes.some((a) => a.type === 'graph' || a.type === 'graphs'));
  if (withGraphs.length) throw new OnnxExportError(`opset ${from} -> ${target}: subgraphs (${withGraphs.map((n) => n.opType).join(', ')}) are not rewritten`);
  const problems = new Map<string, string>();
  for (const n of g.nodes) {
    if (n.domain !== '' && n.domain !== 'ai.onnx') continue;
    const b = BREAKING[n.opType];
    if (!b) {
      problems.set(n.opType, `${n.opType} is not in the exporter's table of operator changes`);
      continue;
    }
    const crossed = b.filter((v) => v > from && v <= target);
    if (crossed.length && !REWRITABLE.has(n.opType)) problems.set(n.opType, `${n.opType} changed at opset ${crossed.join(', ')}`);
  }
  if (problems.size) {
    throw new OnnxExportError(`raising opset ${from} -> ${target} would change these ops, which the exporter cannot rewrite: ${[...problems.values()].join('; ')}`);
  }
  const fresh = nameAllocator(model);
  const inits: OnnxTensor[] = [];
  const counts = new Map<string, number>();
  const extra = new Map<OnnxNode, OnnxNode[]>();
  const i64 = (base: string, values: number[]): string => {
    const name = fresh(base);
    inits.push(makeTensor(name, [values.length], BigInt64Array.from(values, (v) => BigInt(v))));
    return name;
  };
  const nodes = g.nodes.map((n): OnnxNode => {
    if (n.domain !== '' && n.domain !== 'ai.onnx') return n;
    const crosses = (v: number) => from < v && target >= v;
    const base = (n.name || n.outputs[0] || n.opType).replace(/[^A-Za-z0-9_.]/g, '_');
    const done = (): void => void counts.set(n.opType, (counts.get(n.opType) ?? 0) + 1);
    switch (n.opType) {
      case 'Clip': {
        if (!crosses(11)) return n;
        const lo = getAttr(n, 'min');
        const hi = getAttr(n, 'max');
        const inputs = [n.inputs[0], '', ''];
        if (lo && lo.type === 'float') {
          inputs[1] = fresh(`${base}_min`);
          inits.push(makeTensor(inputs[1], [], Float32Array.of(lo.value)));
        }
        if (hi && hi.type === 'float') {
          inputs[2] = fresh(`${base}_max`);
          inits.push(makeTensor(inputs[2], [], Float32Array.of(hi.value)));
        }
        while (inputs.length > 1 && inputs[inputs.length - 1] === '') inputs.pop();
        done();
        return { ...n, inputs, attributes: withoutAttrs(n, ['min', 'max']) };
      }
      case 'Slice': {
        if (!crosses(10)) return n;
        const starts = ints(getAttr(n, 'starts')) ?? [];
        const ends = ints(getAttr(n, 'ends')) ?? [];
        const axes = ints(getAttr(n, 'axes'));
        const inputs = [n.inputs[0], i64(`${base}_starts`, starts), i64(`${base}_ends`, ends)];
        if (axes) inputs.push(i64(`${base}_axes`, axes));
        done();
        return { ...n, inputs, attributes: withoutAttrs(n, ['starts', 'ends', 'axes']) };
      }
      case 'Squeeze': case 'Unsqueeze': case 'ReduceSum':
      case 'ReduceMean': case 'ReduceMax': case 'ReduceMin': case 'ReduceProd': case 'ReduceL1': case 'ReduceL2':
      case 'ReduceLogSum': case 'ReduceLogSumExp': case 'ReduceSumSquare': {
        const at = n.opType === 'Squeeze' || n.opType === 'Unsqueeze' || n.opType === 'ReduceSum' ? 13 : 18;
        if (!crosses(at)) return n;
        const axes = ints(getAttr(n, 'axes'));
        done();
        return { ...n, inputs: axes ? [n.inputs[0], i64(`${base}_axes`, axes)] : [n.inputs[0]], attributes: withoutAttrs(n, ['axes']) };
      }
      case 'Split': {
        if (!crosses(13)) return n;
        const split = ints(getAttr(n, 'split'));
        done();
        return { ...n, inputs: split ? [n.inputs[0], i64(`${base}_split`, split)] : [n.inputs[0]], attributes: withoutAttrs(n, ['split']) };
      }
      case 'Pad': {
        if (!crosses(11)) return n;
        const pads = ints(getAttr(n, 'pads')) ?? [];
        const v = getAttr(n, 'value');
        const inputs = [n.inputs[0], i64(`${base}_pads`, pads)];
        if (v && v.type === 'float' && v.value !== 0) {
          const c = fresh(`${base}_value`);
          inits.push(makeTensor(c, [], Float32Array.of(v.value)));
          inputs.push(c);
        }
        done();
        return { ...n, inputs, attributes: withoutAttrs(n, ['pads', 'value']) };
      }
      case 'Dropout': {
        if (!crosses(12)) return n;
        done();
        return { ...n, attributes: withoutAttrs(n, ['ratio', 'is_test']) };
      }
      case 'Softmax': case 'LogSoftmax': case 'Hardmax': {
        if (!crosses(13)) return n;
        done();
        const a = getAttr(n, 'axis');
        const axis = a && a.type === 'int' ? Number(a.value) : 1;
        const r = rank?.(n.inputs[0]);
        if (axis === -1 || (r !== undefined && (axis === r - 1 || axis === -1))) return { ...n, attributes: [...withoutAttrs(n, ['axis']), attr.int('axis', -1)] };
        // Before 13 the input was coerced to 2-D [prod(dims[:axis]), prod(dims[axis:])] and normalized per row:
        // written out as Flatten -> op(axis -1) -> Reshape to the input's shape, exactly that at any rank.
        const flat = fresh(`${base}_flattened`);
        const res = fresh(`${base}_2d`);
        const shape = fresh(`${base}_input_shape`);
        const list: OnnxNode[] = [
          makeNode('Flatten', [n.inputs[0]], [flat], [attr.int('axis', axis)], { name: fresh(`${base}_Flatten`) }),
          { ...n, inputs: [flat], outputs: [res], attributes: [...withoutAttrs(n, ['axis']), attr.int('axis', -1)] },
          makeNode('Shape', [n.inputs[0]], [shape], [], { name: fresh(`${base}_Shape`) }),
          makeNode('Reshape', [res, shape], [n.outputs[0]], [], { name: fresh(`${base}_Reshape`) }),
        ];
        extra.set(list[1], list);
        return list[1];
      }
      default:
        return n;
    }
  });
  const rewritten = nodes.flatMap((n) => extra.get(n) ?? [n]);
  const notes = [...counts].map(([op, k]) => `${op}: ${k} node${k === 1 ? '' : 's'} rewritten for opset ${target}`);
  notes.unshift(`default opset raised ${from} -> ${target}`);
  const opsetImports = model.opsetImports.map((o) => (o.domain === '' || o.domain === 'ai.onnx' ? { ...o, version: target } : o));
  return {
    model: { ...model, irVersion: Math.max(model.irVersion, target >= 21 ? 10 : target >= 13 ? 7 : model.irVersion), opsetImports, graph: { ...g, nodes: rewritten, initializers: [...g.initializers, ...inits] } },
    notes,
    nodeAt: nodes,
  };
}
