/**
 * One model, whatever its format: a Llama-family checkpoint (llama2.c, GGUF, safetensors) or an ONNX graph,
 * opened from byte sources (browser Files, Node files, fetched bundles). The lab's worker and the CLI both go
 * through this module, so a model gives the same layer list, groups, memory estimate and RTN plan in both.
 * No Node imports: the browser bundles this file.
 */
import { baseName, type ByteSource } from './formats/byte-source.ts';
import { openCheckpoint } from './formats/open-checkpoint.ts';
import { linearTensorNames, numel, type LlamaCheckpoint, type LlamaConfig } from './llama/model.ts';
import { estimateMemory, type MemoryModel, type MemoryRow } from './memory-estimate.ts';
import { analyzeModel, type ModelAnalysis, type ModelSummary, type SkippedLayer } from './onnx/analyze.ts';
import { loadExternalTensor, unloadExternalTensor, type ExternalDataSource } from './onnx/external-data.ts';
import { buildGraphIndex, type GraphIndex } from './onnx/graph-index.ts';
import { loadModel } from './onnx/load.ts';
import { OnnxFormatError, type OnnxModel } from './onnx/model.ts';
import { tensorToFloat32 } from './onnx/tensor-data.ts';
import { weightToOutIn } from './onnx/weight-view.ts';
import { validateQuantConfig, type QuantConfig } from '../quant/config.ts';
import type { QuantizableLayer } from '../quant/model-rtn.ts';

export interface LlamaModelHandle {
  kind: 'llama';
  name: string;
  ckpt: LlamaCheckpoint;
}

export interface OnnxModelHandle {
  kind: 'onnx';
  name: string;
  model: OnnxModel;
  analysis: ModelAnalysis;
  index: GraphIndex;
  sizeBytes: number;
  external?: ExternalDataSource;
}

export type ModelHandle = LlamaModelHandle | OnnxModelHandle;

/** A model that cannot be opened: the message names the file and the problem. */
export class ModelOpenError extends Error {
  override name = 'ModelOpenError';
}

/** One quantizable weight as the UI and reports list it. */
export interface LayerInfo {
  name: string;
  kind: QuantizableLayer['kind'];
  /** [out, in]: rows are output channels. */
  shape: number[];
  params: number;
  /** Storage type in the file. */
  dtype: string;
  /** ONNX op (MatMul, Gemm, Conv, ...) or the Llama role (q_proj, gate_proj, ...). */
  op: string;
  /** Block index for Llama layers (-1 for embeddings and the classifier). */
  block: number;
  /** Kept at full precision unless the user says otherwise (embeddings, classifier). */
  excludedByDefault: boolean;
  note?: string;
}

export interface GroupInfo {
  /** The norm (or previous linear) whose output scale smoothing folds into. */
  prev: string;
  linears: string[];
  kind: string;
}

/** Everything about an opened model that can be shown or serialised (no tensors, no functions). */
export interface ModelDescription {
  kind: ModelHandle['kind'];
  name: string;
  format: string;
  sizeBytes: number;
  totalParams: number;
  quantizableParams: number;
  layers: LayerInfo[];
  groups: GroupInfo[];
  llama?: { config: LlamaConfig; tokenizer: string; canGenerate: boolean };
  onnx?: { summary: ModelSummary; skipped: SkippedLayer[]; inputs: { name: string; shape: (number | string)[] }[]; outputs: string[] };
  /** Inputs of the Jetson memory estimate (KV cache terms zero for ONNX models). */
  memoryModel: MemoryModel;
  memory: MemoryRow[];
}

const LLAMA_ROLES: Record<string, string> = { wq: 'q_proj', wk: 'k_proj', wv: 'v_proj', wo: 'o_proj', w1: 'gate_proj', w2: 'down_proj', w3: 'up_proj' };

export function isOnnxName(name: string): boolean {
  return /\.onnx$/i.test(baseName(name));
}

/**
 * Opens a model from its files: one .onnx (with its external data files, matched by name), or a Llama-family
 * checkpoint (see open-checkpoint.ts). Throws ModelOpenError naming the file and what is wrong.
 */
export async function openModel(sources: ByteSource[], opts: { name?: string } = {}): Promise<ModelHandle> {
  if (sources.length === 0) throw new ModelOpenError('no model files given');
  const onnx = sources.filter((s) => isOnnxName(s.name));
  if (onnx.length > 1) throw new ModelOpenError(`several .onnx files given (${onnx.map((s) => baseName(s.name)).join(', ')}): open one model at a time`);
  if (onnx.length === 1) return openOnnx(onnx[0], sources.filter((s) => s !== onnx[0]), opts.name);
  try {
    const ckpt = await openCheckpoint(sources);
    return { kind: 'llama', name: opts.name ?? ckpt.name, ckpt };
  } catch (e) {
    if (e instanceof Error && !(e instanceof ModelOpenError)) {
      const err = new ModelOpenError(e.message);
      err.cause = e;
      throw err;
    }
    throw e;
  }
}

/** External data files among the other sources, matched by base name. */
function externalFromSources(sources: ByteSource[]): ExternalDataSource {
  const find = (location: string) => {
    const base = baseName(location.replace(/\\/g, '/'));
    return sources.find((s) => baseName(s.name) === base);
  };
  return {
    size: async (location) => find(location)?.size,
    read: async (location, offset, length) => {
      const s = find(location);
      if (!s) throw new ModelOpenError(`external data file "${location}" was not given`);
      return s.read(offset, length);
    },
  };
}

async function openOnnx(src: ByteSource, others: ByteSource[], name?: string): Promise<OnnxModelHandle> {
  const file = baseName(src.name);
  if (src.size > 2 ** 31 - 1) throw new ModelOpenError(`${file}: ${src.size} bytes is over protobuf's 2 GiB limit; such models keep their weights in external data files`);
  const bytes = await src.read(0, src.size);
  const external = others.length ? externalFromSources(others) : undefined;
  let model: OnnxModel;
  try {
    model = await loadModel(bytes, { readExternalData: external, loadExternalData: false });
  } catch (e) {
    const msg = (e as Error).message;
    const err = new ModelOpenError(`${file}: ${msg}`);
    err.cause = e;
    if (e instanceof OnnxFormatError || e instanceof Error) throw err;
    throw e;
  }
  const analysis = analyzeModel(model);
  return { kind: 'onnx', name: name ?? file, model, analysis, index: buildGraphIndex(model.graph), sizeBytes: src.size + others.reduce((a, s) => a + s.size, 0), external };
}

function llamaLayerInfos(ckpt: LlamaCheckpoint): LayerInfo[] {
  const linears = new Set(linearTensorNames(ckpt.config));
  const out: LayerInfo[] = [];
  for (const t of ckpt.tensors) {
    const base = { shape: t.shape, params: numel(t.shape), dtype: t.dtype };
    if (t.name === 'tok_embeddings') {
      out.push({ ...base, name: t.name, kind: 'embedding', op: 'embedding', block: -1, excludedByDefault: true, note: ckpt.config.tiedEmbeddings ? 'tied: also the classifier (lm_head)' : undefined });
    } else if (t.name === 'output') {
      out.push({ ...base, name: t.name, kind: 'classifier', op: 'lm_head', block: -1, excludedByDefault: true });
    } else if (linears.has(t.name)) {
      const m = /^layers\.(\d+)\.(\w+)$/.exec(t.name);
      out.push({ ...base, name: t.name, kind: 'linear', op: LLAMA_ROLES[m?.[2] ?? ''] ?? 'linear', block: m ? Number(m[1]) : -1, excludedByDefault: false });
    }
  }
  return out;
}

/** Llama norm -> linear groups (REFERENCE.md section 4): input norm -> q,k,v; v -> o when shapes match; post-attention norm -> gate, up; up -> down. */
export function llamaGroups(cfg: LlamaConfig): GroupInfo[] {
  const out: GroupInfo[] = [];
  for (let l = 0; l < cfg.nLayers; l++) {
    const p = `layers.${l}.`;
    out.push({ prev: p + 'attention_norm', linears: [p + 'wq', p + 'wk', p + 'wv'], kind: 'rmsnorm' });
    if (cfg.nKvHeads === cfg.nHeads) out.push({ prev: p + 'wv', linears: [p + 'wo'], kind: 'linear' });
    out.push({ prev: p + 'ffn_norm', linears: [p + 'w1', p + 'w3'], kind: 'rmsnorm' });
    out.push({ prev: p + 'w3', linears: [p + 'w2'], kind: 'linear' });
  }
  return out;
}

function onnxLayerInfos(h: OnnxModelHandle): LayerInfo[] {
  const out: LayerInfo[] = [];
  const seenWeights = new Set<string>();
  for (const l of h.analysis.layers) {
    const shared = seenWeights.has(l.weight);
    seenWeights.add(l.weight);
    const note = l.alreadyQuantized
      ? 'weight already quantized (DequantizeLinear)'
      : shared
        ? `shares its weight with ${l.sharesWeightWith.join(', ')} (quantized once)`
        : l.depthwise
          ? `depthwise: ${l.inChannels} weights per output channel`
          : undefined;
    out.push({
      name: l.name,
      kind: l.op === 'Conv' || l.op === 'ConvTranspose' ? 'conv' : 'linear',
      shape: [l.outChannels, l.inChannels],
      params: l.params,
      dtype: l.weightDataType.toLowerCase(),
      op: l.op,
      block: -1,
      excludedByDefault: l.alreadyQuantized || shared,
      note,
    });
  }
  return out;
}

export function describeModel(h: ModelHandle): ModelDescription {
  if (h.kind === 'llama') {
    const { ckpt } = h;
    const c = ckpt.config;
    const layers = llamaLayerInfos(ckpt);
    const linears = layers.filter((l) => l.kind === 'linear');
    const linearParams = linears.reduce((a, l) => a + l.params, 0);
    const totalParams = ckpt.tensors.reduce((a, t) => a + numel(t.shape), 0);
    const memoryModel: MemoryModel = {
      linearParams,
      linearRows: linears.reduce((a, l) => a + l.shape[0], 0),
      otherParams: totalParams - linearParams,
      nLayers: c.nLayers,
      kvDim: c.nKvHeads * c.headDim,
      contextLength: c.seqLen,
    };
    return {
      kind: 'llama',
      name: h.name,
      format: ckpt.format,
      sizeBytes: ckpt.sizeBytes,
      totalParams,
      quantizableParams: layers.reduce((a, l) => a + l.params, 0),
      layers,
      groups: llamaGroups(c),
      llama: { config: c, tokenizer: ckpt.tokenizer ? `${ckpt.tokenizer.vocabSize} tokens` : (ckpt.tokenizerNote ?? 'none'), canGenerate: !!ckpt.tokenizer },
      memoryModel,
      memory: estimateMemory(memoryModel),
    };
  }
  const { analysis, model } = h;
  const layers = onnxLayerInfos(h);
  const counted = layers.filter((l) => !l.excludedByDefault || l.note?.startsWith('weight already'));
  const linearParams = counted.reduce((a, l) => a + l.params, 0);
  const memoryModel: MemoryModel = {
    linearParams,
    linearRows: counted.reduce((a, l) => a + l.shape[0], 0),
    otherParams: Math.max(0, analysis.summary.totalParams - linearParams),
    nLayers: 0,
    kvDim: 0,
    contextLength: 0,
  };
  const dims = (t: (typeof model.graph.inputs)[number]) => (t.type?.kind === 'tensor' ? (t.type.shape ?? []).map((d) => d) : []);
  return {
    kind: 'onnx',
    name: h.name,
    format: 'onnx',
    sizeBytes: h.sizeBytes,
    totalParams: analysis.summary.totalParams,
    quantizableParams: analysis.summary.quantizableParams,
    layers,
    groups: analysis.normGroups.map((g) => ({ prev: g.nodes[g.nodes.length - 1] ?? g.output, linears: g.linears, kind: `${g.kind} (${g.form})${g.foldable ? '' : ', not foldable'}` })),
    onnx: {
      summary: analysis.summary,
      skipped: analysis.skipped,
      inputs: model.graph.inputs.filter((i) => !h.index.constants.has(i.name)).map((i) => ({ name: i.name, shape: dims(i) as (number | string)[] })),
      outputs: model.graph.outputs.map((o) => o.name),
    },
    memoryModel,
    memory: estimateMemory(memoryModel),
  };
}

/** The model's quantizable weights as [out, in] float32 matrices, read one at a time. */
export function quantizableLayers(h: ModelHandle): QuantizableLayer[] {
  const infos = describeModel(h).layers;
  if (h.kind === 'llama') return infos.map((l) => ({ name: l.name, shape: l.shape, kind: l.kind, load: () => h.ckpt.loadTensor(l.name) }));
  const byName = new Map(h.analysis.layers.map((l) => [l.name, l]));
  return infos.map((info) => {
    const l = byName.get(info.name)!;
    return {
      name: info.name,
      shape: info.shape,
      kind: info.kind,
      load: async () => {
        const c = h.index.constants.get(l.weight);
        if (!c) throw new ModelOpenError(`${h.name}: the weight "${l.weight}" of layer ${l.name} is not a constant`);
        const t = c.tensor;
        const external = t.data.location === 'external' && !t.data.bytes;
        if (external) {
          if (!h.external) throw new ModelOpenError(`${h.name}: layer ${l.name} keeps its weight in an external data file that was not given`);
          await loadExternalTensor(t, h.external);
        }
        try {
          return weightToOutIn(l, tensorToFloat32(t));
        } finally {
          if (external) unloadExternalTensor(t);
        }
      },
    };
  });
}

/** What the user chose: one config for all layers, and per-layer exceptions. */
export interface QuantPlan {
  base: QuantConfig;
  /** Per layer: excluded (kept FP16), included when excluded by default, or other bits. */
  overrides?: Record<string, { exclude?: boolean; bits?: number }>;
}

/** The per-layer config function quantizeLayersRtn takes; validates every config up front. */
export function planFunction(desc: Pick<ModelDescription, 'layers'>, plan: QuantPlan): (layer: { name: string }) => Required<QuantConfig> | null {
  const base = validateQuantConfig(plan.base);
  const byName = new Map(desc.layers.map((l) => [l.name, l]));
  const configs = new Map<string, Required<QuantConfig> | null>();
  for (const name of Object.keys(plan.overrides ?? {})) {
    if (!byName.has(name)) throw new ModelOpenError(`the plan names a layer the model does not have: ${name}`);
  }
  for (const l of desc.layers) {
    const o = plan.overrides?.[l.name];
    const excluded = o?.exclude ?? l.excludedByDefault;
    if (excluded) {
      configs.set(l.name, null);
      continue;
    }
    const bits = o?.bits ?? base.bits;
    try {
      configs.set(l.name, validateQuantConfig({ ...base, bits }));
    } catch (e) {
      throw new ModelOpenError(`layer ${l.name}: ${(e as Error).message}`);
    }
  }
  return (layer) => configs.get(layer.name) ?? null;
}
