// The model workflow on the bundled stories15M: pick it, see its layers and Jetson memory, quantize it to INT4 g32
// on the GPU, check the per-layer table against the CPU reference, sort it, and generate text with the quantized weights.
import { readFileSync } from 'node:fs';
import { expect, test } from 'playwright/test';
import { bytesByteSource } from '../src/model/formats/byte-source.ts';
import { BUNDLED_STORIES15M_PATH, openBundledStories15M } from '../src/model/formats/llama2c.ts';
import { makeGroupLayout } from '../src/quant/layout.ts';
import { errorMetricsRef } from '../src/quant/reference/metrics.ts';
import { fakeQuantizeRef, qparamsRef } from '../src/quant/reference/quantize.ts';
import { groupStatsRef } from '../src/quant/reference/stats.ts';
import { validateQuantConfig } from '../src/quant/config.ts';

const LONG = 240_000;

test('stories15M: open, quantize INT4 g32, read the layer table, generate with the quantized weights', async ({ page }) => {
  test.setTimeout(600_000);
  await page.goto('/');
  // The lab opens on the model picker.
  await expect(page).toHaveURL(/#\/model$/);
  await expect(page.getByTestId('bundled-ppocr-det')).toBeVisible();
  await expect(page.getByTestId('bundled-ppocr-rec')).toBeVisible();
  await page.getByTestId('open-stories15M').click();
  const summary = page.getByTestId('model-summary');
  await expect(summary).toHaveAttribute('data-name', 'stories15M', { timeout: LONG });
  // 42 linear layers plus the (tied) embedding.
  await expect(page.getByTestId('model-layer-count')).toHaveText('43');
  await expect(page.getByTestId('model-params')).toHaveText('15,191,712');
  await expect(page.getByTestId('memory-estimate-row')).toHaveCount(3);

  await page.getByTestId('go-quantize').click();
  await expect(page.getByTestId('page-quantize')).toBeVisible();
  await expect(page.getByTestId('device-status')).toHaveAttribute('data-status', 'ready', { timeout: LONG });
  await page.getByTestId('mq-group-32').click();
  await expect(page.getByTestId('mq-run')).toHaveText('Quantize INT4 g32 asym');
  await page.getByTestId('mq-run').click();
  await expect(page.getByTestId('quant-status')).toHaveAttribute('data-state', 'done', { timeout: LONG });

  const rows = page.getByTestId('layer-row');
  await expect(rows).toHaveCount(43);
  await expect(page.getByTestId('q-layer-count')).toHaveAttribute('data-value', '42');
  await expect(page.getByTestId('error-heatmap')).toBeVisible();
  await expect(page.getByTestId('error-heatmap-plot').locator('.main-svg').first()).toBeVisible();
  // The embedding is kept at FP16 by default.
  const emb = page.locator('[data-testid="layer-row"][data-name="tok_embeddings"]');
  await expect(emb.getByTestId('layer-include')).not.toBeChecked();
  await expect(emb.getByTestId('layer-result-bits')).toHaveText(' → 16');

  // One layer's numbers against the CPU reference on the same weights.
  const bytes = new Uint8Array(readFileSync(BUNDLED_STORIES15M_PATH));
  const ckpt = await openBundledStories15M(bytesByteSource(bytes, 'llama2.data'));
  const cfg = validateQuantConfig({ bits: 4, granularity: 'group', groupSize: 32, scheme: 'asym' });
  for (const name of ['layers.0.wq', 'layers.5.w2']) {
    const w = await ckpt.loadTensor(name);
    const info = ckpt.tensors.find((t) => t.name === name)!;
    const layout = makeGroupLayout(info.shape, 'group', 32);
    const ref = errorMetricsRef(w, fakeQuantizeRef(w, layout, qparamsRef(groupStatsRef(w, layout), cfg), cfg));
    const row = page.locator(`[data-testid="layer-row"][data-name="${name}"]`);
    const mse = Number(await row.getByTestId('layer-mse').getAttribute('data-value'));
    const sqnr = Number(await row.getByTestId('layer-sqnr').getAttribute('data-value'));
    expect(Math.abs(mse - ref.mse) / ref.mse).toBeLessThan(1e-4);
    expect(Math.abs(sqnr - ref.sqnr)).toBeLessThan(1e-3);
    // Packed 4-bit codes + an fp16 scale and a 4-bit zero point per group of 32.
    const n = w.length;
    expect(Number(await row.getByTestId('layer-bytes').getAttribute('data-value'))).toBe(n / 2 + (n / 32) * 2 + n / 32 / 2);
  }

  // Sorting by SQNR, ascending: the first row is the layer with the lowest SQNR.
  await page.getByTestId('sort-sqnr').click();
  await page.getByTestId('sort-sqnr').click();
  await expect(page.getByTestId('layer-table')).toHaveAttribute('data-sort', 'sqnr:1');
  const sqnrs = (await page.getByTestId('layer-sqnr').evaluateAll((els) => els.map((e) => e.getAttribute('data-value')))).filter((v) => v !== null && v !== 'Infinity').map(Number);
  expect(sqnrs.length).toBe(42);
  for (let i = 1; i < sqnrs.length; i++) expect(sqnrs[i]).toBeGreaterThanOrEqual(sqnrs[i - 1]);

  // Generation from the quantized weights continues the known story.
  await page.getByTestId('gen-tokens').fill('12');
  await page.getByTestId('gen-run-quantized').click();
  await expect(page.getByTestId('gen-status')).toHaveAttribute('data-state', 'done', { timeout: LONG });
  await expect(page.getByTestId('gen-quantized-text')).toContainText('Once upon a time, there was a little girl named Lily');
  const tps = Number(await page.getByTestId('gen-quantized-speed').getAttribute('data-decode-tps'));
  expect(tps).toBeGreaterThan(0);
});
