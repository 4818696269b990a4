/**
 * `quantlab amax --input x.npy --method M`: the activation calibrators of REFERENCE.md section 2 on one
 * tensor. The 2048-bin |x| histogram is built on the GPU (GpuGrowingHistogram, one batch per --batches
 * slice) and the MSE and entropy sweeps run there; candidates the f32 sweep cannot tell apart are
 * re-scored in double precision (refineBest), so the printed amax equals the CPU calibrator's.
 * Without a GPU (or with --cpu) everything runs on the CPU reference, with the same results.
 */
import {
  calibrateTensor,
  entropyAt,
  entropySweep,
  histogramSqnrDb,
  MovingAverageMinMax,
  mseAt,
  mseSweep,
  percentileAmax,
  pickBest,
  refineBest,
  symmetricQmax,
  type TensorStats,
} from '../../calib/calibrators.ts';
import { CalibKernels, GpuGrowingHistogram } from '../../calib/gpu-calib.ts';
import { GrowingHistogram } from '../../calib/histogram.ts';
import { CALIB_METHODS, type CalibMethod, type CliCalibMethod, type SweepPoint } from '../../calib/types.ts';
import type { DeviceDescription } from '../../gpu/context.ts';
import { GpuUnavailableError } from '../../gpu/errors.ts';
import { QuantKernels } from '../../quant/gpu-kernels.ts';
import { makeGroupLayout } from '../../quant/layout.ts';
import { InputError, UsageError } from '../cli-errors.ts';
import type { CliIo, Command } from '../command.ts';
import { requireFinite } from '../finite-input.ts';
import { withNodeGpu } from '../node-gpu-session.ts';
import type { ParsedOptions } from '../options.ts';
import { formatNumber } from '../quant-options.ts';
import { readTensorFile } from '../read-tensor-file.ts';

const METHOD_CHOICES = ['entropy', 'percentile', 'mse', 'max', 'ma-minmax', 'all'] as const;
type MethodChoice = CliCalibMethod | 'all';

/** What the calibrators need from the data: the histogram, the exact statistics, the sweeps' best points. */
interface Collected {
  histogram: { counts: Uint32Array; range: number };
  stats: TensorStats;
  mse?: SweepPoint;
  entropy?: SweepPoint;
  device?: DeviceDescription;
}

/** Contiguous slices of whole rows (first axis); a 1-D tensor is sliced element by element. */
function batchesOf(data: Float32Array, shape: readonly number[], count: number, path: string): Float32Array[] {
  const rows = shape.length > 1 ? shape[0] : data.length;
  if (count > rows) throw new InputError(`--batches ${count} but ${path} has only ${rows} ${shape.length > 1 ? 'rows (first axis)' : 'values'}`);
  const rowLen = data.length / rows;
  const per = Math.ceil(rows / count);
  const out: Float32Array[] = [];
  for (let r = 0; r < rows; r += per) out.push(data.subarray(r * rowLen, Math.min(rows, r + per) * rowLen));
  return out;
}

function statsOf(batchMinMax: { min: number; max: number }[]): TensorStats {
  const ma = new MovingAverageMinMax();
  let absmax = 0;
  for (const b of batchMinMax) {
    ma.addBatch(b.min, b.max);
    absmax = Math.max(absmax, Math.abs(b.min), Math.abs(b.max));
  }
  return { absmax, movingMin: ma.min, movingMax: ma.max };
}

function collectCpu(batches: Float32Array[], bits: number, sweeps: { mse: boolean; entropy: boolean }): Collected {
  const h = new GrowingHistogram();
  const mm: { min: number; max: number }[] = [];
  for (const b of batches) {
    let min = Infinity;
    let max = -Infinity;
    for (const v of b) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
    mm.push({ min, max });
    h.add(b, Math.max(Math.abs(min), Math.abs(max)));
  }
  const histogram = { counts: h.counts, range: h.range };
  const out: Collected = { histogram, stats: statsOf(mm) };
  if (h.range > 0) {
    if (sweeps.mse) out.mse = pickBest(mseSweep(histogram, bits), 'first');
    if (sweeps.entropy) out.entropy = pickBest(entropySweep(histogram, bits), 'last');
  }
  return out;
}

async function collectGpu(batches: Float32Array[], bits: number, sweeps: { mse: boolean; entropy: boolean }): Promise<Collected> {
  return withNodeGpu(async (ctx) => {
    const qk = new QuantKernels(ctx);
    const gh = new GpuGrowingHistogram(ctx);
    try {
      const mm: { min: number; max: number }[] = [];
      for (const b of batches) {
        const t = qk.upload(b, 'input tensor');
        try {
          const s = await qk.groupStats(t, makeGroupLayout([b.length], 'tensor'));
          mm.push({ min: s.min[0], max: s.max[0] });
          await gh.add(t, s.absmax[0]);
        } finally {
          qk.release(t);
        }
      }
      const read = await gh.read();
      const histogram = { counts: read.counts, range: read.range };
      const out: Collected = { histogram, stats: statsOf(mm), device: ctx.description };
      if (read.range > 0) {
        const ck = new CalibKernels(ctx);
        if (sweeps.mse) {
          const pts = (await ck.mseSweep(histogram, bits)).map((p) => ({ index: p.index, amax: p.amax, value: p.mse }));
          out.mse = refineBest(pts, (i) => mseAt(histogram, i, bits), 'first');
        }
        if (sweeps.entropy) {
          out.entropy = refineBest(await ck.entropySweep(histogram, bits), (i) => entropyAt(histogram, i, bits), 'last', { rel: 1e-4, abs: 1e-5 });
        }
      }
      return out;
    } finally {
      gh.dispose();
    }
  });
}

interface Row {
  method: string;
  amax: number;
  scale: number;
  sqnrDb: number;
}

async function run(opts: ParsedOptions, io: CliIo): Promise<number> {
  const input = opts.required('input', 'the .npy tensor to calibrate');
  const method: MethodChoice = opts.choice('method', METHOD_CHOICES) ?? 'all';
  if (opts.has('percentile') && method !== 'percentile') throw new UsageError(`--percentile goes with --method percentile, not --method ${method}`);
  const percentile = opts.number('percentile', 0, 100) ?? 99.99;
  const bits = opts.int('bits', { min: 2, max: 8 }) ?? 8;
  const batchCount = opts.int('batches', { min: 1 }) ?? 1;
  const json = opts.flag('json');
  const qmax = symmetricQmax(bits);

  const tensor = readTensorFile(input);
  if (tensor.data.length === 0) throw new InputError(`${input} holds no values (shape [${tensor.shape.join(', ')}]): nothing to calibrate`);
  requireFinite(tensor);
  const batches = batchesOf(tensor.data, tensor.shape, batchCount, input);
  const sweeps = { mse: method === 'mse' || method === 'all', entropy: method === 'entropy' || method === 'all' };

  const t0 = performance.now();
  let c: Collected;
  if (opts.flag('cpu')) {
    c = collectCpu(batches, bits, sweeps);
  } else {
    try {
      c = await collectGpu(batches, bits, sweeps);
    } catch (e) {
      if (!(e instanceof GpuUnavailableError)) throw e;
      io.stderr(`quantlab amax: no GPU (${e.message.split('\n')[0]}); computing on the CPU\n`);
      c = collectCpu(batches, bits, sweeps);
    }
  }
  const h = c.histogram;
  const seconds = (performance.now() - t0) / 1000;

  const row = (name: string, amax: number): Row => ({ method: name, amax, scale: amax / qmax, sqnrDb: histogramSqnrDb(h, amax, bits) });
  let rows: Row[];
  let chosen: string;
  if (method === 'all') {
    const cal = calibrateTensor(h, c.stats, bits, {
      mseSweep: c.mse ? [c.mse] : undefined,
      entropySweep: c.entropy ? [c.entropy] : undefined,
    });
    rows = CALIB_METHODS.map((m: CalibMethod) => ({ ...row(m, cal.amax[m]), sqnrDb: cal.sqnrDb[m] }));
    chosen = cal.best;
  } else {
    let amax: number;
    chosen = method === 'percentile' ? `percentile-${percentile}` : method;
    if (h.range === 0) amax = 0;
    else if (method === 'max') amax = c.stats.absmax;
    else if (method === 'ma-minmax') amax = Math.max(Math.abs(c.stats.movingMin), Math.abs(c.stats.movingMax));
    else if (method === 'percentile') amax = percentileAmax(h, percentile);
    else amax = (method === 'mse' ? c.mse : c.entropy)!.amax;
    rows = [row(chosen, amax)];
  }
  const main = rows.find((r) => r.method === chosen)!;
  const nonzeroBins = h.counts.reduce((a, v) => a + (v > 0 ? 1 : 0), 0);

  if (json) {
    const jsonRow = (r: Row) => ({ method: r.method, amax: r.amax, scale: r.scale, sqnrDb: Number.isFinite(r.sqnrDb) ? r.sqnrDb : null });
    io.stdout(
      `${JSON.stringify({
        input,
        shape: tensor.shape,
        values: tensor.data.length,
        batches: batches.length,
        bits,
        ...jsonRow(main),
        ...(method === 'all' ? { best: chosen, methods: rows.map(jsonRow) } : {}),
        stats: c.stats,
        histogram: { bins: h.counts.length, range: h.range, nonzeroBins },
        device: c.device ?? null,
        seconds,
      })}\n`,
    );
    return 0;
  }
  const db = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)} dB` : 'infinite (exact)');
  const lines = [
    `${input}: [${tensor.shape.join(', ')}], ${tensor.data.length} values in ${batches.length} batch${batches.length === 1 ? '' : 'es'}, INT${bits} symmetric (qmax ${qmax})`,
    `  histogram  ${h.counts.length} bins of |x| over [0, ${formatNumber(h.range)}], ${nonzeroBins} nonzero; ${c.device ? `GPU ${c.device.description || c.device.vendor}` : 'CPU'}, ${seconds.toFixed(2)} s`,
  ];
  if (method === 'all') {
    const w = Math.max(...rows.map((r) => r.method.length)) + 2;
    lines.push(`  ${'method'.padEnd(w)}${'amax'.padStart(14)}${'scale'.padStart(14)}${'SQNR'.padStart(12)}`);
    for (const r of rows) {
      lines.push(`  ${r.method.padEnd(w)}${String(r.amax.toPrecision(8)).padStart(14)}${String(r.scale.toPrecision(8)).padStart(14)}${db(r.sqnrDb).padStart(12)}${r.method === chosen ? '  <- best' : ''}`);
    }
  } else {
    lines.push(`  method     ${chosen}`, `  amax       ${main.amax.toPrecision(8)}`, `  scale      ${main.scale.toPrecision(8)} (amax / ${qmax})`, `  SQNR       ${db(main.sqnrDb)} (from the histogram)`);
  }
  io.stdout(`${lines.join('\n')}\n`);
  return 0;
}

export const amaxCommand: Command = {
  name: 'amax',
  summary: 'choose an activation clip threshold (amax) for one .npy tensor: max, moving-average min/max, percentile, MSE, entropy',
  synopsis: 'quantlab amax --input FILE.npy [--method M] [--percentile P] [--bits B] [--batches N] [--cpu] [--json]',
  description: [
    'Runs the activation calibrators of TensorRT / pytorch-quantization on one tensor and prints the amax each',
    'chooses, the symmetric scale amax / (2^(B-1) - 1) and the SQNR that amax gives (estimated from the',
    'histogram: bin centres, clipped beyond amax, rounded inside). The histogram has 2048 bins of |x|; it is',
    'built on the GPU, growing by doubling its range when a batch exceeds it. Methods:',
    '  max          the largest |x|',
    '  ma-minmax    onnxruntime MinMaxCalibrater with moving average (constant 0.01) over the batches',
    '  percentile   the left edge of the bin where the CDF of |x| reaches --percentile (default 99.99)',
    '  mse          the bin centre minimising the quantization MSE of the histogram (bins 128..2047)',
    '  entropy      TensorRT EntropyCalibration2: the stop bin 128..2048 with the last minimal KL(P || Q)',
    '  all          every method (percentiles 99.9, 99.99, 99.999) in a table, with the best SQNR marked',
    'Any supported .npy dtype is converted to float32; NaN or Inf values are refused.',
  ].join('\n'),
  options: [
    { name: 'input', value: 'FILE', help: 'the .npy tensor (activations) to calibrate' },
    { name: 'method', value: 'M', help: `one of ${METHOD_CHOICES.join(', ')} (default all)` },
    { name: 'percentile', value: 'P', help: 'with --method percentile: the CDF percentage, in (0, 100] (default 99.99)' },
    { name: 'bits', value: 'B', help: 'integer bits of the symmetric quantizer, 2 to 8 (default 8)' },
    { name: 'batches', value: 'N', help: 'split the first axis into N batches, as calibration data arrives (default 1)' },
    { name: 'cpu', help: 'compute on the CPU reference instead of the GPU' },
    { name: 'json', help: 'print one JSON object on stdout' },
  ],
  epilogue: [
    'JSON fields: input, shape, values, batches, bits, method, amax, scale, sqnrDb (null when the error is 0),',
    'with --method all also best and methods [{method, amax, scale, sqnrDb}]; stats {absmax, movingMin,',
    'movingMax}, histogram {bins, range, nonzeroBins}, device (null on the CPU), seconds.',
    '',
    'Exit status: 0 done, 1 bad input data (unreadable or empty .npy, NaN/Inf values) or GPU failure,',
    '2 bad command line.',
    '',
    'Examples:',
    '  quantlab amax --input act.npy --method entropy',
    '  quantlab amax --input act.npy --method percentile --percentile 99.999 --json',
    '  quantlab amax --input act.npy --batches 16',
  ].join('\n'),
  run,
};
