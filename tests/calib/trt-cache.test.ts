/** TensorRT calibration cache: header, one line per tensor with the float32 bits of amax/127 in hex, read back as ORT does. */
import { describe, expect, test } from 'vitest';
import { float32Hex, hexFloat32, parseTrtCalibrationCache, trtCalibrationCache } from '../../src/calib/trt-cache.ts';
import type { CalibrationResult } from '../../src/calib/types.ts';

function result(amax: Record<string, number>): CalibrationResult {
  const tensors = Object.entries(amax).map(([name, a]) => ({
    name, layers: [name], bits: 8,
    amax: { max: a * 2, 'ma-minmax': a, 'percentile-99.9': a, 'percentile-99.99': a, 'percentile-99.999': a, entropy: a, mse: a * 0.9 },
    sqnrDb: { max: 0, 'ma-minmax': 0, 'percentile-99.9': 0, 'percentile-99.99': 0, 'percentile-99.999': 0, entropy: 0, mse: 0 },
    best: 'entropy' as const, channels: 1, tokens: 1, nonFinite: 0, min: 0, max: a,
    histogram: { bins: 2048, range: a, percentiles: {}, nonzeroBins: 1 }, topChannels: [],
  }));
  return { format: 'quantlab-calibration', version: 1, model: 'm', bits: 8, method: 'entropy', data: { source: 's', samples: 1, tokens: 1 }, seconds: 0, tensors };
}

describe('TensorRT calibration cache', () => {
  test('hex is the IEEE-754 bit pattern, lower case, no leading zeros', () => {
    // 1.0f = 0x3f800000; 2^-126 (smallest normal) = 0x00800000 -> "800000".
    expect(float32Hex(1)).toBe('3f800000');
    expect(float32Hex(2 ** -126)).toBe('800000');
    expect(float32Hex(0)).toBe('0');
    expect(hexFloat32('3f800000')).toBe(1);
    expect(() => hexFloat32('0x3f80')).toThrow(/hex/);
  });

  test('writes the chosen method, reads back to amax within float32 rounding', () => {
    const amax = { input: 2.5, 'conv1.out': 0.0123, 'layer/with:colon': 300 };
    const text = trtCalibrationCache(result(amax), { version: '8601' });
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toBe('TRT-8601-EntropyCalibration2');
    expect(lines).toHaveLength(4);
    expect(lines[1]).toMatch(/^input: [0-9a-f]+$/);
    // Independent decoding: parse the hex into a DataView.
    const dv = new DataView(new ArrayBuffer(4));
    dv.setUint32(0, parseInt(lines[1].split(': ')[1], 16));
    expect(dv.getFloat32(0) * 127).toBeCloseTo(2.5, 5);
    const back = parseTrtCalibrationCache(text);
    for (const [k, v] of Object.entries(amax)) expect(Math.abs(back.amax.get(k)! - v) / v).toBeLessThan(1e-6);
    const r = result(amax);
    r.method = 'mse';
    expect(parseTrtCalibrationCache(trtCalibrationCache(r)).amax.get('input')).toBeCloseTo(2.25, 5);
  });

  test('bad inputs are refused by name', () => {
    expect(() => trtCalibrationCache(result({ a: 1 }), { kind: 'llama' })).toThrow(/ONNX/);
    expect(() => trtCalibrationCache(result({ a: NaN }))).toThrow(/tensor a/);
    expect(() => trtCalibrationCache(result({ a: 1 }), { version: 'x8' })).toThrow(/version/);
    const dup = result({ a: 1 });
    dup.tensors.push(dup.tensors[0]);
    expect(() => trtCalibrationCache(dup)).toThrow(/twice/);
    expect(() => parseTrtCalibrationCache('hello\n')).toThrow(/first line/);
  });
});
