/**
 * Activation capture for ONNX models: the inputs of every quantizable layer (MatMul, Gemm, Conv,
 * ConvTranspose, as analyze.ts finds them), recorded batch by batch while onnxruntime runs the model, and
 * handed on as [tokens, channels] matrices (types.ts: tokens are rows, N*H*W for convolutions).
 *
 * How: the captured tensors become extra graph outputs of a copy of the model (the same thing
 * onnxruntime's quantization tools do in their calibrators: augment_graph in
 * onnxruntime/python/tools/quantization/calibrate.py), and each run fetches some of them.
 *
 * Memory. A captured output stays alive until its run ends, so one run over all layers holds every
 * activation at once: PP-OCRv4 det at 960x960 returns hundreds of MB. Each batch is therefore split into
 * several runs of the same session, each fetching a subset of the captured tensors (onnxruntime returns
 * and keeps alive only the outputs asked for), chosen so the fetched bytes stay under `maxBytesPerRun`.
 * Sizes are learned, not inferred (the graph's value_info rarely has shapes): each tensor's byte count is
 * remembered from the last run that fetched it, scaled by the ratio of the feeds' element counts
 * (activation sizes grow linearly with the input's spatial size for convolutional and sequence models).
 * In the first batch the sizes are unknown, so tensors are probed in growing groups (1, 1, 2, 4, ...
 * tensors per run, each estimated as large as the last one learned); from the second batch on, runs
 * are packed by the learned sizes. A run costs a whole forward pass, so a tight budget trades time for
 * memory (and the first batch costs a few extra runs); a single tensor larger than the budget is fetched
 * on its own. With maxBytesPerRun = Infinity every batch is one run.
 *
 * No Node imports: the browser worker bundles this file.
 */
import type { CalibProgress } from './types.ts';
import type { FloatTensor, OrtRuntime, OrtSessionLike } from './ort-runtime.ts';
import type { QuantizableLayer } from '../model/onnx/analyze.ts';
import { loadExternalTensor, allTensors, unloadExternalTensor } from '../model/onnx/external-data.ts';
import type { OnnxModel, OnnxTensor, OnnxValueInfo } from '../model/onnx/model.ts';
import { serializeModel } from '../model/onnx/serialize.ts';
import type { OnnxModelHandle } from '../model/workspace.ts';

/** Default byte budget of the captured outputs of one run. */
export const DEFAULT_MAX_BYTES_PER_RUN = 256 * 2 ** 20;

/** One activation tensor to capture, and how to see it as [tokens, channels]. */
export interface CaptureTarget {
  /**
   * Name of the capture: the ONNX value name, or `<tensor>@axis<k>` in the rare graph where one tensor is
   * read with two different channel axes (then it is captured once per view).
   */
  name: string;
  /** The ONNX value captured. */
  tensor: string;
  /** Quantizable layers (QuantizableLayer.name) that read the tensor with this view, in graph order. */
  layers: string[];
  /**
   * Axis holding the input channels (QuantizableLayer.activationChannelAxis): -1 for MatMul(X, W) and Gemm,
   * -2 for MatMul(W, X) and Gemm with transA (tokens are then the last axis), 1 for NCHW convolutions
   * (tokens are N*H*W). Every other axis becomes tokens, in row-major order.
   */
  channelAxis: number;
  /** Input channels the layers' weights expect: K of MatMul / Gemm, C of a convolution's input (groups x I/g). */
  channels: number;
  /** Where the values come from: the feeds (no run needed), or an output of the augmented model. */
  source: 'graph-input' | 'output';
}

export interface CapturePlan {
  targets: CaptureTarget[];
  /** Layers whose input cannot be captured (a constant input), with why. */
  skipped: { layer: string; reason: string }[];
}

/** Input channels of the activation a layer reads, from its weight: what its [tokens, channels] view must have. */
export function activationChannels(l: QuantizableLayer): number {
  // Conv weights are [O, I/g, k...] and ConvTranspose [I, O/g, k...] (ONNX operator docs); inChannels of
  // the analysis counts weights per output (I/g x kernel), not the activation's channels.
  if (l.op === 'Conv') return l.weightShape[1] * l.groups;
  if (l.op === 'ConvTranspose') return l.weightShape[0];
  return l.inChannels;
}

/** The activation tensors of every quantizable layer, deduplicated, in the order the graph computes them. */
export function planCapture(handle: Pick<OnnxModelHandle, 'analysis' | 'index'>): CapturePlan {
  const { analysis, index } = handle;
  const byKey = new Map<string, CaptureTarget>();
  const axesByTensor = new Map<string, Set<number>>();
  const skipped: CapturePlan['skipped'] = [];
  for (const l of analysis.layers) {
    if (!l.activation) {
      skipped.push({ layer: l.name, reason: 'the activation input is missing' });
      continue;
    }
    if (index.constants.has(l.activation) && !index.graphInputs.has(l.activation)) {
      skipped.push({ layer: l.name, reason: `its input "${l.activation}" is a constant, not an activation` });
      continue;
    }
    const key = `${l.activation}\u0000${l.activationChannelAxis}`;
    const t = byKey.get(key);
    if (t) {
      t.layers.push(l.name);
      continue;
    }
    byKey.set(key, {
      name: l.activation,
      tensor: l.activation,
      layers: [l.name],
      channelAxis: l.activationChannelAxis,
      channels: activationChannels(l),
      source: index.graphInputs.has(l.activation) ? 'graph-input' : 'output',
    });
    axesByTensor.set(l.activation, (axesByTensor.get(l.activation) ?? new Set()).add(l.activationChannelAxis));
  }
  const targets = [...byKey.values()];
  for (const t of targets) if (axesByTensor.get(t.tensor)!.size > 1) t.name = `${t.tensor}@axis${t.channelAxis}`;
  return { targets, skipped };
}

/** Model inputs that need a feed: graph inputs that are not initializers (initializers give them defaults). */
function requiredInputs(handle: Pick<OnnxModelHandle, 'model' | 'index'>): OnnxValueInfo[] {
  return handle.model.graph.inputs.filter((i) => !handle.index.constants.has(i.name));
}

/**
 * The model with every captured tensor added as a graph output, serialized with all weights inline.
 * The added outputs carry no type: onnxruntime infers it (a declared float would be refused for a float16
 * tensor). External data is read through the handle, inlined, and dropped again afterwards; the result
 * must fit protobuf's 2 GiB limit (serializeModel says so when it does not).
 */
export async function buildCaptureModel(handle: Pick<OnnxModelHandle, 'model' | 'index' | 'external' | 'name'>, targets: readonly CaptureTarget[]): Promise<Uint8Array> {
  const { model } = handle;
  const present = new Set(model.graph.outputs.map((o) => o.name));
  const added: OnnxValueInfo[] = [];
  for (const t of targets) {
    if (t.source !== 'output' || present.has(t.tensor)) continue;
    present.add(t.tensor);
    added.push({ name: t.tensor });
  }
  const loaded: OnnxTensor[] = [];
  try {
    for (const t of allTensors(model.graph)) {
      if (t.data.location !== 'external' || t.data.bytes) continue;
      if (!handle.external) throw new Error(`${handle.name}: tensor "${t.name}" is in the external data file "${t.data.file}", which was not given`);
      await loadExternalTensor(t, handle.external);
      loaded.push(t);
    }
    const augmented: OnnxModel = { ...model, graph: { ...model.graph, outputs: [...model.graph.outputs, ...added] } };
    return serializeModel(augmented, { inlineExternalData: true });
  } finally {
    for (const t of loaded) unloadExternalTensor(t);
  }
}

/** A feed set that does not fit the model; the message names the input. */
export class CaptureFeedError extends Error {
  override name = 'CaptureFeedError';
}

/** Checks feeds against the model's inputs: names, float32, rank, fixed dims, data length. */
export function checkFeeds(handle: Pick<OnnxModelHandle, 'model' | 'index' | 'name'>, feeds: Record<string, FloatTensor>): void {
  const inputs = requiredInputs(handle);
  const allowed = new Set(handle.model.graph.inputs.map((i) => i.name));
  const list = inputs.map((i) => `"${i.name}"`).join(', ');
  for (const name of Object.keys(feeds)) {
    if (!allowed.has(name)) throw new CaptureFeedError(`${handle.name}: the feeds name an input "${name}" the model does not have (its inputs: ${list})`);
  }
  for (const input of inputs) {
    const feed = feeds[input.name];
    if (!feed) throw new CaptureFeedError(`${handle.name}: no feed for the model input "${input.name}" (its inputs: ${list})`);
    const type = input.type?.kind === 'tensor' ? input.type : undefined;
    if (type && type.elemType !== 'float32') {
      throw new CaptureFeedError(`${handle.name}: model input "${input.name}" is ${type.elemType}; activation capture feeds float32 only`);
    }
    if (!(feed.data instanceof Float32Array)) throw new CaptureFeedError(`${handle.name}: the feed for "${input.name}" is not a Float32Array`);
    const dims = feed.dims;
    if (!dims.every((d) => Number.isInteger(d) && d >= 0)) throw new CaptureFeedError(`${handle.name}: the feed for "${input.name}" has invalid dims [${dims.join(', ')}]`);
    const shape = type?.shape;
    const shown = shape ? `[${shape.map((d) => (d === null ? '?' : d)).join(', ')}]` : '';
    if (shape && shape.length !== dims.length) {
      throw new CaptureFeedError(`${handle.name}: the feed for "${input.name}" has rank ${dims.length} ([${dims.join(', ')}]), the model input is ${shown}`);
    }
    shape?.forEach((d, i) => {
      if (typeof d === 'number' && d !== dims[i]) {
        throw new CaptureFeedError(`${handle.name}: the feed for "${input.name}" has dims [${dims.join(', ')}]; axis ${i} must be ${d} (model input ${shown})`);
      }
    });
    const n = dims.reduce((a, b) => a * b, 1);
    if (feed.data.length !== n) {
      throw new CaptureFeedError(`${handle.name}: the feed for "${input.name}" holds ${feed.data.length} values, dims [${dims.join(', ')}] need ${n}`);
    }
  }
}

/** A captured activation, row-major [rows, channels]. */
export interface CapturedActivation {
  name: string;
  layers: string[];
  rows: number;
  channels: number;
  data: Float32Array;
}

/**
 * `t` as a row-major [rows, channels] matrix with channels on `channelAxis`: dims = [outer..., C, inner...]
 * becomes rows = outer x inner, row (o, i) holding t[o, :, i]. Channels-last tensors come back as a view;
 * the others are written into `scratch` when it is large enough (fresh memory is slow to touch: reusing a
 * buffer halves the cost of capturing large feature maps), else into a new array.
 */
export function toTokensByChannels(t: FloatTensor, channelAxis: number, scratch?: Float32Array): { rows: number; channels: number; data: Float32Array } {
  const rank = t.dims.length;
  if (rank === 0) return { rows: 1, channels: 1, data: t.data };
  const axis = rank === 1 ? 0 : channelAxis < 0 ? rank + channelAxis : channelAxis;
  if (axis < 0 || axis >= rank) throw new RangeError(`channel axis ${channelAxis} is outside dims [${t.dims.join(', ')}]`);
  const c = t.dims[axis];
  const outer = t.dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = t.dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  if (inner === 1) return { rows: outer, channels: c, data: t.data };
  const src = t.data;
  const out = scratch && scratch.length >= src.length ? scratch.subarray(0, src.length) : new Float32Array(src.length);
  // Transpose each [C, inner] block to [inner, C], TILE positions at a time: the TILE x C output rows
  // written are contiguous and stay in cache, reads are C runs of TILE. (A plain channel-by-channel loop
  // writes with stride C over the whole tensor and runs at a tenth of the speed on 960x960 feature maps.)
  const TILE = 64;
  for (let o = 0; o < outer; o++) {
    const base = o * c * inner;
    for (let i0 = 0; i0 < inner; i0 += TILE) {
      const i1 = Math.min(i0 + TILE, inner);
      for (let ch = 0; ch < c; ch++) {
        let s = base + ch * inner + i0;
        let d = base + i0 * c + ch;
        for (let i = i0; i < i1; i++, s++, d += c) out[d] = src[s];
      }
    }
  }
  return { rows: outer * inner, channels: c, data: out };
}

export type CaptureBatch = Record<string, FloatTensor>;

export interface CaptureOptions {
  signal?: AbortSignal;
  /** Called after every run (phase 'capture'; done = batches finished, total = totalBatches, or 0 when unknown). */
  onProgress?: (p: CalibProgress) => void;
  /** Byte budget of the captured outputs of one run (default DEFAULT_MAX_BYTES_PER_RUN; Infinity = one run per batch). */
  maxBytesPerRun?: number;
  /** Batch count for progress when `batches` is not an array. */
  totalBatches?: number;
  /** A plan to use instead of planCapture(handle) (e.g. a subset of the targets). */
  plan?: CapturePlan;
}

export interface CaptureReport {
  runtime: string;
  batches: number;
  /** Model runs in all (several per batch when the budget splits the captured tensors). */
  runs: number;
  /** Largest byte count of captured outputs one run returned. */
  maxRunBytes: number;
  /** Bytes of every captured activation handed to the callback. */
  totalBytes: number;
  /** Size of the augmented model given to the runtime. */
  modelBytes: number;
  /** Building the augmented model and creating the session. */
  setupSeconds: number;
  /** Everything, setup included. */
  seconds: number;
}

/** Learned byte sizes of the fetched tensors (see the file comment). */
class SizeEstimator {
  private readonly perFeedElement = new Map<string, number>();
  private last = 0;

  get known(): number {
    return this.perFeedElement.size;
  }

  learn(tensor: string, bytes: number, feedElements: number): void {
    const ratio = bytes / Math.max(1, feedElements);
    this.perFeedElement.set(tensor, ratio);
    this.last = ratio;
  }

  /**
   * Estimated bytes: learned, or as large as the tensor learned last (the one before it in graph order:
   * feature map sizes change gradually along a network); undefined while nothing is known.
   */
  estimate(tensor: string, feedElements: number): { bytes: number; learned: boolean } | undefined {
    const known = this.perFeedElement.get(tensor);
    if (known !== undefined) return { bytes: known * feedElements, learned: true };
    return this.known === 0 ? undefined : { bytes: this.last * feedElements, learned: false };
  }
}

/**
 * The next tensors to fetch: as many as fit the budget by estimate, at least one. Tensors never fetched
 * are probed: at most as many per run as there are tensors learned so far (1, 1, 2, 4, ... in the first
 * batch), so a wrong guess overshoots the budget by a bounded amount and later batches plan on real sizes.
 */
function nextGroup(remaining: readonly string[], sizes: SizeEstimator, feedElements: number, budget: number): string[] {
  if (!Number.isFinite(budget)) return [...remaining];
  const group: string[] = [];
  let bytes = 0;
  let probes = 0;
  for (const tensor of remaining) {
    const est = sizes.estimate(tensor, feedElements);
    if (est === undefined) return group.length ? group : [tensor];
    if (group.length > 0 && (bytes + est.bytes > budget || (!est.learned && probes >= sizes.known))) break;
    group.push(tensor);
    bytes += est.bytes;
    if (!est.learned) probes++;
  }
  return group;
}

async function* iterate<T>(items: AsyncIterable<T> | Iterable<T>): AsyncGenerator<T> {
  yield* items;
}

/**
 * Runs every batch through the model and hands each layer input to `onActivation` as a [rows, channels]
 * matrix, as soon as its run returns. `data` is only valid until the callback returns (or its promise
 * settles): capture reuses one transpose buffer for all tensors, so copy what you keep. Feeds are checked
 * against the model inputs first (CaptureFeedError). `signal` is checked before every batch and every run;
 * an abort throws its reason.
 */
export async function captureActivations(
  handle: OnnxModelHandle,
  runtime: OrtRuntime,
  batches: AsyncIterable<CaptureBatch> | Iterable<CaptureBatch>,
  onActivation: (t: CapturedActivation) => void | Promise<void>,
  opts: CaptureOptions = {},
): Promise<CaptureReport> {
  const start = performance.now();
  const plan = opts.plan ?? planCapture(handle);
  const budget = opts.maxBytesPerRun ?? DEFAULT_MAX_BYTES_PER_RUN;
  if (!(budget > 0)) throw new RangeError(`maxBytesPerRun must be positive, got ${budget}`);
  const total = opts.totalBatches ?? (Array.isArray(batches) ? batches.length : 0);
  const fromFeeds = plan.targets.filter((t) => t.source === 'graph-input');
  const fetched = plan.targets.filter((t) => t.source === 'output');
  const targetsByTensor = new Map<string, CaptureTarget[]>();
  for (const t of fetched) targetsByTensor.set(t.tensor, [...(targetsByTensor.get(t.tensor) ?? []), t]);
  const tensors = [...targetsByTensor.keys()];

  const report: CaptureReport = { runtime: runtime.name, batches: 0, runs: 0, maxRunBytes: 0, totalBytes: 0, modelBytes: 0, setupSeconds: 0, seconds: 0 };
  const sizes = new SizeEstimator();
  let session: OrtSessionLike | undefined;
  let scratch = new Float32Array(0);

  const emit = async (target: CaptureTarget, t: FloatTensor): Promise<void> => {
    const axis = target.channelAxis;
    const rank = t.dims.length;
    const channelsLast = rank <= 1 || axis === -1 || axis === rank - 1 || t.dims.slice((axis + rank) % rank + 1).every((d) => d === 1);
    if (!channelsLast && scratch.length < t.data.length) scratch = new Float32Array(t.data.length);
    const view = toTokensByChannels(t, axis, scratch);
    if (view.channels !== target.channels) {
      throw new Error(
        `${handle.name}: tensor "${target.tensor}" has dims [${t.dims.join(', ')}], so ${view.channels} channels on axis ${axis}, ` +
          `but layer${target.layers.length > 1 ? 's' : ''} ${target.layers.join(', ')} expect${target.layers.length > 1 ? '' : 's'} ${target.channels}`,
      );
    }
    report.totalBytes += view.data.byteLength;
    await onActivation({ name: target.name, layers: target.layers, rows: view.rows, channels: view.channels, data: view.data });
  };

  try {
    for await (const feeds of iterate(batches)) {
      opts.signal?.throwIfAborted();
      checkFeeds(handle, feeds);
      const label = `batch ${report.batches + 1}${total ? ` of ${total}` : ''}`;
      for (const target of fromFeeds) {
        const feed = feeds[target.tensor];
        if (!feed) throw new CaptureFeedError(`${handle.name}: no feed for the model input "${target.tensor}", which layer ${target.layers[0]} reads`);
        await emit(target, feed);
      }

      if (tensors.length > 0) {
        if (!session) {
          const setupStart = performance.now();
          const bytes = await buildCaptureModel(handle, fetched);
          report.modelBytes = bytes.length;
          opts.signal?.throwIfAborted();
          session = await runtime.createSession(bytes);
          report.setupSeconds = (performance.now() - setupStart) / 1000;
        }
        const feedElements = Object.values(feeds).reduce((a, f) => a + f.data.length, 0);
        let remaining = tensors;
        let run = 0;
        while (remaining.length > 0) {
          opts.signal?.throwIfAborted();
          const group = nextGroup(remaining, sizes, feedElements, budget);
          const result = await session.run(feeds, group);
          report.runs++;
          run++;
          let runBytes = 0;
          for (const tensor of group) {
            const t = result[tensor];
            if (!t) throw new Error(`${handle.name}: ${runtime.name} returned no output "${tensor}"`);
            runBytes += t.data.byteLength;
            sizes.learn(tensor, t.data.byteLength, feedElements);
          }
          report.maxRunBytes = Math.max(report.maxRunBytes, runBytes);
          for (const tensor of group) {
            for (const target of targetsByTensor.get(tensor)!) await emit(target, result[tensor]);
            delete result[tensor];
          }
          remaining = remaining.slice(group.length);
          opts.onProgress?.({ phase: 'capture', done: report.batches + (remaining.length === 0 ? 1 : 0), total, label: `${label}, run ${run}` });
        }
      } else {
        opts.onProgress?.({ phase: 'capture', done: report.batches + 1, total, label });
      }
      report.batches++;
    }
  } finally {
    await session?.release();
  }
  report.seconds = (performance.now() - start) / 1000;
  return report;
}
