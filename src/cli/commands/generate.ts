/**
 * `quantlab generate MODEL --prompt TEXT --tokens N`: greedy decoding with the WGSL forward pass, optionally
 * with every linear layer fake-quantized (RTN) by the GPU quantizer first.
 */
import { MAX_BITS, MIN_BITS, QuantConfigError, validateQuantConfig, type QuantConfig, type Scheme } from '../../quant/config.ts';
import { QuantKernels } from '../../quant/gpu-kernels.ts';
import { makeGroupLayout } from '../../quant/layout.ts';
import { LlamaGpu } from '../../model/llama/forward-gpu.ts';
import { linearTensorNames } from '../../model/llama/model.ts';
import { InputError, UsageError } from '../cli-errors.ts';
import type { CliIo, Command } from '../command.ts';
import { withNodeGpu } from '../node-gpu-session.ts';
import { openLlamaFromArgs } from '../open-model.ts';
import type { ParsedOptions } from '../options.ts';

/** `--quant int4-g32-asym`, `int8-channel-sym`, `int4-g128`: bits, then group size or channel/tensor, then scheme. */
export function parseQuantSpec(spec: string): QuantConfig {
  const m = /^int(\d)-(g(\d+)|channel|tensor)(?:-(sym|asym))?$/.exec(spec);
  if (!m) throw new UsageError(`--quant must look like int4-g32-asym, int8-channel-sym or int4-tensor, got '${spec}'`);
  const cfg: QuantConfig = {
    bits: Number(m[1]),
    granularity: m[3] ? 'group' : (m[2] as 'channel' | 'tensor'),
    groupSize: m[3] ? Number(m[3]) : undefined,
    scheme: (m[4] as Scheme | undefined) ?? 'asym',
  };
  try {
    return validateQuantConfig(cfg);
  } catch (e) {
    if (e instanceof QuantConfigError) throw new UsageError(`--quant ${spec}: ${e.message}`);
    throw e;
  }
}

async function run(opts: ParsedOptions, io: CliIo): Promise<number> {
  const prompt = opts.required('prompt', 'the text to continue');
  const tokens = opts.int('tokens', { min: 1, max: 100_000 }) ?? 32;
  const quantSpec = opts.string('quant');
  const quant = quantSpec ? parseQuantSpec(quantSpec) : undefined;
  if (quant && (quant.bits < MIN_BITS || quant.bits > MAX_BITS)) throw new UsageError(`--quant bits must be ${MIN_BITS} to ${MAX_BITS}`);
  const ckpt = await openLlamaFromArgs(opts.positionals);
  const tok = ckpt.tokenizer;
  if (!tok) throw new InputError(`${ckpt.name} has no tokenizer this tool can read${ckpt.tokenizerNote ? `: ${ckpt.tokenizerNote}` : ''}`);
  const ids = tok.encode(prompt, { bos: true });
  const n = Math.min(tokens, ckpt.config.seqLen - ids.length);
  if (n < 1) throw new InputError(`the prompt is ${ids.length} tokens; the model's context is ${ckpt.config.seqLen}`);
  const linears = new Set(linearTensorNames(ckpt.config));
  const result = await withNodeGpu(async (ctx) => {
    const k = new QuantKernels(ctx);
    const t0 = performance.now();
    const model = await LlamaGpu.load(ctx, ckpt, {
      transformWeight: quant
        ? (name, data, shape) => (linears.has(name) ? k.fakeQuantize(data, makeGroupLayout(shape, quant.granularity, quant.groupSize), quant) : data)
        : undefined,
    });
    const t1 = performance.now();
    try {
      const out = await model.generate(ids, n, { onToken: opts.flag('json') ? undefined : (id) => io.stdout(tok.decode([id], ids.at(-1))) });
      return { out, loadS: (t1 - t0) / 1000, genS: (performance.now() - t1) / 1000, device: ctx.description };
    } finally {
      model.dispose();
    }
  });
  const text = tok.decode([...ids, ...result.out]);
  if (opts.flag('json')) {
    io.stdout(`${JSON.stringify({ model: ckpt.name, quant: quant ?? null, prompt, promptTokens: ids, tokens: result.out, text, loadSeconds: result.loadS, generateSeconds: result.genS, tokensPerSecond: result.out.length / result.genS, device: result.device })}\n`);
  } else {
    io.stdout('\n');
    io.stderr(`${result.out.length} tokens in ${result.genS.toFixed(2)} s (${(result.out.length / result.genS).toFixed(2)} tokens/s, prompt included), weights loaded in ${result.loadS.toFixed(2)} s\n`);
  }
  return 0;
}

export const generateCommand: Command = {
  name: 'generate',
  summary: 'greedy text generation with the WGSL Llama forward pass, optionally with RTN-quantized weights',
  synopsis: 'quantlab generate MODEL --prompt TEXT [--tokens N] [--quant int4-g32-asym] [--json]',
  description: 'MODEL as for inspect (stories15M names the bundled model). The continuation streams to stdout.',
  maxPositionals: 16,
  options: [
    { name: 'prompt', value: 'TEXT', help: 'text to continue (required); a BOS token is prepended' },
    { name: 'tokens', value: 'N', help: 'tokens to generate (default 32; at most what the context leaves)' },
    { name: 'quant', value: 'SPEC', help: 'fake-quantize every linear layer first: int<bits>-g<size>|channel|tensor[-sym|-asym]' },
    { name: 'json', help: 'print one JSON object on stdout (text, token ids, timings)' },
  ],
  epilogue: 'Exit status: 0 done, 1 unreadable model or GPU failure, 2 bad command line.',
  run,
};
