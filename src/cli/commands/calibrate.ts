/**
 * `quantlab calibrate MODEL --data FILE|DIR --method entropy|percentile|mse|max|ma-minmax [--percentile 99.99]
 * --out calib.json [--trt-cache calib.cache]`: run calibration data through the model, accumulate the
 * statistics of every quantizable layer's input on the GPU, choose each tensor's range with every
 * calibrator, and write the result (JSON; TensorRT calibration cache for ONNX models).
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { CancelledError } from '../../gpu/errors.ts';
import { LlamaGpu } from '../../model/llama/forward-gpu.ts';
import type { ModelHandle } from '../../model/workspace.ts';
import { captureLlamaStats } from '../../calib/capture-llama.ts';
import { calibrateOnnxNode } from '../../calib/calibrate-onnx-node.ts';
import { IMAGE_PRESETS, type ImagePreset } from '../../calib/image-preprocess.ts';
import { buildCalibrationResult, calibratorSweeps, CalibrationError } from '../../calib/result.ts';
import { CalibDataError } from '../../calib/text-data.ts';
import { trtCalibrationCache } from '../../calib/trt-cache.ts';
import type { ActivationSummary, CalibMethod, CalibrationResult } from '../../calib/types.ts';
import { llamaDataShape, llamaSequencesFromArgs } from '../calib-data.ts';
import { InputError, UsageError } from '../cli-errors.ts';
import type { CliIo, Command } from '../command.ts';
import { withNodeGpu } from '../node-gpu-session.ts';
import { openModelFromArgs } from '../open-model.ts';
import type { ParsedOptions } from '../options.ts';

const PERCENTILES = ['99.9', '99.99', '99.999'];

function sweepMode(opts: ParsedOptions): 'auto' | 'gpu' | 'cpu' {
  const m = opts.string('sweeps') ?? 'auto';
  if (m !== 'auto' && m !== 'gpu' && m !== 'cpu') throw new UsageError(`--sweeps must be auto, gpu or cpu, got ${m}`);
  return m;
}

export function methodFromArgs(method: string | undefined, percentile: string | undefined): CalibMethod {
  const m = method ?? 'entropy';
  if (m === 'percentile') {
    const p = percentile ?? '99.99';
    const norm = PERCENTILES.find((q) => Number(q) === Number(p));
    if (!norm) throw new UsageError(`--percentile must be one of ${PERCENTILES.join(', ')}, got ${p}`);
    return `percentile-${norm}` as CalibMethod;
  }
  if (percentile !== undefined) throw new UsageError('--percentile goes with --method percentile');
  if (m === 'max' || m === 'ma-minmax' || m === 'entropy' || m === 'mse') return m;
  throw new UsageError(`--method must be entropy, percentile, mse, max or ma-minmax, got ${m}`);
}

async function calibrateLlamaCli(h: Extract<ModelHandle, { kind: 'llama' }>, opts: ParsedOptions, io: CliIo, bits: number, method: CalibMethod): Promise<{ result: CalibrationResult; summaries: ActivationSummary[] }> {
  const ckpt = h.ckpt;
  const { seqLen } = llamaDataShape(h, opts);
  const t0 = performance.now();
  return withNodeGpu(async (ctx) => {
    const llm = await LlamaGpu.load(ctx, ckpt, { maxBatch: Math.min(64, seqLen) });
    try {
      const seqs = await llamaSequencesFromArgs(h, opts, llm);
      if (seqs.note) io.stderr(`note: ${seqs.note}\n`);
      const summaries = await captureLlamaStats(llm, seqs.sequences, {
        onProgress: opts.flag('json') ? undefined : (p) => p.done === p.total && io.stderr(`captured ${p.total} tokens\n`),
      });
      const result = buildCalibrationResult(h.name, summaries, {
        sweeps: await calibratorSweeps(ctx, summaries, bits, sweepMode(opts)),
        bits,
        method,
        data: { source: seqs.source, samples: seqs.sequences.length, sequenceLength: seqLen, tokens: seqs.tokens },
        seconds: (performance.now() - t0) / 1000,
      });
      return { result, summaries };
    } finally {
      llm.dispose();
    }
  });
}

function printTable(result: CalibrationResult, io: CliIo): void {
  const m = result.method;
  const nameW = Math.max(6, ...result.tensors.map((t) => t.name.length));
  io.stdout(`${'tensor'.padEnd(nameW)}  channels   absmax  ${m.padStart(10)}  SQNR dB  best\n`);
  for (const t of result.tensors) {
    io.stdout(
      `${t.name.padEnd(nameW)}  ${String(t.channels).padStart(8)}  ${t.amax.max.toPrecision(4).padStart(7)}  ${t.amax[m].toPrecision(4).padStart(10)}  ${t.sqnrDb[m].toFixed(1).padStart(7)}  ${t.best}\n`,
    );
  }
  const wins = new Map<string, number>();
  for (const t of result.tensors) wins.set(t.best, (wins.get(t.best) ?? 0) + 1);
  io.stdout(`${result.tensors.length} tensors, ${result.data.sequenceLength ? `${result.data.tokens} tokens` : `${result.data.tokens} rows (positions) per tensor at most`} of ${result.data.source}, ${result.seconds.toFixed(1)} s; best per tensor: ${[...wins].map(([k, v]) => `${k} ${v}`).join(', ')}\n`);
}

async function run(opts: ParsedOptions, io: CliIo): Promise<number> {
  const method = methodFromArgs(opts.string('method'), opts.string('percentile'));
  const bits = opts.int('bits', { min: 2, max: 8 }) ?? 8;
  const out = opts.string('out');
  const cachePath = opts.string('trt-cache');
  const json = opts.flag('json');
  if (!out && !json) throw new UsageError('give --out FILE.json (or --json to print the result)');
  const h = await openModelFromArgs(opts.positionals);
  let result: CalibrationResult;
  try {
    if (h.kind === 'llama') {
      if (opts.has('preprocess') || opts.has('det-side')) throw new UsageError('--preprocess and --det-side are for ONNX image models');
      result = (await calibrateLlamaCli(h, opts, io, bits, method)).result;
    } else {
      if (opts.has('seq-len')) throw new UsageError('--seq-len is for language models');
      const preset = opts.string('preprocess');
      if (preset !== undefined && !(IMAGE_PRESETS as readonly string[]).includes(preset)) throw new UsageError(`--preprocess must be one of ${IMAGE_PRESETS.join(', ')}, got ${preset}`);
      const side = opts.int('det-side', { min: 32, max: 4096 });
      const data = opts.string('data');
      result = (
        await calibrateOnnxNode(h, {
          data: data === undefined ? undefined : resolve(data),
          samples: opts.int('samples', { min: 1, max: 100_000 }),
          bits,
          method,
          preset: preset as ImagePreset | undefined,
          preprocess: side ? { limitSideLen: side } : undefined,
          sweeps: sweepMode(opts),
          onProgress: json ? undefined : (p) => p.done === p.total && io.stderr(`${p.phase}: ${p.total} done\n`),
        })
      ).result;
    }
  } catch (e) {
    if (e instanceof CalibDataError || e instanceof CalibrationError) throw new InputError(e.message);
    if (e instanceof CancelledError) throw e;
    throw e;
  }
  let cache: string | undefined;
  if (cachePath) {
    if (h.kind !== 'onnx') throw new UsageError('--trt-cache is for ONNX models: a TensorRT calibration cache names ONNX tensors');
    cache = trtCalibrationCache(result);
  }
  if (out) writeFileSync(resolve(out), JSON.stringify(result, null, 2) + '\n');
  if (cachePath && cache !== undefined) writeFileSync(resolve(cachePath), cache);
  if (json) io.stdout(JSON.stringify(result) + '\n');
  else printTable(result, io);
  return 0;
}

export const calibrateCommand: Command = {
  name: 'calibrate',
  summary: 'run calibration data through a model and choose every activation range (max, percentile, entropy, MSE)',
  synopsis: 'quantlab calibrate MODEL [--data FILE|DIR] [--method entropy|percentile|mse|max|ma-minmax] [--percentile 99.99] [--bits 8] --out calib.json [--trt-cache calib.cache] [--json]',
  description: [
    'MODEL as for inspect (stories15M names the bundled model; ONNX graphs too).',
    'Language models: --data is a .txt / .jsonl file (a "text" field per line) or a directory of them, or "generated" (samples from the model itself); without --data the bundled Moby-Dick chapters are used. --samples sequences of --seq-len tokens (default 128 x 512, or 16 x the context for small models).',
    'ONNX models: --data is a directory of .jpg / .png images; without it, the bundled photos (rendered text lines for OCR recognisers). --samples images.',
    'Every calibrator is computed for every tensor; --method picks the one written to the TensorRT cache and marked in the JSON.',
  ].join('\n'),
  maxPositionals: 16,
  options: [
    { name: 'data', value: 'FILE|DIR', help: 'calibration data (default: the bundled data for the model)' },
    { name: 'method', value: 'NAME', help: 'entropy (default), percentile, mse, max or ma-minmax' },
    { name: 'percentile', value: 'P', help: '99.9, 99.99 (default) or 99.999, with --method percentile' },
    { name: 'bits', value: 'B', help: 'activation bits (default 8)' },
    { name: 'samples', value: 'N', help: 'sequences or images' },
    { name: 'seq-len', value: 'L', help: 'tokens per sequence (language models)' },
    { name: 'preprocess', value: 'PRESET', help: `image preprocessing of ONNX models: ${IMAGE_PRESETS.join(', ')} (default: what the model's input implies)` },
    { name: 'det-side', value: 'N', help: 'ppocr-det: longest image side after resizing (default 960)' },
    { name: 'sweeps', value: 'WHERE', help: 'where the MSE / entropy sweeps run: auto (GPU unless it is a software adapter), gpu or cpu' },
    { name: 'out', value: 'FILE', help: 'write the calibration JSON here' },
    { name: 'trt-cache', value: 'FILE', help: 'also write a TensorRT calibration cache (ONNX models)' },
    { name: 'json', help: 'print the calibration JSON on stdout' },
  ],
  epilogue: 'Exit status 1 for data that cannot calibrate (too little text, images that do not decode, NaN in the activations).',
  run,
};
