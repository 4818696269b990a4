/**
 * Weight-only low-bit ONNX export, two forms (REFERENCE.md section 5):
 *  - exportOnnxInt4Dq: opset 21 blocked DequantizeLinear on INT4 initializers, symmetric (the lab's
 *    s = amax / 7, codes in [-7, 7], zero point 0), the form TensorRT 10 reads for INT4 weight-only
 *    quantization: 2-D weights (MatMul / Gemm), one blocked axis (the input-channel axis), whole blocks,
 *    an even last dimension (two INT4 values per byte). Layers outside those rules stay FP32 with the
 *    reason. ONNX INT4 tensors (TensorProto INT4 = 22) pack two values per byte, the first in the low nibble.
 *  - exportMatMulNBits: onnxruntime's com.microsoft MatMulNBits (contrib_ops/cpu/quantization/
 *    matmul_nbits.cc; docs/ContribOperators.md) in place of MatMul / Gemm with a constant weight: B uint8
 *    [N, k_blocks, block * bits / 8] packed along K, low nibble first; scales float32 [N * k_blocks];
 *    zero_points uint8 [N * ceil(k_blocks * bits / 8)] packed the same way (asymmetric), absent for
 *    symmetric codes (stored as q + 2^(bits-1), the default zero point). Dequantization (q - z) * s is
 *    the lab's asymmetric quantizer exactly, so the codes are the lab's.
 */
import type { QuantizableLayer } from '../model/onnx/analyze.ts';
import { attr, makeNode } from '../model/onnx/build.ts';
import { attrFloat, attrInt } from '../model/onnx/graph-index.ts';
import { opsetVersion, type OnnxModel, type OnnxNode, type OnnxTensor } from '../model/onnx/model.ts';
import { serializeModel } from '../model/onnx/serialize.ts';
import { makeTensor } from '../model/onnx/tensor-data.ts';
import { outInToWeight } from '../model/onnx/weight-view.ts';
import type { OnnxModelHandle } from '../model/workspace.ts';
import { replaceConstants } from '../smooth/fold-onnx.ts';
import {
  checkLayerNames,
  commonSkipReason,
  labQuantize,
  layerWeight,
  nameAllocator,
  OnnxExportError,
  type LabQuantized,
  type OnnxExportLayerEntry,
  type OnnxExportResult,
} from './onnx-export-common.ts';
import { upgradeOpset } from './onnx-opset.ts';

export { OnnxExportError };

/** Blocked DequantizeLinear (block_size attribute) and the INT4 type arrive in opset 21. */
export const INT4_DQ_OPSET = 21;

/** Packs signed or unsigned 4-bit values two per byte, element 2i in the low nibble (ONNX INT4/UINT4, MatMulNBits). */
export function packNibbles(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(Math.ceil(values.length / 2));
  for (let i = 0; i < values.length; i++) out[i >> 1] |= (values[i] & 0xf) << ((i & 1) * 4);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// INT4 blocked DequantizeLinear (TensorRT)

export interface OnnxInt4DqOptions {
  /** Block (group) size along the input channels; a positive integer (TensorRT: 32, 64, 128 are usual). */
  blockSize: number;
  layers?: readonly string[];
  /** Constants folded in before quantizing (AWQ / SmoothQuant scales). */
  folded?: ReadonlyMap<string, OnnxTensor>;
}

export interface OnnxInt4LayerEntry extends OnnxExportLayerEntry {
  /** Blocked axis of the stored weight and the scale tensor's dims. */
  axis?: number;
  scaleDims?: number[];
}

/** Why TensorRT's INT4 blocked quantization cannot take this layer, or undefined. */
export function int4DqSkipReason(l: QuantizableLayer, blockSize: number): string | undefined {
  if (l.op !== 'MatMul' && l.op !== 'Gemm') return `${l.op}: TensorRT INT4 block quantization takes the 2-D weights of MatMul / Gemm only`;
  if (l.weightShape.length !== 2) return `its weight is ${l.weightShape.length}-D; INT4 block quantization needs 2-D`;
  const last = l.weightShape[1];
  if (last % 2 !== 0) return `its weight [${l.weightShape.join(', ')}] has an odd last dimension (${last}): TensorRT needs an even last dimension for INT4`;
  if (l.inChannels % blockSize !== 0) return `its ${l.inChannels} input channels are not a multiple of block size ${blockSize}: TensorRT's blocked DequantizeLinear needs whole blocks`;
  return undefined;
}

/**
 * Exports `h` with INT4 symmetric blocked weights (opset 21 DequantizeLinear, axis = the stored weight's
 * input-channel axis, block_size = blockSize, float32 scales of the weight's rank with that axis divided
 * by the block, INT4 zero points 0). Other layers and activations stay FP32.
 */
export async function exportOnnxInt4Dq(h: OnnxModelHandle, opts: OnnxInt4DqOptions): Promise<OnnxExportResult & { report: OnnxInt4LayerEntry[] }> {
  const bs = opts.blockSize;
  if (!(Number.isInteger(bs) && bs >= 2)) throw new OnnxExportError(`block size must be an integer >= 2, got ${bs}`);
  const wanted = checkLayerNames(h, opts.layers);
  const up = upgradeOpset(h.model, Math.max(INT4_DQ_OPSET, opsetVersion(h.model) ?? 1), (t) => h.index.shapes.get(t)?.length);
  let model = up.model;
  if (opts.folded?.size) model = replaceConstants(model, opts.folded);
  const fresh = nameAllocator(model);
  const report: OnnxInt4LayerEntry[] = h.analysis.skipped.filter((s) => !wanted || wanted.has(s.name)).map((s) => ({ layer: s.name, op: s.op, status: 'skipped', reason: s.reason }));
  const taken = new Map<string, string>();
  const dqNodes: OnnxNode[] = [];
  const inits: OnnxTensor[] = [];
  const done = new Set<string>();
  for (const l of h.analysis.layers) {
    if (wanted && !wanted.has(l.name)) continue;
    const entry: OnnxInt4LayerEntry = { layer: l.name, op: l.op, status: 'skipped', weight: l.weight };
    report.push(entry);
    const reason = commonSkipReason(h, l, taken) ?? int4DqSkipReason(l, bs);
    if (reason) {
      entry.reason = reason;
      continue;
    }
    taken.set(l.weight, l.name);
    const { tensor, outIn } = await layerWeight(h, l, opts.folded);
    const q = labQuantize(outIn, [l.outChannels, l.inChannels], { bits: 4, granularity: 'group', groupSize: bs, scheme: 'sym' });
    const stored = outInToWeight(l, Float32Array.from(q.codes));
    const blockAxis = 1 - l.outAxis;
    const kBlocks = l.inChannels / bs;
    const scaleDims = [...tensor.dims];
    scaleDims[blockAxis] = kBlocks;
    // Lab group g = o * kBlocks + kb; the scale tensor is [kBlocks, out] (axis 0 blocked) or [out, kBlocks].
    const scales = new Float32Array(l.outChannels * kBlocks);
    for (let o = 0; o < l.outChannels; o++) {
      for (let kb = 0; kb < kBlocks; kb++) scales[blockAxis === 0 ? kb * l.outChannels + o : o * kBlocks + kb] = q.qp.scale[o * kBlocks + kb];
    }
    const wq = fresh(`${l.weight}_int4`);
    const ws = fresh(`${l.weight}_scale`);
    const wz = fresh(`${l.weight}_zero_point`);
    inits.push(
      makeTensor(wq, tensor.dims, packNibbles(stored), 'int4'),
      makeTensor(ws, scaleDims, scales),
      makeTensor(wz, scaleDims, new Uint8Array(Math.ceil(scales.length / 2)), 'int4'),
    );
    dqNodes.push(makeNode('DequantizeLinear', [wq, ws, wz], [l.weight], [attr.int('axis', blockAxis), attr.int('block_size', bs)], { name: fresh(`${l.weight}_DequantizeLinear`) }));
    done.add(l.weight);
    Object.assign(entry, { status: 'quantized', axis: blockAxis, scaleDims });
  }
  const g = model.graph;
  const out: OnnxModel = {
    ...model,
    graph: {
      ...g,
      nodes: [...dqNodes, ...g.nodes.filter((n) => !(n.opType === 'Constant' && done.has(n.outputs[0])))],
      initializers: [...g.initializers.filter((t) => !done.has(t.name)), ...inits],
      inputs: g.inputs.filter((v) => !done.has(v.name)),
    },
  };
  if (done.size === 0) throw new OnnxExportError(`${h.name}: no layer can be exported as INT4: ${report.map((e) => `${e.layer}: ${e.reason}`).join('; ') || 'no quantizable layers'}`);
  return { bytes: serializeModel(out), model: out, report, notes: up.notes };
}

// ---------------------------------------------------------------------------------------------------
// MatMulNBits (onnxruntime)

export interface MatMulNBitsOptions {
  bits: 4 | 8;
  /** block_size: a power of two >= 16. */
  blockSize: number;
  /** 'asym' (default): unsigned codes with per-block zero points (RTN / AWQ style); 'sym': no zero points. */
  scheme?: 'asym' | 'sym';
  layers?: readonly string[];
  folded?: ReadonlyMap<string, OnnxTensor>;
  /**
   * Codes computed elsewhere (e.g. AWQ with its clip thresholds), by layer name: [out, in] codes, scales and
   * zero points of groups of `blockSize` with `bits` bits. Layers not in the map are quantized here (RTN).
   */
  quantized?: ReadonlyMap<string, LabQuantized>;
  /** MatMulNBits accuracy_level (default 0: A stays float32). */
  accuracyLevel?: number;
}

export interface MatMulNBitsLayerEntry extends OnnxExportLayerEntry {
  k?: number;
  n?: number;
  /** Tensors written: B, scales, zero points (absent for symmetric). */
  tensors?: { b: string; scales: string; zeroPoints?: string };
}

/** MatMulNBits inputs of one weight: packed B, scales, packed zero points (undefined for symmetric). */
export function packMatMulNBits(q: LabQuantized, n: number, k: number, bits: 4 | 8, blockSize: number): { b: Uint8Array; bDims: number[]; scales: Float32Array; zeroPoints?: Uint8Array } {
  const kBlocks = Math.ceil(k / blockSize);
  if (q.layout.numGroups !== n * kBlocks) throw new OnnxExportError(`codes have ${q.layout.numGroups} groups, [N=${n}, K=${k}] in blocks of ${blockSize} needs ${n * kBlocks}`);
  const sym = q.quant.scheme === 'sym';
  const offset = sym ? 2 ** (bits - 1) : 0;
  const blockBytes = (blockSize * bits) / 8;
  const b = new Uint8Array(n * kBlocks * blockBytes);
  const code = new Uint8Array(kBlocks * blockSize);
  for (let o = 0; o < n; o++) {
    for (let kb = 0; kb < kBlocks; kb++) code.fill(sym ? offset : q.qp.zero[o * kBlocks + kb], kb * blockSize, (kb + 1) * blockSize);
    for (let i = 0; i < k; i++) code[i] = q.codes[o * k + i] + offset;
    const row = bits === 8 ? code : packNibbles(code);
    b.set(row, o * kBlocks * blockBytes);
  }
  let zeroPoints: Uint8Array | undefined;
  if (!sym) {
    const perRow = Math.ceil((kBlocks * bits) / 8);
    zeroPoints = new Uint8Array(n * perRow);
    for (let o = 0; o < n; o++) {
      const z = Array.from(q.qp.zero.subarray(o * kBlocks, (o + 1) * kBlocks));
      zeroPoints.set(bits === 8 ? Uint8Array.from(z) : packNibbles(z), o * perRow);
    }
  }
  return { b, bDims: [n, kBlocks, blockBytes], scales: q.qp.scale.slice(), zeroPoints };
}

/** Why a layer cannot become MatMulNBits, or undefined. */
function nbitsSkipReason(l: QuantizableLayer, node: OnnxNode): string | undefined {
  if (l.op === 'Conv' || l.op === 'ConvTranspose') return `${l.op}: MatMulNBits replaces MatMul / Gemm only`;
  if (l.op === 'MatMul' && l.weightInput !== 1) return 'its constant is the left operand (MatMul(W, X)); MatMulNBits takes the weight as B';
  if (l.op === 'Gemm') {
    if (attrInt(node, 'transA', 0) !== 0) return 'Gemm with transA = 1: MatMulNBits multiplies A as it is';
    if (attrFloat(node, 'alpha', 1) !== 1) return `Gemm with alpha = ${attrFloat(node, 'alpha', 1)}`;
    if (node.inputs[2] && attrFloat(node, 'beta', 1) !== 1) return `Gemm with beta = ${attrFloat(node, 'beta', 1)}`;
  }
  return undefined;
}

/**
 * Replaces every exportable MatMul / Gemm by com.microsoft MatMulNBits (a Gemm's bias C follows as an Add);
 * other layers are untouched and listed with the reason. Float weights no longer read are removed.
 */
export async function exportMatMulNBits(h: OnnxModelHandle, opts: MatMulNBitsOptions): Promise<OnnxExportResult & { report: MatMulNBitsLayerEntry[] }> {
  const { bits, blockSize } = opts;
  if (bits !== 4 && bits !== 8) throw new OnnxExportError(`MatMulNBits bits must be 4 or 8, got ${bits}`);
  if (!(Number.isInteger(blockSize) && blockSize >= 16 && (blockSize & (blockSize - 1)) === 0)) {
    throw new OnnxExportError(`MatMulNBits block_size must be a power of two >= 16, got ${blockSize}`);
  }
  const scheme = opts.scheme ?? 'asym';
  const wanted = checkLayerNames(h, opts.layers);
  let model = opts.folded?.size ? replaceConstants(h.model, opts.folded) : h.model;
  const fresh = nameAllocator(model);
  const report: MatMulNBitsLayerEntry[] = h.analysis.skipped.filter((s) => !wanted || wanted.has(s.name)).map((s) => ({ layer: s.name, op: s.op, status: 'skipped', reason: s.reason }));
  const taken = new Map<string, string>();
  const replacement = new Map<OnnxNode, OnnxNode[]>();
  const inits: OnnxTensor[] = [];
  for (const l of h.analysis.layers) {
    if (wanted && !wanted.has(l.name)) continue;
    const node = model.graph.nodes[l.nodeIndex];
    const entry: MatMulNBitsLayerEntry = { layer: l.name, op: l.op, status: 'skipped', weight: l.weight };
    report.push(entry);
    const reason = nbitsSkipReason(l, node) ?? commonSkipReason(h, l, new Map());
    if (reason) {
      entry.reason = reason;
      continue;
    }
    const k = l.inChannels;
    const n = l.outChannels;
    let q = opts.quantized?.get(l.name);
    if (q) {
      if (q.quant.bits !== bits || q.quant.groupSize !== blockSize || q.quant.granularity !== 'group') {
        entry.reason = `its given codes are ${q.quant.bits}-bit groups of ${q.quant.groupSize}, not ${bits}-bit blocks of ${blockSize}`;
        continue;
      }
    } else {
      const { outIn } = await layerWeight(h, l, opts.folded);
      q = labQuantize(outIn, [n, k], { bits, granularity: 'group', groupSize: blockSize, scheme });
    }
    const packed = packMatMulNBits(q, n, k, bits, blockSize);
    const base = l.weight;
    const bName = fresh(`${base}_MatMulNBits_B`);
    const sName = fresh(`${base}_MatMulNBits_scales`);
    inits.push(makeTensor(bName, packed.bDims, packed.b), makeTensor(sName, [packed.scales.length], packed.scales));
    const inputs = [node.inputs[0], bName, sName];
    let zName: string | undefined;
    if (packed.zeroPoints) {
      zName = fresh(`${base}_MatMulNBits_zero_points`);
      inits.push(makeTensor(zName, [packed.zeroPoints.length], packed.zeroPoints));
      inputs.push(zName);
    }
    const attrs = [attr.int('K', k), attr.int('N', n), attr.int('bits', bits), attr.int('block_size', blockSize), attr.int('accuracy_level', opts.accuracyLevel ?? 0)];
    const label = node.name || l.name;
    const bias = l.op === 'Gemm' ? node.inputs[2] : '';
    if (bias) {
      const mm = fresh(`${node.outputs[0]}_MatMulNBits`);
      replacement.set(node, [
        makeNode('MatMulNBits', inputs, [mm], attrs, { name: fresh(`${label}_MatMulNBits`), domain: 'com.microsoft' }),
        makeNode('Add', [mm, bias], [node.outputs[0]], [], { name: fresh(`${label}_bias`) }),
      ]);
    } else {
      replacement.set(node, [makeNode('MatMulNBits', inputs, [node.outputs[0]], attrs, { name: label, domain: 'com.microsoft' })]);
    }
    taken.set(l.weight, l.name);
    Object.assign(entry, { status: 'quantized', k, n, tensors: { b: bName, scales: sName, ...(zName ? { zeroPoints: zName } : {}) } });
  }
  if (replacement.size === 0) throw new OnnxExportError(`${h.name}: no layer can become MatMulNBits: ${report.map((e) => `${e.layer}: ${e.reason}`).join('; ') || 'no quantizable layers'}`);
  const g = model.graph;
  const nodes = g.nodes.flatMap((nd) => replacement.get(nd) ?? [nd]);
  const opsetImports = model.opsetImports.some((o) => o.domain === 'com.microsoft') ? model.opsetImports : [...model.opsetImports, { domain: 'com.microsoft', version: 1 }];
  model = pruneDeadWeights({ ...model, opsetImports, graph: { ...g, nodes, initializers: [...g.initializers, ...inits] } });
  return { bytes: serializeModel(model), model, report, notes: [] };
}

/** Drops weight-path nodes (Constant, Identity, Transpose, Cast) and initializers nothing reads any more. */
function pruneDeadWeights(model: OnnxModel): OnnxModel {
  const g = model.graph;
  let nodes = g.nodes;
  const outputs = new Set(g.outputs.map((o) => o.name));
  for (;;) {
    const read = new Set(nodes.flatMap((n) => n.inputs));
    const kept = nodes.filter((n) => !(['Constant', 'Identity', 'Transpose', 'Cast'].includes(n.opType) && n.outputs.every((o) => !read.has(o) && !outputs.has(o))));
    if (kept.length === nodes.length) break;
    nodes = kept;
  }
  const read = new Set(nodes.flatMap((n) => n.inputs));
  const initializers = g.initializers.filter((t) => read.has(t.name) || outputs.has(t.name));
  const dropped = new Set(g.initializers.filter((t) => !initializers.includes(t)).map((t) => t.name));
  return { ...model, graph: { ...g, nodes, initializers, inputs: g.inputs.filter((v) => !dropped.has(v.name)) } };
}
