/**
 * `quantlab awq MODEL [--data ...] --bits 4 --group-size 32 [--duo] [--no-clip] --out DIR [--report awq.json]`:
 * AWQ of a Llama-family model on the GPU (src/awq/awq-llama.ts): per block the scale searches of the four
 * groups, the clip search and the quantization. Writes DIR/model.bin (llama2.c, the fake-quantized weights
 * in float32, with tokenizer.bin, so `generate` and the lab can run it) and DIR/awq.json: per group the loss at
 * every ratio with RTN's beside it and the chosen ratio, per linear the clip thresholds and the output error
 * under RTN and under AWQ, per block the attention and MLP output errors with all linears quantized.
 * ONNX graphs (src/awq/awq-onnx.ts): calibration images (or rendered lines for the OCR recogniser) through
 * onnxruntime, the scale search of every foldable norm -> MatMul / Gemm group (inspecting the group's linears),
 * RTN with the clip search for every other MatMul / Gemm; DIR/model.onnx holds the scales folded into the
 * norms and the fake-quantized float32 weights, DIR/awq.json the same report without blocks.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { awqLlama, AwqError, type AwqLlamaResult } from '../../awq/awq-llama.ts';
import { AWQ_ONNX_DEFAULT_ROWS, awqOnnx, awqOnnxConstants, type AwqOnnxResult } from '../../awq/awq-onnx.ts';
import { CaptureFeedError } from '../../calib/onnx-capture.ts';
import { nodeOrtRuntime } from '../../calib/ort-node.ts';
import { CalibDataError } from '../../calib/text-data.ts';
import { ImageInputError } from '../../calib/image-preprocess.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { allTensors, loadExternalTensor } from '../../model/onnx/external-data.ts';
import { serializeModel } from '../../model/onnx/serialize.ts';
import type { OnnxModelHandle } from '../../model/workspace.ts';
import { replaceConstants } from '../../smooth/fold-onnx.ts';
import { SmoothQuantError } from '../../smooth/smoothquant.ts';
import { LlamaGpu } from '../../model/llama/forward-gpu.ts';
import { CheckpointError } from '../../model/llama/model.ts';
import { QuantConfigError, validateQuantConfig, type QuantConfig } from '../../quant/config.ts';
import { encodeCheckpointLlama2c, llama2cUnwritable } from '../../model/formats/llama2c.ts';
import { llamaDataShape, llamaSequencesFromArgs, LLAMA_DATA_OPTIONS } from '../calib-data.ts';
import { onnxBatchesFromArgs, ONNX_IMAGE_OPTIONS } from '../onnx-calib-data.ts';
import { InputError, UsageError } from '../cli-errors.ts';
import type { CliIo, Command } from '../command.ts';
import { withNodeGpu } from '../node-gpu-session.ts';
import { openModelFromArgs } from '../open-model.ts';
import type { ParsedOptions } from '../options.ts';

function quantFromArgs(opts: ParsedOptions): Required<QuantConfig> {
  const granularity = opts.string('granularity') ?? 'group';
  if (granularity !== 'group' && granularity !== 'channel') throw new UsageError(`--granularity must be group or channel for AWQ, got ${granularity}`);
  try {
    return validateQuantConfig({
      bits: opts.int('bits', { min: 2, max: 8 }) ?? 4,
      granularity,
      groupSize: granularity === 'group' ? (opts.int('group-size', { min: 1, max: 1 << 20 }) ?? 128) : undefined,
      scheme: opts.flag('sym') ? 'sym' : 'asym',
    });
  } catch (e) {
    if (e instanceof QuantConfigError) throw new UsageError(e.message);
    throw e;
  }
}

/** The report as JSON: arrays as plain numbers, scales summarised. */
export function awqReport(model: string, quant: Required<QuantConfig>, duo: boolean, clip: boolean, data: { source: string; samples: number; seqLen: number }, r: AwqLlamaResult) {
  return {
    format: 'quantlab-awq',
    version: 1,
    model,
    quant,
    duo,
    clip,
    data: { ...data, tokens: r.tokens },
    seconds: r.seconds,
    blocks: r.blocks,
    groups: r.groups.map((g) => ({
      block: g.block,
      kind: g.kind,
      prev: g.prev,
      linears: g.linears,
      inspected: g.inspected,
      bestRatio: g.bestRatio,
      rtnLoss: g.rtnLoss,
      lossAtBest: g.losses[g.bestIndex],
      losses: g.ratios.map((ratio, i) => ({ ratio, loss: g.losses[i] })),
      scales: { min: Math.min(...g.scales), max: Math.max(...g.scales), top: topChannels(g.scales, 5) },
    })),
    linears: r.linears,
  };
}

/** The ONNX report: the Llama report's fields where they apply (no blocks), with the layers left alone. */
export function awqOnnxReport(
  model: string,
  quant: Required<QuantConfig>,
  duo: boolean,
  clip: boolean,
  data: { source: string; samples: number; maxRows: number },
  r: AwqOnnxResult,
) {
  return {
    format: 'quantlab-awq',
    version: 1,
    model,
    quant,
    duo,
    clip,
    data: { ...data, rows: Math.max(0, ...r.linears.map((l) => l.rows)) },
    seconds: r.seconds,
    /** Summed single-linear output MSEs over every quantized linear. */
    total: r.total,
    groups: r.groups.map((g) => ({
      name: g.name,
      prev: g.name,
      input: g.input,
      linears: g.linears,
      inspected: g.inspected,
      rows: g.rows,
      bestRatio: g.bestRatio,
      rtnLoss: g.rtnLoss,
      lossAtBest: g.losses[g.bestIndex],
      awqLoss: g.awqLoss,
      losses: g.ratios.map((ratio, i) => ({ ratio, loss: g.losses[i] })),
      scales: { min: Math.min(...g.scales), max: Math.max(...g.scales), top: topChannels(g.scales, 5) },
      xMean: { max: Math.max(...g.xMean), top: topChannels(g.xMean, 5).map((t) => ({ channel: t.channel, mean: t.scale })) },
    })),
    linears: r.linears,
    skipped: r.skipped,
  };
}

function topChannels(s: Float32Array, k: number): { channel: number; scale: number }[] {
  return Array.from(s, (scale, channel) => ({ channel, scale }))
    .sort((a, b) => b.scale - a.scale)
    .slice(0, k);
}

function computeFromArgs(opts: ParsedOptions): 'auto' | 'gpu' | 'cpu' {
  const c = opts.string('compute') ?? 'auto';
  if (c !== 'auto' && c !== 'gpu' && c !== 'cpu') throw new UsageError(`--compute must be auto, gpu or cpu, got ${c}`);
  return c;
}

async function run(opts: ParsedOptions, io: CliIo): Promise<number> {
  const quant = quantFromArgs(opts);
  computeFromArgs(opts);
  const duo = opts.flag('duo');
  const clip = !opts.flag('no-clip');
  const grid = opts.int('grid', { min: 1, max: 100 }) ?? 20;
  const out = opts.string('out');
  if (!out) throw new UsageError('give --out DIR (the quantized model and awq.json go there)');
  const reportPath = opts.string('report');
  const json = opts.flag('json');
  const h = await openModelFromArgs(opts.positionals);
  if (h.kind === 'onnx') return runOnnx(h, opts, io, { quant, duo, clip, grid, out, reportPath, json });
  for (const o of ['preprocess', 'det-side', 'rows']) if (opts.has(o)) throw new UsageError(`--${o} is for ONNX models`);
  const { seqLen } = llamaDataShape(h, opts);
  const unwritable = llama2cUnwritable(h.ckpt);
  if (unwritable) throw new InputError(`the AWQ model is written as llama2.c, and ${unwritable}`);
  const result = await withNodeGpu(async (ctx) => {
    const llm = await LlamaGpu.load(ctx, h.ckpt, { maxBatch: Math.min(64, seqLen) });
    try {
      const seqs = await llamaSequencesFromArgs(h, opts, llm);
      if (seqs.note) io.stderr(`note: ${seqs.note}\n`);
      try {
        const r = await awqLlama(llm, h.ckpt, seqs.sequences, {
          quant,
          duo,
          clip,
          grid,
          compute: computeFromArgs(opts),
          onBlock: json ? undefined : (b) => io.stderr(`block ${b.block}: attention + MLP output error RTN ${b.rtnError.toExponential(3)} -> AWQ ${b.awqError.toExponential(3)} (${(100 * (1 - b.awqError / b.rtnError)).toFixed(1)}% lower)\n`),
        });
        return { r, seqs };
      } catch (e) {
        if (e instanceof AwqError) throw new InputError(e.message);
        throw e;
      }
    } finally {
      llm.dispose();
    }
  });
  const report = awqReport(h.name, quant, duo, clip, { source: result.seqs.source, samples: result.seqs.sequences.length, seqLen }, result.r);
  const dir = resolve(out);
  mkdirSync(dir, { recursive: true });
  let enc: Awaited<ReturnType<typeof encodeCheckpointLlama2c>>;
  try {
    enc = await encodeCheckpointLlama2c(h.ckpt, result.r.weights);
  } catch (e) {
    if (e instanceof CheckpointError) throw new InputError(`the AWQ model cannot be written as llama2.c: ${e.message}`);
    throw e;
  }
  writeFileSync(join(dir, 'model.bin'), Buffer.concat(enc.model));
  if (enc.tokenizer) writeFileSync(join(dir, 'tokenizer.bin'), enc.tokenizer);
  const text = JSON.stringify(report, null, 2) + '\n';
  writeFileSync(join(dir, 'awq.json'), text);
  if (reportPath) writeFileSync(resolve(reportPath), text);
  if (json) io.stdout(JSON.stringify(report) + '\n');
  else {
    for (const g of report.groups) {
      io.stdout(`block ${g.block} ${g.kind.padEnd(8)} ratio ${g.bestRatio.toFixed(2)}  loss ${g.lossAtBest.toExponential(3)} (RTN ${g.rtnLoss.toExponential(3)})\n`);
    }
    const rtn = report.blocks.reduce((a, b) => a + b.rtnError, 0);
    const awq = report.blocks.reduce((a, b) => a + b.awqError, 0);
    io.stdout(`summed block output error (attention + MLP, all linears quantized): RTN ${rtn.toExponential(3)}, AWQ ${awq.toExponential(3)}; ${result.r.tokens} tokens, ${result.r.seconds.toFixed(1)} s; wrote ${join(dir, 'model.bin')} and awq.json\n`);
  }
  return 0;
}

async function runOnnx(
  h: OnnxModelHandle,
  opts: ParsedOptions,
  io: CliIo,
  a: { quant: Required<QuantConfig>; duo: boolean; clip: boolean; grid: number; out: string; reportPath?: string; json: boolean },
): Promise<number> {
  const compute = computeFromArgs(opts);
  const maxRows = opts.int('rows', { min: 1, max: 1 << 20 }) ?? AWQ_ONNX_DEFAULT_ROWS;
  const work = async (ctx?: GpuContext) => {
    const data = await onnxBatchesFromArgs(h, opts);
    const r = await awqOnnx(h, nodeOrtRuntime(), data.batches, {
      quant: a.quant,
      duo: a.duo,
      clip: a.clip,
      grid: a.grid,
      compute,
      ctx,
      maxRows,
      totalBatches: data.totalBatches,
      onProgress: a.json ? undefined : (p) => p.done < p.total && !p.label.startsWith('capturing') && io.stderr(`${p.label}\n`),
    });
    const model = replaceConstants(h.model, await awqOnnxConstants(h, r));
    if (h.external) for (const t of allTensors(model.graph)) if (t.data.location === 'external' && !t.data.bytes) await loadExternalTensor(t, h.external);
    return { data, r, bytes: serializeModel(model, { inlineExternalData: true }) };
  };
  let res: Awaited<ReturnType<typeof work>>;
  try {
    res = compute === 'cpu' ? await work() : await withNodeGpu(work);
  } catch (e) {
    if (e instanceof AwqError || e instanceof CalibDataError || e instanceof CaptureFeedError || e instanceof ImageInputError || e instanceof SmoothQuantError || e instanceof QuantConfigError) {
      throw new InputError(e.message);
    }
    throw e;
  }
  const { data, r, bytes } = res;
  if (!a.json) {
    const byReason = new Map<string, string[]>();
    for (const s of r.skipped) byReason.set(s.reason, [...(byReason.get(s.reason) ?? []), s.name]);
    for (const [reason, names] of byReason) {
      const who = names.length === 1 ? names[0] : `${names.length} layers (${names.slice(0, 3).join(', ')}${names.length > 3 ? ', ...' : ''})`;
      io.stderr(`note: ${who} left alone: ${reason}\n`);
    }
  }
  const report = awqOnnxReport(h.name, a.quant, a.duo, a.clip, { source: data.source, samples: data.samples, maxRows }, r);
  const dir = resolve(a.out);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'model.onnx'), bytes);
  const text = JSON.stringify(report, null, 2) + '\n';
  writeFileSync(join(dir, 'awq.json'), text);
  if (a.reportPath) writeFileSync(resolve(a.reportPath), text);
  if (a.json) io.stdout(JSON.stringify(report) + '\n');
  else {
    for (const g of report.groups) {
      io.stdout(`${g.name} -> ${g.linears.join(', ')}: ratio ${g.bestRatio.toFixed(2)}  loss ${g.lossAtBest.toExponential(3)} (RTN ${g.rtnLoss.toExponential(3)}), after clipping ${g.awqLoss.toExponential(3)}\n`);
    }
    const { rtnError, awqError } = r.total;
    io.stdout(
      `${r.linears.length} linears (${r.groups.length} norm groups scaled), summed output MSE RTN ${rtnError.toExponential(3)} -> AWQ ${awqError.toExponential(3)} ` +
        `(${(100 * (1 - awqError / rtnError)).toFixed(1)}% lower); ${report.data.rows} rows, ${r.seconds.toFixed(1)} s; wrote ${join(dir, 'model.onnx')} and awq.json\n`,
    );
  }
  return 0;
}

export const awqCommand: Command = {
  name: 'awq',
  summary: 'activation-aware weight quantization (AWQ) of a Llama-family model or an ONNX graph',
  synopsis:
    'quantlab awq MODEL [--data FILE|DIR|generated] [--samples N --seq-len L] [--preprocess P] [--bits 4] [--group-size 128] [--duo] [--no-clip] --out DIR [--report awq.json] [--json]',
  description: [
    'MODEL as for inspect (stories15M names the bundled model; ONNX graphs too). Calibration data as for calibrate.',
    'Llama: per block, scale search over 20 ratios for q/k/v (inspecting the attention), v -> o, gate/up (inspecting the MLP) and up -> down (Gram-matrix loss over every token); clip search (not for q/k); asymmetric INT4 by default. Writes model.bin.',
    'ONNX: scale search for every foldable norm -> MatMul / Gemm group, inspecting the group\'s linears (the MSE of their concatenated outputs, Gram form, over up to --rows rows); clip search for every MatMul / Gemm; Conv layers stay FP32. Writes model.onnx with the scales folded into the norms and fake-quantized float32 weights.',
    'x-only scales (llm-awq) unless --duo (AutoAWQ duo scaling).',
  ].join('\n'),
  maxPositionals: 16,
  options: [
    ...LLAMA_DATA_OPTIONS.map((o) =>
      o.name === 'data' ? { ...o, help: `${o.help}; ONNX image models: a directory of .jpg / .png images (default: the bundled photos, rendered text lines for OCR recognisers)` } : o,
    ),
    ...ONNX_IMAGE_OPTIONS,
    { name: 'rows', value: 'N', help: `ONNX: rows of each layer input kept for the searches (default ${AWQ_ONNX_DEFAULT_ROWS})` },
    { name: 'bits', value: 'B', help: 'weight bits (default 4)' },
    { name: 'group-size', value: 'G', help: 'group size (default 128)' },
    { name: 'granularity', value: 'G', help: 'group (default) or channel' },
    { name: 'sym', help: 'symmetric quantization (default asymmetric, as llm-awq)' },
    { name: 'duo', help: "AutoAWQ's duo scaling: x_mean^r / w_mean^(1-r)" },
    { name: 'no-clip', help: 'skip the clip search' },
    { name: 'grid', value: 'N', help: 'ratios searched (default 20: 0, 0.05, ..., 0.95)' },
    { name: 'compute', value: 'WHERE', help: 'single-linear and clip searches on the gpu or the cpu reference (default auto: cpu on a software adapter)' },
    { name: 'out', value: 'DIR', help: 'where model.bin and tokenizer.bin (or model.onnx) and awq.json go' },
    { name: 'report', value: 'FILE', help: 'also write the report here' },
    { name: 'json', help: 'print the report as JSON on stdout' },
  ],
  epilogue: 'Exit status 1 for data or models it cannot run (an ONNX graph without MatMul / Gemm layers, too little text, images that do not decode, NaN), 2 for a bad command line.',
  run,
};
