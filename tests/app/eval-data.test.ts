/** The Evaluate page validates its form, finds the Pareto front of accuracy against size, orders the history and writes CSV that spreadsheets read back. */
import { describe, expect, test } from 'vitest';
import { defaultEvalForm, historyRows, paretoFront, parseEvalForm, rowsToCsv, LLAMA_METRICS, type EvalRun } from '../../src/app/components/eval/eval-data.ts';
import { MemoryHistory } from '../../src/app/engine/eval-history.ts';
import type { CalibModelInfo } from '../../src/app/components/calib/calib-data.ts';
import type { EvalRow } from '../../src/eval/types.ts';

const STORIES: CalibModelInfo = { kind: 'llama', maxSeqLen: 256, hasTokenizer: true };

function row(config: string, sizeBytes: number, perplexity: number, extra: Partial<EvalRow> = {}): EvalRow {
  return { config, method: config.split('-')[0], bitsPerWeight: 4, sizeBytes, metrics: { perplexity, kl: 0.1, top1: 0.9, tokens: 48 }, seconds: 1.5, notes: [], ...extra };
}

describe('form', () => {
  test('defaults and the plan it gives', () => {
    const f = defaultEvalForm(STORIES);
    expect(parseEvalForm(f, STORIES, 0)).toEqual({ ok: true, value: { configs: ['fp32', 'rtn-int8', 'rtn-int4-g32'], samples: 0, tokens: 512, context: 256, calibSamples: 4, calibSeqLen: 64, prompt: 'Once upon a time', genTokens: 32 } });
  });

  test('bad forms are refused with a message naming the field', () => {
    const f = defaultEvalForm(STORIES);
    const err = (p: object, info = STORIES, files = 0) => {
      const r = parseEvalForm({ ...f, ...p }, info, files);
      return r.ok ? '' : r.error;
    };
    expect(err({ extra: 'rtn-int9' })).toMatch(/rtn-int9/);
    expect(err({ presets: [], extra: '' })).toMatch(/at least one configuration/);
    expect(err({ context: '300' })).toMatch(/Context must be from 2 to 256/);
    expect(err({ tokens: 'x' })).toMatch(/Tokens to score/);
    expect(err({ source: 'text-files' })).toMatch(/Choose a text file/);
    expect(err({}, { kind: 'llama', maxSeqLen: 256, hasTokenizer: false })).toMatch(/tokenizer/);
    expect(err({ presets: ['awq-int4-g32'], calibSamples: '0' })).toMatch(/Calibration sequences/);
    // Without AWQ or SmoothQuant the calibration fields do not matter.
    expect(err({ calibSamples: '0' })).toBe('');
    // Duplicates and case are folded.
    const r = parseEvalForm({ ...f, extra: 'FP32, rtn-int3-g64' }, STORIES, 0);
    expect(r.ok && r.value.configs).toEqual(['fp32', 'rtn-int8', 'rtn-int4-g32', 'rtn-int3-g64']);
  });
});

test('ONNX models: their own presets, W8A8 labels, lines to evaluate, calibration only when needed', () => {
  const OCR: CalibModelInfo = { kind: 'onnx', ocrRecognizer: true, detectedPreset: 'ppocr-rec' };
  const f = defaultEvalForm(OCR);
  expect(f).toMatchObject({ presets: ['fp32', 'rtn-int8', 'rtn-w8a8'], samples: '32' });
  const r = parseEvalForm({ ...f, extra: 'rtn-w8a8-entropy' }, OCR, 0);
  expect(r.ok && r.value.configs).toEqual(['fp32', 'rtn-int8', 'rtn-w8a8', 'rtn-w8a8-entropy']);
  expect(r.ok && r.value.samples).toBe(32);
  expect(parseEvalForm({ ...f, extra: 'smoothquant-w8a8' }, OCR, 0)).toMatchObject({ ok: false, error: expect.stringMatching(/rtn-w8a8/) });
  expect(parseEvalForm({ ...f, samples: '0' }, OCR, 0)).toMatchObject({ ok: false, error: expect.stringMatching(/Evaluation lines/) });
  expect(parseEvalForm({ ...f, calibSamples: 'x' }, OCR, 0)).toMatchObject({ ok: false, error: expect.stringMatching(/Calibration/) });
  // Llama presets left in the draft are not sent for an ONNX model.
  const mixed = parseEvalForm({ ...f, presets: ['fp32', 'smoothquant-w8a8'] }, OCR, 0);
  expect(mixed.ok && mixed.value.configs).toEqual(['fp32']);
});

describe('Pareto front', () => {
  test('keeps the points no other point beats on both size and metric', () => {
    const pts = [
      { size: 60, value: 5.0 }, // fp32: best perplexity
      { size: 16, value: 5.1 }, // int8
      { size: 10, value: 5.6 }, // int4 g32
      { size: 12, value: 5.8 }, // dominated by int4 g32 (smaller and better)
      { size: 16, value: 5.1 }, // tie with int8: neither dominates
      { size: 8, value: NaN },
    ];
    expect(paretoFront(pts, 'lower')).toEqual([0, 1, 2, 4]);
    expect(paretoFront(pts.map((p) => ({ ...p, value: -p.value })), 'higher')).toEqual([0, 1, 2, 4]);
    expect(paretoFront([], 'lower')).toEqual([]);
  });
});

describe('history and CSV', () => {
  const old: EvalRun = { id: 'a', at: '2026-11-25T10:00:00.000Z', model: 'stories15M', modelKey: 'k', data: '48 tokens', rows: [row('fp32', 60, 5)], seconds: 3 };
  const recent: EvalRun = { id: 'b', at: '2026-11-25T11:00:00.000Z', model: 'stories15M', modelKey: 'k', data: '48 tokens, "quoted"', rows: [row('rtn-int4-g32', 10, 5.6, { generation: 'Once, there\nwas' })], seconds: 3 };

  test('newest run first', () => {
    expect(historyRows([old, recent]).map((r) => r.key)).toEqual(['b/rtn-int4-g32', 'a/fp32']);
  });

  test('CSV quotes commas, quotes and newlines, one line per row', () => {
    const csv = rowsToCsv(historyRows([old, recent]), LLAMA_METRICS);
    const lines = csv.split('\r\n');
    expect(lines[0]).toBe('model,config,method,size_bytes,bits_per_weight,perplexity,kl,top1,tokens,seconds,data,finished,generation');
    expect(lines[1]).toBe('stories15M,rtn-int4-g32,rtn,10,4,5.6,0.1,0.9,48,1.500,"48 tokens, ""quoted""",2026-11-25T11:00:00.000Z,"Once, there\nwas"');
    expect(lines[2]).toBe('stories15M,fp32,fp32,60,4,5,0.1,0.9,48,1.500,48 tokens,2026-11-25T10:00:00.000Z,');
    expect(csv.endsWith('\r\n')).toBe(true);
  });

  test('the in-memory history keeps copies and removes by id', async () => {
    const h = new MemoryHistory();
    await h.add(old);
    await h.add(recent);
    old.rows[0].config = 'changed';
    expect((await h.list()).map((r) => r.rows[0].config)).toEqual(['fp32', 'rtn-int4-g32']);
    await h.remove('a');
    expect((await h.list()).map((r) => r.id)).toEqual(['b']);
    await h.clear();
    expect(await h.list()).toEqual([]);
  });
});
