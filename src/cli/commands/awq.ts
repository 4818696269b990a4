/**
 * `quantlab awq MODEL [--data ...] --bits 4 --group-size 32 [--duo] [--no-clip] --out DIR [--report awq.json]`:
 * AWQ of a Llama-family model on the GPU (src/awq/awq-llama.ts): per block the scale searches of the four
 * groups, the clip search and the quantization. Writes DIR/model.bin (llama2.c, the fake-quantized weights
 * in float32, with tokenizer.bin, so `generate` and the lab can run it) and DIR/awq.json: per group the loss at
 * every ratio with RTN's beside it and the chosen ratio, per linear the clip thresholds and the output error
 * under RTN and under AWQ, per block the attention and MLP output errors with all linears quantized.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { awqLlama, AwqError, type AwqLlamaResult } from '../../awq/awq-llama.ts';
import { LlamaGpu } from '../../model/llama/forward-gpu.ts';
import { CheckpointError } from '../../model/llama/model.ts';
import { QuantConfigError, validateQuantConfig, type QuantConfig } from '../../quant/config.ts';
import { encodeCheckpointLlama2c, llama2cUnwritable } from '../../model/formats/llama2c.ts';
import { llamaDataShape, llamaSequencesFromArgs, LLAMA_DATA_OPTIONS } from '../calib-data.ts';
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
  if (h.kind !== 'llama') throw new InputError(`${h.name} is an ONNX graph: AWQ here runs on Llama-family checkpoints (ONNX norm -> MatMul groups are not searched yet)`);
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

export const awqCommand: Command = {
  name: 'awq',
  summary: 'activation-aware weight quantization (AWQ) of a Llama-family model on the GPU',
  synopsis: 'quantlab awq MODEL [--data FILE|DIR|generated] [--samples N --seq-len L] [--bits 4] [--group-size 128] [--duo] [--no-clip] --out DIR [--report awq.json] [--json]',
  description: [
    'MODEL as for inspect (stories15M names the bundled model). Calibration data as for calibrate.',
    'Per block: scale search over 20 ratios for q/k/v (inspecting the attention), v -> o, gate/up (inspecting the MLP) and up -> down (Gram-matrix loss over every token); clip search (not for q/k); asymmetric INT4 by default.',
    'x-only scales (llm-awq) unless --duo (AutoAWQ duo scaling).',
  ].join('\n'),
  maxPositionals: 16,
  options: [
    ...LLAMA_DATA_OPTIONS,
    { name: 'bits', value: 'B', help: 'weight bits (default 4)' },
    { name: 'group-size', value: 'G', help: 'group size (default 128)' },
    { name: 'granularity', value: 'G', help: 'group (default) or channel' },
    { name: 'sym', help: 'symmetric quantization (default asymmetric, as llm-awq)' },
    { name: 'duo', help: "AutoAWQ's duo scaling: x_mean^r / w_mean^(1-r)" },
    { name: 'no-clip', help: 'skip the clip search' },
    { name: 'grid', value: 'N', help: 'ratios searched (default 20: 0, 0.05, ..., 0.95)' },
    { name: 'compute', value: 'WHERE', help: 'single-linear and clip searches on the gpu or the cpu reference (default auto: cpu on a software adapter)' },
    { name: 'out', value: 'DIR', help: 'where model.bin, tokenizer.bin and awq.json go' },
    { name: 'report', value: 'FILE', help: 'also write the report here' },
    { name: 'json', help: 'print the report as JSON on stdout' },
  ],
  epilogue: 'Exit status 1 for data or models it cannot run (an ONNX graph, too little text, NaN), 2 for a bad command line.',
  run,
};
