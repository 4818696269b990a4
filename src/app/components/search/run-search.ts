/**
 * Starts and cancels the AWQ & SmoothQuant page's runs: reads the chosen text files, calls the model engine,
 * streams progress (and AWQ's finished blocks) into the search slice, and stores a result only when the run
 * finished. A cancelled, failed or superseded run leaves the previous result in place; AWQ's finished blocks
 * stay listed so that the next run with the same settings can resume after them.
 */
import type { CalibDataSource } from '../../../calib/types.ts';
import type { QuantConfig } from '../../../quant/config.ts';
import type { ActQuant } from '../../../smooth/smoothquant.ts';
import { isCancelled } from '../../engine/gpu-client.ts';
import type { ModelEngine } from '../../engine/model-engine.ts';
import { addAwqBlock, getAwqBlocks, putAwqRun, putSmoothRun, resetAwqBlocks } from '../../engine/search-cache.ts';
import type { AppStore } from '../../store/index.ts';
import type { Progress } from '../../worker/protocol.ts';
import { awqGroupKey, type LlamaSourceKind } from './search-data.ts';

interface DataStart {
  source: LlamaSourceKind;
  files: File[];
  samples: number;
  seqLen: number;
  /** calibModelKey of the open model. */
  modelKey: string;
}

export interface AwqStart extends DataStart {
  quant: QuantConfig;
  duo: boolean;
  clip: boolean;
  /** awqSettingsKey of the form: the blocks that arrive belong to it. */
  settingsKey: string;
  resume: boolean;
}

export interface SmoothStart extends DataStart {
  alpha: number | 'sweep';
  act: ActQuant;
  perGroup: boolean;
  rows: number;
}

let awqToken = 0;
let smoothToken = 0;
let genToken = 0;

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function dataSource(start: DataStart): Promise<CalibDataSource> {
  if (start.source !== 'text-files') return { kind: start.source };
  return { kind: 'text-files', files: await Promise.all(start.files.map(async (f) => ({ name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) }))) };
}

const running = (p: Progress) => ({ status: 'running' as const, stage: p.stage, fraction: p.fraction });

export async function startAwq(engine: ModelEngine, store: AppStore, start: AwqStart): Promise<void> {
  const token = ++awqToken;
  const live = () => token === awqToken;
  const patch = store.getState().patchSearch;
  const st = store.getState().search;
  const resume = start.resume && st.awqBlocksKey === start.settingsKey && getAwqBlocks(st.awqBlocksVersion).length > 0;
  // A fresh run starts an empty list; a resume keeps the finished blocks on screen (the worker sends them again).
  patch({ awqOp: { status: 'running', stage: resume ? 'resuming' : 'starting', fraction: 0 }, awqBlocksKey: start.settingsKey, ...(resume ? {} : { awqBlocksVersion: resetAwqBlocks() }) });
  try {
    const data = await dataSource(start);
    if (!live()) return;
    const run = await engine.awq(
      { data, samples: start.samples, seqLen: start.seqLen, quant: start.quant, duo: start.duo, clip: start.clip, resume },
      (p) => live() && patch({ awqOp: running(p) }),
      (b) => {
        if (!live()) return;
        const v = addAwqBlock(b);
        const sel = store.getState().search.awqGroup;
        patch({ awqBlocksVersion: v, ...(sel ? {} : { awqGroup: b.groups[0] ? awqGroupKey(b.groups[0]) : undefined }) });
      },
    );
    if (!live()) return;
    const sel = store.getState().search.awqGroup;
    const keep = run.groups.some((g) => awqGroupKey(g) === sel);
    patch({ awqVersion: putAwqRun(run), awqFor: start.modelKey, awqGroup: keep ? sel : run.groups[0] && awqGroupKey(run.groups[0]), awqOp: { status: 'done' }, awqGen: { status: 'idle' } });
  } catch (e) {
    if (!live()) return;
    patch({ awqOp: isCancelled(e) ? { status: 'cancelled' } : { status: 'error', error: errorText(e) } });
  }
}

export function cancelAwq(engine: ModelEngine, store: AppStore): void {
  if (store.getState().search.awqOp.status !== 'running') return;
  awqToken++;
  engine.cancelAwq();
  store.getState().patchSearch({ awqOp: { status: 'cancelled' } });
}

export async function startSmooth(engine: ModelEngine, store: AppStore, start: SmoothStart): Promise<void> {
  const token = ++smoothToken;
  const live = () => token === smoothToken;
  const patch = store.getState().patchSearch;
  patch({ smoothOp: { status: 'running', stage: 'starting', fraction: 0 } });
  try {
    const data = await dataSource(start);
    if (!live()) return;
    const run = await engine.smoothquant(
      { data, samples: start.samples, seqLen: start.seqLen, alpha: start.alpha, act: start.act, perGroup: start.perGroup, maxRows: start.rows },
      (p) => live() && patch({ smoothOp: running(p) }),
    );
    if (!live()) return;
    const sel = store.getState().search.smoothGroup;
    const keep = run.report.groups.some((g) => g.group === sel);
    patch({ smoothVersion: putSmoothRun(run), smoothFor: start.modelKey, smoothGroup: keep ? sel : run.report.groups[0]?.group, smoothOp: { status: 'done' } });
  } catch (e) {
    if (!live()) return;
    patch({ smoothOp: isCancelled(e) ? { status: 'cancelled' } : { status: 'error', error: errorText(e) } });
  }
}

export function cancelSmooth(engine: ModelEngine, store: AppStore): void {
  if (store.getState().search.smoothOp.status !== 'running') return;
  smoothToken++;
  engine.cancelSmoothquant();
  store.getState().patchSearch({ smoothOp: { status: 'cancelled' } });
}

/** Greedy generation with the AWQ weights of the run shown (version `runVersion`). */
export async function generateWithAwq(engine: ModelEngine, store: AppStore, prompt: string, tokens: number, runVersion: number): Promise<void> {
  const token = ++genToken;
  const live = () => token === genToken;
  const patch = store.getState().patchSearch;
  patch({ awqGen: { status: 'running', text: '', runVersion } });
  try {
    const r = await engine.generateAwq(prompt, tokens, (p) => live() && patch({ awqGen: { status: 'running', text: p.text, runVersion } }));
    if (live()) patch({ awqGen: { status: 'done', text: r.text, runVersion } });
  } catch (e) {
    if (live()) patch({ awqGen: isCancelled(e) ? { status: 'cancelled', runVersion } : { status: 'error', error: errorText(e), runVersion } });
  }
}

export function cancelGenerateWithAwq(engine: ModelEngine, store: AppStore): void {
  genToken++;
  engine.cancelGenerateAwq();
  const g = store.getState().search.awqGen;
  if (g.status === 'running') store.getState().patchSearch({ awqGen: { ...g, status: 'cancelled' } });
}
