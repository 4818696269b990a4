/**
 * The worker's model: the one the user opened (bundled or their own files), its RTN-quantized weights, and the
 * WGSL Llama engine that generates text with either the original or the quantized weights. Every operation builds
 * its result aside and swaps it in only when it succeeded: a file that fails to open, a cancelled quantization or
 * a failed generation leaves the previous model, report and weights exactly as they were.
 */
import type { GpuContext } from '../../gpu/context.ts';
import { CancelledError } from '../../gpu/errors.ts';
import { blobByteSource, type ByteSource } from '../../model/formats/byte-source.ts';
import { openBundledStories15M } from '../../model/formats/llama2c.ts';
import { bundledModel } from '../../model/bundled.ts';
import { argmax, LlamaGpu } from '../../model/llama/forward-gpu.ts';
import { describeModel, ModelOpenError, openModel, planFunction, quantizableLayers, type ModelDescription, type ModelHandle } from '../../model/workspace.ts';
import { QuantKernels } from '../../quant/gpu-kernels.ts';
import { quantizeLayersRtn, type ModelQuantReport } from '../../quant/model-rtn.ts';
import { captureLlamaStats } from '../../calib/capture-llama.ts';
import { buildCalibrationResult, calibratorSweeps, weightChannelAbsmax } from '../../calib/result.ts';
import { CalibDataError, generateSequences, parseTextFile, textToSequences, type TextSequences } from '../../calib/text-data.ts';
import { loadMobyDickWeb } from '../../calib/text-data-web.ts';
import type { CalibrateRequest, CalibrationRun } from '../../calib/types.ts';
import { calibrateOnnxWeb } from '../../calib/calibrate-onnx-web.ts';
import { awqLlama, AwqError, type AwqPartial } from '../../awq/awq-llama.ts';
import { llamaSmoothData } from '../../smooth/llama-data.ts';
import { smoothModel } from '../../smooth/smooth-model.ts';
import { SmoothQuantKernels } from '../../smooth/smoothquant-gpu.ts';
import { SmoothQuantError } from '../../smooth/smoothquant.ts';
import type { CalibDataSource } from '../../calib/types.ts';
import { parseEvalConfigs } from '../../eval/configs.ts';
import { evalTokens } from '../../eval/eval-text.ts';
import { evaluateLlama } from '../../eval/llama-eval.ts';
import { evaluateOnnxWeb } from '../../eval/onnx-eval-web.ts';
import { EvalError, type EvalRow } from '../../eval/types.ts';
import type {
  AwqBlockPartial,
  AwqRequest,
  AwqRun,
  EvaluateRequest,
  EvaluateResult,
  GenerateRequest,
  GenerationPartial,
  GenerationResult,
  LlamaDataRequest,
  ModelSource,
  Progress,
  QuantizeModelRequest,
  SmoothRequest,
  SmoothRun,
} from './protocol.ts';

/** What identifies a data source for a resume: its kind and, for files, their names and sizes. */
function dataKey(d: CalibDataSource): unknown {
  return 'files' in d ? [d.kind, d.files.map((f) => [f.name, f.bytes.length])] : d.kind;
}

const MB = 2 ** 20;

/** Fetches a bundled model with download progress; the bytes stay in a Blob the loader reads by ranges. */
async function download(url: string, name: string, signal: AbortSignal, progress: (p: Progress) => void): Promise<Blob> {
  let res: Response;
  try {
    res = await fetch(url, { signal });
  } catch (e) {
    if (signal.aborted) throw new CancelledError('download cancelled');
    throw new ModelOpenError(`${name}: could not download ${url}: ${(e as Error).message}`);
  }
  if (!res.ok) {
    const body = (await res.text().catch(() => '')).slice(0, 200);
    throw new ModelOpenError(`${name}: the server answered ${res.status} for ${url}${body ? ` (${body})` : ''}`);
  }
  const total = Number(res.headers.get('content-length')) || 0;
  if (!res.body) return res.blob();
  const reader = res.body.getReader();
  const parts: Uint8Array[] = [];
  let loaded = 0;
  let lastReport = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      loaded += value.length;
      if (loaded - lastReport > 2 * MB || (total && loaded === total)) {
        lastReport = loaded;
        progress({ stage: `downloading ${name}: ${(loaded / MB).toFixed(1)}${total ? ` of ${(total / MB).toFixed(1)}` : ''} MB`, fraction: total ? loaded / total : undefined });
      }
    }
  } catch (e) {
    if (signal.aborted) throw new CancelledError('download cancelled');
    throw e;
  }
  if (total && loaded !== total) throw new ModelOpenError(`${name}: the download stopped at ${loaded} of ${total} bytes`);
  return new Blob(parts as BlobPart[]);
}

interface Quantized {
  planKey: string;
  report: ModelQuantReport;
  /** Fake-quantized (dequantized) weights of the quantized Llama layers, [out, in]. */
  weights: Map<string, Float32Array>;
}

export class ModelSession {
  private handle: ModelHandle | undefined;
  private description: ModelDescription | undefined;
  private quantized: Quantized | undefined;
  private engine: { model: LlamaGpu; ctx: GpuContext; quantizedLayers: Set<string> } | undefined;
  /** Model operations run one at a time (a generation must not read weights a quantization is replacing). */
  private queue: Promise<unknown> = Promise.resolve();
  /** The finished blocks of the last unfinished AWQ run, by the run's key (see awq). */
  private awqPartial: { key: string; partial: AwqPartial } | undefined;
  /** The effective weights of the last finished AWQ run. */
  private awqWeights: { key: string; weights: Map<string, Float32Array> } | undefined;

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  open(source: ModelSource, signal: AbortSignal, progress: (p: Progress) => void): Promise<ModelDescription> {
    return this.serial(async () => {
      let handle: ModelHandle;
      if (source.kind === 'bundled') {
        const entry = bundledModel(source.id);
        if (!entry) throw new ModelOpenError(`no bundled model named ${source.id}`);
        const blob = await download(source.url, entry.title, signal, progress);
        if (signal.aborted) throw new CancelledError();
        progress({ stage: `reading ${entry.title}` });
        const src = blobByteSource(blob, entry.fileName);
        handle = entry.kind === 'llama' ? { kind: 'llama', name: entry.title, ckpt: await openBundledStories15M(src) } : await openModel([src], { name: entry.title });
      } else {
        if (source.files.length === 0) throw new ModelOpenError('no files were given');
        progress({ stage: `reading ${source.files.map((f) => f.name).join(', ')}` });
        const sources: ByteSource[] = source.files.map((f) => blobByteSource(f, f.name));
        handle = await openModel(sources);
      }
      if (signal.aborted) throw new CancelledError();
      const description = describeModel(handle);
      // Only now does the new model replace the old one.
      this.engine?.model.dispose();
      this.engine = undefined;
      this.quantized = undefined;
      this.awqPartial = undefined;
      this.awqWeights = undefined;
      this.handle = handle;
      this.description = description;
      return description;
    });
  }

  quantize(ctx: GpuContext, req: QuantizeModelRequest, signal: AbortSignal, progress: (p: Progress) => void): Promise<ModelQuantReport> {
    return this.serial(async () => {
      const { handle, description } = this.requireModel();
      const planFor = planFunction(description, req.plan);
      const layers = quantizableLayers(handle);
      const weights = new Map<string, Float32Array>();
      const kernels = new QuantKernels(ctx);
      progress({ stage: 'starting', fraction: 0 });
      const report = await quantizeLayersRtn(kernels, layers, planFor, {
        signal,
        onProgress: (done, total, name) => progress({ stage: `${name} (${done} of ${total})`, fraction: done / total }),
        onWeights: handle.kind === 'llama' ? (layer, deq) => void weights.set(layer.name, deq) : undefined,
      });
      if (signal.aborted) throw new CancelledError();
      this.quantized = { planKey: req.planKey, report, weights };
      return report;
    });
  }

  generate(
    ctx: GpuContext,
    req: GenerateRequest,
    signal: AbortSignal,
    progress: (p: Progress) => void,
    partial: (p: GenerationPartial) => void,
  ): Promise<GenerationResult> {
    return this.serial(async () => {
      const { handle } = this.requireModel();
      if (handle.kind !== 'llama') throw new Error(`${handle.name} is an ONNX graph: text generation needs a Llama-family checkpoint`);
      const tok = handle.ckpt.tokenizer;
      if (!tok) throw new Error(`${handle.name} has no tokenizer this lab can read${handle.ckpt.tokenizerNote ? `: ${handle.ckpt.tokenizerNote}` : ''}`);
      if (req.weights === 'quantized' && !this.quantized) throw new Error('quantize the model first');
      if (req.weights === 'awq' && !this.awqWeights) throw new Error('run AWQ to the end first');
      const quantized = req.weights === 'quantized' ? this.quantized : req.weights === 'awq' ? { planKey: this.awqWeights!.key, weights: this.awqWeights!.weights } : undefined;
      const engine = await this.ensureEngine(ctx, handle, signal, progress);
      await this.useWeights(engine, quantized, handle, signal, progress);
      const ids = tok.encode(req.prompt, { bos: true });
      const cfg = handle.ckpt.config;
      const n = Math.min(req.tokens, cfg.seqLen - ids.length);
      if (n < 1) throw new Error(`the prompt is ${ids.length} tokens; the model's context is ${cfg.seqLen}`);
      const model = engine.model;
      model.reset();
      progress({ stage: `prefill: ${ids.length} prompt tokens`, fraction: 0 });
      const t0 = performance.now();
      let logits = await model.forward(ids);
      const t1 = performance.now();
      const out: number[] = [];
      for (let i = 0; i < n; i++) {
        if (signal.aborted) throw new CancelledError('generation cancelled');
        const next = argmax(logits);
        out.push(next);
        partial({ text: tok.decode(out, ids.at(-1)), tokens: out.length });
        progress({ stage: `token ${i + 1} of ${n}`, fraction: (i + 1) / n });
        if (next === tok.eosId || model.pos >= cfg.seqLen) break;
        if (i + 1 < n) logits = await model.forward([next]);
      }
      const t2 = performance.now();
      const decodeSteps = Math.max(1, out.length - 1);
      return {
        weights: req.weights,
        planKey: quantized?.planKey,
        prompt: req.prompt,
        promptTokens: ids.length,
        tokens: out,
        text: tok.decode(out, ids.at(-1)),
        prefillSeconds: (t1 - t0) / 1000,
        decodeSeconds: (t2 - t1) / 1000,
        prefillTokensPerSecond: ids.length / ((t1 - t0) / 1000),
        decodeTokensPerSecond: out.length > 1 ? decodeSteps / ((t2 - t1) / 1000) : 0,
      };
    });
  }

  calibrate(ctx: GpuContext, req: CalibrateRequest & { baseUrl: string }, signal: AbortSignal, progress: (p: Progress) => void): Promise<CalibrationRun> {
    return this.serial(async () => {
      const { handle } = this.requireModel();
      const t0 = performance.now();
      const report = (label: string, done: number, total: number) => progress({ stage: label, fraction: total ? done / total : undefined });
      if (handle.kind === 'onnx') {
        return calibrateOnnxWeb(ctx, handle, req, { signal, onProgress: (p) => report(p.label, p.done, p.total) });
      }
      const engine = await this.ensureEngine(ctx, handle, signal, progress);
      // Statistics of the original model: put back any quantized weights first.
      await this.useWeights(engine, undefined, handle, signal, progress);
      const { seqs, seqLen } = await this.llamaSequences(handle, engine, req, signal, report);
      const summaries = await captureLlamaStats(engine.model, seqs.sequences, {
        signal,
        snapshotTokens: req.snapshotTokens,
        onProgress: (p) => report(`capturing activations: ${p.label}`, p.done, p.total),
      });
      report('choosing ranges', 0, 1);
      const result = buildCalibrationResult(handle.name, summaries, {
        sweeps: await calibratorSweeps(ctx, summaries, req.bits),
        bits: req.bits,
        method: req.method,
        data: { source: seqs.source, samples: seqs.sequences.length, sequenceLength: seqLen, tokens: seqs.tokens },
        seconds: (performance.now() - t0) / 1000,
      });
      if (seqs.note) result.data.note = seqs.note;
      return { result, summaries, weightChannelAbsmax: await weightChannelAbsmax(quantizableLayers(handle), summaries) };
    });
  }

  /** The calibration sequences a request asks for: the bundled text, the user's text, or samples the model generates. */
  private async llamaSequences(
    handle: ModelHandle & { kind: 'llama' },
    engine: NonNullable<ModelSession['engine']>,
    req: LlamaDataRequest,
    signal: AbortSignal,
    report: (label: string, done: number, total: number) => void,
  ): Promise<{ seqs: TextSequences; seqLen: number }> {
    const cfg = handle.ckpt.config;
    const seqLen = Math.min(req.seqLen ?? cfg.seqLen, cfg.seqLen);
    const tok = handle.ckpt.tokenizer;
    if (req.data.kind === 'generated') {
      const model = engine.model;
      const seqs = await generateSequences((t, reset) => (reset && model.reset(), model.forward(t)), tok?.bosId ?? 1, req.samples, seqLen, {
        signal,
        onProgress: (d, n) => report(`generating sample ${d} of ${n}`, d, n),
      });
      return { seqs, seqLen };
    }
    if (!tok) throw new CalibDataError(`${handle.name} has no tokenizer this lab can read${handle.ckpt.tokenizerNote ? `: ${handle.ckpt.tokenizerNote}` : ''}; use samples generated by the model`);
    report('reading the calibration text', 0, 1);
    if (req.data.kind === 'bundled-text') {
      const texts = await loadMobyDickWeb(req.baseUrl, req.samples * seqLen * 6, 'calibration', signal);
      return { seqs: textToSequences(tok, texts, req.samples, seqLen, 'Moby-Dick (bundled)', signal), seqLen };
    }
    if (req.data.kind === 'text-files') {
      if (req.data.files.length === 0) throw new CalibDataError('no text files were given');
      const texts = req.data.files.flatMap((f) => parseTextFile(f.name, f.bytes));
      return { seqs: textToSequences(tok, texts, req.samples, seqLen, req.data.files.map((f) => f.name).join(', '), signal), seqLen };
    }
    throw new CalibDataError(`${handle.name} is a language model: calibrate it with text, not ${req.data.kind}`);
  }

  /**
   * AWQ of the open Llama model (awq-llama.ts) on the original weights. Finished blocks are streamed and
   * kept under the run's key; a run with `resume` and the same key skips them.
   */
  awq(ctx: GpuContext, req: AwqRequest, signal: AbortSignal, progress: (p: Progress) => void, partial: (p: AwqBlockPartial) => void): Promise<AwqRun> {
    return this.serial(async () => {
      const { handle, description } = this.requireModel();
      if (handle.kind !== 'llama') throw new AwqError(`${handle.name} is an ONNX graph: AWQ in the lab runs on Llama-family checkpoints (the CLI's quantlab awq takes ONNX models)`);
      const report = (label: string, done: number, total: number) => progress({ stage: label, fraction: total ? done / total : undefined });
      const key = JSON.stringify([description.name, description.sizeBytes, description.totalParams, req.quant, req.duo, req.clip, req.samples, req.seqLen, dataKey(req.data)]);
      const engine = await this.ensureEngine(ctx, handle, signal, progress);
      await this.useWeights(engine, undefined, handle, signal, progress);
      const { seqs, seqLen } = await this.llamaSequences(handle, engine, req, signal, report);
      const keep = req.resume && this.awqPartial?.key === key ? this.awqPartial.partial : undefined;
      if (!keep || this.awqPartial?.key !== key) this.awqPartial = { key, partial: { blocks: [], groups: [], linears: [], weights: new Map() } };
      const store = this.awqPartial.partial;
      if (keep) {
        for (const b of keep.blocks) partial({ block: b, groups: keep.groups.filter((g) => g.block === b.block), linears: keep.linears.filter((l) => l.block === b.block), kept: true });
      }
      const resumeFrom = keep ? { blocks: [...keep.blocks], groups: [...keep.groups], linears: [...keep.linears], weights: new Map(keep.weights) } : undefined;
      const res = await awqLlama(engine.model, handle.ckpt, seqs.sequences, {
        quant: req.quant,
        duo: req.duo,
        clip: req.clip,
        signal,
        resume: resumeFrom,
        onProgress: (p) => report(p.label, p.done, p.total),
        onBlock: (block, groups, linears, weights) => {
          if (resumeFrom?.blocks.some((b) => b.block === block.block)) return;
          store.blocks.push(block);
          store.groups.push(...groups);
          store.linears.push(...linears);
          for (const [k, v] of weights) store.weights.set(k, v);
          partial({ block, groups, linears, kept: false });
        },
      });
      this.awqPartial = undefined;
      this.awqWeights = { key, weights: res.weights };
      return {
        key,
        groups: res.groups,
        linears: res.linears,
        blocks: res.blocks,
        nLayers: handle.ckpt.config.nLayers,
        resumedBlocks: resumeFrom?.blocks.length ?? 0,
        data: { source: seqs.source, samples: seqs.sequences.length, seqLen, tokens: res.tokens, ...(seqs.note ? { note: seqs.note } : {}) },
        seconds: res.seconds,
      };
    });
  }

  /** SmoothQuant of the open Llama model: statistics and sampled rows per norm group, then the alpha sweep. */
  smoothquant(ctx: GpuContext, req: SmoothRequest, signal: AbortSignal, progress: (p: Progress) => void): Promise<SmoothRun> {
    return this.serial(async () => {
      const { handle } = this.requireModel();
      if (handle.kind !== 'llama') throw new SmoothQuantError(`${handle.name} is an ONNX graph: SmoothQuant in the lab runs on Llama-family checkpoints (the CLI's quantlab smoothquant takes ONNX models)`);
      const report = (label: string, done: number, total: number) => progress({ stage: label, fraction: total ? done / total : undefined });
      const engine = await this.ensureEngine(ctx, handle, signal, progress);
      await this.useWeights(engine, undefined, handle, signal, progress);
      const { seqs, seqLen } = await this.llamaSequences(handle, engine, req, signal, report);
      const groups = await llamaSmoothData(engine.model, handle.ckpt, seqs.sequences, req.maxRows, { signal, onProgress: (p) => report(`capturing activations: ${p.label}`, p.done, p.total) });
      if (signal.aborted) throw new CancelledError('SmoothQuant cancelled');
      // The CPU evaluator on software adapters, as the CLI's --eval auto (milliseconds against seconds per alpha there).
      const kernels = ctx.isSoftware ? undefined : new SmoothQuantKernels(ctx);
      try {
        const { report: r, sweeps } = await smoothModel(handle.name, groups, {
          alpha: req.alpha,
          act: req.act,
          perGroup: req.perGroup,
          kernels,
          signal,
          onGroup: (done, total, name) => report(`W8A8 error of ${name} (${done} of ${total})`, done, total),
        });
        r.data = { source: seqs.source, samples: seqs.sequences.length, sequenceLength: seqLen, tokens: seqs.tokens };
        return { report: r, sweeps };
      } finally {
        kernels?.dispose();
      }
    });
  }

  /**
   * Evaluation of the open Llama model (eval/llama-eval.ts) on held-out text: the bundled chapters that
   * calibration never reads, or the user's files; AWQ and SmoothQuant calibrate on the calibration chapters.
   */
  evaluate(ctx: GpuContext, req: EvaluateRequest, signal: AbortSignal, progress: (p: Progress) => void, partial: (row: EvalRow) => void): Promise<EvaluateResult> {
    return this.serial(async () => {
      const { handle } = this.requireModel();
      if (handle.kind === 'onnx') {
        const r = await evaluateOnnxWeb(ctx, handle, {
          configs: req.configs.join(','),
          samples: req.samples,
          calibSamples: req.calibSamples,
          baseUrl: req.baseUrl,
          signal,
          onProgress: (p) => progress({ stage: p.label, fraction: p.total ? p.done / p.total : undefined }),
          onRow: partial,
        });
        return { rows: r.rows, data: `${r.data.source}; task ${r.task.kind}, ${r.runtime}`, seconds: r.seconds };
      }
      const tok = handle.ckpt.tokenizer;
      if (!tok) throw new EvalError(`${handle.name} has no tokenizer this lab can read: perplexity needs one`);
      const t0 = performance.now();
      const configs = parseEvalConfigs(req.configs.join(','));
      progress({ stage: 'reading the evaluation text' });
      let source: string;
      let texts: string[];
      if (req.data.kind === 'bundled-text') {
        source = 'Moby-Dick chapters 100-135 (held out from calibration)';
        texts = await loadMobyDickWeb(req.baseUrl, req.tokens * 6, 'evaluation', signal);
      } else {
        if (req.data.files.length === 0) throw new EvalError('no text files were given');
        source = req.data.files.map((f) => f.name).join(', ');
        texts = req.data.files.flatMap((f) => parseTextFile(f.name, f.bytes));
      }
      const tokens = evalTokens(tok, texts, req.tokens, source, signal);
      const needsCalib = configs.some((c) => c.method === 'awq' || c.method === 'smoothquant');
      let calibration: number[][] | undefined;
      if (needsCalib) {
        progress({ stage: 'reading the calibration text' });
        const calibTexts = await loadMobyDickWeb(req.baseUrl, req.calibSamples * req.calibSeqLen * 6, 'calibration', signal);
        calibration = textToSequences(tok, calibTexts, req.calibSamples, req.calibSeqLen, 'Moby-Dick (bundled)', signal).sequences;
      }
      // The evaluation loads its own copies of the model; free the generation engine's first.
      this.engine?.model.dispose();
      this.engine = undefined;
      const prompt = req.genTokens > 0 && req.prompt.trim() ? tok.encode(req.prompt, { bos: true }) : undefined;
      const r = await evaluateLlama(ctx, handle.ckpt, {
        configs,
        tokens,
        context: req.context,
        calibration,
        prompt,
        genTokens: prompt ? req.genTokens : 0,
        decode: (ids) => tok.decode(ids, prompt?.at(-1)),
        signal,
        onProgress: (p) => progress({ stage: p.label, fraction: p.total ? p.done / p.total : undefined }),
        onRow: partial,
      });
      return {
        rows: r.rows,
        data: `${tokens.length} tokens of ${source}, context ${r.context}, stride ${r.stride}`,
        seconds: (performance.now() - t0) / 1000,
      };
    });
  }

  private requireModel(): { handle: ModelHandle; description: ModelDescription } {
    if (!this.handle || !this.description) throw new Error('no model is open: choose one on the Model page');
    return { handle: this.handle, description: this.description };
  }

  private async ensureEngine(ctx: GpuContext, handle: ModelHandle & { kind: 'llama' }, signal: AbortSignal, progress: (p: Progress) => void) {
    if (this.engine && this.engine.ctx === ctx) return this.engine;
    this.engine?.model.dispose();
    this.engine = undefined;
    const model = await LlamaGpu.load(ctx, handle.ckpt, {
      signal,
      onProgress: (done, total, name) => progress({ stage: `uploading weights: ${name}`, fraction: done / total }),
    });
    this.engine = { model, ctx, quantizedLayers: new Set() };
    return this.engine;
  }

  /** Puts the requested weights on the GPU: quantized ones where the run has them, the checkpoint's elsewhere. */
  private async useWeights(engine: NonNullable<ModelSession['engine']>, q: Pick<Quantized, 'weights'> | undefined, handle: ModelHandle & { kind: 'llama' }, signal: AbortSignal, progress: (p: Progress) => void) {
    const want = q?.weights ?? new Map<string, Float32Array>();
    const names = new Set([...engine.quantizedLayers, ...want.keys()]);
    let i = 0;
    for (const name of names) {
      if (signal.aborted) throw new CancelledError();
      progress({ stage: `${q ? 'quantized' : 'original'} weights: ${name}`, fraction: i++ / names.size });
      const w = want.get(name);
      // The engine's copy of this layer is marked unknown until the write has happened.
      engine.quantizedLayers.delete(name);
      if (w) {
        engine.model.setWeight(name, w);
        engine.quantizedLayers.add(name);
      } else {
        engine.model.setWeight(name, await handle.ckpt.loadTensor(name));
      }
    }
  }

  /** The device went away: the engine's buffers went with it. */
  dropEngine(): void {
    this.engine = undefined;
  }
}
