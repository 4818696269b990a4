/**
 * `quantlab export MODEL --format F --out DIR [--bits B] [--group-size G] [--data D] [--json]`: writes a model
 * in a deployment format with the exporters of src/export (RTN weights; AWQ / SmoothQuant not yet).
 * ONNX graphs: onnx-qdq-int8 (TensorRT explicit quantization: INT8 per-channel weights, activations
 * calibrated on the CPU through onnxruntime), onnx-int4-dq (opset 21 blocked INT4 DequantizeLinear),
 * onnx-matmulnbits (onnxruntime com.microsoft MatMulNBits, 4 or 8 bits), trt-cache (a TensorRT calibration
 * cache for implicit INT8: DIR/calib.cache). Llama-family checkpoints: gguf-q8_0, gguf-q4_0 (llama.cpp),
 * autoawq (AutoAWQ GEMM INT4), tinychat (llm-awq TinyChat v2 INT4). Every format also writes DIR/export.json
 * (per-layer report: quantized or skipped and why) and DIR/DEPLOY.md (how to run it on a Jetson, file
 * sizes, bits per weight). Nothing is written unless the export succeeded.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { calibrateOnnxNode } from '../../calib/calibrate-onnx-node.ts';
import { CaptureFeedError } from '../../calib/onnx-capture.ts';
import { ImageInputError } from '../../calib/image-preprocess.ts';
import { nodeOrtRuntime } from '../../calib/ort-node.ts';
import { CalibrationError } from '../../calib/result.ts';
import { CalibDataError } from '../../calib/text-data.ts';
import { TrtCacheError, trtCalibrationCache } from '../../calib/trt-cache.ts';
import type { CalibMethod } from '../../calib/types.ts';
import { calibrateActivationAmax } from '../../eval/onnx-eval.ts';
import { EvalError } from '../../eval/types.ts';
import { exportAutoAwq, AUTOAWQ_DEFAULT_GROUP_SIZE } from '../../export/llm-autoawq.ts';
import { exportGguf } from '../../export/llm-gguf.ts';
import { int4Linears, LlmExportError, type LlmExportFile } from '../../export/llm-int4.ts';
import { exportTinyChat } from '../../export/llm-tinychat.ts';
import { OnnxExportError, type OnnxExportLayerEntry } from '../../export/onnx-export-common.ts';
import { exportMatMulNBits, exportOnnxInt4Dq } from '../../export/onnx-int4.ts';
import { exportOnnxQdqInt8 } from '../../export/onnx-qdq.ts';
import type { LlamaModelHandle, OnnxModelHandle } from '../../model/workspace.ts';
import { InputError, UsageError } from '../cli-errors.ts';
import type { CliIo, Command } from '../command.ts';
import { onnxBatchesFromArgs, ONNX_IMAGE_OPTIONS } from '../onnx-calib-data.ts';
import { openModelFromArgs } from '../open-model.ts';
import type { ParsedOptions } from '../options.ts';
import { methodFromArgs } from './calibrate.ts';

export const ONNX_FORMATS = ['onnx-qdq-int8', 'onnx-int4-dq', 'onnx-matmulnbits', 'trt-cache'] as const;
export const LLAMA_FORMATS = ['gguf-q8_0', 'gguf-q4_0', 'autoawq', 'tinychat'] as const;
type OnnxFormat = (typeof ONNX_FORMATS)[number];
type LlamaFormat = (typeof LLAMA_FORMATS)[number];
type Format = OnnxFormat | LlamaFormat;
const FORMATS: readonly Format[] = [...ONNX_FORMATS, ...LLAMA_FORMATS];

interface LayerRow {
  layer: string;
  op?: string;
  status: 'quantized' | 'skipped';
  reason?: string;
  /** Storage (Q8_0, INT4 g128, ...) where it is known. */
  type?: string;
}

/** What was exported, as written to export.json. */
export interface ExportReport {
  format: 'quantlab-export';
  version: 1;
  model: string;
  kind: 'onnx' | 'llama';
  target: Format;
  method: 'rtn';
  bitsPerWeight: number;
  options: Record<string, unknown>;
  files: { name: string; bytes: number }[];
  layers: LayerRow[];
  notes: string[];
  seconds: number;
}

interface Outcome {
  files: LlmExportFile[];
  layers: LayerRow[];
  notes: string[];
  bitsPerWeight: number;
  options: Record<string, unknown>;
}

function sizeText(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
}

const enc = (s: string) => new TextEncoder().encode(s);

function onnxLayers(report: readonly OnnxExportLayerEntry[], type: string): LayerRow[] {
  return report.map((e) => ({ layer: e.layer, op: e.op, status: e.status, ...(e.reason ? { reason: e.reason } : {}), ...(e.status === 'quantized' ? { type } : {}) }));
}

/** Bits per stored weight of blocked formats: code bits plus a float scale (and zero point) per block. */
function blockBits(bits: number, block: number, scaleBits: number, zeroBits: number): number {
  return bits + (scaleBits + zeroBits) / block;
}

function sweepMode(opts: ParsedOptions): 'auto' | 'gpu' | 'cpu' {
  const m = opts.string('sweeps') ?? 'cpu';
  if (m !== 'auto' && m !== 'gpu' && m !== 'cpu') throw new UsageError(`--sweeps must be auto, gpu or cpu, got ${m}`);
  return m;
}

async function exportOnnx(h: OnnxModelHandle, format: OnnxFormat, opts: ParsedOptions, io: CliIo, json: boolean): Promise<Outcome> {
  const calibMethod: CalibMethod = methodFromArgs(opts.string('calib-method'), opts.string('percentile'));
  const progress = (label: string) => !json && io.stderr(`${label}\n`);
  if (format === 'onnx-qdq-int8') {
    if (opts.has('bits') && opts.int('bits', { min: 2, max: 8 }) !== 8) throw new UsageError('onnx-qdq-int8 is 8-bit: --bits must be 8');
    const data = await onnxBatchesFromArgs(h, opts);
    progress(`calibrating ${h.analysis.layers.length} layer inputs on ${data.source} (${calibMethod})`);
    const actAmax = await calibrateActivationAmax(
      h,
      nodeOrtRuntime(),
      [...data.batches],
      h.analysis.layers.map((l) => l.name),
      calibMethod,
      { bits: 8 },
    );
    const r = await exportOnnxQdqInt8(h, { actAmax });
    return {
      files: [{ name: 'model.onnx', chunks: [r.bytes] }],
      layers: onnxLayers(r.report, 'INT8 per-channel (QDQ)'),
      notes: [...r.notes, `activations calibrated with ${calibMethod} on ${data.source}`],
      bitsPerWeight: 8,
      options: { calibMethod, samples: data.samples, source: data.source },
    };
  }
  if (format === 'trt-cache') {
    const preset = opts.string('preprocess');
    const side = opts.int('det-side', { min: 32, max: 4096 });
    const data = opts.string('data');
    progress(`calibrating on the GPU (${calibMethod})`);
    const { result } = await calibrateOnnxNode(h, {
      data: data === undefined ? undefined : resolve(data),
      samples: opts.int('samples', { min: 1, max: 100_000 }),
      bits: 8,
      method: calibMethod,
      preset: preset as Parameters<typeof calibrateOnnxNode>[1]['preset'],
      preprocess: side ? { limitSideLen: side } : undefined,
      sweeps: sweepMode(opts),
    });
    const cache = trtCalibrationCache(result);
    const named = new Set(result.tensors.map((t) => t.name));
    return {
      files: [{ name: 'calib.cache', chunks: [enc(cache)] }],
      layers: [
        ...h.analysis.layers.map((l): LayerRow => (named.has(l.activation) ? { layer: l.name, op: l.op, status: 'quantized', type: `activation ${l.activation} calibrated` } : { layer: l.name, op: l.op, status: 'skipped', reason: `its activation ${l.activation} has no calibrated range` })),
        ...h.analysis.skipped.map((s): LayerRow => ({ layer: s.name, op: s.op, status: 'skipped', reason: s.reason })),
      ],
      notes: [`${result.tensors.length} tensors, ${calibMethod}, on ${result.data.source}`],
      bitsPerWeight: 8,
      options: { calibMethod, samples: result.data.samples, source: result.data.source },
    };
  }
  if (format === 'onnx-int4-dq') {
    if (opts.has('bits') && opts.int('bits', { min: 2, max: 8 }) !== 4) throw new UsageError('onnx-int4-dq is 4-bit: --bits must be 4');
    const blockSize = opts.int('group-size', { min: 2, max: 1 << 20 }) ?? 128;
    const r = await exportOnnxInt4Dq(h, { blockSize });
    return {
      files: [{ name: 'model.onnx', chunks: [r.bytes] }],
      layers: onnxLayers(r.report, `INT4 sym blocks of ${blockSize}`),
      notes: r.notes,
      bitsPerWeight: blockBits(4, blockSize, 32, 4),
      options: { blockSize },
    };
  }
  // onnx-matmulnbits
  const bits = opts.int('bits', { min: 2, max: 8 }) ?? 4;
  if (bits !== 4 && bits !== 8) throw new UsageError(`onnx-matmulnbits takes --bits 4 or 8, got ${bits}`);
  const blockSize = opts.int('group-size', { min: 1, max: 1 << 20 }) ?? 128;
  const r = await exportMatMulNBits(h, { bits, blockSize });
  return {
    files: [{ name: 'model.onnx', chunks: [r.bytes] }],
    layers: onnxLayers(r.report, `INT${bits} asym blocks of ${blockSize} (MatMulNBits)`),
    notes: r.notes,
    bitsPerWeight: blockBits(bits, blockSize, 32, bits),
    options: { bits, blockSize },
  };
}

async function exportLlama(h: LlamaModelHandle, format: LlamaFormat, opts: ParsedOptions): Promise<Outcome> {
  const ckpt = h.ckpt;
  if (format === 'gguf-q8_0' || format === 'gguf-q4_0') {
    if (opts.has('group-size')) throw new UsageError('GGUF Q8_0 / Q4_0 use blocks of 32: --group-size does not apply');
    const type = format === 'gguf-q8_0' ? 'Q8_0' : 'Q4_0';
    if (opts.has('bits') && opts.int('bits', { min: 2, max: 8 }) !== (type === 'Q8_0' ? 8 : 4)) throw new UsageError(`${format} is ${type === 'Q8_0' ? 8 : 4}-bit: drop --bits`);
    const r = await exportGguf(ckpt, { type });
    const linears = new Set(int4Linears(ckpt.config).map((l) => l.name));
    return {
      files: [{ name: 'model.gguf', chunks: r.chunks }],
      layers: ckpt.tensors.map((t) => {
        const ty = r.types.get(t.name) ?? 'F32';
        const q = ty.startsWith('Q');
        return { layer: t.name, status: q ? 'quantized' : 'skipped', type: ty, ...(q ? {} : { reason: linears.has(t.name) ? `stored ${ty}` : `norm / bias kept ${ty}` }) };
      }),
      notes: [],
      // Q8_0: 32 int8 + one fp16 scale per block; Q4_0: 32 nibbles + one fp16 scale.
      bitsPerWeight: type === 'Q8_0' ? 8.5 : 4.5,
      options: { type },
    };
  }
  if (opts.has('bits') && opts.int('bits', { min: 2, max: 8 }) !== 4) throw new UsageError(`${format} is INT4: --bits must be 4`);
  const groupSize = opts.int('group-size', { min: 1, max: 1 << 20 }) ?? AUTOAWQ_DEFAULT_GROUP_SIZE;
  const r = format === 'autoawq' ? await exportAutoAwq(ckpt, { groupSize }) : await exportTinyChat(ckpt, { groupSize });
  return {
    files: r.files,
    layers: [
      ...[...r.linears.keys()].map((name): LayerRow => ({ layer: name, status: 'quantized', type: `INT4 asym g${groupSize}` })),
      ...ckpt.tensors.filter((t) => !r.linears.has(t.name)).map((t): LayerRow => ({ layer: t.name, status: 'skipped', reason: 'embeddings, norms and lm_head stay fp16 (as AutoAWQ leaves them)', type: 'F16' })),
    ],
    notes: [],
    // fp16 scale + 4-bit zero point per group.
    bitsPerWeight: blockBits(4, groupSize, 16, 4),
    options: { groupSize },
  };
}

function deployNote(report: ExportReport): string {
  const fileLines = report.files.map((f) => `- \`${f.name}\`: ${f.bytes} bytes (${sizeText(f.bytes)})`);
  const quantized = report.layers.filter((l) => l.status === 'quantized').length;
  const how: Record<Format, string[]> = {
    'onnx-qdq-int8': [
      'Explicit quantization (Q/DQ nodes carry every scale): no calibrator or cache is needed. On the Jetson (JetPack 6, TensorRT 8.6+):',
      '```sh',
      '/usr/src/tensorrt/bin/trtexec --onnx=model.onnx --int8 --fp16 --saveEngine=model.plan',
      '/usr/src/tensorrt/bin/trtexec --loadEngine=model.plan   # benchmark',
      '```',
    ],
    'onnx-int4-dq': [
      'INT4 weight-only blocked DequantizeLinear (opset 21); needs TensorRT 10 (JetPack 6.1+):',
      '```sh',
      '/usr/src/tensorrt/bin/trtexec --onnx=model.onnx --fp16 --stronglyTyped --saveEngine=model.plan',
      '```',
    ],
    'onnx-matmulnbits': [
      'onnxruntime com.microsoft MatMulNBits (CPU and CUDA execution providers; onnxruntime-gpu for JetPack):',
      '```python',
      'import onnxruntime as ort',
      "sess = ort.InferenceSession('model.onnx', providers=['CUDAExecutionProvider', 'CPUExecutionProvider'])",
      '```',
    ],
    'trt-cache': [
      `Implicit INT8 quantization: build the original FP32 graph (${report.model}, copied here as model.onnx) with the cache as the calibration:`,
      '```sh',
      '/usr/src/tensorrt/bin/trtexec --onnx=model.onnx --int8 --calib=calib.cache --saveEngine=model.plan',
      '```',
      'onnxruntime: TensorRT execution provider with trt_int8_enable=True, trt_int8_calibration_table_name=calib.cache.',
    ],
    'gguf-q8_0': ggufLines(),
    'gguf-q4_0': ggufLines(),
    autoawq: [
      'AutoAWQ GEMM checkpoint (config.json + model.safetensors; add the tokenizer files of the original model):',
      '```python',
      'from awq import AutoAWQForCausalLM',
      "model = AutoAWQForCausalLM.from_quantized('.', fuse_layers=False)",
      '# or transformers: AutoModelForCausalLM.from_pretrained(".", device_map="cuda")',
      '```',
    ],
    tinychat: [
      'llm-awq TinyChat v2 checkpoint (the Jetson Orin demo):',
      '```sh',
      `python tinychat/demo.py --model_type llama --model_path <original HF model> --q_group_size ${String(report.options.groupSize)} --load_quant ${report.files.find((f) => f.name.endsWith('.safetensors'))?.name ?? 'model.safetensors'} --precision W4A16`,
      '```',
    ],
  };
  return [
    `# ${report.model} as ${report.target}`,
    '',
    `Written by quantlab export (round-to-nearest weights), ${quantized} of ${report.layers.length} layers / tensors quantized, ${report.bitsPerWeight.toFixed(3)} bits per quantized weight.`,
    '',
    '## Files',
    '',
    ...fileLines,
    '',
    '## Run it on a Jetson',
    '',
    ...how[report.target],
    '',
    'See export.json for every layer (quantized or skipped, and why).',
    '',
  ].join('\n');
}

function ggufLines(): string[] {
  return ['llama.cpp (build with -DGGML_CUDA=ON on the Jetson):', '```sh', 'llama-cli -m model.gguf -p "Once upon a time" -n 128 -ngl 99', '```'];
}

async function run(opts: ParsedOptions, io: CliIo): Promise<number> {
  const formatArg = opts.string('format');
  if (formatArg === undefined) throw new UsageError(`missing --format (one of ${FORMATS.join(', ')})`);
  const format = opts.choice('format', FORMATS) as Format;
  const method = opts.string('method') ?? 'rtn';
  if (method === 'awq' || method === 'smoothquant') throw new UsageError(`--method ${method} is not yet supported by export (rtn only); run quantlab ${method} to study it`);
  if (method !== 'rtn') throw new UsageError(`--method must be rtn, got ${method}`);
  const out = opts.required('out', 'the directory the exported files go to');
  const json = opts.flag('json');
  const t0 = performance.now();
  const h = await openModelFromArgs(opts.positionals);
  const fits = h.kind === 'onnx' ? ONNX_FORMATS : LLAMA_FORMATS;
  if (!(fits as readonly string[]).includes(format)) {
    throw new UsageError(`${format} is for ${h.kind === 'onnx' ? 'Llama-family checkpoints' : 'ONNX graphs'}; ${h.name} is ${h.kind === 'onnx' ? 'an ONNX graph' : 'a Llama-family checkpoint'}: use one of ${fits.join(', ')}`);
  }
  let o: Outcome;
  try {
    if (h.kind === 'onnx') o = await exportOnnx(h, format as OnnxFormat, opts, io, json);
    else {
      for (const x of ['preprocess', 'det-side', 'calib-method', 'percentile', 'data', 'samples', 'sweeps']) if (opts.has(x)) throw new UsageError(`--${x} is for ONNX formats (${format} needs no calibration)`);
      o = await exportLlama(h, format as LlamaFormat, opts);
    }
  } catch (e) {
    if (e instanceof LlmExportError) throw new InputError(e.message);
    if (
      e instanceof OnnxExportError ||
      e instanceof TrtCacheError ||
      e instanceof CalibDataError ||
      e instanceof CalibrationError ||
      e instanceof CaptureFeedError ||
      e instanceof ImageInputError ||
      e instanceof EvalError
    ) {
      throw new InputError(e.message);
    }
    throw e;
  }
  const report: ExportReport = {
    format: 'quantlab-export',
    version: 1,
    model: h.name,
    kind: h.kind,
    target: format,
    method: 'rtn',
    bitsPerWeight: o.bitsPerWeight,
    options: o.options,
    files: o.files.map((f) => ({ name: f.name, bytes: f.chunks.reduce((s, c) => s + c.length, 0) })),
    layers: o.layers,
    notes: o.notes,
    seconds: (performance.now() - t0) / 1000,
  };
  const dir = resolve(out);
  mkdirSync(dir, { recursive: true });
  for (const f of o.files) writeFileSync(join(dir, f.name), Buffer.concat(f.chunks));
  const deploy = deployNote(report);
  writeFileSync(join(dir, 'DEPLOY.md'), deploy);
  const text = JSON.stringify(report, null, 2) + '\n';
  writeFileSync(join(dir, 'export.json'), text);
  if (json) io.stdout(JSON.stringify(report) + '\n');
  else {
    const written = [...report.files, { name: 'export.json', bytes: Buffer.byteLength(text) }, { name: 'DEPLOY.md', bytes: Buffer.byteLength(deploy) }];
    const w = Math.max(...written.map((f) => join(dir, f.name).length));
    for (const f of written) io.stdout(`${join(dir, f.name).padEnd(w)}  ${sizeText(f.bytes).padStart(10)}\n`);
    const skipped = report.layers.filter((l) => l.status === 'skipped');
    const quantized = report.layers.length - skipped.length;
    io.stdout(
      `${h.name} -> ${format}: ${quantized} quantized, ${skipped.length} left as they were, ${report.bitsPerWeight.toFixed(3)} bits per quantized weight, ${report.seconds.toFixed(1)} s; see DEPLOY.md\n`,
    );
  }
  return 0;
}

export const exportCommand: Command = {
  name: 'export',
  summary: 'write a model in a deployment format (ONNX QDQ / INT4 / MatMulNBits, TensorRT cache, GGUF, AutoAWQ, TinyChat)',
  synopsis:
    'quantlab export MODEL --format F --out DIR [--bits B] [--group-size G] [--data DIR] [--samples N] [--calib-method entropy|max|...] [--json]',
  description: [
    'MODEL as for inspect (stories15M names the bundled model; ONNX graphs too). Weights are round-to-nearest (--method rtn).',
    `ONNX formats: onnx-qdq-int8 (TensorRT explicit INT8, activations calibrated on --data images through onnxruntime), onnx-int4-dq (INT4 blocked DequantizeLinear, --group-size blocks, default 128), onnx-matmulnbits (onnxruntime MatMulNBits, --bits 4|8, --group-size default 128), trt-cache (TensorRT calibration cache, DIR/calib.cache).`,
    `Llama formats: gguf-q8_0, gguf-q4_0 (llama.cpp, DIR/model.gguf), autoawq (AutoAWQ GEMM INT4, DIR/config.json + model.safetensors, --group-size default 128), tinychat (llm-awq TinyChat v2 INT4).`,
    'Every format also writes DIR/export.json (every layer: quantized or skipped and why) and DIR/DEPLOY.md (how to run it on a Jetson).',
  ].join('\n'),
  maxPositionals: 16,
  options: [
    { name: 'format', value: 'F', help: FORMATS.join(', ') },
    { name: 'out', value: 'DIR', help: 'where the exported files, export.json and DEPLOY.md go' },
    { name: 'bits', value: 'B', help: 'weight bits where the format has a choice (onnx-matmulnbits: 4 or 8)' },
    { name: 'group-size', value: 'G', help: 'input channels per scale (INT4 formats; default 128)' },
    { name: 'method', value: 'M', help: 'rtn (default; awq and smoothquant not yet)' },
    { name: 'data', value: 'DIR', help: 'calibration images (onnx-qdq-int8, trt-cache; default the bundled ones)' },
    { name: 'samples', value: 'N', help: 'calibration images used' },
    ...ONNX_IMAGE_OPTIONS,
    { name: 'calib-method', value: 'NAME', help: 'activation calibrator: entropy (default), percentile, mse, max or ma-minmax' },
    { name: 'percentile', value: 'P', help: '99.9, 99.99 (default) or 99.999, with --calib-method percentile' },
    { name: 'sweeps', value: 'WHERE', help: 'trt-cache: where the calibrator sweeps run (default cpu)' },
    { name: 'json', help: 'print the report (export.json) on stdout' },
  ],
  epilogue:
    'Exit status 1 when the model cannot be written in the format (the message names every offending layer; nothing is written), 2 for a bad command line (a format for the other kind of model, a missing --format).',
  run,
};
