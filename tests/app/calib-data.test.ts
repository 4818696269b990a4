/** The Calibrate page shows the right defaults, rejects bad forms, and its table, outlier list and charts draw the numbers the run holds. */
import { describe, expect, test } from 'vitest';
import {
  amaxMarkers,
  bestCounts,
  calibModelInfo,
  calibRows,
  clipRoundSeries,
  defaultCalibForm,
  describeOutlier,
  histogramBars,
  histogramTotal,
  nextSort,
  parseCalibForm,
  progressText,
  safeFileStem,
  snapshotGrid,
  sortCalibRows,
  sourceOptions,
  topOutlierChannels,
  type CalibFormDraft,
  type CalibModelInfo,
} from '../../src/app/components/calib/calib-data.ts';
import { CALIB_METHODS, type CalibMethod, type CalibrationResult } from '../../src/calib/types.ts';
import type { ModelDescription } from '../../src/model/workspace.ts';

const STORIES: CalibModelInfo = { kind: 'llama', maxSeqLen: 256, hasTokenizer: true };
const BIG_LLM: CalibModelInfo = { kind: 'llama', maxSeqLen: 4096, hasTokenizer: true };

function perMethod(f: (m: CalibMethod, i: number) => number): Record<CalibMethod, number> {
  return Object.fromEntries(CALIB_METHODS.map((m, i) => [m, f(m, i)])) as Record<CalibMethod, number>;
}

function tensor(name: string, best: CalibMethod, opts: { sqnr?: Partial<Record<CalibMethod, number>>; min?: number; max?: number; channels?: number } = {}): CalibrationResult['tensors'][number] {
  return {
    name,
    layers: [`${name}.reader`],
    bits: 8,
    amax: perMethod((_, i) => i + 1),
    sqnrDb: { ...perMethod(() => 30), ...opts.sqnr },
    best,
    channels: opts.channels ?? 4,
    tokens: 10,
    nonFinite: 0,
    min: opts.min ?? -1,
    max: opts.max ?? 1,
    histogram: { bins: 2048, range: 1, percentiles: {}, nonzeroBins: 1 },
    topChannels: [],
  };
}

function result(tensors: CalibrationResult['tensors']): CalibrationResult {
  return { format: 'quantlab-calibration', version: 1, model: 'm', bits: 8, method: 'entropy', data: { source: 'x', samples: 1, tokens: 10 }, seconds: 1, tensors };
}

describe('form defaults follow the model', () => {
  test('stories15M (context 256): 16 sequences of the full context, bundled text, INT8, entropy', () => {
    expect(defaultCalibForm(STORIES)).toEqual({ source: 'bundled-text', samples: '16', seqLen: '256', bits: 8, method: 'entropy' });
  });
  test('a model with a long context: 128 x 512', () => {
    expect(defaultCalibForm(BIG_LLM)).toMatchObject({ samples: '128', seqLen: '512' });
    expect(defaultCalibForm({ kind: 'llama', maxSeqLen: 512, hasTokenizer: true })).toMatchObject({ samples: '128', seqLen: '512' });
  });
  test('no tokenizer: the text sources are offered but off, generation is the default', () => {
    const info: CalibModelInfo = { kind: 'llama', maxSeqLen: 256, hasTokenizer: false };
    expect(defaultCalibForm(info).source).toBe('generated');
    expect(sourceOptions(info).filter((o) => o.disabled).map((o) => o.value)).toEqual(['bundled-text', 'text-files']);
  });
  test('vision models get photos; an OCR recogniser gets rendered lines', () => {
    expect(defaultCalibForm({ kind: 'onnx' }).source).toBe('bundled-images');
    expect(sourceOptions({ kind: 'onnx' }).map((o) => o.value)).toEqual(['bundled-images', 'image-files']);
    expect(defaultCalibForm({ kind: 'onnx', ocrRecognizer: true }).source).toBe('rendered-lines');
  });
  test('the recogniser is recognised by its input [N, 3, 48, W]', () => {
    const onnx = (shape: (number | string)[]) => ({ kind: 'onnx', onnx: { inputs: [{ name: 'x', shape }] } }) as unknown as ModelDescription;
    expect(calibModelInfo(onnx(['N', 3, 48, 'W'])).ocrRecognizer).toBe(true);
    expect(calibModelInfo(onnx(['N', 3, 48, 'W'])).detectedPreset).toBe('ppocr-rec');
    expect(calibModelInfo(onnx(['N', 3, 'H', 'W'])).ocrRecognizer).toBe(false);
    expect(calibModelInfo(onnx(['N', 3, 'H', 'W'])).detectedPreset).toBe('ppocr-det');
    expect(calibModelInfo(onnx([1, 3, 224, 224])).detectedPreset).toBe('imagenet');
    expect(calibModelInfo(onnx([1, 10])).detectedPreset).toBeUndefined();
    const llama = { kind: 'llama', llama: { config: { seqLen: 256 }, canGenerate: true } } as unknown as ModelDescription;
    expect(calibModelInfo(llama)).toEqual(STORIES);
  });
});

describe('form validation', () => {
  const ok: CalibFormDraft = { source: 'bundled-text', samples: '16', seqLen: '256', bits: 8, method: 'entropy' };
  test('a good form becomes request numbers', () => {
    expect(parseCalibForm(ok, STORIES, 0)).toEqual({ ok: true, value: { samples: 16, seqLen: 256 } });
    expect(parseCalibForm({ ...ok, source: 'bundled-images', seqLen: '' }, { kind: 'onnx', detectedPreset: 'imagenet' }, 0)).toEqual({ ok: true, value: { samples: 16 } });
    // An input the lab does not recognise needs a preprocessing chosen by the user.
    const unknown = parseCalibForm({ ...ok, source: 'bundled-images', seqLen: '' }, { kind: 'onnx' }, 0);
    expect(unknown.ok).toBe(false);
    if (!unknown.ok) expect(unknown.error).toMatch(/choose the preprocessing/);
    expect(parseCalibForm({ ...ok, source: 'bundled-images', seqLen: '', preset: 'ppocr-det' }, { kind: 'onnx' }, 0)).toEqual({ ok: true, value: { samples: 16 } });
  });
  test('the sequence length is capped at the model context', () => {
    const r = parseCalibForm({ ...ok, seqLen: '512' }, STORIES, 0);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(/256/);
  });
  test.each([
    ['samples zero', { samples: '0' }],
    ['samples not a number', { samples: 'ten' }],
    ['samples fractional', { samples: '1.5' }],
    ['sequence length 1', { seqLen: '1' }],
    ['bits 3', { bits: 3 }],
    ['files source without files', { source: 'text-files' }],
    ['a vision source on a language model', { source: 'bundled-images' }],
  ] as [string, Partial<CalibFormDraft>][])('%s is refused', (_, patch) => {
    expect(parseCalibForm({ ...ok, ...patch }, STORIES, 0).ok).toBe(false);
  });
  test('text files with files chosen pass', () => {
    expect(parseCalibForm({ ...ok, source: 'text-files' }, STORIES, 2).ok).toBe(true);
  });
  test('a disabled source is refused with its reason', () => {
    const r = parseCalibForm(ok, { ...STORIES, hasTokenizer: false }, 0);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(/tokenizer/);
  });
});

describe('the per-tensor table', () => {
  const tensors = [
    tensor('b', 'mse', { sqnr: { mse: 40 }, min: -3, max: 2, channels: 8 }),
    tensor('a', 'entropy', { sqnr: { mse: Infinity } }),
    tensor('c', 'mse', { sqnr: { mse: NaN }, channels: 2 }),
    tensor('d', 'max', { sqnr: { mse: 40 } }),
  ];
  const rows = calibRows(result(tensors), [{ name: 'a', absmax: 7 }]);

  test('absmax comes from the summary, else max(|min|, |max|)', () => {
    expect(rows.map((r) => r.absmax)).toEqual([3, 7, 1, 1]);
    expect(rows.map((r) => r.order)).toEqual([0, 1, 2, 3]);
  });
  test('SQNR sorts with +Inf best, NaN worst, ties in graph order', () => {
    expect(sortCalibRows(rows, { key: 'sqnr:mse', dir: -1 }).map((r) => r.name)).toEqual(['a', 'b', 'd', 'c']);
    expect(sortCalibRows(rows, { key: 'sqnr:mse', dir: 1 }).map((r) => r.name)).toEqual(['c', 'b', 'd', 'a']);
  });
  test('text and number columns', () => {
    expect(sortCalibRows(rows, { key: 'name', dir: 1 }).map((r) => r.name)).toEqual(['a', 'b', 'c', 'd']);
    expect(sortCalibRows(rows, { key: 'channels', dir: -1 }).map((r) => r.name)).toEqual(['b', 'a', 'd', 'c']);
    expect(sortCalibRows(rows, { key: 'absmax', dir: -1 }).map((r) => r.name)).toEqual(['a', 'b', 'c', 'd']);
  });
  test('sorting does not reorder the input', () => {
    sortCalibRows(rows, { key: 'name', dir: -1 });
    expect(rows.map((r) => r.name)).toEqual(['b', 'a', 'c', 'd']);
  });
  test('clicking the same column flips it; a new number column starts descending', () => {
    expect(nextSort({ key: 'order', dir: 1 }, 'order')).toEqual({ key: 'order', dir: -1 });
    expect(nextSort({ key: 'order', dir: 1 }, 'sqnr:entropy')).toEqual({ key: 'sqnr:entropy', dir: -1 });
    expect(nextSort({ key: 'absmax', dir: -1 }, 'name')).toEqual({ key: 'name', dir: 1 });
  });
  test('wins per method, most first', () => {
    expect(bestCounts(tensors, CALIB_METHODS)).toEqual([
      { method: 'mse', count: 2 },
      { method: 'max', count: 1 },
      { method: 'entropy', count: 1 },
    ]);
    expect(bestCounts([], CALIB_METHODS)).toEqual([]);
  });
});

describe('outlier channels', () => {
  test('largest first, with the ratio to the median channel', () => {
    // Sorted: 0.5 1 1 2 2 3 20 40 -> median (2 + 2) / 2 = 2.
    const v = Float32Array.from([1, 40, 2, 0.5, 20, 2, 3, 1]);
    const top = topOutlierChannels(v, 3);
    expect(top.map((t) => t.channel)).toEqual([1, 4, 6]);
    expect(top.map((t) => t.ratio)).toEqual([20, 10, 1.5]);
    expect(describeOutlier(top[0])).toBe('ch 1: 40 (20.0x median)');
  });
  test('odd count median, ties by channel, k larger than the tensor', () => {
    const v = Float32Array.from([3, 9, 9]);
    expect(topOutlierChannels(v, 10)).toEqual([
      { channel: 1, absmax: 9, ratio: 1 },
      { channel: 2, absmax: 9, ratio: 1 },
      { channel: 0, absmax: 3, ratio: 1 / 3 },
    ]);
  });
  test('a zero median gives an infinite ratio, written as ∞', () => {
    const top = topOutlierChannels(Float32Array.from([0, 0, 0, 23.4]), 1);
    expect(top[0].ratio).toBe(Infinity);
    expect(describeOutlier(top[0])).toBe('ch 3: 23.4 (∞x median)');
    expect(describeOutlier({ channel: 17, absmax: 23.4123, ratio: 12.14 })).toBe('ch 17: 23.4 (12.1x median)');
  });
});

describe('chart data', () => {
  test('histogram bars sit at bin centres', () => {
    const b = histogramBars({ counts: Uint32Array.from([5, 0, 2, 1]), range: 2 });
    expect(b.width).toBe(0.5);
    expect(b.x).toEqual([0.25, 0.75, 1.25, 1.75]);
    expect(b.y).toEqual([5, 0, 2, 1]);
    expect(histogramTotal(Uint32Array.from([5, 0, 2, 1]))).toBe(8);
  });
  test('one marker per finite amax, smallest first, each with its own colour', () => {
    const amax = perMethod((_, i) => 10 - i);
    amax.mse = NaN;
    const m = amaxMarkers(amax, CALIB_METHODS);
    expect(m.map((x) => x.method)).toEqual(['entropy', 'percentile-99.999', 'percentile-99.99', 'percentile-99.9', 'ma-minmax', 'max']);
    expect(m.map((x) => x.amax)).toEqual([5, 6, 7, 8, 9, 10]);
    expect(new Set(amaxMarkers(perMethod(() => 1), CALIB_METHODS).map((x) => x.color)).size).toBe(CALIB_METHODS.length);
  });
  test('the snapshot grid keeps every value, or the max of each run of channels', () => {
    // 3 tokens x 5 channels.
    const data = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 9, 0, 0, 1]);
    const full = snapshotGrid({ tokens: 3, data }, 5, 100);
    expect(full.stride).toBe(1);
    expect(full.z).toEqual([
      [1, 2, 3, 4, 5],
      [6, 7, 8, 9, 10],
      [0, 9, 0, 0, 1],
    ]);
    const pooled = snapshotGrid({ tokens: 3, data }, 5, 2);
    expect(pooled.stride).toBe(3);
    expect(pooled.x).toEqual([0, 3]);
    expect(pooled.y).toEqual([0, 1, 2]);
    expect(pooled.z).toEqual([
      [3, 5],
      [8, 10],
      [9, 1],
    ]);
  });
  test('a snapshot shorter than it claims draws only its full rows', () => {
    expect(snapshotGrid({ tokens: 4, data: new Float32Array(7) }, 3, 10).y).toEqual([0, 1]);
  });
  test('clip / round sums become mean errors per value', () => {
    const s = clipRoundSeries(
      [
        { amax: 1, clipSse: 8, roundSse: 2 },
        { amax: 2, clipSse: 0, roundSse: 4 },
      ],
      4,
    );
    expect(s).toEqual({ amax: [1, 2], clip: [2, 0], round: [0.5, 1], total: [2.5, 1] });
  });
});

test('file names and progress text', () => {
  expect(safeFileStem('PP-OCRv4 recognition')).toBe('PP-OCRv4_recognition');
  expect(safeFileStem('///')).toBe('model');
  expect(progressText({ phase: 'capture', done: 250, total: 1000, label: 'capturing batch 2 of 8' })).toBe('Capturing activations — capturing batch 2 of 8 · 25%');
  expect(progressText({ phase: 'data', done: 0, total: 0, label: '' })).toBe('Preparing data');
  expect(progressText(undefined)).toBe('Starting');
});
