/** `quantlab inspect` describes the bundled stories15M (config, linear layers, norm -> linear groups, Jetson memory), `quantlab generate` tells its story on the GPU with and without INT4 weights, and bad arguments get clear errors. */
import { describe, expect, test } from 'vitest';
import { main } from '../../src/cli/main.ts';

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t) });
  return { code, stdout, stderr };
}

describe('quantlab inspect', () => {
  test('stories15M: config, 42 linear layers, 24 groups, memory rows', async () => {
    const r = await cli(['inspect', 'stories15M', '--json']);
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout);
    expect(d.config).toMatchObject({ dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKvHeads: 6, vocabSize: 32000, seqLen: 256 });
    expect(d.layers).toHaveLength(42);
    expect(d.linearParams).toBe(6 * (4 * 288 * 288 + 3 * 288 * 768));
    expect(d.totalParams).toBe(d.linearParams + 32000 * 288 + 6 * 2 * 288 + 288);
    expect(d.groups).toHaveLength(24);
    expect(d.groups[0]).toEqual({ prev: 'layers.0.attention_norm', linears: ['layers.0.wq', 'layers.0.wk', 'layers.0.wv'] });
    expect(d.memory.map((m: { weights: string }) => m.weights)).toEqual(['FP16', 'INT8', 'INT4']);
    expect(d.memory[0].totalBytes).toBeGreaterThan(d.memory[2].totalBytes);
  });
  test('missing or unreadable models are clear errors', async () => {
    expect((await cli(['inspect'])).stderr).toMatch(/missing MODEL/);
    const r = await cli(['inspect', '/nonexistent/model.gguf']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no such file: \/nonexistent\/model.gguf/);
  });
});

describe('quantlab generate', () => {
  test('greedy stories15M on the GPU, FP32 and with INT8 per-channel weights', { timeout: 300_000 }, async () => {
    for (const extra of [[], ['--quant', 'int8-channel-sym']]) {
      const r = await cli(['generate', 'stories15M', '--prompt', 'Once upon a time', '--tokens', '10', '--json', ...extra]);
      expect(r.code).toBe(0);
      const d = JSON.parse(r.stdout);
      expect(d.promptTokens).toEqual([1, 9038, 2501, 263, 931]);
      expect(d.text).toBe('Once upon a time, there was a little girl named Lily.');
    }
  });
  test('a malformed --quant is a usage error before any model work', async () => {
    const r = await cli(['generate', 'stories15M', '--prompt', 'x', '--quant', 'int9-g32']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--quant/);
  });
});
