/**
 * The Model and Quantize pages' engine: opens models, runs whole-model RTN and generation through the GPU
 * worker, and keeps the store in step. Each operation can be cancelled; a failed or cancelled one leaves what
 * the user had (the open model, the last report, the last generations) in place and says what happened.
 */
import type { CalibProgress, CalibrateRequest, CalibrationRun } from '../../calib/types.ts';
import { bundledModel, type BundledModelId } from '../../model/bundled.ts';
import type { QuantPlan } from '../../model/workspace.ts';
import type { QuantConfig } from '../../quant/config.ts';
import type { AppStore } from '../store/index.ts';
import type { ModelState, OpState } from '../store/model-slice.ts';
import type { EvalRow } from '../../eval/types.ts';
import type { AwqBlockPartial, AwqRequest, AwqRun, EvaluateRequest, EvaluateResult, GenerationPartial, GenerationResult, ModelSource, Progress, SmoothRequest, SmoothRun } from '../worker/protocol.ts';
import { parseConfig, type Parsed } from './drafts.ts';
import { isCancelled, type GpuClient } from './gpu-client.ts';

export function configLabel(cfg: QuantConfig): string {
  if (cfg.format === 'fp8-e4m3') return 'FP8 E4M3';
  const g = cfg.granularity === 'group' ? `g${cfg.groupSize}` : cfg.granularity === 'channel' ? 'per-channel' : 'per-tensor';
  const clip = cfg.clipRatio !== undefined && cfg.clipRatio < 1 ? ` clip ${cfg.clipRatio}` : '';
  return `INT${cfg.bits} ${g} ${cfg.scheme}${clip}`;
}

/** The plan the form describes, with a key that changes whenever the plan or the model does. */
export function currentPlan(m: ModelState): Parsed<{ plan: QuantPlan; key: string; label: string }> {
  const cfg = parseConfig(m.config);
  if (!cfg.ok) return cfg;
  const plan: QuantPlan = { base: cfg.value, overrides: m.overrides };
  const d = m.description;
  const key = JSON.stringify([d?.name, d?.sizeBytes, d?.totalParams, plan]);
  return { ok: true, value: { plan, key, label: configLabel(cfg.value) } };
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class ModelEngine {
  private openCtl: AbortController | undefined;
  private quantCtl: AbortController | undefined;
  private genCtl: AbortController | undefined;

  constructor(
    private readonly client: GpuClient,
    private readonly store: AppStore,
  ) {}

  private get m(): ModelState {
    return this.store.getState().model;
  }

  private patch(p: Partial<ModelState>): void {
    this.store.getState().patchModel(p);
  }

  private progress(which: 'open' | 'quant', extra: Partial<OpState> & { target?: string } = {}) {
    return (p: Progress) => this.patch({ [which]: { ...this.m[which], ...extra, status: 'running', stage: p.stage, fraction: p.fraction } } as Partial<ModelState>);
  }

  openBundled(id: BundledModelId): Promise<void> {
    const entry = bundledModel(id);
    if (!entry) return Promise.resolve();
    const url = new URL(entry.url, document.baseURI).href;
    return this.open({ kind: 'bundled', id, url }, entry.title, `bundled: ${entry.title} (npm ${entry.npmPackage})`);
  }

  openFiles(files: File[]): Promise<void> {
    const names = files.map((f) => f.name).join(', ');
    return this.open({ kind: 'files', files }, names, `your files: ${names}`);
  }

  private async open(source: ModelSource, target: string, label: string): Promise<void> {
    this.openCtl?.abort();
    const ctl = new AbortController();
    this.openCtl = ctl;
    this.patch({ open: { status: 'running', target, stage: 'starting' } });
    try {
      const description = await this.client.request('openModel', source, { signal: ctl.signal, onProgress: this.progress('open', { target }) });
      // A new model: its own plan exceptions, no report, no generations (the prompt stays).
      this.quantCtl?.abort();
      this.genCtl?.abort();
      this.patch({
        description,
        sourceLabel: label,
        overrides: {},
        report: undefined,
        quant: { status: 'idle' },
        open: { status: 'done', target },
        gen: { ...this.m.gen, op: { status: 'idle' }, original: undefined, quantized: undefined, streaming: undefined, running: undefined },
      });
    } catch (e) {
      if (this.openCtl !== ctl) return;
      this.patch({ open: isCancelled(e) ? { status: 'cancelled', target } : { status: 'error', target, error: errorText(e) } });
    } finally {
      if (this.openCtl === ctl) this.openCtl = undefined;
    }
  }

  cancelOpen(): void {
    this.openCtl?.abort();
  }

  async quantize(): Promise<void> {
    const p = currentPlan(this.m);
    if (!p.ok || !this.m.description) return;
    this.quantCtl?.abort();
    const ctl = new AbortController();
    this.quantCtl = ctl;
    const modelName = this.m.description.name;
    this.patch({ quant: { status: 'running', stage: 'starting', fraction: 0 } });
    try {
      const report = await this.client.request('quantizeModel', { plan: p.value.plan, planKey: p.value.key }, { signal: ctl.signal, onProgress: this.progress('quant') });
      this.patch({ report: { ...report, planKey: p.value.key, label: p.value.label, modelName }, quant: { status: 'done' } });
    } catch (e) {
      if (this.quantCtl !== ctl) return;
      this.patch({ quant: isCancelled(e) ? { status: 'cancelled' } : { status: 'error', error: errorText(e) } });
    } finally {
      if (this.quantCtl === ctl) this.quantCtl = undefined;
    }
  }

  cancelQuantize(): void {
    this.quantCtl?.abort();
  }

  private calibCtl?: AbortController;

  /**
   * Calibrate the open model in the worker. Resolves with the run, or rejects (CancelledError on cancel);
   * the caller keeps its previous run until this one resolves.
   */
  async calibrate(request: CalibrateRequest, onProgress: (p: CalibProgress) => void): Promise<CalibrationRun> {
    this.calibCtl?.abort();
    const ctl = new AbortController();
    this.calibCtl = ctl;
    try {
      return await this.client.request(
        'calibrate',
        { ...request, baseUrl: document.baseURI },
        {
          signal: ctl.signal,
          onProgress: (p) => {
            const phase: CalibProgress['phase'] = /^capturing/.test(p.stage) ? 'capture' : /^choosing/.test(p.stage) ? 'calibrate' : 'data';
            onProgress({ phase, done: Math.round((p.fraction ?? 0) * 1000), total: p.fraction === undefined ? 0 : 1000, label: p.stage });
          },
        },
      );
    } finally {
      if (this.calibCtl === ctl) this.calibCtl = undefined;
    }
  }

  cancelCalibration(): void {
    this.calibCtl?.abort();
  }

  private awqCtl?: AbortController;
  private smoothCtl?: AbortController;
  private awqGenCtl?: AbortController;

  /** AWQ of the open Llama model; finished blocks arrive through onBlock. Rejects with CancelledError on cancel. */
  async awq(request: Omit<AwqRequest, 'baseUrl'>, onProgress: (p: Progress) => void, onBlock: (b: AwqBlockPartial) => void): Promise<AwqRun> {
    this.awqCtl?.abort();
    const ctl = new AbortController();
    this.awqCtl = ctl;
    try {
      return await this.client.request('awq', { ...request, baseUrl: document.baseURI }, { signal: ctl.signal, onProgress, onPartial: onBlock });
    } finally {
      if (this.awqCtl === ctl) this.awqCtl = undefined;
    }
  }

  cancelAwq(): void {
    this.awqCtl?.abort();
  }

  async smoothquant(request: Omit<SmoothRequest, 'baseUrl'>, onProgress: (p: Progress) => void): Promise<SmoothRun> {
    this.smoothCtl?.abort();
    const ctl = new AbortController();
    this.smoothCtl = ctl;
    try {
      return await this.client.request('smoothquant', { ...request, baseUrl: document.baseURI }, { signal: ctl.signal, onProgress });
    } finally {
      if (this.smoothCtl === ctl) this.smoothCtl = undefined;
    }
  }

  cancelSmoothquant(): void {
    this.smoothCtl?.abort();
  }

  private evalCtl?: AbortController;

  /** Evaluation of the open model; rows arrive through onRow as they finish. Rejects with CancelledError on cancel. */
  async evaluate(request: Omit<EvaluateRequest, 'baseUrl'>, onProgress: (p: Progress) => void, onRow: (row: EvalRow) => void): Promise<EvaluateResult> {
    this.evalCtl?.abort();
    const ctl = new AbortController();
    this.evalCtl = ctl;
    try {
      return await this.client.request('evaluate', { ...request, baseUrl: document.baseURI }, { signal: ctl.signal, onProgress, onPartial: onRow });
    } finally {
      if (this.evalCtl === ctl) this.evalCtl = undefined;
    }
  }

  cancelEvaluate(): void {
    this.evalCtl?.abort();
  }

  /** Greedy generation with the last finished AWQ run's weights. */
  async generateAwq(prompt: string, tokens: number, onPartial: (p: GenerationPartial) => void): Promise<GenerationResult> {
    this.awqGenCtl?.abort();
    const ctl = new AbortController();
    this.awqGenCtl = ctl;
    try {
      return await this.client.request('generate', { prompt, tokens, weights: 'awq' }, { signal: ctl.signal, onPartial });
    } finally {
      if (this.awqGenCtl === ctl) this.awqGenCtl = undefined;
    }
  }

  cancelGenerateAwq(): void {
    this.awqGenCtl?.abort();
  }

  async generate(weights: 'original' | 'quantized'): Promise<void> {
    const g = this.m.gen;
    const tokens = Number(g.tokens);
    const patchGen = this.store.getState().patchGeneration;
    if (!Number.isInteger(tokens) || tokens < 1 || tokens > 512) {
      patchGen({ op: { status: 'error', error: 'Tokens must be a whole number from 1 to 512.' } });
      return;
    }
    if (!g.prompt.trim()) {
      patchGen({ op: { status: 'error', error: 'Enter a prompt.' } });
      return;
    }
    this.genCtl?.abort();
    const ctl = new AbortController();
    this.genCtl = ctl;
    patchGen({ running: weights, streaming: '', op: { status: 'running', stage: 'starting' } });
    try {
      const result = await this.client.request(
        'generate',
        { prompt: g.prompt, tokens, weights },
        {
          signal: ctl.signal,
          onProgress: (p) => patchGen({ op: { status: 'running', stage: p.stage, fraction: p.fraction } }),
          onPartial: (p) => patchGen({ streaming: p.text }),
        },
      );
      patchGen({ [weights]: result, op: { status: 'done' }, running: undefined, streaming: undefined });
    } catch (e) {
      if (this.genCtl !== ctl) return;
      patchGen({ op: isCancelled(e) ? { status: 'cancelled' } : { status: 'error', error: errorText(e) }, running: undefined, streaming: undefined });
    } finally {
      if (this.genCtl === ctl) this.genCtl = undefined;
    }
  }

  cancelGenerate(): void {
    this.genCtl?.abort();
  }
}
