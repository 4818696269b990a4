/** Configuration labels of `quantlab eval --configs` parse into the quantizer they name, and bad ones are refused with a message naming the label and the problem. */
import { describe, expect, test } from 'vitest';
import { DEFAULT_EVAL_CONFIGS, parseEvalConfig, parseEvalConfigs } from '../../src/eval/configs.ts';
import { EvalError } from '../../src/eval/types.ts';
import { quantizedLinearBytes } from '../../src/eval/llama-eval.ts';

describe('valid labels', () => {
  test('the default list', () => {
    const cs = parseEvalConfigs(DEFAULT_EVAL_CONFIGS);
    expect(cs.map((c) => c.method)).toEqual(['fp32', 'fp16', 'rtn', 'rtn', 'rtn', 'rtn', 'awq', 'smoothquant']);
    expect(cs[2].quant).toMatchObject({ bits: 8, granularity: 'channel', scheme: 'asym' });
    expect(cs[3].quant).toMatchObject({ bits: 4, granularity: 'group', groupSize: 32, scheme: 'asym' });
    expect(cs[5].quant).toMatchObject({ groupSize: 128 });
    expect(cs[6].quant).toMatchObject({ bits: 4, granularity: 'group', groupSize: 32, scheme: 'asym' });
    expect(cs[7]).toMatchObject({ alpha: 0.5, quant: { bits: 8, granularity: 'channel', scheme: 'sym' }, act: { bits: 8, granularity: 'per-token' } });
  });

  test('user-defined forms', () => {
    expect(parseEvalConfig('rtn-int3-g64-sym').quant).toEqual({ bits: 3, granularity: 'group', groupSize: 64, scheme: 'sym', format: 'int', clipRatio: 1 });
    expect(parseEvalConfig('rtn-int8-pc').quant).toMatchObject({ bits: 8, granularity: 'channel', groupSize: 0 });
    expect(parseEvalConfig('rtn-int8-pt-sym').quant).toMatchObject({ granularity: 'tensor', scheme: 'sym' });
    expect(parseEvalConfig('rtn-fp8').quant).toMatchObject({ format: 'fp8-e4m3', bits: 8, scheme: 'sym', granularity: 'channel' });
    expect(parseEvalConfig('awq-int4-g128').quant).toMatchObject({ bits: 4, groupSize: 128 });
    expect(parseEvalConfig('awq-int3').quant).toMatchObject({ bits: 3, granularity: 'group', groupSize: 128 });
    expect(parseEvalConfig('smoothquant-w8a8-a0.65')).toMatchObject({ alpha: 0.65, act: { granularity: 'per-token' } });
    expect(parseEvalConfig('smoothquant-w8a8-a1-pt')).toMatchObject({ alpha: 1, act: { granularity: 'per-tensor' } });
    expect(parseEvalConfig(' RTN-INT4-G32 ').label).toBe('rtn-int4-g32');
  });

  test('bits per weight count fp16 scales and b-bit zero points (the whole-model RTN convention)', () => {
    const bpw = (label: string, shape: number[]) => (8 * quantizedLinearBytes(parseEvalConfig(label).quant!, shape)) / (shape[0] * shape[1]);
    expect(bpw('rtn-int4-g32', [64, 256])).toBe(4 + 16 / 32 + 4 / 32);
    expect(bpw('rtn-int4-g32-sym', [64, 256])).toBe(4.5);
    expect(bpw('rtn-int8-pc-sym', [64, 256])).toBe(8 + 16 / 256);
    expect(bpw('rtn-int4-g128', [64, 256])).toBe(4 + 16 / 128 + 4 / 128);
  });
});

describe('bad labels', () => {
  const bad: [string, RegExp][] = [
    ['rtn-int4-g0', /'rtn-int4-g0': group size must be a positive integer/],
    ['rtn-int4-g', /group size must be a positive integer/],
    ['awq-int9', /'awq-int9': bits must be an integer from 2 to 8, got 9/],
    ['rtn-int1', /bits must be an integer from 2 to 8/],
    ['rtn-int4-g32-pc', /two granularities/],
    ['rtn-int4-foo', /unknown word 'foo'/],
    ['gptq-int4', /unknown method 'gptq'/],
    ['rtn', /expected int<bits>/],
    ['fp32-g32', /fp32 takes no options/],
    ['awq-int4-pt', /unknown word 'pt'/],
    ['rtn-fp8-asym', /FP8 is symmetric only/],
    ['smoothquant-w4a8', /w8a8/],
    ['smoothquant-w8a8-a1.5', /alpha must be in \[0, 1\]/],
    ['smoothquant-w8a8-ax', /alpha must be a number/],
  ];
  for (const [label, msg] of bad) {
    test(label, () => {
      expect(() => parseEvalConfig(label)).toThrow(EvalError);
      expect(() => parseEvalConfig(label)).toThrow(msg);
    });
  }

  test('lists: empty entries and duplicates', () => {
    expect(() => parseEvalConfigs('')).toThrow(/no configs/);
    expect(() => parseEvalConfigs('fp32,,fp16')).toThrow(/empty config name/);
    expect(() => parseEvalConfigs('fp32,rtn-int8,FP32')).toThrow(/'fp32' is given twice/);
  });
});
