// AWQ and SmoothQuant in the lab, on a small random Llama (llama2.c file, no tokenizer, so the model writes its own
// calibration samples) with planted outlier channels: AWQ's blocks arrive one by one, its error is below RTN's in every
// block, the loss heatmap, the group's loss curve and its scales are drawn, and the channels with the largest scales are
// the planted ones; a run cancelled after its first block and resumed ends exactly where an uninterrupted run does.
// SmoothQuant's alpha sweep fills the table and its charts, and the summed W8A8 error drops.
import { expect, test, type Page } from 'playwright/test';
import { encodeCheckpointLlama2c } from '../src/model/formats/llama2c.ts';
import type { LlamaConfig } from '../src/model/llama/model.ts';
import { randomLlama } from '../tests/helpers/random-llama.ts';

const LONG = 300_000;

const config: LlamaConfig = {
  dim: 32, hiddenDim: 64, nLayers: 2, nHeads: 4, nKvHeads: 4, vocabSize: 64, seqLen: 32, normEps: 1e-5,
  ropeTheta: 10000, headDim: 8, tiedEmbeddings: true, arch: 'llama', ropeLayout: 'interleaved',
};

async function tinyLlamaFile(): Promise<Buffer> {
  const m = randomLlama(config, 4242);
  for (const l of [0, 1]) {
    for (const ch of [3, 17]) m.weights.get(`layers.${l}.attention_norm`)![ch] = 12;
    for (const ch of [8, 22]) m.weights.get(`layers.${l}.ffn_norm`)![ch] = 10;
  }
  const files = await encodeCheckpointLlama2c({ ...m.checkpoint(), name: 'tiny' }, new Map());
  return Buffer.concat(files.model);
}

async function openTiny(page: Page): Promise<void> {
  await page.goto('/#/model');
  await expect(page.getByTestId('device-status')).toHaveAttribute('data-status', 'ready', { timeout: LONG });
  await page.getByTestId('model-files').setInputFiles({ name: 'tiny.bin', mimeType: 'application/octet-stream', buffer: await tinyLlamaFile() });
  await expect(page.getByTestId('model-summary')).toHaveAttribute('data-kind', 'llama', { timeout: LONG });
  await page.getByTestId('tab-awq').click();
  await expect(page.getByTestId('page-awq')).toBeVisible();
}

async function awqTotals(page: Page): Promise<{ rtn: number; awq: number }> {
  const t = page.getByTestId('awq-total');
  return { rtn: Number(await t.getAttribute('data-rtn')), awq: Number(await t.getAttribute('data-awq')) };
}

async function setAwqForm(page: Page): Promise<void> {
  await expect(page.getByTestId('awq-source')).toHaveValue('generated');
  await page.getByTestId('awq-samples').fill('2');
  await page.getByTestId('awq-seqlen').fill('16');
  await page.getByTestId('awq-group-size').fill('0');
  await expect(page.getByTestId('awq-form-error')).toContainText('Group size');
  await expect(page.getByTestId('awq-run')).toBeDisabled();
  await page.getByTestId('awq-group-size').fill('8');
  await expect(page.getByTestId('awq-form-error')).toHaveCount(0);
}

test('AWQ: blocks stream in, AWQ beats RTN in every block, the charts draw the search; cancel after a block and resume to the same result', async ({ page }) => {
  test.setTimeout(900_000);
  await openTiny(page);
  await expect(page.getByTestId('awq-empty')).toBeVisible();
  await setAwqForm(page);

  await page.getByTestId('awq-run').click();
  await expect(page.getByTestId('awq-status')).toHaveAttribute('data-state', 'done', { timeout: LONG });
  for (const i of [0, 1]) await expect(page.getByTestId(`awq-step-${i}`)).toHaveAttribute('data-state', 'done');
  const full = await awqTotals(page);
  expect(full.awq).toBeGreaterThan(0);
  expect(full.awq).toBeLessThan(full.rtn);
  await expect(page.getByTestId('awq-total')).toContainText('AWQ lower in 2 of 2');
  for (const chart of ['awq-block-errors', 'awq-loss-heatmap', 'awq-loss-chart', 'awq-scales-chart']) {
    await expect(page.getByTestId(chart).locator('.main-svg').first()).toBeAttached();
  }
  // 4 groups per block (v -> o included: no grouped-query sharing), 7 linears per block.
  await expect(page.getByTestId('awq-group-select').locator('option')).toHaveCount(8);
  await expect(page.getByTestId('awq-linear-row')).toHaveCount(14);
  // The chosen ratio is the grid's minimum: the heatmap's star and the curve agree with the reported loss.
  const best = page.getByTestId('awq-group-best');
  await expect(best).toHaveAttribute('data-ratio', /\d/);
  // The planted outlier channels of the norms get the largest scales (when the search scaled at all).
  for (const [key, planted] of [['0:qkv', [3, 17]], ['1:gate_up', [8, 22]]] as const) {
    await page.getByTestId('awq-group-select').selectOption(key);
    if (Number(await best.getAttribute('data-ratio')) === 0) continue;
    const top = (await page.getByTestId('awq-top-channels').getAttribute('data-channels'))!.split(',').map(Number);
    expect(top.slice(0, 2).sort((a, b) => a - b), key).toEqual(planted);
  }
  await page.getByTestId('awq-group-select').selectOption('1:gate_up');
  await expect(page.getByTestId('awq-loss-chart')).toContainText('block 1 · norm → gate, up');

  // Again, cancelled once block 0 has finished; then resumed.
  await page.getByTestId('awq-run').click();
  await expect(page.getByTestId('awq-step-0')).toHaveAttribute('data-state', 'done', { timeout: LONG });
  await page.getByTestId('awq-status-cancel').click();
  await expect(page.getByTestId('awq-status')).toHaveAttribute('data-state', 'cancelled');
  await expect(page.getByTestId('awq-unfinished')).toContainText('after 1 of 2 blocks');
  await expect(page.getByTestId('awq-resume')).toContainText('1 block done');
  // Changing a setting withdraws the resume; changing it back offers it again.
  await page.getByTestId('awq-clip').uncheck();
  await expect(page.getByTestId('awq-resume')).toHaveCount(0);
  await page.getByTestId('awq-clip').check();
  await page.getByTestId('awq-resume').click();
  await expect(page.getByTestId('awq-status')).toHaveAttribute('data-state', 'done', { timeout: LONG });
  await expect(page.getByTestId('awq-status')).toContainText('1 kept from the earlier run');
  expect(await awqTotals(page)).toEqual(full);
});

test('SmoothQuant: the alpha sweep, the difficulty chart and the table; the summed W8A8 error drops', async ({ page }) => {
  test.setTimeout(600_000);
  await openTiny(page);
  await page.getByRole('radio', { name: 'SmoothQuant (W8A8)' }).check({ force: true });
  await expect(page.getByTestId('smooth-form')).toBeVisible();
  await page.getByTestId('smooth-samples').fill('2');
  await page.getByTestId('smooth-seqlen').fill('16');
  await page.getByTestId('smooth-run').click();
  await expect(page.getByTestId('smooth-status')).toHaveAttribute('data-state', 'done', { timeout: LONG });
  const rows = page.getByTestId('smooth-row');
  await expect(rows).toHaveCount(4);
  let after = 0;
  for (let i = 0; i < 4; i++) {
    const best = Number(await rows.nth(i).getAttribute('data-best'));
    expect(best).toBeGreaterThanOrEqual(0);
    expect(best).toBeLessThanOrEqual(1);
    after += Number(await rows.nth(i).getAttribute('data-after'));
  }
  const summary = page.getByTestId('smooth-summary');
  const before = Number(await summary.getAttribute('data-before'));
  expect(Number(await summary.getAttribute('data-after'))).toBeCloseTo(after, 12);
  expect(after).toBeLessThan(before);
  for (const chart of ['smooth-sweep-chart', 'smooth-difficulty-chart']) await expect(page.getByTestId(chart).locator('.main-svg').first()).toBeAttached();
  await page.getByTestId('smooth-group-select').selectOption('layers.1.ffn_norm');
  await expect(page.getByTestId('smooth-difficulty-chart')).toContainText('Unsmoothed');

  // One alpha instead of a sweep: no sweep chart, alpha shown.
  await page.getByRole('radio', { name: 'One value' }).check({ force: true });
  await page.getByTestId('smooth-alpha').fill('1.5');
  await expect(page.getByTestId('smooth-form-error')).toContainText('Alpha');
  await page.getByTestId('smooth-alpha').fill('0.5');
  await page.getByTestId('smooth-run').click();
  await expect(page.getByTestId('smooth-status')).toHaveAttribute('data-state', 'done', { timeout: LONG });
  await expect(page.getByTestId('smooth-alpha-value')).toHaveText('0.50');
  await expect(page.getByTestId('smooth-sweep-chart')).toHaveCount(0);
});
