/**
 * `quantlab quantize`: two modes on the same GPU kernels as the Playground.
 *  - `quantize MODEL ...`: round-to-nearest over every quantizable layer of a model, with a per-layer
 *    error report (quantize-model.ts).
 *  - `quantize --input x.npy --out DIR`: one tensor, writing its codes, scales, zero points and dequantized
 *    values as .npy files with the error it introduced (MSE, SQNR); the files equal the CPU reference.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { writeNpy } from '../../io/npy.ts';
import { bitsPerWeight } from '../../quant/analyze.ts';
import { QuantConfigError, type QuantConfig } from '../../quant/config.ts';
import { QuantKernels } from '../../quant/gpu-kernels.ts';
import { makeGroupLayout, type GroupLayout } from '../../quant/layout.ts';
import { InputError, UsageError } from '../cli-errors.ts';
import type { CliIo, Command } from '../command.ts';
import { requireFinite } from '../finite-input.ts';
import { withNodeGpu } from '../node-gpu-session.ts';
import type { ParsedOptions } from '../options.ts';
import { configFromOptions, describeConfig, formatNumber, QUANT_CONFIG_OPTIONS } from '../quant-options.ts';
import { MODEL_QUANTIZE_OPTIONS, runModelQuantize } from '../quantize-model.ts';
import { readTensorFile } from '../read-tensor-file.ts';

/** Scales and zero points as a weight's quantizer stores them: [rows, groupsPerRow], [rows, 1] or [1]. */
function paramShape(cfg: Required<QuantConfig>, layout: GroupLayout): number[] {
  if (cfg.granularity === 'tensor') return [1];
  return [layout.numGroups / layout.groupsPerRow, layout.groupsPerRow];
}

/** Options of one mode that make no sense in the other. */
const TENSOR_ONLY = ['input', 'out'];
const MODEL_ONLY = ['report', 'exclude', 'include', 'layer-bits'];

async function run(opts: ParsedOptions, io: CliIo): Promise<number> {
  const cfg = configFromOptions(opts, io);
  const models = opts.positionals;
  if (models.length > 0 && opts.has('input')) {
    throw new UsageError(`give either MODEL (quantize a whole model) or --input FILE.npy (quantize one tensor), not both (got ${models.join(' ')} and --input)`);
  }
  if (models.length > 0) {
    const wrong = TENSOR_ONLY.find((o) => opts.has(o));
    if (wrong) throw new UsageError(`--${wrong} is for one tensor (--input FILE.npy); a whole model writes its results with --report FILE`);
    return runModelQuantize(opts, io, cfg);
  }
  if (!opts.has('input')) throw new UsageError('missing MODEL or --input (a model to quantize layer by layer, or a .npy tensor; see quantlab quantize --help)');
  const wrong = MODEL_ONLY.find((o) => opts.has(o) || opts.list(o).length > 0);
  if (wrong) throw new UsageError(`--${wrong} is for whole models (quantlab quantize MODEL ...), not for --input`);
  return runTensorQuantize(opts, io, cfg);
}

async function runTensorQuantize(opts: ParsedOptions, io: CliIo, cfg: Required<QuantConfig>): Promise<number> {
  const input = opts.required('input', 'the .npy tensor to quantize');
  const outDir = resolve(opts.required('out', 'the output directory'));
  const json = opts.flag('json');

  const tensor = readTensorFile(input);
  let layout: GroupLayout;
  try {
    layout = makeGroupLayout(tensor.shape, cfg.granularity, cfg.groupSize);
  } catch (e) {
    if (e instanceof QuantConfigError) throw new InputError(`${input}: ${e.message}`);
    throw e;
  }
  requireFinite(tensor);
  try {
    mkdirSync(outDir, { recursive: true });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'EEXIST' || err.code === 'ENOTDIR' ? 'a file of that name is in the way' : err.message;
    throw new InputError(`cannot create the output directory ${outDir}: ${why}`);
  }

  const { result, metrics, device } = await withNodeGpu(async (ctx) => {
    const k = new QuantKernels(ctx);
    const x = k.upload(tensor.data, 'input tensor');
    try {
      const result = await k.quantize(x, layout, cfg);
      const metrics = await k.errorMetrics(x, result.dequantized);
      return { result, metrics, device: ctx.description };
    } finally {
      k.release(x);
    }
  });

  const pShape = paramShape(cfg, layout);
  const outputs = {
    codes: resolve(outDir, 'codes.npy'),
    scales: resolve(outDir, 'scales.npy'),
    zeros: resolve(outDir, 'zeros.npy'),
    dequant: resolve(outDir, 'dequant.npy'),
  };
  const files: [string, Uint8Array][] = [
    [outputs.codes, writeNpy(result.codes, tensor.shape)],
    [outputs.scales, writeNpy(result.qparams.scale, pShape)],
    // Symmetric and FP8 quantization have no zero point; an all-zero int32 file keeps one layout for every scheme.
    [outputs.zeros, writeNpy(Int32Array.from(result.qparams.zero), pShape)],
    [outputs.dequant, writeNpy(result.dequantized, tensor.shape)],
  ];
  for (const [path, bytes] of files) {
    try {
      writeFileSync(path, bytes);
    } catch (e) {
      throw new InputError(`cannot write ${path}: ${(e as Error).message}`);
    }
  }

  const bpw = bitsPerWeight(cfg, layout.numGroups, layout.n);
  if (json) {
    const report = {
      input: resolve(input),
      inputDtype: tensor.source.dtype,
      shape: tensor.shape,
      config: cfg,
      numGroups: layout.numGroups,
      mse: metrics.mse,
      // JSON has no Infinity: an exact reconstruction (zero error) reports sqnr null.
      sqnr: Number.isFinite(metrics.sqnr) ? metrics.sqnr : null,
      maxAbsError: metrics.maxAbsError,
      bitsPerWeight: bpw,
      outputs,
      device,
    };
    io.stdout(`${JSON.stringify(report)}\n`);
    return 0;
  }
  const codesType = result.codes instanceof Int8Array ? 'int8' : 'uint8';
  const sqnr = Number.isFinite(metrics.sqnr) ? `${metrics.sqnr.toFixed(2)} dB` : 'infinite (exact)';
  io.stdout(
    [
      `quantized ${input}: ${tensor.source.dtype} [${tensor.shape.join(', ')}], ${layout.n} values`,
      `  config   ${describeConfig(cfg)}: ${layout.numGroups} group${layout.numGroups === 1 ? '' : 's'}, ${formatNumber(bpw)} bits/weight`,
      `  error    MSE ${formatNumber(metrics.mse)}, SQNR ${sqnr}, max |error| ${formatNumber(metrics.maxAbsError)}`,
      `  device   ${device.description || `${device.vendor} ${device.architecture}`}${device.isFallbackAdapter ? ' (software fallback adapter)' : ''}`,
      `  wrote    ${outputs.codes}  ${codesType} [${tensor.shape.join(', ')}]`,
      `           ${outputs.scales}  float32 [${pShape.join(', ')}]`,
      `           ${outputs.zeros}  int32 [${pShape.join(', ')}]`,
      `           ${outputs.dequant}  float32 [${tensor.shape.join(', ')}]`,
      '',
    ].join('\n'),
  );
  return 0;
}

export const quantizeCommand: Command = {
  name: 'quantize',
  summary: 'RTN-quantize every layer of a model on the GPU (per-layer error report), or one .npy tensor',
  synopsis: [
    'quantlab quantize MODEL [MODEL ...] [--bits B] [--group-size N] [--granularity G] [--scheme S] [--clip R]',
    '                [--exclude PATTERN]... [--include PATTERN]... [--layer-bits PATTERN=BITS]... [--report FILE] [--json]',
    '       quantlab quantize --input FILE.npy --out DIR [options]',
  ].join('\n'),
  description: [
    'Whole model (MODEL given): round-to-nearest weight quantization of every quantizable layer with the',
    'GPU kernels of the Playground, one layer at a time: the linear layers of a Llama-family checkpoint',
    '(llama2.c .bin, GGUF, safetensors shards with config.json; stories15M names the bundled model) or the',
    'Conv / ConvTranspose / MatMul / Gemm layers of an ONNX model (.onnx; external data read from beside it).',
    'Each weight is viewed as [out, in] (conv kernels flatten into the row). Embeddings, the classifier',
    '(lm_head) and weights shared with an earlier layer stay at 16 bits unless --include names them. Prints',
    'a per-layer table (shape, parameters, bits, bytes at fp16 and quantized, MSE, SQNR, outlier score',
    'max|w|/rms(w)) and a summary (bits per weight, compression, time, whether weights + KV cache fit the',
    'Jetson Orin modules); progress goes to stderr. Nothing is written but the --report file.',
    '',
    'One tensor (--input): quantizes a .npy with the same kernels and writes its codes, scales, zero points',
    'and dequantized values to --out. A 2-D array is a weight in PyTorch [out, in] layout: rows are output',
    'channels and groups run along the last axis (the last group of a row may be partial). An N-D array',
    'flattens its trailing axes into columns; a 1-D array is one row. Any supported dtype (float32, float16,',
    'float64, int8, uint8, int32) is converted to float32. NaN or Inf values are refused in both modes.',
  ].join('\n'),
  maxPositionals: 16,
  options: [
    { name: 'input', value: 'FILE', help: 'one tensor: the .npy to quantize' },
    { name: 'out', value: 'DIR', help: 'one tensor: output directory, created if missing (required with --input)' },
    ...QUANT_CONFIG_OPTIONS,
    ...MODEL_QUANTIZE_OPTIONS,
    { name: 'json', help: 'print one JSON object on stdout instead of the table / summary (progress and notes go to stderr)' },
  ],
  epilogue: [
    'Layer patterns are globs on layer names (quantlab inspect MODEL lists them); * matches any run of',
    'characters: layers.*.w2, tok_embeddings, p2o.Conv.*. --exclude wins over --include; a later',
    '--layer-bits wins over an earlier one. A pattern that matches no layer is an error.',
    '',
    'Whole-model JSON (--report, --json): model (description summary), plan (base config, patterns, per-layer',
    'overrides), layers (name, op, kind, shape, params, config or null when kept, bits, bytesBefore at fp16,',
    'bytesAfter with fp16 scales and packed zero points, mse, sqnr in dB or null when exact, outlierScore),',
    'totals (over the listed layers), modelWeights (all tensors, the rest at fp16), memory (weights + fp16',
    'KV cache against each Jetson), device, seconds.',
    '',
    'One-tensor outputs (in DIR):',
    '  codes.npy    int8 for sym int, uint8 for asym int and for FP8 E4M3 bit patterns; the input shape',
    '  scales.npy   float32 [rows, groups per row] (group), [rows, 1] (channel), [1] (tensor)',
    '  zeros.npy    int32 zero points, shape of scales.npy; all 0 for sym and fp8-e4m3',
    '  dequant.npy  float32 dequantized values, (code - zero) * scale (E4M3 value * scale for fp8); input shape',
    'One-tensor JSON fields: input, inputDtype, shape, config, numGroups, mse, sqnr (dB; null when the error',
    'is zero), maxAbsError, bitsPerWeight (with one fp16 scale per group, and the zero point for asym),',
    'outputs {codes, scales, zeros, dequant}, device.',
    '',
    'Exit status: 0 done, 1 bad input data (unreadable model or .npy, NaN/Inf weights) or GPU failure,',
    '2 bad command line (options, layer patterns).',
    '',
    'Examples:',
    '  quantlab quantize stories15M --bits 4 --group-size 32 --layer-bits \'layers.*.w2=8\' --report q4.json',
    '  quantlab quantize ch_PP-OCRv4_rec_infer.onnx --bits 8 --granularity channel --scheme sym --json',
    '  quantlab quantize --input w.npy --bits 4 --granularity group --group-size 32 --scheme asym --out q/',
  ].join('\n'),
  run,
};
