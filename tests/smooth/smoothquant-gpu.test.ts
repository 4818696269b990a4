/**
 * The GPU W8A8 evaluation (smooth-scale-columns.wgsl, the quantizer kernels, linear.wgsl, error-metrics.wgsl)
 * gives the CPU reference's output error for per-token and per-tensor activations, with and without
 * smoothing, including sizes that are not multiples of the 64x64 matmul tile.
 */
import { describe, expect, test } from 'vitest';
import { SmoothQuantKernels } from '../../src/smooth/smoothquant-gpu.ts';
import { groupErrorRef, smoothedActAmax, smoothingFactors, weightColumnAbsmax } from '../../src/smooth/smoothquant.ts';
import { gpuContext } from '../helpers/gpu.ts';
import { syntheticGroup } from './synthetic.ts';

describe('GPU vs CPU', () => {
  test('per-token and per-tensor, s = 1 and alpha 0.5: same MSE and SQNR', async () => {
    const k = new SmoothQuantKernels(await gpuContext());
    const g = syntheticGroup(21); // 48 rows x 32 channels, linears of 24 and 16 outputs
    const gpu = await k.uploadGroup(g);
    try {
      const w = weightColumnAbsmax(g.linears, g.channels);
      for (const s of [new Float32Array(g.channels).fill(1), smoothingFactors(g.actAbsmax, w, 0.5)]) {
        for (const act of ['per-token', 'per-tensor'] as const) {
          const opts = { act, actAmax: act === 'per-tensor' ? smoothedActAmax(g.actAbsmax, s) : undefined };
          const cpu = groupErrorRef(g, s, opts);
          const got = await k.groupError(gpu, s, opts);
          expect(got.map((l) => l.name)).toEqual(['q', 'k']);
          got.forEach((l, i) => {
            expect(Math.abs(l.mse - cpu[i].mse) / cpu[i].mse, `${act} ${l.name}`).toBeLessThan(1e-3);
            expect(Math.abs(l.sqnr - cpu[i].sqnr)).toBeLessThan(0.01);
          });
        }
      }
      // Per-tensor without a calibration amax: the absmax of the smoothed rows, on both sides.
      const ones = new Float32Array(g.channels).fill(1);
      const a = groupErrorRef(g, ones, { act: 'per-tensor' });
      const b = await k.groupError(gpu, ones, { act: 'per-tensor' });
      expect(Math.abs(b[0].mse - a[0].mse) / a[0].mse).toBeLessThan(1e-3);
    } finally {
      k.releaseGroup(gpu);
      k.dispose();
    }
  }, 120_000);
});
