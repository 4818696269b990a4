/**
 * `quantlab quantize`: quantize one tensor from a .npy file on the GPU and write its codes, scales,
 * zero points and dequantized values as .npy files, with the error it introduced (MSE, SQNR).
 * The same kernels as the Playground (QuantKernels.quantize), so the files equal the CPU reference.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { writeNpy } from '../../io/npy.ts';
import { bitsPerWeight } from '../../quant/analyze.ts';
import { MAX_BITS, MIN_BITS, QuantConfigError, validateQuantConfig, type Granularity, type NumberFormat, type QuantConfig, type Scheme } from '../../quant/config.ts';
import { QuantKernels } from '../../quant/gpu-kernels.ts';
import { makeGroupLayout, type GroupLayout } from '../../quant/layout.ts';
import { InputError, UsageError } from '../cli-errors.ts';
import type { CliIo, Command } from '../command.ts';
import { requireFinite } from '../finite-input.ts';
import { withNodeGpu } from '../node-gpu-session.ts';
import type { ParsedOptions } from '../options.ts';
import { readTensorFile } from '../read-tensor-file.ts';

const DEFAULT_BITS = 4;
const DEFAULT_GROUP_SIZE = 128;

/** Read and check every option before any file or GPU work, so mistakes fail fast. */
function configFromOptions(opts: ParsedOptions, io: CliIo): Required<QuantConfig> {
  const format = opts.choice<NumberFormat>('format', ['int', 'fp8-e4m3']) ?? 'int';
  const bits = opts.int('bits', { min: MIN_BITS, max: MAX_BITS }) ?? DEFAULT_BITS;
  const granularity = opts.choice<Granularity>('granularity', ['tensor', 'channel', 'group']) ?? 'group';
  const groupSize = opts.int('group-size', { min: 1 }) ?? DEFAULT_GROUP_SIZE;
  const scheme = opts.choice<Scheme>('scheme', ['sym', 'asym']) ?? (format === 'fp8-e4m3' ? 'sym' : 'asym');
  const clipRatio = opts.number('clip-ratio', 0, 1) ?? 1;
  if (format === 'fp8-e4m3' && opts.has('bits')) io.stderr('quantlab quantize: note: --bits is ignored for --format fp8-e4m3 (always 8 bits)\n');
  if (granularity !== 'group' && opts.has('group-size')) io.stderr(`quantlab quantize: note: --group-size is ignored for --granularity ${granularity}\n`);
  try {
    return validateQuantConfig({ bits, granularity, groupSize, scheme, format, clipRatio });
  } catch (e) {
    // Rules across options, e.g. FP8 E4M3 is symmetric only.
    if (e instanceof QuantConfigError) throw new UsageError(e.message);
    throw e;
  }
}

/** Scales and zero points as a weight's quantizer stores them: [rows, groupsPerRow], [rows, 1] or [1]. */
function paramShape(cfg: Required<QuantConfig>, layout: GroupLayout): number[] {
  if (cfg.granularity === 'tensor') return [1];
  return [layout.numGroups / layout.groupsPerRow, layout.groupsPerRow];
}

function describeConfig(cfg: Required<QuantConfig>): string {
  const grid = cfg.format === 'fp8-e4m3' ? 'FP8 E4M3' : `int${cfg.bits} ${cfg.scheme}`;
  const gran = cfg.granularity === 'group' ? `per-group (group size ${cfg.groupSize})` : `per-${cfg.granularity}`;
  return `${grid}, ${gran}, clip ratio ${cfg.clipRatio}`;
}

function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  return v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5) ? v.toExponential(4) : String(Number(v.toPrecision(5)));
}

async function run(opts: ParsedOptions, io: CliIo): Promise<number> {
  const cfg = configFromOptions(opts, io);
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
  summary: 'quantize a .npy tensor on the GPU; write codes, scales, zero points and dequantized values',
  synopsis: 'quantlab quantize --input FILE.npy --out DIR [options]',
  description: [
    'Quantizes one tensor with the GPU kernels of the Playground and reports the error (MSE, SQNR).',
    'A 2-D array is a weight in PyTorch [out, in] layout: rows are output channels and groups run along',
    'the last axis (the last group of a row may be partial). An N-D array flattens its trailing axes into',
    'columns; a 1-D array is one row. Any supported dtype (float32, float16, float64, int8, uint8, int32)',
    'is converted to float32; NaN or Inf values are refused.',
  ].join('\n'),
  options: [
    { name: 'input', value: 'FILE', help: '.npy tensor to quantize (required)' },
    { name: 'out', value: 'DIR', help: 'output directory, created if missing (required)' },
    { name: 'bits', value: 'B', help: `integer bit width, ${MIN_BITS} to ${MAX_BITS} (default ${DEFAULT_BITS}; fp8-e4m3 is always 8)` },
    { name: 'granularity', value: 'G', help: 'tensor, channel or group: which elements share one scale (default group)' },
    { name: 'group-size', value: 'N', help: `elements per group along a row (default ${DEFAULT_GROUP_SIZE})` },
    { name: 'scheme', value: 'S', help: 'sym (signed, zero point 0) or asym (unsigned with zero point); default asym for int, sym for fp8-e4m3' },
    { name: 'format', value: 'F', help: 'int or fp8-e4m3 (default int)' },
    { name: 'clip-ratio', value: 'R', help: "clip threshold as a fraction of each group's absmax, in (0, 1] (default 1)" },
    { name: 'json', help: 'print one JSON object on stdout instead of the summary (notes go to stderr)' },
  ],
  epilogue: [
    'Outputs (in DIR):',
    '  codes.npy    int8 for sym int, uint8 for asym int and for FP8 E4M3 bit patterns; the input shape',
    '  scales.npy   float32 [rows, groups per row] (group), [rows, 1] (channel), [1] (tensor)',
    '  zeros.npy    int32 zero points, shape of scales.npy; all 0 for sym and fp8-e4m3',
    '  dequant.npy  float32 dequantized values, (code - zero) * scale (E4M3 value * scale for fp8); input shape',
    '',
    'JSON fields: input, inputDtype, shape, config, numGroups, mse, sqnr (dB; null when the error is',
    'zero), maxAbsError, bitsPerWeight (with one fp16 scale per group, and the zero point for asym),',
    'outputs {codes, scales, zeros, dequant}, device.',
    '',
    'Exit status: 0 done, 1 bad input data or GPU failure, 2 bad command line.',
    '',
    'Example:',
    '  quantlab quantize --input w.npy --bits 4 --granularity group --group-size 32 --scheme asym --out q/',
  ].join('\n'),
  run,
};
