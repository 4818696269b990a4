/**
 * `quantlab smoothquant MODEL [--data FILE|DIR] [--samples N --seq-len L] --alpha 0.5|sweep
 * [--act per-token|per-tensor] --out DIR [--json]`: calibration data through the model (the statistics of
 * `quantlab calibrate`), SmoothQuant factors per norm -> linears group (src/smooth), the W8A8 output error
 * before and after, and the smoothed FP32 model: DIR/model.bin (+ tokenizer.bin) for Llama checkpoints,
 * DIR/model.onnx for ONNX graphs, with DIR/smoothquant.json.
 */
import { CheckpointError } from '../../model/llama/model.ts';
import { encodeCheckpointLlama2c } from '../../model/formats/llama2c.ts';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { bundledImagesNode, calibrateOnnxNode, imagesFromPath } from '../../calib/calibrate-onnx-node.ts';
import { imagesPerBatch, onnxImageInput } from '../../calib/calibrate-onnx.ts';
import { preprocessBatch, type RgbaImage } from '../../calib/image-preprocess.ts';
import { nodeOrtRuntime } from '../../calib/ort-node.ts';
import { checkSummaries, CalibrationError } from '../../calib/result.ts';
import { CalibDataError, type TextSequences } from '../../calib/text-data.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { LlamaGpu } from '../../model/llama/forward-gpu.ts';
import { allTensors, loadExternalTensor } from '../../model/onnx/external-data.ts';
import { serializeModel } from '../../model/onnx/serialize.ts';
import type { LlamaModelHandle, OnnxModelHandle } from '../../model/workspace.ts';
import { captureOnnxRows } from '../../smooth/capture-rows.ts';
import { smoothLlamaTensors } from '../../smooth/fold-llama.ts';
import { llamaSmoothData } from '../../smooth/llama-data.ts';
import { onnxGroupWeights, onnxSmoothGroups, replaceConstants, smoothOnnxConstants } from '../../smooth/fold-onnx.ts';
import { smoothModel, type SmoothGroupData, type SmoothQuantOptions, type SmoothQuantReport } from '../../smooth/smooth-model.ts';
import { SmoothQuantKernels } from '../../smooth/smoothquant-gpu.ts';
import { SmoothQuantError, type ActQuant } from '../../smooth/smoothquant.ts';
import { llamaDataShape, llamaSequencesFromArgs } from '../calib-data.ts';
import { InputError, UsageError } from '../cli-errors.ts';
import type { CliIo, Command } from '../command.ts';
import { withNodeGpu } from '../node-gpu-session.ts';
import { openModelFromArgs } from '../open-model.ts';
import type { ParsedOptions } from '../options.ts';

const DEFAULT_MAX_ROWS = 512;

function alphaFromArgs(raw: string | undefined): number | 'sweep' {
  if (raw === undefined) return 0.5;
  if (raw === 'sweep') return 'sweep';
  const v = Number(raw);
  if (raw.trim() === '' || !(v >= 0 && v <= 1)) throw new UsageError(`--alpha must be a number in [0, 1] or "sweep", got ${raw}`);
  return v;
}

interface Prepared {
  groups: SmoothGroupData[];
  data: NonNullable<SmoothQuantReport['data']>;
}

async function llamaGroupsData(h: LlamaModelHandle, opts: ParsedOptions, io: CliIo, ctx: GpuContext, maxRows: number): Promise<Prepared> {
  const ckpt = h.ckpt;
  const { seqLen } = llamaDataShape(h, opts);
  const llm = await LlamaGpu.load(ctx, ckpt, { maxBatch: Math.min(64, seqLen) });
  let seqs: TextSequences;
  try {
    seqs = await llamaSequencesFromArgs(h, opts, llm);
  } catch (e) {
    llm.dispose();
    throw e;
  }
  if (seqs.note) io.stderr(`note: ${seqs.note}\n`);
  let out: SmoothGroupData[];
  try {
    out = await llamaSmoothData(llm, ckpt, seqs.sequences, maxRows);
  } finally {
    llm.dispose();
  }
  return { groups: out, data: { source: seqs.source, samples: seqs.sequences.length, sequenceLength: seqLen, tokens: seqs.tokens } };
}

async function onnxGroupsData(h: OnnxModelHandle, opts: ParsedOptions, io: CliIo, maxRows: number): Promise<Prepared> {
  const groups = onnxSmoothGroups(h);
  const usable = groups.filter((g) => !g.skip);
  for (const g of groups) if (g.skip) io.stderr(`note: ${g.name} is not smoothed: ${g.skip}\n`);
  if (usable.length === 0) {
    throw new InputError(
      groups.length === 0
        ? `${h.name} has no norm -> linear group (LayerNorm / RMSNorm feeding MatMul or Gemm): SmoothQuant has nothing to smooth`
        : `${h.name}: none of its ${groups.length} norm -> linear groups can be smoothed`,
    );
  }
  if (opts.has('seq-len')) throw new UsageError('--seq-len is for language models');
  const data = opts.string('data');
  const samples = opts.int('samples', { min: 1, max: 100_000 });
  const { summaries, result } = await calibrateOnnxNode(h, { data: data === undefined ? undefined : resolve(data), samples, bits: 8, method: 'max', sweeps: 'cpu' });
  checkSummaries(summaries);
  const input = onnxImageInput(h);
  const { images } = data ? await imagesFromPath(resolve(data), samples) : await bundledImagesNode(input.preset, samples);
  const per = imagesPerBatch(input.preset);
  const batches = function* (list: RgbaImage[]) {
    for (let i = 0; i < list.length; i += per) yield { [input.name]: preprocessBatch(list.slice(i, i + per), input.preset) };
  };
  const rows = await captureOnnxRows(h, nodeOrtRuntime(), batches(images), usable.map((g) => g.group.linears[0]), maxRows);
  const out: SmoothGroupData[] = [];
  for (const g of usable) {
    const s = summaries.find((x) => x.layers.includes(g.group.linears[0]));
    const sample = rows.get(g.group.linears[0]);
    if (!s || !sample) throw new InputError(`${g.name}: the input of ${g.group.linears[0]} was not captured`);
    out.push({ name: g.name, linears: await onnxGroupWeights(h, g), channels: g.group.channels, actAbsmax: s.channelAbsmax, sample });
  }
  return { groups: out, data: { source: result.data.source, samples: result.data.samples, tokens: result.data.tokens } };
}

function printReport(r: SmoothQuantReport, io: CliIo, outDir: string, written: string[]): void {
  const w = Math.max(5, ...r.groups.map((g) => g.group.length));
  io.stdout(`${'group'.padEnd(w)}  alpha  best   act max->after  w max->after   MSE before    MSE after  SQNR dB before->after\n`);
  for (const g of r.groups) {
    const d = g.difficulty;
    io.stdout(
      `${g.group.padEnd(w)}  ${g.alpha.toFixed(2).padStart(5)}  ${g.bestAlpha === undefined ? '  -  ' : g.bestAlpha.toFixed(2).padStart(5)}  ` +
        `${d.activation.before.max.toPrecision(3).padStart(6)}->${d.activation.after.max.toPrecision(3).padEnd(6)}  ${d.weight.before.max.toPrecision(3).padStart(5)}->${d.weight.after.max.toPrecision(3).padEnd(6)}  ` +
        `${g.error.before.mse.toExponential(3).padStart(10)}  ${g.error.after.mse.toExponential(3).padStart(10)}  ${g.error.before.sqnr.toFixed(1).padStart(6)} -> ${g.error.after.sqnr.toFixed(1)}\n`,
    );
  }
  const red = r.total.mseBefore > 0 ? (1 - r.total.mseAfter / r.total.mseBefore) * 100 : 0;
  io.stdout(
    `${r.groups.length} groups, W8A8 (${r.act} activations, per-channel weights) on ${r.groups[0]?.rows ?? 0} rows per group, ${r.evaluator}; ` +
      `alpha ${r.alphaMode === 'sweep-group' ? 'best per group' : r.alpha} (${r.alphaMode}); summed output MSE ${r.total.mseBefore.toExponential(3)} -> ${r.total.mseAfter.toExponential(3)} (${red.toFixed(1)}% lower); ${r.seconds.toFixed(1)} s\n`,
  );
  io.stdout(`wrote ${written.map((f) => join(outDir, f)).join(', ')}\n`);
}

async function run(opts: ParsedOptions, io: CliIo): Promise<number> {
  const alpha = alphaFromArgs(opts.string('alpha'));
  const act = (opts.choice('act', ['per-token', 'per-tensor'] as const) ?? 'per-token') as ActQuant;
  const evalMode = opts.choice('eval', ['auto', 'gpu', 'cpu'] as const) ?? 'auto';
  const maxRows = opts.int('rows', { min: 1, max: 1 << 16 }) ?? DEFAULT_MAX_ROWS;
  const perGroup = opts.flag('per-group');
  if (perGroup && alpha !== 'sweep') throw new UsageError('--per-group goes with --alpha sweep');
  const outDir = opts.required('out', 'the directory for smoothquant.json and the smoothed model');
  const json = opts.flag('json');
  const h = await openModelFromArgs(opts.positionals);
  const t0 = performance.now();
  try {
    return await withNodeGpu(async (ctx) => {
      const prepared = h.kind === 'llama' ? await llamaGroupsData(h, opts, io, ctx, maxRows) : await onnxGroupsData(h, opts, io, maxRows);
      // On a software adapter (SwiftShader) the CPU reference is faster: each alpha costs a dozen small
      // dispatches, about 3 s per alpha and group there against milliseconds in JavaScript for 16 rows.
      const useGpu = evalMode === 'gpu' || (evalMode === 'auto' && !ctx.isSoftware);
      const kernels = useGpu ? new SmoothQuantKernels(ctx) : undefined;
      const smOpts: SmoothQuantOptions = {
        alpha,
        act,
        perGroup,
        kernels,
        onGroup: json ? undefined : (done, total, name) => io.stderr(`evaluated ${name} (${done} of ${total})\n`),
      };
      let result: Awaited<ReturnType<typeof smoothModel>>;
      try {
        result = await smoothModel(h.name, prepared.groups, smOpts);
      } finally {
        kernels?.dispose();
      }
      const { report, factors } = result;
      report.data = prepared.data;
      mkdirSync(resolve(outDir), { recursive: true });
      const written: string[] = [];
      if (h.kind === 'llama') {
        const replaced = await smoothLlamaTensors(h.ckpt, factors);
        const files = await encodeCheckpointLlama2c(h.ckpt, replaced);
        writeFileSync(join(resolve(outDir), 'model.bin'), Buffer.concat(files.model));
        written.push('model.bin');
        if (files.tokenizer) {
          writeFileSync(join(resolve(outDir), 'tokenizer.bin'), files.tokenizer);
          written.push('tokenizer.bin');
        }
      } else {
        const replaced = await smoothOnnxConstants(h, onnxSmoothGroups(h), factors);
        const model = replaceConstants(h.model, replaced);
        if (h.external) for (const t of allTensors(model.graph)) if (t.data.location === 'external' && !t.data.bytes) await loadExternalTensor(t, h.external);
        writeFileSync(join(resolve(outDir), 'model.onnx'), serializeModel(model, { inlineExternalData: true }));
        written.push('model.onnx');
      }
      report.seconds = (performance.now() - t0) / 1000;
      writeFileSync(join(resolve(outDir), 'smoothquant.json'), JSON.stringify(report, null, 2) + '\n');
      written.unshift('smoothquant.json');
      if (json) io.stdout(JSON.stringify(report) + '\n');
      else printReport(report, io, outDir, written);
      return 0;
    });
  } catch (e) {
    if (e instanceof CalibDataError || e instanceof CalibrationError || e instanceof SmoothQuantError || e instanceof CheckpointError) throw new InputError(e.message);
    throw e;
  }
}

export const smoothquantCommand: Command = {
  name: 'smoothquant',
  summary: 'SmoothQuant: migrate activation outliers into the weights (norm -> linear groups), W8A8 error before/after, write the smoothed model',
  synopsis: 'quantlab smoothquant MODEL [--data FILE|DIR] [--samples N --seq-len L] [--alpha 0.5|sweep] [--act per-token|per-tensor] --out DIR [--json]',
  description: [
    'MODEL as for inspect (stories15M names the bundled model; ONNX graphs with LayerNorm / RMSNorm -> MatMul / Gemm groups too).',
    'Calibration data as for `quantlab calibrate`: language models read --data (.txt / .jsonl, or a directory of them; the bundled Moby-Dick without it), --samples sequences of --seq-len tokens; ONNX image models read --data images.',
    'Per input channel j of each group: s_j = max|X_j|^alpha / max|W_j|^(1-alpha) (clamped at 1e-5; max|W_j| over all linears of the group), folded into the norm (/ s) and the linears (* s): the FP32 model computes the same outputs.',
    'The W8A8 output error (INT8 per-channel weights, INT8 per-token or static per-tensor activations) is measured on up to --rows sampled rows per group, on the GPU or the CPU reference (--eval).',
  ].join('\n'),
  options: [
    { name: 'data', value: 'FILE|DIR', help: 'calibration data (text for language models, images for ONNX image models)' },
    { name: 'samples', value: 'N', help: 'calibration sequences or images' },
    { name: 'seq-len', value: 'L', help: 'tokens per sequence (language models)' },
    { name: 'alpha', value: 'A|sweep', help: 'migration strength in [0, 1] (default 0.5), or "sweep": 0, 0.05, ..., 1, choosing the alpha with the least summed W8A8 error' },
    { name: 'per-group', help: 'with --alpha sweep: fold each group\'s best alpha instead of the model\'s' },
    { name: 'act', value: 'per-token|per-tensor', help: 'activation quantization of the W8A8 evaluation (default per-token; per-tensor uses the calibration max)' },
    { name: 'rows', value: 'N', help: `activation rows kept per group for the error evaluation (default ${DEFAULT_MAX_ROWS})` },
    { name: 'eval', value: 'auto|gpu|cpu', help: 'where the W8A8 error is evaluated (default auto: the GPU, the CPU reference on a software adapter)' },
    { name: 'out', value: 'DIR', help: 'writes DIR/smoothquant.json and DIR/model.bin (+ tokenizer.bin) or DIR/model.onnx' },
    { name: 'json', help: 'print the report as JSON' },
  ],
  maxPositionals: 4,
  epilogue: 'Example: quantlab smoothquant stories15M --samples 4 --seq-len 64 --alpha sweep --out smoothed/ && quantlab inspect smoothed/model.bin',
  run,
};
