/**
 * `quantlab eval MODEL [--data FILE] [--configs fp32,rtn-int4-g32,...] [--tokens N] [--context L] [--stride S]
 * [--prompt TEXT] [--gen-tokens N] [--cpu-check] [--json] [--out results.json]`: side-by-side evaluation of a
 * Llama-family model under quantization configurations (src/eval): strided perplexity on held-out text (the
 * bundled Moby-Dick chapters 100-135 unless --data), KL divergence to the FP32 model and top-1 agreement on the
 * same positions, bits per weight and size, time, and greedy generations. AWQ and SmoothQuant calibrate on
 * the bundled calibration chapters (1-99), never on the evaluation text.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { AwqError } from '../../awq/awq-llama.ts';
import { CalibrationError } from '../../calib/result.ts';
import { CalibDataError, defaultTextShape, parseTextFile, textToSequences } from '../../calib/text-data.ts';
import { loadMobyDickCalibrationNode, loadMobyDickEvalNode } from '../../calib/text-data-node.ts';
import { ActQuantError } from '../../eval/act-fake-quant.ts';
import { DEFAULT_EVAL_CONFIGS, parseEvalConfigs } from '../../eval/configs.ts';
import { evalTokens } from '../../eval/eval-text.ts';
import { cpuPerplexity, evaluateLlama } from '../../eval/llama-eval.ts';
import { EvalError, type EvalConfig, type EvalReport, type EvalRow } from '../../eval/types.ts';
import { CheckpointError } from '../../model/llama/model.ts';
import { SmoothQuantError } from '../../smooth/smoothquant.ts';
import { textFiles } from '../calib-data.ts';
import { InputError, UsageError } from '../cli-errors.ts';
import type { CliIo, Command } from '../command.ts';
import { withNodeGpu } from '../node-gpu-session.ts';
import { openModelFromArgs } from '../open-model.ts';
import type { ParsedOptions } from '../options.ts';
import { IMAGE_PRESETS, type ImagePreset } from '../../calib/image-preprocess.ts';
import { DEFAULT_ONNX_EVAL_CONFIGS, parseOnnxEvalConfigs, type OnnxEvalConfig, type OnnxEvalReport } from '../../eval/onnx-eval.ts';
import { evaluateOnnxNode } from '../../eval/onnx-eval-node.ts';
import type { OnnxModelHandle } from '../../model/workspace.ts';

const DEFAULT_TOKENS = 4096;
const DEFAULT_PROMPT = 'Once upon a time';
const DEFAULT_GEN_TOKENS = 24;

/** ONNX models: --data images (default the bundled held-out data), --samples, --calib-data, --calib-samples, --preprocess. */
async function runOnnx(h: OnnxModelHandle, opts: ParsedOptions, io: CliIo): Promise<number> {
  for (const o of ['tokens', 'context', 'stride', 'prompt', 'gen-tokens', 'calib-seq-len', 'cpu-check']) if (opts.has(o)) throw new UsageError(`--${o} is for language models`);
  let configs: OnnxEvalConfig[];
  try {
    configs = parseOnnxEvalConfigs(opts.string('configs') ?? DEFAULT_ONNX_EVAL_CONFIGS);
  } catch (e) {
    if (e instanceof EvalError) throw new UsageError(`--configs: ${e.message}`);
    throw e;
  }
  const presetArg = opts.string('preprocess');
  if (presetArg !== undefined && !(IMAGE_PRESETS as readonly string[]).includes(presetArg)) throw new UsageError(`--preprocess must be one of ${IMAGE_PRESETS.join(', ')}, got ${presetArg}`);
  const samples = opts.int('samples', { min: 1, max: 100_000 });
  const calibSamples = opts.int('calib-samples', { min: 1, max: 100_000 });
  const json = opts.flag('json');
  const outPath = opts.string('out');
  const data = opts.string('data');
  const calibData = opts.string('calib-data');
  try {
    const report = await evaluateOnnxNode(h, {
      configs,
      data: data === undefined ? undefined : resolve(data),
      samples,
      calibData: calibData === undefined ? undefined : resolve(calibData),
      calibSamples,
      preset: presetArg as ImagePreset | undefined,
      onRow: json ? undefined : (row) => io.stderr(`evaluated ${row.config} (${row.seconds.toFixed(1)} s)\n`),
    });
    if (outPath) writeFileSync(resolve(outPath), JSON.stringify(report, null, 2) + '\n');
    if (json) io.stdout(JSON.stringify(report) + '\n');
    else printOnnxTable(report, io);
    return 0;
  } catch (e) {
    if (e instanceof EvalError || e instanceof CalibDataError || e instanceof CalibrationError || e instanceof AwqError) throw new InputError(e.message);
    throw e;
  }
}

function printOnnxTable(r: OnnxEvalReport, io: CliIo): void {
  const keys = ['charAccuracy', 'wordAccuracy', 'lineAccuracy', 'boxF1', 'top1', 'top5', 'sqnr', 'cosine'].filter((k) => r.rows.some((x) => x.metrics[k] !== undefined));
  const w = Math.max(6, ...r.rows.map((x) => x.config.length));
  io.stdout(`${'config'.padEnd(w)}  bits/w   size MB  ${keys.map((k) => k.padStart(12)).join('  ')}    time s\n`);
  for (const x of r.rows) {
    const cells = keys.map((k) => {
      const v = x.metrics[k];
      return (v === undefined ? '-' : v === Infinity ? 'inf' : k === 'sqnr' ? v.toFixed(2) : v.toFixed(4)).padStart(12);
    });
    io.stdout(`${x.config.padEnd(w)}  ${fixed(x.bitsPerWeight, 3).padStart(6)}  ${(x.sizeBytes / 1e6).toFixed(2).padStart(8)}  ${cells.join('  ')}  ${x.seconds.toFixed(1).padStart(8)}\n`);
  }
  io.stdout(`task ${r.task.kind}${r.task.note ? ` (${r.task.note})` : ''}; ${r.data.samples} samples of ${r.data.source}${r.calibration ? `; calibration: ${r.calibration.source}` : ''}; ${r.runtime}; ${r.seconds.toFixed(1)} s\n`);
  const notes = new Set(r.rows.flatMap((x) => x.notes));
  for (const n of notes) io.stdout(`note: ${n}\n`);
}

function configsFromArgs(opts: ParsedOptions): EvalConfig[] {
  try {
    return parseEvalConfigs(opts.string('configs') ?? DEFAULT_EVAL_CONFIGS);
  } catch (e) {
    if (e instanceof EvalError) throw new UsageError(`--configs: ${e.message}`);
    throw e;
  }
}

const fixed = (v: number | undefined, d: number) => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(d));

function printTable(r: EvalReport, io: CliIo): void {
  const w = Math.max(6, ...r.rows.map((x) => x.config.length));
  io.stdout(`${'config'.padEnd(w)}  bits/w   size MB   perplexity   KL(fp32||q)   top-1    time s\n`);
  for (const x of r.rows) {
    const m = x.metrics;
    io.stdout(
      `${x.config.padEnd(w)}  ${fixed(x.bitsPerWeight, 3).padStart(6)}  ${(x.sizeBytes / 1e6).toFixed(2).padStart(8)}  ${fixed(m.perplexity, 4).padStart(11)}  ` +
        `${m.kl === undefined ? '-'.padStart(12) : m.kl.toExponential(3).padStart(12)}  ${fixed(m.top1 * 100, 1).padStart(5)}%  ${x.seconds.toFixed(1).padStart(8)}\n`,
    );
  }
  const d = r.data;
  io.stdout(`${d.tokens} tokens of ${d.source}, ${d.windows} windows of ${d.context} positions, stride ${d.stride}; ${r.seconds.toFixed(1)} s\n`);
  if (r.cpuCheck) {
    io.stdout(`FP32 perplexity: WGSL ${r.cpuCheck.gpuPerplexity.toFixed(6)}, CPU reference ${r.cpuCheck.perplexity.toFixed(6)} (relative difference ${r.cpuCheck.relDiff.toExponential(2)}, ${r.cpuCheck.seconds.toFixed(1)} s)\n`);
  }
  const gens = r.rows.filter((x) => x.generation !== undefined);
  if (gens.length) {
    io.stdout(`\ngreedy continuations of ${JSON.stringify(r.prompt)}:\n`);
    for (const x of gens) io.stdout(`${x.config.padEnd(w)}  ${JSON.stringify(x.generation)}\n`);
  }
}

async function run(opts: ParsedOptions, io: CliIo): Promise<number> {
  const h = await openModelFromArgs(opts.positionals);
  if (h.kind === 'onnx') return runOnnx(h, opts, io);
  if (opts.has('calib-data') || opts.has('preprocess') || opts.has('samples')) throw new UsageError('--calib-data, --preprocess and --samples are for ONNX models');
  const configs = configsFromArgs(opts);
  const count = opts.int('tokens', { min: 1, max: 1 << 24 }) ?? DEFAULT_TOKENS;
  const contextArg = opts.int('context', { min: 1, max: 1 << 20 });
  const strideArg = opts.int('stride', { min: 1, max: 1 << 20 });
  const prompt = opts.string('prompt') ?? DEFAULT_PROMPT;
  const genTokens = opts.int('gen-tokens', { min: 0, max: 1 << 16 }) ?? DEFAULT_GEN_TOKENS;
  const calibSamplesArg = opts.int('calib-samples', { min: 1, max: 100_000 });
  const calibSeqLenArg = opts.int('calib-seq-len', { min: 2, max: 1 << 20 });
  const awqGrid = opts.int('awq-grid', { min: 1, max: 100 });
  const json = opts.flag('json');
  const outPath = opts.string('out');
  const cpuCheck = opts.flag('cpu-check');
  const dataPath = opts.string('data');
  const ckpt = h.ckpt;
  const c = ckpt.config;
  const context = contextArg ?? c.seqLen;
  if (context > c.seqLen) throw new UsageError(`--context ${context} is longer than the model's context (${c.seqLen})`);
  const stride = strideArg ?? Math.max(1, Math.floor(context / 2));
  if (stride > context) throw new UsageError(`--stride ${stride} is longer than the context (${context})`);
  const shape = defaultTextShape(c.seqLen);
  const calibSeqLen = calibSeqLenArg ?? shape.seqLen;
  if (calibSeqLen > c.seqLen) throw new UsageError(`--calib-seq-len ${calibSeqLen} is longer than the model's context (${c.seqLen})`);
  const calibSamples = calibSamplesArg ?? shape.samples;
  const tok = ckpt.tokenizer;
  if (!tok) throw new InputError(`${h.name} has no tokenizer this tool can read${ckpt.tokenizerNote ? `: ${ckpt.tokenizerNote}` : ''}; evaluation needs one to tokenize the text`);
  const t0 = performance.now();
  try {
    let source: string;
    let tokens: number[];
    if (dataPath === undefined) {
      source = 'Moby-Dick chapters 100-135 (bundled, held out from calibration)';
      tokens = evalTokens(tok, loadMobyDickEvalNode(), count, source, undefined, context);
    } else {
      const files = textFiles(dataPath);
      source = files.length === 1 ? dataPath : `${files.length} files in ${dataPath}`;
      // --tokens is a cap; the text must fill at least one window of --context positions.
      tokens = evalTokens(tok, files.flatMap((f) => parseTextFile(f.name, f.bytes)), count, source, undefined, context);
    }
    if (tokens.length < count && !json) io.stderr(`note: ${source} gives ${tokens.length} tokens, fewer than --tokens ${count}: evaluating those\n`);
    const needsCalib = configs.some((x) => x.method === 'awq' || x.method === 'smoothquant');
    const calib = needsCalib ? textToSequences(tok, loadMobyDickCalibrationNode(), calibSamples, calibSeqLen, 'Moby-Dick chapters 1-99 (bundled)') : undefined;
    const promptIds = genTokens > 0 ? tok.encode(prompt, { bos: true }) : undefined;
    if (promptIds && promptIds.length + genTokens > c.seqLen) throw new UsageError(`the prompt (${promptIds.length} tokens) and --gen-tokens ${genTokens} exceed the model's context (${c.seqLen})`);
    const report = await withNodeGpu(async (ctx) => {
      let done = 0;
      let shown = 0;
      const r = await evaluateLlama(ctx, ckpt, {
        configs,
        tokens,
        context,
        stride,
        calibration: calib?.sequences,
        prompt: promptIds,
        genTokens,
        decode: (ids) => tok.decode(ids, promptIds?.[promptIds.length - 1]),
        awq: awqGrid ? { grid: awqGrid } : undefined,
        // About twenty progress lines over the whole run (windows of every config), not one per window.
        onProgress: json
          ? undefined
          : (p) => {
              if (p.total > 0 && (p.done - shown) * 20 >= p.total) {
                shown = p.done;
                io.stderr(`${Math.floor((100 * p.done) / p.total)}% (${p.label})\n`);
              }
            },
        onRow: json ? undefined : (row: EvalRow) => io.stderr(`evaluated ${row.config} (${++done} of ${configs.length}): perplexity ${row.metrics.perplexity.toFixed(4)}, ${row.seconds.toFixed(1)} s\n`),
      });
      const rep: EvalReport = {
        format: 'quantlab-eval',
        version: 1,
        model: h.name,
        data: { source, tokens: tokens.length, context: r.context, stride: r.stride, windows: r.windows.length },
        calibration: calib ? { source: calib.source, samples: calib.sequences.length, seqLen: calibSeqLen } : undefined,
        prompt: promptIds ? prompt : undefined,
        rows: r.rows,
        seconds: 0,
      };
      if (cpuCheck) {
        const t1 = performance.now();
        const cpu = await cpuPerplexity(ckpt, tokens, r.windows);
        const fp32 = r.rows.find((x) => x.method === 'fp32');
        // Without an fp32 row the WGSL FP32 perplexity is not in the table: it is recomputed here.
        const gpuPpl = fp32 ? fp32.metrics.perplexity : (await evaluateLlama(ctx, ckpt, { configs: [{ label: 'fp32', method: 'fp32' }], tokens, context, stride })).rows[0].metrics.perplexity;
        rep.cpuCheck = { perplexity: cpu.perplexity, gpuPerplexity: gpuPpl, relDiff: Math.abs(gpuPpl - cpu.perplexity) / cpu.perplexity, seconds: (performance.now() - t1) / 1000 };
      }
      return rep;
    });
    report.seconds = (performance.now() - t0) / 1000;
    if (outPath) writeFileSync(resolve(outPath), JSON.stringify(report, null, 2) + '\n');
    if (json) io.stdout(JSON.stringify(report) + '\n');
    else printTable(report, io);
    return 0;
  } catch (e) {
    if (
      e instanceof EvalError ||
      e instanceof CalibDataError ||
      e instanceof CalibrationError ||
      e instanceof CheckpointError ||
      e instanceof AwqError ||
      e instanceof SmoothQuantError ||
      e instanceof ActQuantError
    ) {
      throw new InputError(e.message);
    }
    throw e;
  }
}

export const evalCommand: Command = {
  name: 'eval',
  summary: 'evaluate quantization configs side by side: perplexity, KL and top-1 (Llama), OCR / detector / classifier accuracy and output SQNR (ONNX), size',
  synopsis: 'quantlab eval MODEL [--data FILE|DIR] [--configs fp32,rtn-int4-g32,...] [--tokens N] [--context L] [--stride S] [--prompt TEXT] [--gen-tokens N] [--cpu-check] [--json] [--out results.json]',
  description: [
    'MODEL as for inspect (stories15M names the bundled model; ppocr models by their .onnx path).',
    'Llama-family checkpoints:',
    'Perplexity over the first --tokens tokens of the evaluation text (fewer when the text is shorter), in windows of --context positions (BOS + text) starting every --stride tokens; each window scores only the tokens the previous one did not (Hugging Face strided perplexity).',
    'Every config also reports KL(P_fp32 || P_config) and top-1 agreement with the FP32 model on the same positions, bits per weight (fp16 scales and zero points included), the model size, the time, and a greedy continuation of --prompt.',
    `Configs: fp32, fp16, rtn-int<B>[-g<G>|-pc|-pt][-sym|-asym], rtn-fp8, awq-int<B>[-g<G>|-pc][-sym], smoothquant-w8a8[-a<alpha>][-pt] (default ${DEFAULT_EVAL_CONFIGS}). Only linear weights are quantized.`,
    'AWQ and SmoothQuant calibrate on the bundled Moby-Dick chapters 1-99 (--calib-samples x --calib-seq-len tokens); the default evaluation text is chapters 100-135.',
    'ONNX models (onnxruntime-node on the CPU):',
    'Every output\'s SQNR and cosine against FP32, and the task\'s metrics where the model\'s shapes tell it: OCR recogniser character / word / line accuracy on text lines rendered from the held-out chapters (ground truth known), detector box agreement with FP32 (IoU 0.5), classifier top-1 / top-5 agreement; otherwise SQNR / cosine only, with a note.',
    `Configs: fp32, fp16, rtn-*, awq-* as above, rtn-w8a8[-<calibrator>] (INT8 per-channel weights and per-tensor activations through QuantizeLinear, amax from max, ma-minmax, percentile-99.9/99.99/99.999, entropy or mse on --calib-data) (default ${DEFAULT_ONNX_EVAL_CONFIGS}). --samples evaluation lines / pages or images, --calib-samples calibration ones.`,
  ].join('\n'),
  maxPositionals: 16,
  options: [
    { name: 'data', value: 'FILE|DIR', help: 'evaluation text: a .txt / .jsonl file or a directory of them (default: the bundled held-out Moby-Dick chapters)' },
    { name: 'configs', value: 'LIST', help: `comma-separated configs (default ${DEFAULT_EVAL_CONFIGS})` },
    { name: 'tokens', value: 'N', help: `most evaluation tokens (default ${DEFAULT_TOKENS}); the text must fill at least one window of --context positions` },
    { name: 'context', value: 'L', help: "positions per window, BOS included (default the model's context)" },
    { name: 'stride', value: 'S', help: 'tokens between window starts (default context / 2)' },
    { name: 'prompt', value: 'TEXT', help: `prompt of the greedy generations (default "${DEFAULT_PROMPT}")` },
    { name: 'gen-tokens', value: 'N', help: `tokens generated per config (default ${DEFAULT_GEN_TOKENS}; 0: none)` },
    { name: 'calib-samples', value: 'N', help: 'calibration sequences for awq / smoothquant (default 128, or 16 for models with a context under 512)' },
    { name: 'calib-seq-len', value: 'L', help: 'tokens per calibration sequence (default 512, or the whole context when shorter)' },
    { name: 'awq-grid', value: 'N', help: 'AWQ ratios searched (default 20)' },
    { name: 'samples', value: 'N', help: 'ONNX: evaluation lines (OCR recogniser), rendered pages (detector) or images' },
    { name: 'calib-data', value: 'FILE|DIR', help: 'ONNX: calibration images for rtn-w8a8 / awq (default: bundled, distinct from the evaluation data)' },
    { name: 'preprocess', value: 'PRESET', help: `ONNX: ${IMAGE_PRESETS.join(', ')} (default: what the model's input implies)` },
    { name: 'cpu-check', help: 'also compute the FP32 perplexity with the CPU reference forward pass and print both' },
    { name: 'out', value: 'FILE', help: 'write the results as JSON' },
    { name: 'json', help: 'print the results as JSON' },
  ],
  epilogue:
    'Exit status 1 for data or models it cannot run (too little text, no tokenizer, NaN, images that do not decode), 2 for a bad command line (bad --configs, an option of the other model kind).\n' +
    'Example: quantlab eval stories15M --configs fp32,rtn-int8,rtn-int4-g32 --tokens 512 --cpu-check',
  run,
};
