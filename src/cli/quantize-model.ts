/**
 * `quantlab quantize MODEL ...`: whole-model round-to-nearest weight quantization on the GPU. The model is
 * opened through the shared workspace (model/workspace.ts), the command line becomes a QuantPlan
 * (layer-selection.ts), quantizeLayersRtn (quant/model-rtn.ts) runs it layer by layer, and the result is a
 * per-layer table, a summary with the Jetson memory fit, and the same data as JSON (--report, --json).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { GpuError } from '../gpu/errors.ts';
import { ByteSourceError } from '../model/formats/byte-source.ts';
import { CheckpointError } from '../model/llama/model.ts';
import { deviceFits, kvCacheBytes, RUNTIME_RESERVE_GIB } from '../model/memory-estimate.ts';
import { OnnxExternalDataError, OnnxFormatError } from '../model/onnx/model.ts';
import { describeModel, ModelOpenError, planFunction, quantizableLayers, type ModelDescription, type ModelHandle, type QuantPlan } from '../model/workspace.ts';
import { QuantConfigError, type QuantConfig } from '../quant/config.ts';
import { QuantKernels } from '../quant/gpu-kernels.ts';
import { quantizeLayersRtn, type LayerReport, type ModelQuantReport } from '../quant/model-rtn.ts';
import { CliError, InputError, UsageError } from './cli-errors.ts';
import type { CliIo } from './command.ts';
import { parseLayerBits, selectionOverrides, type LayerSelection } from './layer-selection.ts';
import { withNodeGpu } from './node-gpu-session.ts';
import { openModelFromArgs } from './open-model.ts';
import type { OptionSpec, ParsedOptions } from './options.ts';
import { describeConfig, formatBytes, formatNumber } from './quant-options.ts';

const EXCLUDE: OptionSpec = { name: 'exclude', value: 'PATTERN', repeatable: true, help: 'whole model: keep the layers the glob matches at 16 bits (repeatable)' };
const INCLUDE: OptionSpec = {
  name: 'include',
  value: 'PATTERN',
  repeatable: true,
  help: 'whole model: also quantize layers kept at 16 bits by default: embeddings, lm_head, shared weights (repeatable)',
};
const LAYER_BITS: OptionSpec = { name: 'layer-bits', value: 'PATTERN=BITS', repeatable: true, help: 'whole model: other bits for the layers the glob matches (repeatable)' };

export const MODEL_QUANTIZE_OPTIONS = [
  EXCLUDE,
  INCLUDE,
  LAYER_BITS,
  { name: 'report', value: 'FILE', help: 'whole model: write the full JSON report to FILE' },
];

/** One row of the JSON report: the RTN layer report, its op, and sqnr null when the error is exactly zero. */
export interface LayerReportJson extends Omit<LayerReport, 'sqnr'> {
  op: string;
  sqnr: number | null;
  note?: string;
}

/** The whole-model JSON report (--report FILE, --json). */
export interface ModelQuantReportJson {
  model: {
    name: string;
    kind: ModelDescription['kind'];
    format: string;
    /** The MODEL arguments (absolute paths; stories15M as given). */
    files: string[];
    sizeBytes: number;
    totalParams: number;
    quantizableParams: number;
    layerCount: number;
    groupCount: number;
    llama?: ModelDescription['llama'];
    onnx?: ModelDescription['onnx'];
  };
  plan: QuantPlan & { include: string[]; exclude: string[]; layerBits: { pattern: string; bits: number }[] };
  layers: LayerReportJson[];
  /** Over the listed (quantizable) layers, kept ones at 16 bits. */
  totals: {
    layers: number;
    quantizedLayers: number;
    /** Parameters of the quantized layers alone, and their bytes before / after (kept layers left out). */
    quantizedParams: number;
    quantizedBytesBefore: number;
    quantizedBytesAfter: number;
    quantizedBitsPerWeight: number;
    params: number;
    bytesBefore: number;
    bytesAfter: number;
    bitsPerWeight: number;
    compressionRatio: number;
    /** GPU quantization time (loading weights included). */
    seconds: number;
  };
  /** Every tensor of the model: listed layers as quantized (a shared weight once), the rest (norms, biases) at fp16. */
  modelWeights: { params: number; otherParams: number; fp16Bytes: number; quantizedBytes: number; compressionRatio: number };
  /** Quantized weights + fp16 KV cache (none for ONNX models) against the Jetson Orin modules. */
  memory: { weightBytes: number; kvCacheBytes: number; contextLength: number; totalBytes: number; runtimeReserveGiB: number; fits: ReturnType<typeof deviceFits> };
  device: unknown;
  /** Wall time of the command, model opening included. */
  seconds: number;
}

/** What of a Llama / ONNX model may fail while its layers are read: a user-fixable data problem. */
function isModelDataError(e: unknown): e is Error {
  return (
    e instanceof ModelOpenError ||
    e instanceof CheckpointError ||
    e instanceof ByteSourceError ||
    e instanceof OnnxFormatError ||
    e instanceof OnnxExternalDataError ||
    // quantizeLayersRtn: a non-finite weight, or a layer whose data does not match its shape.
    e instanceof RangeError
  );
}

/** A key per stored weight, so a weight read by two ONNX layers counts once in the model's bytes. */
function weightKeyOf(h: ModelHandle): (layer: string) => string {
  if (h.kind === 'llama') return (layer) => layer;
  const byLayer = new Map(h.analysis.layers.map((l) => [l.name, l.weight]));
  return (layer) => byLayer.get(layer) ?? layer;
}

export function buildReportJson(
  h: ModelHandle,
  desc: ModelDescription,
  files: string[],
  plan: ModelQuantReportJson['plan'],
  rtn: ModelQuantReport,
  device: unknown,
  seconds: number,
): ModelQuantReportJson {
  const info = new Map(desc.layers.map((l) => [l.name, l]));
  const layers: LayerReportJson[] = rtn.layers.map((r) => ({
    ...r,
    op: info.get(r.name)?.op ?? r.kind,
    // JSON has no Infinity: a kept layer (or an exact reconstruction) has no error, reported as null.
    sqnr: Number.isFinite(r.sqnr) ? r.sqnr : null,
    ...(info.get(r.name)?.note ? { note: info.get(r.name)!.note } : {}),
  }));
  const key = weightKeyOf(h);
  const seen = new Set<string>();
  let listedParams = 0;
  let listedBytes = 0;
  for (const r of rtn.layers) {
    const k = key(r.name);
    if (seen.has(k)) continue;
    seen.add(k);
    listedParams += r.params;
    listedBytes += r.bytesAfter;
  }
  const otherParams = Math.max(0, desc.totalParams - listedParams);
  const quantizedBytes = listedBytes + otherParams * 2;
  const kv = kvCacheBytes(desc.memoryModel);
  const { llama, onnx } = desc;
  const quantized = rtn.layers.filter((r) => r.config);
  const quantizedParams = quantized.reduce((a, r) => a + r.params, 0);
  const quantizedBytesAfter = quantized.reduce((a, r) => a + r.bytesAfter, 0);
  return {
    model: {
      name: desc.name,
      kind: desc.kind,
      format: desc.format,
      files,
      sizeBytes: desc.sizeBytes,
      totalParams: desc.totalParams,
      quantizableParams: desc.quantizableParams,
      layerCount: desc.layers.length,
      groupCount: desc.groups.length,
      ...(llama ? { llama } : {}),
      ...(onnx ? { onnx } : {}),
    },
    plan,
    layers,
    totals: {
      layers: rtn.layers.length,
      quantizedLayers: quantized.length,
      quantizedParams,
      quantizedBytesBefore: quantized.reduce((a, r) => a + r.bytesBefore, 0),
      quantizedBytesAfter,
      quantizedBitsPerWeight: quantizedParams ? (8 * quantizedBytesAfter) / quantizedParams : 0,
      params: rtn.totalParams,
      bytesBefore: rtn.bytesBefore,
      bytesAfter: rtn.bytesAfter,
      bitsPerWeight: rtn.bitsPerWeight,
      compressionRatio: rtn.bytesAfter ? rtn.bytesBefore / rtn.bytesAfter : 0,
      seconds: rtn.seconds,
    },
    modelWeights: {
      params: desc.totalParams,
      otherParams,
      fp16Bytes: desc.totalParams * 2,
      quantizedBytes,
      compressionRatio: quantizedBytes ? (desc.totalParams * 2) / quantizedBytes : 0,
    },
    memory: {
      weightBytes: quantizedBytes,
      kvCacheBytes: kv,
      contextLength: desc.memoryModel.contextLength,
      totalBytes: quantizedBytes + kv,
      runtimeReserveGiB: RUNTIME_RESERVE_GIB,
      fits: deviceFits(quantizedBytes + kv),
    },
    device,
    seconds,
  };
}

function pad(s: string, w: number, right = false): string {
  return right ? s.padStart(w) : s.padEnd(w);
}

/** The per-layer table and the summary, as printed without --json. */
export function formatReport(r: ModelQuantReportJson, base: Required<QuantConfig>): string {
  const rows = r.layers.map((l) => [
    l.name,
    `[${l.shape.join(', ')}]`,
    l.params.toLocaleString('en-US'),
    l.config ? String(l.bits) : '16 kept',
    formatBytes(l.bytesBefore),
    formatBytes(l.bytesAfter),
    l.config ? formatNumber(l.mse) : '-',
    l.config ? (l.sqnr === null ? 'exact' : l.sqnr.toFixed(2)) : '-',
    l.outlierScore.toFixed(1),
  ]);
  const head = ['layer', 'shape [out, in]', 'params', 'bits', 'fp16', 'quantized', 'MSE', 'SQNR dB', 'outlier'];
  const right = [false, false, true, true, true, true, true, true, true];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => pad(c, widths[i], right[i])).join('  ').trimEnd();
  const t = r.totals;
  const kept = r.layers.filter((l) => !l.config).map((l) => l.name);
  const otherBits = [...new Set(r.layers.filter((l) => l.config && l.bits !== base.bits).map((l) => l.bits))];
  const mw = r.modelWeights;
  const m = r.memory;
  const device = r.device as { description?: string; vendor?: string; architecture?: string; isFallbackAdapter?: boolean };
  const deviceName = device.description || `${device.vendor ?? ''} ${device.architecture ?? ''}`.trim();
  return [
    line(head),
    ...rows.map(line),
    '',
    `${r.model.name}: ${r.model.format}, ${describeConfig(base)}${otherBits.length ? ` (some layers at ${otherBits.join(', ')} bits: --layer-bits)` : ''}`,
    `  layers    ${t.quantizedLayers} quantized, ${kept.length} kept at 16 bits${kept.length ? `: ${kept.length > 6 ? `${kept.slice(0, 6).join(', ')}, ...` : kept.join(', ')}` : ''}`,
    `  quantized ${formatBytes(t.quantizedBytesBefore)} at fp16 -> ${formatBytes(t.quantizedBytesAfter)} (${t.quantizedParams.toLocaleString('en-US')} params): ${formatNumber(t.quantizedBitsPerWeight)} bits/weight`,
    `  listed    ${formatBytes(t.bytesBefore)} at fp16 -> ${formatBytes(t.bytesAfter)} (${t.params.toLocaleString('en-US')} params, kept layers included): ${formatNumber(t.bitsPerWeight)} bits/weight, ${t.compressionRatio.toFixed(2)}x smaller`,
    `  model     ${formatBytes(mw.fp16Bytes)} at fp16 -> ${formatBytes(mw.quantizedBytes)} with every other tensor (${mw.otherParams.toLocaleString('en-US')} params: norms, biases, ...) at fp16: ${mw.compressionRatio.toFixed(2)}x`,
    `  time      ${t.seconds.toFixed(2)} s quantizing on ${deviceName}${device.isFallbackAdapter ? ' (software fallback adapter)' : ''}, ${r.seconds.toFixed(2)} s in all`,
    `  Jetson    weights ${formatBytes(m.weightBytes)} + KV cache ${formatBytes(m.kvCacheBytes)}${m.contextLength ? ` (fp16, ${m.contextLength} tokens)` : ' (none: not a decoder)'} = ${formatBytes(m.totalBytes)}, ${m.runtimeReserveGiB} GiB kept for the OS and runtime:`,
    `            ${m.fits.map((f) => `${f.device} ${f.fits ? `fits (${f.headroomGiB.toFixed(2)} GiB free)` : `no (${(-f.headroomGiB).toFixed(2)} GiB short)`}`).join(', ')}`,
    '',
  ].join('\n');
}

export async function runModelQuantize(opts: ParsedOptions, io: CliIo, base: Required<QuantConfig>): Promise<number> {
  const t0 = performance.now();
  const selection: LayerSelection = {
    include: [...opts.list('include')],
    exclude: [...opts.list('exclude')],
    layerBits: opts.list('layer-bits').map(parseLayerBits),
  };
  const json = opts.flag('json');
  const reportPath = opts.string('report') === undefined ? undefined : resolve(opts.string('report')!);
  const files = opts.positionals.map((p) => (p === 'stories15M' ? p : resolve(p)));

  const handle = await openModelFromArgs(opts.positionals);
  const desc = describeModel(handle);
  const overrides = selectionOverrides(desc.layers, selection);
  const plan: QuantPlan = { base, overrides };
  let planFor: ReturnType<typeof planFunction>;
  try {
    planFor = planFunction(desc, plan);
  } catch (e) {
    if (e instanceof ModelOpenError || e instanceof QuantConfigError) throw new UsageError(e.message);
    throw e;
  }
  const layers = quantizableLayers(handle);
  if (layers.length === 0) {
    throw new InputError(`${desc.name} has no quantizable layers (no Conv, ConvTranspose, MatMul or Gemm with a constant floating-point weight)`);
  }
  if (reportPath) {
    try {
      mkdirSync(dirname(reportPath), { recursive: true });
    } catch (e) {
      throw new InputError(`cannot create the directory of --report ${reportPath}: ${(e as Error).message}`);
    }
  }

  const { rtn, device } = await withNodeGpu(async (ctx) => {
    const kernels = new QuantKernels(ctx);
    const quantized = layers.filter((l) => planFor(l)).length;
    io.stderr(`quantlab quantize: ${desc.name}: ${quantized} of ${layers.length} layers to quantize on ${ctx.description.description || ctx.description.vendor}\n`);
    let last = performance.now();
    const width = String(layers.length).length;
    try {
      const rtn = await quantizeLayersRtn(kernels, layers, planFor, {
        onProgress: (done, total, name) => {
          const now = performance.now();
          io.stderr(`  [${String(done).padStart(width)}/${total}] ${name}${planFor({ name }) ? '' : ' (kept)'} ${((now - last) / 1000).toFixed(2)} s\n`);
          last = now;
        },
      });
      return { rtn, device: ctx.description };
    } catch (e) {
      if (e instanceof CliError || e instanceof GpuError) throw e;
      if (isModelDataError(e)) throw new InputError(e.message.includes(desc.name) ? e.message : `${desc.name}: ${e.message}`);
      throw e;
    }
  });

  const report = buildReportJson(
    handle,
    desc,
    files,
    { ...plan, include: selection.include, exclude: selection.exclude, layerBits: selection.layerBits },
    rtn,
    device,
    (performance.now() - t0) / 1000,
  );
  const text = `${JSON.stringify(report)}\n`;
  if (reportPath) {
    try {
      writeFileSync(reportPath, text);
    } catch (e) {
      throw new InputError(`cannot write the report ${reportPath}: ${(e as Error).message}`);
    }
  }
  if (json) {
    io.stdout(text);
  } else {
    io.stdout(formatReport(report, base) + (reportPath ? `  report    ${reportPath}\n` : ''));
  }
  return 0;
}
