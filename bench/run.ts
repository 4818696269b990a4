/**
 * `npm run bench`: throughput of every quantization kernel at several tensor sizes, as GB/s, as a
 * fraction of a plain copy kernel's GB/s measured in the same run at the same size (the device's
 * practical bandwidth), and as a speed-up over the CPU reference on the same input; then the model cases
 * on the bundled stories15M (bench/model.ts): forward-pass tokens/s (prefill and decode) of the WGSL engine
 * against the CPU reference, and whole-model RTN time against the CPU reference path; then the calibration
 * cases (bench/calib.ts): activation statistics throughput, the GPU histogram sweeps against the CPU
 * calibrators, and calibration time of stories15M and the PP-OCRv4 recogniser; then the AWQ and SmoothQuant
 * cases (bench/awq.ts): Gram-form against direct AWQ loss evaluation (GFLOP/s), one AWQ layer, AWQ on
 * stories15M, the SmoothQuant alpha sweep; then the evaluation case (bench/eval.ts): strided perplexity tokens/s
 * of the WGSL forward pass against the CPU reference. Prints tables and writes the results as JSON (default
 * bench-results/kernels.json; the model cases under "model", the calibration cases under "calib", the AWQ and
 * SmoothQuant cases under "awq", the evaluation case under "eval").
 *
 * Usage: node --import tsx bench/run.ts [--sizes 1M,4M,16M] [--quick] [--out FILE] [--only CASES] [--no-cpu] [--no-model]
 *        [--max-run-s S] [--budget-s S] [--prompt-tokens N] [--decode-tokens N] [--calib-shapes LIST] [--calib-text NxL] [--calib-lines N]
 * (scripts/bench.mjs installs what is missing and runs this.)
 *
 * Every kernel first runs twice on a 16K-element tensor: that builds its pipelines, and the second run's
 * time predicts the first size's. A kernel whose one run at a size is predicted (linearly from the
 * previous size it ran at) to take longer than --max-run-s is not run at that size, and once the run has
 * taken --budget-s the remaining sizes are left out; both are listed as skipped. On a software adapter
 * (SwiftShader) the clip sweep at 16M elements alone would take many minutes; no real GPU comes near
 * either limit.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { GpuContext } from '../src/gpu/context.ts';
import { createNodeGpuContext } from '../src/gpu/node-gpu.ts';
import { COLS, DISPATCH, Fixture, KERNEL_NAMES, SWEEP_RATIOS, type Bound } from './cases.ts';
import { MemoryTracker, timeCpu, timeGpu, timestampsAvailable, type MemoryPeak, type TimingMethod } from './measure.ts';
import { modelMissing, modelReport, runModelBench, type ModelBenchResult } from './model.ts';
import { AWQ_CASES, CALIB_CASES, copyReference, MODEL_CASES, selectAwqCases, selectCalibCases, selectCases, type AwqSelection, type CalibSelection, type Selection } from './model-stats.ts';
import { awqReport, DEFAULT_AWQ_LAYER, DEFAULT_AWQ_LLAMA, DEFAULT_SMOOTH_GROUP, formatLayer, QUICK_AWQ_LAYER, QUICK_AWQ_LLAMA, QUICK_SMOOTH_GROUP, runAwqBench, type AwqBenchResult } from './awq.ts';
import {
  calibReport,
  DEFAULT_LLAMA_TEXT,
  DEFAULT_OCR_LINES,
  DEFAULT_STATS_SHAPES,
  formatShape,
  parseShapes,
  parseTextShape,
  QUICK_LLAMA_TEXT,
  QUICK_OCR_LINES,
  QUICK_STATS_SHAPES,
  runCalibBench,
  type ActivationShape,
  type CalibBenchResult,
} from './calib.ts';
import { DEFAULT_EVAL_TOKENS, EVAL_CASES, evalReport, QUICK_EVAL_TOKENS, runEvalBench, splitEvalOnly, type EvalBenchResult } from './eval.ts';
import { DEFAULT_REP_PLAN, fmt, formatSize, formatTable, gbPerSecond, gelemPerSecond, needsWarmUp, parseSizes, predictMs, verdict, type RepPlan, type Verdict } from './stats.ts';

const DEFAULT_SIZES = '1M,4M,16M';
const QUICK_SIZES = '16K,64K';
const QUICK_PLAN: RepPlan = { ...DEFAULT_REP_PLAN, targetMs: 100 };
const PROMPT_TOKENS = 32;
const DECODE_TOKENS = 8;
const QUICK_PROMPT_TOKENS = 8;
const QUICK_DECODE_TOKENS = 4;
/** The issue's target: memory-bound kernels at 70% or more of the copy kernel's bandwidth at 16M elements. */
const TARGET_N = 16 * 2 ** 20;
const TARGET_RATIO = 0.7;
/** Size of the tensor that builds every pipeline before the measured sizes. */
const COMPILE_N = 4 * COLS;

const USAGE = `Usage: npm run bench -- [options]
  --sizes LIST   tensor sizes in float32 elements, multiples of ${COLS} (default ${DEFAULT_SIZES})
  --quick        tiny sizes (${QUICK_SIZES}) and shorter timing, for CI (model cases: prompt of ${QUICK_PROMPT_TOKENS} tokens, RTN on block 0)
  --out FILE     where to write the JSON results (default bench-results/kernels.json)
  --only LIST    only cases whose name contains one of these words (copy always runs), e.g. quantize,stats;
                 model cases: ${MODEL_CASES.join(', ')} (--only model runs both, and copy, nothing else);
                 calibration cases: ${CALIB_CASES.join(', ')} (--only calib runs all four, and copy);
                 AWQ / SmoothQuant cases: ${AWQ_CASES.join(', ')} (--only awq runs the three AWQ cases, --only smoothquant the sweep, and copy;
                 layer ${formatLayer(DEFAULT_AWQ_LAYER)}, --quick ${formatLayer(QUICK_AWQ_LAYER)}; stories15M ${DEFAULT_AWQ_LLAMA.sequences} x ${DEFAULT_AWQ_LLAMA.tokens} tokens grid ${DEFAULT_AWQ_LLAMA.grid},
                 --quick ${QUICK_AWQ_LLAMA.sequences} x ${QUICK_AWQ_LLAMA.tokens} grid ${QUICK_AWQ_LLAMA.grid}; sweep group ${DEFAULT_SMOOTH_GROUP.linears} x ${DEFAULT_SMOOTH_GROUP.channels} channels on ${DEFAULT_SMOOTH_GROUP.rows} rows,
                 --quick ${QUICK_SMOOTH_GROUP.linears} x ${QUICK_SMOOTH_GROUP.channels} on ${QUICK_SMOOTH_GROUP.rows})
  --no-cpu       skip the CPU reference timings (kernels, model, calibration and AWQ cases)
  --no-model     skip the model cases (stories15M forward pass and RTN) and the calibration and AWQ cases that load a model (calib-llama, calib-ocr, awq-llama)
  --max-run-s S  skip a kernel at a size (a calib-stats shape) where one run is predicted to take over S seconds (default 30; 0: never skip)
  --budget-s S   start no further kernel size or calib-stats shape once the run has taken S seconds (default 420; 0: no limit;
                 model, sweep and model calibration cases still run)
  --prompt-tokens N  prompt length of the forward-pass case (default ${PROMPT_TOKENS})
  --decode-tokens N  tokens decoded after the prompt per repetition (default ${DECODE_TOKENS})
  --calib-shapes LIST  activation matrices TOKENSxCHANNELS of calib-stats (default ${DEFAULT_STATS_SHAPES}; --quick ${QUICK_STATS_SHAPES})
  --calib-text NxL     calib-llama: N sequences of L tokens of the bundled text (default ${DEFAULT_LLAMA_TEXT}; --quick ${QUICK_LLAMA_TEXT})
  --calib-lines N      calib-ocr: rendered text lines (default ${DEFAULT_OCR_LINES}; --quick ${QUICK_OCR_LINES})
  --eval-tokens N      ${EVAL_CASES.join(', ')} (--only eval): perplexity of stories15M on N held-out tokens, WGSL against the CPU reference
                       (default ${DEFAULT_EVAL_TOKENS}; --quick ${QUICK_EVAL_TOKENS})
  --help         this text`;

interface Options {
  sizes: number[];
  quick: boolean;
  out: string;
  only: string[];
  selection: Selection;
  cpu: boolean;
  maxRunMs: number;
  budgetMs: number;
  promptTokens: number;
  decodeTokens: number;
  calib: CalibSelection;
  calibShapes: ActivationShape[];
  calibText: { sequences: number; tokens: number };
  calibLines: number;
  awq: AwqSelection;
  /** The evaluation case (bench/eval.ts) and its number of tokens. */
  evalCase: boolean;
  evalTokens: number;
}

function wholeNumber(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback;
  const v = Number(text);
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${flag} must be a whole number >= 1, got "${text}"`);
  return v;
}

function options(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      sizes: { type: 'string' },
      quick: { type: 'boolean', default: false },
      out: { type: 'string', default: 'bench-results/kernels.json' },
      only: { type: 'string' },
      'no-cpu': { type: 'boolean', default: false },
      'no-model': { type: 'boolean', default: false },
      'prompt-tokens': { type: 'string' },
      'decode-tokens': { type: 'string' },
      'calib-shapes': { type: 'string' },
      'calib-text': { type: 'string' },
      'calib-lines': { type: 'string' },
      'eval-tokens': { type: 'string' },
      'max-run-s': { type: 'string', default: '30' },
      'budget-s': { type: 'string', default: '420' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) return undefined;
  const maxRunS = Number(values['max-run-s']);
  if (!(maxRunS >= 0)) throw new RangeError(`--max-run-s must be a number of seconds >= 0, got "${values['max-run-s']}"`);
  const budgetS = Number(values['budget-s']);
  if (!(budgetS >= 0)) throw new RangeError(`--budget-s must be a number of seconds >= 0, got "${values['budget-s']}"`);
  const only = (values.only ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  // --only eval names the evaluation case, which the other selectors do not know.
  const split = splitEvalOnly(only, KERNEL_NAMES);
  const others = split.others;
  return {
    maxRunMs: maxRunS === 0 ? Infinity : 1000 * maxRunS,
    budgetMs: budgetS === 0 ? Infinity : 1000 * budgetS,
    sizes: parseSizes(values.sizes ?? (values.quick ? QUICK_SIZES : DEFAULT_SIZES), COLS),
    quick: values.quick,
    out: resolve(values.out),
    only,
    selection: selectCases(KERNEL_NAMES, others, { model: !values['no-model'] }),
    cpu: !values['no-cpu'],
    promptTokens: wholeNumber(values['prompt-tokens'], '--prompt-tokens', values.quick ? QUICK_PROMPT_TOKENS : PROMPT_TOKENS),
    decodeTokens: wholeNumber(values['decode-tokens'], '--decode-tokens', values.quick ? QUICK_DECODE_TOKENS : DECODE_TOKENS),
    calib: selectCalibCases(others, { model: !values['no-model'] }),
    calibShapes: parseShapes(values['calib-shapes'] ?? (values.quick ? QUICK_STATS_SHAPES : DEFAULT_STATS_SHAPES)),
    calibText: parseTextShape(values['calib-text'] ?? (values.quick ? QUICK_LLAMA_TEXT : DEFAULT_LLAMA_TEXT)),
    calibLines: wholeNumber(values['calib-lines'], '--calib-lines', values.quick ? QUICK_OCR_LINES : DEFAULT_OCR_LINES),
    awq: selectAwqCases(others, { model: !values['no-model'] }),
    evalCase: split.evalSelected && !values['no-model'],
    evalTokens: wholeNumber(values['eval-tokens'], '--eval-tokens', values.quick ? QUICK_EVAL_TOKENS : DEFAULT_EVAL_TOKENS),
  };
}

interface BenchResult {
  kernel: string;
  config: string;
  n: number;
  size: string;
  shaders: string[];
  bound: Bound;
  elements: number;
  bytes: number;
  byteModel: string;
  timing: TimingMethod;
  reps: number;
  /** Median GPU time of one call. */
  ms: number;
  minMs: number;
  /** Median wall time of one call, submit to completion (host work included). */
  wallMs: number;
  samplesMs: number[];
  /** False when the previous size showed one run takes over 2 s: the first timed run then also builds nothing (pipelines exist) but touches fresh buffers. */
  warmUp: boolean;
  gbps: number;
  gelemps: number;
  copyGbps: number;
  ratioToCopy: number;
  cpu: { ms: number; measuredMs: number; measuredElements: number; runs: number; note?: string } | null;
  speedup: number | null;
  note?: string;
}

interface Skipped {
  kernel: string;
  config: string;
  n: number;
  size: string;
  bound: Bound;
  predictedS: number;
  reason: string;
}

function describeDevice(ctx: GpuContext): string {
  const d = ctx.description;
  const name = [d.vendor, d.architecture].filter(Boolean).join(' ') || 'unknown adapter';
  const extra = [d.isFallbackAdapter ? 'fallback (software) adapter' : '', `features: ${d.features.join(', ') || 'none'}`].filter(Boolean).join('; ');
  return `${name}${d.description ? ` - ${d.description}` : ''} (${extra})`;
}

function timingDescription(method: TimingMethod, plan: RepPlan): string {
  const how =
    method === 'gpu-timestamp'
      ? 'GPU timestamp queries around each compute pass'
      : 'wall clock from submit to queue.onSubmittedWorkDone() (this adapter has no timestamp-query; host work is included)';
  return (
    `${how}; median of ${plan.minReps}+ reps (about ${plan.targetMs / 1000} s per kernel, 1 rep when one takes over ${plan.slowMs / 1000} s), ` +
    `after one warm-up at that size (left out when the previous size predicts a rep over ${plan.slowMs / 1000} s); all pipelines are built beforehand on a ${formatSize(COMPILE_N)} tensor`
  );
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;

/** The results table, in run order; a skipped kernel keeps its row, and its reason is listed below the table. */
function table(rows: (BenchResult | Skipped)[]): string {
  return formatTable(
    ['kernel', 'config', 'size', 'reps', 'ms', 'GB/s', 'Gelem/s', '% of copy', 'CPU ms', 'speed-up'],
    rows.map((r) => {
      const config = r.config + (r.bound === 'compute' ? ' *' : '');
      if ('reason' in r) return [r.kernel, config, r.size, '0', 'skipped', '-', '-', '-', '-', '-'];
      return [
        r.kernel,
        config,
        r.size,
        String(r.reps),
        fmt(r.ms),
        fmt(r.gbps),
        fmt(r.gelemps),
        `${Math.round(100 * r.ratioToCopy)}%`,
        r.cpu ? fmt(r.cpu.ms) + (r.cpu.measuredElements < r.elements ? '~' : '') : '-',
        r.speedup === null ? '-' : `${fmt(r.speedup)}x`,
      ];
    }),
  );
}

function verdictLine(v: Verdict, skipped: Skipped[]): string {
  const at = `${formatSize(v.n)}${v.n === TARGET_N ? '' : ` (largest size run; the target is ${formatSize(TARGET_N)})`}`;
  const pct = Math.round(100 * v.threshold);
  const notRun = skipped.filter((s) => s.bound === 'memory' && s.n === v.n).map((s) => `${s.kernel} ${s.config}`);
  return (
    `memory-bound kernels at >= ${pct}% of copy at ${at}: ${v.reached.join(', ') || 'none'}\n` +
    `memory-bound kernels below ${pct}% of copy at ${at}: ${v.below.join(', ') || 'none'}` +
    (notRun.length ? `\nmemory-bound kernels not run at ${formatSize(v.n)} (too slow on this adapter, see above): ${notRun.join(', ')}` : '')
  );
}

async function main(opts: Options): Promise<void> {
  const started = performance.now();
  const memory = new MemoryTracker();
  const plan = opts.quick ? QUICK_PLAN : DEFAULT_REP_PLAN;
  const ctx = await createNodeGpuContext({ onLost: (e) => console.error(`[bench] GPU device lost: ${e.message}`) });
  const method: TimingMethod = timestampsAvailable(ctx) ? 'gpu-timestamp' : 'wall-clock';
  const results: BenchResult[] = [];
  const skipped: Skipped[] = [];
  const ordered: (BenchResult | Skipped)[] = [];
  /** Wall time of one run at the last size each kernel ran at (or, before the first size, at COMPILE_N). */
  const lastRun = new Map<string, { n: number; wallMs: number }>();
  const measured = new Set<string>();
  const skippedSizes: number[] = [];
  const sel = opts.selection;
  const keep = (c: { kernel: string }) => {
    if (!(KERNEL_NAMES as readonly string[]).includes(c.kernel)) throw new Error(`bench/cases.ts measures a kernel "${c.kernel}" that KERNEL_NAMES does not list`);
    return sel.kernels.includes(c.kernel);
  };
  const log = (m: string) => console.log(m);
  const runModel = sel.forward || sel.rtn;
  let model: ModelBenchResult | null = null;
  const calibSel = opts.calib;
  const runCalib = calibSel.stats || calibSel.sweeps || calibSel.llama || calibSel.ocr;
  let calib: CalibBenchResult | null = null;
  const awqSel = opts.awq;
  const runAwq = awqSel.loss || awqSel.layer || awqSel.llama || awqSel.sweep;
  let awq: AwqBenchResult | null = null;
  let evalResult: EvalBenchResult | null = null;

  log('QuantLab kernel benchmark');
  log(`device:  ${describeDevice(ctx)}`);
  if (ctx.description.isFallbackAdapter) log('         a software adapter: the numbers show how efficient each kernel is relative to copy, not real GPU speed');
  log(`timing:  ${timingDescription(method, plan)}`);
  if (method === 'wall-clock') log('         NOTE: timestamp-query is missing, so these are wall-clock times, not GPU timestamps');
  log(`sizes:   ${opts.sizes.map(formatSize).join(', ')} float32 elements, each viewed as a weight [n/${COLS}, ${COLS}]; CPU: ${cpus()[0]?.model ?? 'unknown'} (${cpus().length} threads), Node ${process.version}`);
  log(`kernels: ${sel.kernels.join(', ')}`);
  if (runModel) {
    const what = [sel.forward ? `forward pass (prompt ${opts.promptTokens} tokens, ${opts.decodeTokens} decoded per rep)` : '', sel.rtn ? `whole-model RTN (${opts.quick ? 'block 0' : 'all linear layers'})` : '']
      .filter(Boolean)
      .join(' and ');
    log(`model:   stories15M ${what}${modelMissing() ? ` - skipped: ${modelMissing()}` : ''}`);
  } else {
    log('model:   not selected (--no-model, or --only names no model case)');
  }
  if (runCalib) {
    const what = [
      calibSel.stats ? `statistics on ${opts.calibShapes.map(formatShape).join(', ')}` : '',
      calibSel.sweeps ? 'MSE / entropy sweeps' : '',
      calibSel.llama ? `stories15M on ${opts.calibText.sequences} x ${opts.calibText.tokens} tokens` : '',
      calibSel.ocr ? `PP-OCRv4 rec on ${opts.calibLines} lines` : '',
    ].filter(Boolean);
    log(`calib:   ${what.join('; ')}`);
  } else {
    log('calib:   not selected (--only names no calibration case)');
  }
  if (runAwq) {
    const layer = opts.quick ? QUICK_AWQ_LAYER : DEFAULT_AWQ_LAYER;
    const llama = opts.quick ? QUICK_AWQ_LLAMA : DEFAULT_AWQ_LLAMA;
    const group = opts.quick ? QUICK_SMOOTH_GROUP : DEFAULT_SMOOTH_GROUP;
    const what = [
      awqSel.loss ? `Gram vs direct loss on ${formatLayer(layer)}` : '',
      awqSel.layer ? `one layer ${formatLayer(layer)}` : '',
      awqSel.llama ? `stories15M on ${llama.sequences} x ${llama.tokens} tokens, grid ${llama.grid}` : '',
      awqSel.sweep ? `SmoothQuant sweep of ${group.linears} x [${group.channels}, ${group.channels}] on ${group.rows} rows` : '',
    ].filter(Boolean);
    log(`awq:     ${what.join('; ')}`);
  } else {
    log('awq:     not selected (--only names no AWQ / SmoothQuant case)');
  }
  log(opts.evalCase ? `eval:    stories15M perplexity on ${opts.evalTokens} held-out tokens, WGSL forward against the CPU reference` : 'eval:    not selected (--no-model, or --only names no evaluation case)');
  log('');

  try {
    const t0 = performance.now();
    const small = await Fixture.create(ctx, COMPILE_N, { prepare: sel.kernelsBeyondCopy });
    for (const c of small.cases().filter(keep)) {
      await c.gpu();
      await ctx.device.queue.onSubmittedWorkDone();
      const t = performance.now();
      await c.gpu();
      await ctx.device.queue.onSubmittedWorkDone();
      lastRun.set(`${c.kernel} ${c.config}`, { n: COMPILE_N, wallMs: performance.now() - t });
    }
    small.release();
    log(`pipelines built (every kernel run on ${formatSize(COMPILE_N)} elements) in ${fmt((performance.now() - t0) / 1000)} s`);

    for (const n of opts.sizes) {
      if (performance.now() - started > opts.budgetMs) {
        skippedSizes.push(n);
        log(`[${formatSize(n)}] skipped: the run has taken over --budget-s ${opts.budgetMs / 1000}`);
        continue;
      }
      const t0 = performance.now();
      const fixture = await Fixture.create(ctx, n, { prepare: sel.kernelsBeyondCopy });
      const cases = fixture.cases().filter(keep);
      log(`[${formatSize(n)}] input and prepared buffers ready in ${fmt((performance.now() - t0) / 1000)} s`);
      let copyGbps = NaN;
      for (const c of cases) {
        const key = `${c.kernel} ${c.config}`;
        const predicted = predictMs(lastRun.get(key), n);
        // A kernel always runs at the first size; the prediction from the compile run is only good for skipping its warm-up.
        if (c.bound !== 'baseline' && measured.has(key) && predicted !== undefined && predicted > opts.maxRunMs) {
          const s: Skipped = {
            kernel: c.kernel,
            config: c.config,
            n,
            size: formatSize(n),
            bound: c.bound,
            predictedS: predicted / 1000,
            reason: `one run predicted to take ${fmt(predicted / 1000)} s (linearly from ${formatSize(lastRun.get(key)!.n)}), over --max-run-s ${opts.maxRunMs / 1000}`,
          };
          skipped.push(s);
          ordered.push(s);
          lastRun.set(key, { n, wallMs: predicted });
          log(`[${s.size}] ${key.padEnd(44)} skipped: ${s.reason}`);
          continue;
        }
        const t = await timeGpu(ctx, c.gpu, plan, needsWarmUp(lastRun.get(key), n, plan));
        lastRun.set(key, { n, wallMs: t.wallMs });
        measured.add(key);
        memory.sample();
        const gbps = gbPerSecond(c.bytes, t.ms);
        if (c.bound === 'baseline') copyGbps = gbps;
        let cpu: BenchResult['cpu'] = null;
        if (opts.cpu) {
          const ct = timeCpu(c.cpu.run);
          memory.sample();
          cpu = { ms: (ct.ms * c.elements) / c.cpu.elements, measuredMs: ct.ms, measuredElements: c.cpu.elements, runs: ct.runs, note: c.cpu.note };
        }
        const r: BenchResult = {
          kernel: c.kernel,
          config: c.config,
          n,
          size: formatSize(n),
          shaders: c.shaders,
          bound: c.bound,
          elements: c.elements,
          bytes: c.bytes,
          byteModel: c.byteModel,
          timing: t.method,
          reps: t.reps,
          ms: t.ms,
          minMs: t.minMs,
          wallMs: t.wallMs,
          samplesMs: t.samplesMs,
          warmUp: t.warmUp,
          gbps,
          gelemps: gelemPerSecond(c.elements, t.ms),
          copyGbps,
          ratioToCopy: gbps / copyGbps,
          cpu,
          speedup: cpu ? cpu.ms / t.ms : null,
          note: t.note,
        };
        results.push(r);
        ordered.push(r);
        log(
          `[${r.size}] ${`${r.kernel} ${r.config}`.padEnd(44)} ${fmt(r.ms).padStart(8)} ms  ${fmt(r.gbps).padStart(6)} GB/s  ${String(Math.round(100 * r.ratioToCopy)).padStart(3)}% of copy` +
            (cpu ? `  CPU ${fmt(cpu.ms)} ms` : '') +
            (t.warmUp ? '' : '  [no warm-up: slow]') +
            (t.note ? `  (${t.note})` : ''),
        );
      }
      fixture.release();
      (globalThis as { gc?: () => void }).gc?.();
    }

    if (runModel) {
      log('');
      model = await runModelBench(ctx, {
        forward: sel.forward,
        rtn: sel.rtn,
        cpu: opts.cpu,
        quick: opts.quick,
        promptTokens: opts.promptTokens,
        decodeTokens: opts.decodeTokens,
        copy: copyReference(results),
        log,
      });
      memory.sample();
      if (model.error) process.exitCode = 1;
    }

    if (runCalib) {
      log('');
      calib = await runCalibBench(ctx, {
        selection: calibSel,
        cpu: opts.cpu,
        plan,
        shapes: opts.calibShapes,
        llamaText: opts.calibText,
        ocrLines: opts.calibLines,
        maxRunMs: opts.maxRunMs,
        budgetMs: opts.budgetMs,
        startedAt: started,
        log,
      });
      memory.sample();
      if (Object.keys(calib.errors).length) process.exitCode = 1;
    }

    if (runAwq) {
      log('');
      awq = await runAwqBench(ctx, { selection: awqSel, cpu: opts.cpu, plan, quick: opts.quick, log });
      memory.sample();
      if (Object.keys(awq.errors).length) process.exitCode = 1;
    }

    if (opts.evalCase) {
      log('');
      evalResult = await runEvalBench(ctx, { cpu: opts.cpu, tokens: opts.evalTokens, log });
      memory.sample();
      if (evalResult.error) process.exitCode = 1;
    }
  } finally {
    ctx.dispose();
  }

  const v = verdict(results, TARGET_N, TARGET_RATIO);
  const peak: MemoryPeak = memory.stop();
  const durationS = (performance.now() - started) / 1000;
  const methods = new Set(results.map((r) => r.timing));

  log('');
  log(table(ordered));
  log('');
  for (const s of skipped) log(`skipped: ${s.kernel} ${s.config} at ${s.size}: ${s.reason}`);
  if (skippedSizes.length) log(`skipped sizes (time budget --budget-s ${opts.budgetMs / 1000} spent): ${skippedSizes.map(formatSize).join(', ')}`);
  log('* compute-bound (every ratio re-reads x): GB/s and % of copy are effective, Gelem/s = elements x ratios per second.');
  if (results.some((r) => r.cpu && r.cpu.measuredElements < r.elements)) {
    log('~ CPU time measured on a prefix of the tensor and scaled linearly (see cpu.note in the JSON).');
  }
  log('qparams: Gelem/s counts groups. GB/s counts the bytes of each byte model once (see byteModel in the JSON).');
  if (results.some((r) => r.bound === 'memory')) log(verdictLine(v, skipped));
  if (model) {
    const copy = copyReference(results);
    log('');
    log(modelReport(model));
    if (copy && (model.forward || model.rtn.length)) log(`% of copy: against the copy kernel's ${fmt(copy.gbps)} GB/s at ${formatSize(copy.n)} elements in this run`);
  }
  if (calib) {
    log('');
    log(calibReport(calib));
  }
  if (awq) {
    log('');
    log(awqReport(awq));
  }
  if (evalResult) {
    log('');
    log(evalReport(evalResult));
  }
  log(
    `memory: peak RSS ${mib(peak.maxRssBytes)}, peak JS heap used ${mib(peak.heapUsedBytes)} (of ${mib(peak.heapTotalBytes)}), peak typed arrays ${mib(peak.arrayBuffersBytes)}`,
  );
  log(`total time ${fmt(durationS)} s`);

  const json = {
    schema: 'quantlab-bench-kernels/1',
    date: new Date().toISOString(),
    device: ctx.description,
    timing: methods.size === 1 ? [...methods][0] : 'mixed',
    timingDescription: timingDescription(method, plan),
    units: { gbps: '1e9 bytes per second, bytes from byteModel', gelemps: '1e9 elements per second (clip-sweep: elements x ratios; qparams: groups)' },
    host: { node: process.version, platform: `${process.platform}-${process.arch}`, cpu: cpus()[0]?.model ?? 'unknown', threads: cpus().length },
    sizes: opts.sizes,
    shape: `[n/${COLS}, ${COLS}]`,
    sweepRatios: SWEEP_RATIOS,
    dispatch: DISPATCH,
    repPlan: plan,
    maxRunS: opts.maxRunMs / 1000,
    budgetS: opts.budgetMs / 1000,
    results,
    skipped,
    skippedSizes,
    model,
    calib,
    awq,
    eval: evalResult,
    summary: { ...v, targetN: TARGET_N, notRun: skipped.filter((s) => s.bound === 'memory' && s.n === v.n).map((s) => `${s.kernel} ${s.config}`), verdict: verdictLine(v, skipped) },
    memory: peak,
    durationS,
  };
  mkdirSync(dirname(opts.out), { recursive: true });
  writeFileSync(opts.out, JSON.stringify(json, null, 2) + '\n');
  log(`results written to ${opts.out}`);
}

let opts: Options | undefined;
try {
  opts = options(process.argv.slice(2));
} catch (e) {
  console.error(`[bench] ${(e as Error).message}\n${USAGE}`);
  process.exit(2);
}
if (!opts) {
  console.log(USAGE);
} else {
  main(opts).catch((e: unknown) => {
    console.error(`[bench] failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exitCode = 1;
  });
}
