/**
 * `quantlab awq-layer`: AWQ (activation-aware weight quantization) of one linear layer on the GPU,
 * from a weight .npy [out, in] and calibration activations .npy [tokens, in]: the scale search over 20
 * ratios, the clip search, and the final fake-quantized weight, with the loss at every ratio.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { GpuAwq } from '../../awq/gpu-awq.ts';
import { awqLayout, type AwqLossForm } from '../../awq/reference.ts';
import { writeNpy } from '../../io/npy.ts';
import { MAX_BITS, MIN_BITS, QuantConfigError, type QuantConfig } from '../../quant/config.ts';
import { InputError, UsageError } from '../cli-errors.ts';
import type { CliIo, Command } from '../command.ts';
import { requireFinite } from '../finite-input.ts';
import { withNodeGpu } from '../node-gpu-session.ts';
import type { ParsedOptions } from '../options.ts';
import { formatNumber } from '../quant-options.ts';
import { readTensorFile } from '../read-tensor-file.ts';

function shapeText(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

function stats(v: ArrayLike<number>): { min: number; mean: number; max: number } {
  let mn = Infinity;
  let mx = -Infinity;
  let sum = 0;
  for (let i = 0; i < v.length; i++) {
    mn = Math.min(mn, v[i]);
    mx = Math.max(mx, v[i]);
    sum += v[i];
  }
  return { min: mn, mean: v.length ? sum / v.length : 0, max: mx };
}

async function run(opts: ParsedOptions, io: CliIo): Promise<number> {
  const weightPath = opts.required('weight', 'the weight .npy, PyTorch layout [out, in]');
  const actsPath = opts.required('acts', 'the calibration activations .npy, [tokens, in]');
  const outDir = resolve(opts.required('out', 'the output directory'));
  const bits = opts.int('bits', { min: MIN_BITS, max: MAX_BITS }) ?? 4;
  const perChannel = opts.flag('per-channel');
  if (perChannel && opts.has('group-size')) throw new UsageError('give --group-size N or --per-channel, not both');
  const groupSize = opts.int('group-size', { min: 1 }) ?? 128;
  const loss = opts.choice<AwqLossForm>('loss', ['gram', 'direct']) ?? 'gram';
  const quant: QuantConfig = perChannel
    ? { bits, granularity: 'channel', scheme: opts.flag('sym') ? 'sym' : 'asym' }
    : { bits, granularity: 'group', groupSize, scheme: opts.flag('sym') ? 'sym' : 'asym' };
  const duo = opts.flag('duo');
  const clip = !opts.flag('no-clip');
  const json = opts.flag('json');

  const wt = readTensorFile(weightPath);
  const xt = readTensorFile(actsPath);
  if (wt.shape.length !== 2) throw new InputError(`${weightPath}: a linear weight must be 2-D [out, in] (PyTorch layout), got shape ${shapeText(wt.shape)}`);
  const [out, inDim] = wt.shape;
  if (xt.shape.length === 0 || xt.shape[xt.shape.length - 1] !== inDim) {
    throw new InputError(
      `shape mismatch: weight ${weightPath} is [out, in] = ${shapeText(wt.shape)} but activations ${actsPath} are ${shapeText(xt.shape)}; ` +
        `the activations' last axis must equal in = ${inDim}`,
    );
  }
  const tokens = xt.data.length / inDim;
  if (tokens < 1) throw new InputError(`${actsPath}: no activation rows (shape ${shapeText(xt.shape)})`);
  requireFinite(wt);
  requireFinite(xt);
  let layout;
  try {
    layout = awqLayout(wt.shape, quant);
  } catch (e) {
    if (e instanceof QuantConfigError) throw new InputError(`${weightPath}: ${e.message}`);
    throw e;
  }
  const partialGroups = quant.granularity === 'group' && inDim % groupSize !== 0;
  if (partialGroups && !json) {
    io.stderr(`quantlab awq-layer: note: in = ${inDim} is not a multiple of --group-size ${groupSize}: the last group of each row holds ${inDim % groupSize}\n`);
  }
  try {
    mkdirSync(outDir, { recursive: true });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'EEXIST' || err.code === 'ENOTDIR' ? 'a file of that name is in the way' : err.message;
    throw new InputError(`cannot create the output directory ${outDir}: ${why}`);
  }

  const started = performance.now();
  const { result, device } = await withNodeGpu(async (ctx) => {
    const awq = new GpuAwq(ctx);
    const result = await awq.layer(wt.data, wt.shape, xt.data, tokens, { quant, duo, loss, clip });
    return { result, device: ctx.description };
  });
  const seconds = (performance.now() - started) / 1000;

  const { search } = result;
  const pShape = [out, layout.groupsPerRow];
  const outputs = {
    scales: resolve(outDir, 'scales.npy'),
    weight: resolve(outDir, 'weight.npy'),
    codes: resolve(outDir, 'codes.npy'),
    qscales: resolve(outDir, 'qscales.npy'),
    zeros: resolve(outDir, 'zeros.npy'),
    ...(result.clip ? { clipMax: resolve(outDir, 'clip_max.npy') } : {}),
    report: resolve(outDir, 'awq.json'),
  };
  const files: [string, Uint8Array][] = [
    [outputs.scales, writeNpy(search.scales, [inDim])],
    [outputs.weight, writeNpy(result.quantized.weight, [out, inDim])],
    [outputs.codes, writeNpy(result.quantized.codes, [out, inDim])],
    [outputs.qscales, writeNpy(result.quantized.qparams.scale, pShape)],
    [outputs.zeros, writeNpy(Int32Array.from(result.quantized.qparams.zero), pShape)],
  ];
  if (result.clip) files.push([outputs.clipMax!, writeNpy(result.clip.maxVal, pShape)]);
  let clipReport = null;
  if (result.clip) {
    const c = result.clip;
    const shrink = Float64Array.from(c.maxVal, (v, g) => (c.origMax[g] > 0 ? v / c.origMax[g] : 1));
    const candidates = new Array<number>(10).fill(0);
    for (const i of c.choice) candidates[i]++;
    clipReport = { groups: c.maxVal.length, sampledTokens: c.sampledTokens, maxVal: stats(c.maxVal), shrink: stats(shrink), clippedGroups: c.maxVal.length - candidates[0], chosenCandidates: candidates };
  }
  const report = {
    weight: resolve(weightPath),
    acts: resolve(actsPath),
    shape: [out, inDim],
    tokens,
    config: { ...quant, duo, loss, clip, partialGroups },
    ratios: search.ratios,
    losses: search.losses,
    bestRatio: search.bestRatio,
    bestIndex: search.bestIndex,
    bestLoss: search.losses[search.bestIndex],
    rtnLoss: search.rtnLoss,
    finalLoss: result.finalLoss,
    clip: clipReport,
    outputs,
    device,
    seconds,
  };
  const text = JSON.stringify(report);
  files.push([outputs.report, new TextEncoder().encode(`${JSON.stringify(report, null, 2)}\n`)]);
  for (const [path, bytes] of files) {
    try {
      writeFileSync(path, bytes);
    } catch (e) {
      throw new InputError(`cannot write ${path}: ${(e as Error).message}`);
    }
  }
  if (json) {
    io.stdout(`${text}\n`);
    return 0;
  }
  const gran = quant.granularity === 'group' ? `group ${groupSize}` : 'per-channel';
  io.stdout(
    [
      `AWQ of ${weightPath} [${out}, ${inDim}] with ${tokens} tokens: int${bits} ${quant.scheme} ${gran}, ${duo ? 'duo' : 'x-only'} scaling, ${loss} loss`,
      `  ratios   ${search.losses.map((l, i) => `${search.ratios[i].toFixed(2)}:${formatNumber(l)}`).join(' ')}`,
      `  best     ratio ${search.bestRatio} loss ${formatNumber(search.losses[search.bestIndex])} (RTN ${formatNumber(search.rtnLoss)})`,
      clipReport ? `  clip     ${clipReport.clippedGroups} of ${clipReport.groups} groups clipped (mean shrink ${formatNumber(clipReport.shrink.mean)}); final loss ${formatNumber(result.finalLoss)}` : `  clip     skipped; final loss ${formatNumber(result.finalLoss)}`,
      `  wrote    ${outDir}: scales.npy weight.npy codes.npy qscales.npy zeros.npy${clipReport ? ' clip_max.npy' : ''} awq.json`,
      '',
    ].join('\n'),
  );
  return 0;
}

export const awqLayerCommand: Command = {
  name: 'awq-layer',
  summary: 'AWQ scale and clip search for one linear layer (.npy weight and activations) on the GPU',
  synopsis: 'quantlab awq-layer --weight W.npy --acts X.npy --out DIR [--bits B] [--group-size N | --per-channel] [--duo] [--sym] [--no-clip] [--loss gram|direct] [--json]',
  description: [
    'Activation-aware weight quantization (llm-awq auto_scale.py / auto_clip.py, AutoAWQ) of one linear layer.',
    'W.npy is the weight in PyTorch layout [out, in]; X.npy the calibration inputs of the layer [tokens, in]',
    '(higher-rank activations flatten their leading axes into tokens). For r = 0, 0.05, ..., 0.95 the scales',
    's = x_mean^r (or, with --duo, x_mean^r / w_mean^(1-r)) are tried: W\' = Q(W*s)/s, scored by the output MSE',
    'mean (X W^T - X W\'^T)^2, computed from G = X^T X (--loss gram, default) or directly (--loss direct).',
    'The best ratio is kept; then (unless --no-clip; skip it for q/k projections) each group of W*s is clipped',
    'at the best of absmax * (1 - i/20), i = 0..9, scored on every floor(tokens/512)-th token. Groups need not',
    'divide in: the last group of a row may be partial, as in `quantlab quantize`. NaN or Inf inputs are refused.',
  ].join('\n'),
  options: [
    { name: 'weight', value: 'FILE', help: 'weight .npy, [out, in]' },
    { name: 'acts', value: 'FILE', help: 'activations .npy, [..., in]' },
    { name: 'out', value: 'DIR', help: 'output directory, created if missing' },
    { name: 'bits', value: 'B', help: `integer bit width, ${MIN_BITS} to ${MAX_BITS} (default 4)` },
    { name: 'group-size', value: 'N', help: 'input channels per quantization group (default 128)' },
    { name: 'per-channel', help: 'one scale per output row instead of groups' },
    { name: 'sym', help: 'symmetric quantization (default asymmetric with zero point, as AWQ)' },
    { name: 'duo', help: "AutoAWQ's duo scaling x_mean^r / w_mean^(1-r) (default llm-awq's x_mean^r)" },
    { name: 'no-clip', help: 'skip the clip search' },
    { name: 'loss', value: 'L', help: 'gram (default) or direct: how the output MSE of each ratio is computed' },
    { name: 'json', help: 'print the awq.json report on stdout' },
  ],
  epilogue: [
    'Outputs (in DIR):',
    '  scales.npy    float32 [in], the chosen AWQ scales s (fold 1/s into the previous op)',
    '  weight.npy    float32 [out, in], Q(clip(W*s))/s: the fake-quantized weight in the original scale',
    '  codes.npy     int8 (sym) / uint8 (asym) [out, in], codes of clip(W*s)',
    '  qscales.npy   float32 [out, groups per row], quantizer scales of W*s;  zeros.npy int32, zero points',
    '  clip_max.npy  float32 [out, groups per row], the clip threshold of each group (without --no-clip)',
    '  awq.json      ratios, losses (output MSE at every ratio), bestRatio, bestLoss, rtnLoss (plain RTN, s = 1),',
    '                finalLoss (after clipping), clip summary (thresholds, shrink factors, chosen candidates)',
    '',
    'Exit status: 0 done, 1 bad input data (shapes, NaN) or GPU failure, 2 bad command line.',
  ].join('\n'),
  run,
};
