/** The AWQ & SmoothQuant page offers sensible defaults, refuses bad forms with a message, and its charts draw the numbers the run holds. */
import { describe, expect, test } from 'vitest';
import type { AwqBlockReport, AwqGroupReport } from '../../src/awq/awq-llama.ts';
import {
  awqGroupKey,
  awqGroupLabel,
  awqSettingsKey,
  awqTotals,
  defaultAwqForm,
  defaultSmoothForm,
  parseAwqForm,
  parseSmoothForm,
  percentChange,
  relativeLossGrid,
  relativeSweep,
  topScaleChannels,
} from '../../src/app/components/search/search-data.ts';
import type { CalibModelInfo } from '../../src/app/components/calib/calib-data.ts';
import type { GroupSweep } from '../../src/smooth/smoothquant.ts';

const STORIES: CalibModelInfo = { kind: 'llama', maxSeqLen: 256, hasTokenizer: true };
const BIG: CalibModelInfo = { kind: 'llama', maxSeqLen: 4096, hasTokenizer: true };
const NO_TOKENIZER: CalibModelInfo = { kind: 'llama', maxSeqLen: 64, hasTokenizer: false };

function group(block: number, kind: AwqGroupReport['kind'], losses: number[], rtnLoss: number): AwqGroupReport {
  const bestIndex = losses.indexOf(Math.min(...losses));
  return { block, kind, prev: '', linears: [], inspected: 'linear', ratios: losses.map((_, i) => i / losses.length), losses, bestIndex, bestRatio: bestIndex / losses.length, rtnLoss, scales: new Float32Array(), xMean: new Float32Array() };
}

function block(b: number, attn: [number, number], mlp: [number, number]): AwqBlockReport {
  return { block: b, rtnError: attn[0] + mlp[0], awqError: attn[1] + mlp[1], attention: { rtn: attn[0], awq: attn[1] }, mlp: { rtn: mlp[0], awq: mlp[1] }, linearRtnError: 0, linearAwqError: 0 };
}

describe('forms', () => {
  test('defaults: llm-awq 128 x 512 on long contexts, a short run on small models, generated text without a tokenizer', () => {
    expect(defaultAwqForm(BIG)).toMatchObject({ source: 'bundled-text', samples: '128', seqLen: '512', bits: 4, granularity: 'group', groupSize: '128', scheme: 'asym', duo: true, clip: true });
    expect(defaultAwqForm(STORIES)).toMatchObject({ samples: '4', seqLen: '64' });
    expect(defaultSmoothForm(NO_TOKENIZER)).toMatchObject({ source: 'generated', alpha: 'sweep', act: 'per-token', rows: '512', seqLen: '64' });
  });

  test('AWQ form: the quantizer and the data are validated, with a message', () => {
    const ok = parseAwqForm({ ...defaultAwqForm(STORIES), groupSize: '32' }, STORIES, 0);
    expect(ok).toEqual({ ok: true, value: { samples: 4, seqLen: 64, quant: expect.objectContaining({ bits: 4, granularity: 'group', groupSize: 32, scheme: 'asym' }) } });
    const bad = (patch: object, info = STORIES, files = 0) => {
      const r = parseAwqForm({ ...defaultAwqForm(info), ...patch }, info, files);
      return r.ok ? '' : r.error;
    };
    expect(bad({ groupSize: '0' })).toMatch(/Group size/);
    expect(bad({ groupSize: 'abc' })).toMatch(/Group size/);
    expect(bad({ seqLen: '300' })).toMatch(/capped at the model's context, 256/);
    expect(bad({ samples: '' })).toMatch(/whole number/);
    expect(bad({ source: 'text-files' })).toMatch(/Choose at least one file/);
    expect(bad({ source: 'bundled-text' }, NO_TOKENIZER)).toMatch(/tokenizer/);
    expect(bad({}, { kind: 'onnx' })).toMatch(/quantlab awq/);
    const channel = parseAwqForm({ ...defaultAwqForm(STORIES), granularity: 'channel', groupSize: 'ignored' }, STORIES, 0);
    expect(channel.ok && channel.value.quant.granularity).toBe('channel');
  });

  test('SmoothQuant form: a sweep or one alpha in [0, 1]; per-group needs the sweep', () => {
    const f = defaultSmoothForm(STORIES);
    expect(parseSmoothForm(f, STORIES, 0)).toEqual({ ok: true, value: { samples: 4, seqLen: 64, alpha: 'sweep', rows: 512 } });
    expect(parseSmoothForm({ ...f, alpha: '0.85' }, STORIES, 0)).toMatchObject({ ok: true, value: { alpha: 0.85 } });
    for (const alpha of ['1.5', '-0.1', '', 'x']) expect(parseSmoothForm({ ...f, alpha }, STORIES, 0)).toMatchObject({ ok: false, error: expect.stringMatching(/Alpha/) });
    expect(parseSmoothForm({ ...f, alpha: '0.5', perGroup: true }, STORIES, 0)).toMatchObject({ ok: false, error: expect.stringMatching(/sweep/) });
    expect(parseSmoothForm({ ...f, rows: '0' }, STORIES, 0)).toMatchObject({ ok: false, error: expect.stringMatching(/Rows/) });
  });

  test('the resume key changes with every setting that changes the result, and not with the files of another source', () => {
    const f = defaultAwqForm(STORIES);
    const k = awqSettingsKey('m', f, ['a.txt']);
    expect(awqSettingsKey('m', f, ['b.txt'])).toBe(k);
    for (const patch of [{ bits: 3 }, { groupSize: '64' }, { scheme: 'sym' as const }, { duo: false }, { clip: false }, { samples: '5' }, { seqLen: '32' }, { source: 'generated' as const }]) {
      expect(awqSettingsKey('m', { ...f, ...patch }, ['a.txt']), JSON.stringify(patch)).not.toBe(k);
    }
    expect(awqSettingsKey('other', f, [])).not.toBe(k);
    const files = { ...f, source: 'text-files' as const };
    expect(awqSettingsKey('m', files, ['a.txt'])).not.toBe(awqSettingsKey('m', files, ['b.txt']));
  });
});

describe('chart data', () => {
  test('relative loss grid: loss / RTN per ratio, the chosen index per row, labels per group', () => {
    const g = [group(0, 'qkv', [2, 1, 3, 4], 2), group(0, 'up_down', [1, 1, 0.5, 2], 0)];
    const grid = relativeLossGrid(g);
    expect(grid.ratios).toEqual([0, 0.25, 0.5, 0.75]);
    expect(grid.z[0]).toEqual([1, 0.5, 1.5, 2]);
    expect(grid.z[1]).toEqual([null, null, null, null]);
    expect(grid.best).toEqual([1, 2]);
    expect(grid.labels).toEqual([awqGroupLabel(g[0]), awqGroupLabel(g[1])]);
    expect(awqGroupLabel(g[0])).toBe('block 0 · norm → q, k, v');
    expect(awqGroupKey(g[1])).toBe('0:up_down');
  });

  test('block totals and the count of blocks where AWQ is lower', () => {
    const t = awqTotals([block(0, [4, 2], [4, 2]), block(1, [1, 2], [1, 1])]);
    expect(t).toMatchObject({ rtn: 10, awq: 7, blocksBetter: 1 });
    expect(t.lowerPercent).toBeCloseTo(30, 10);
    expect(awqTotals([]).lowerPercent).toBe(0);
    expect(percentChange(4, 3)).toBe(-25);
  });

  test('the largest scales, ties by channel', () => {
    expect(topScaleChannels(Float32Array.from([1, 5, 2, 5, 0.5]), 3)).toEqual([1, 3, 2]);
  });

  test('the alpha sweep relative to the unsmoothed error', () => {
    const d = { max: 1, median: 1, spread: 1 };
    const sw: GroupSweep = {
      group: 'layers.0.attention_norm',
      linears: [],
      points: [0, 0.5, 1].map((alpha, i) => ({ alpha, activation: d, weight: d, layers: [], mse: [4, 2, 6][i] })),
      baseline: { activation: d, weight: d, layers: [], mse: 4 },
      bestAlpha: 0.5,
    };
    expect(relativeSweep([sw])).toEqual([{ group: sw.group, alphas: [0, 0.5, 1], rel: [1, 0.5, 1.5], best: 0.5 }]);
  });
});
