// Calibration in the lab: stories15M on the bundled text (checked against the CPU reference forward pass on the
// same tokens), the outlier map and the calibrator comparison; a text too short for one sequence is refused while
// the previous result stays; the PP-OCRv4 recogniser on rendered text lines, cancel and rerun, and the TensorRT
// calibration cache downloaded and parsed back.
import { readFileSync } from 'node:fs';
import { expect, test, type Page } from 'playwright/test';
import { textToSequences } from '../src/calib/text-data.ts';
import { loadMobyDickCalibrationNode } from '../src/calib/text-data-node.ts';
import { parseTrtCalibrationCache } from '../src/calib/trt-cache.ts';
import { CALIB_METHODS, type CalibrationResult } from '../src/calib/types.ts';
import { bytesByteSource } from '../src/model/formats/byte-source.ts';
import { BUNDLED_STORIES15M_PATH, openBundledStories15M } from '../src/model/formats/llama2c.ts';
import { LlamaCpu } from '../src/model/llama/forward-cpu.ts';

const LONG = 300_000;

async function openBundled(page: Page, id: string, name: RegExp | string): Promise<void> {
  await page.goto('/#/model');
  await page.getByTestId(`open-${id}`).click();
  await expect(page.getByTestId('model-summary')).toHaveAttribute('data-name', name, { timeout: LONG });
  await page.goto('/#/calibrate');
  await expect(page.getByTestId('page-calibrate')).toBeVisible();
  await expect(page.getByTestId('device-status')).toHaveAttribute('data-status', 'ready', { timeout: LONG });
}

async function num(row: ReturnType<Page['getByTestId']>, testId: string): Promise<number> {
  const v = await row.getByTestId(testId).getAttribute('data-value');
  if (v === null) throw new Error(`${testId} has no data-value`);
  return Number(v);
}

/** Every row: the highlighted best method has the highest SQNR of the row. */
async function expectBestIsHighest(page: Page): Promise<void> {
  const rows = page.getByTestId('calib-row');
  const n = await rows.count();
  for (let i = 0; i < n; i++) {
    const row = rows.nth(i);
    const best = await row.getAttribute('data-best');
    expect(CALIB_METHODS).toContain(best);
    const sqnr = await Promise.all(CALIB_METHODS.map((m) => num(row, `calib-sqnr-${m}`)));
    expect(sqnr[CALIB_METHODS.indexOf(best as (typeof CALIB_METHODS)[number])]).toBe(Math.max(...sqnr));
  }
}

test('stories15M: calibrate on the bundled text, read the outlier map and the calibrators, refuse a too-short text', async ({ page }) => {
  test.setTimeout(900_000);
  await page.goto('/#/calibrate');
  await expect(page.getByTestId('no-model')).toBeVisible();
  await openBundled(page, 'stories15M', 'stories15M');
  await expect(page.getByTestId('calib-samples')).toHaveValue('16');
  await expect(page.getByTestId('calib-seqlen')).toHaveValue('256');
  await page.getByTestId('calib-seqlen').fill('999');
  await expect(page.getByTestId('calib-config-error')).toContainText('256');
  await page.getByTestId('calib-samples').fill('2');
  await page.getByTestId('calib-seqlen').fill('24');
  await page.getByTestId('calib-run').click();
  await expect(page.getByTestId('calib-status')).toHaveAttribute('data-state', 'done', { timeout: LONG });

  // 6 blocks x 4 linear inputs.
  const rows = page.getByTestId('calib-row');
  await expect(rows).toHaveCount(24);
  await expect(page.getByTestId('calib-summary')).toHaveAttribute('data-tensors', '24');
  await expectBestIsHighest(page);

  // The same 2 x 24 tokens through the CPU reference forward pass: max |x| of two linear inputs.
  const bytes = readFileSync(BUNDLED_STORIES15M_PATH);
  const ckpt = await openBundledStories15M(bytesByteSource(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), 'llama2.data'));
  const seqs = textToSequences(ckpt.tokenizer!, loadMobyDickCalibrationNode(), 2, 24, 'Moby-Dick').sequences;
  const cpu = await LlamaCpu.load(ckpt);
  const want = new Map<string, number>();
  cpu.setLinearInputHook((linear, x) => {
    const key = linear === 'layers.0.wq' ? 'layers.0.attn_in' : linear === 'layers.5.w2' ? 'layers.5.mlp_mid' : undefined;
    if (!key) return;
    let v = want.get(key) ?? 0;
    for (const e of x) v = Math.max(v, Math.abs(e));
    want.set(key, v);
  });
  for (const s of seqs) {
    cpu.reset();
    s.forEach((id, pos) => cpu.forward(id, pos));
  }
  for (const [name, v] of want) {
    const row = page.locator(`[data-testid="calib-row"][data-name="${name}"]`);
    const got = await num(row, 'calib-absmax');
    expect(Math.abs(got - v) / v, name).toBeLessThan(1e-4);
    expect(await num(row, 'calib-amax-max')).toBeCloseTo(got, 4);
    for (const m of CALIB_METHODS) expect(await num(row, `calib-amax-${m}`)).toBeLessThanOrEqual(got * 1.0001);
  }

  // Outlier view of the attention input of block 0: heat map, named top channels, weights beside it.
  await page.locator('[data-testid="calib-row"][data-name="layers.0.attn_in"]').click();
  await expect(page.getByTestId('outlier-map')).toContainText('layers.0.attn_in');
  await expect(page.getByTestId('outlier-map-plot').locator('.main-svg').first()).toBeVisible();
  const top = page.getByTestId('outlier-top').locator('[data-channel]');
  expect(await top.count()).toBeGreaterThan(0);
  expect(Number(await top.first().getAttribute('data-ratio'))).toBeGreaterThan(1);
  await expect(page.getByTestId('weight-bars')).toHaveAttribute('data-layers', /layers\.0\.wq/);
  await page.getByTestId('outlier-3d').check();
  await expect(page.getByTestId('outlier-map-view')).toHaveAttribute('data-view', '3d');
  // The calibrator comparison: histogram with every threshold, clipping-vs-rounding curve.
  await expect(page.getByTestId('calib-histogram-plot').locator('.main-svg').first()).toBeVisible();
  await expect(page.getByTestId('clip-round-plot').locator('.main-svg').first()).toBeVisible();
  await expect(page.getByTestId('calib-histogram')).toContainText('entropy');

  // Sorting by a method's SQNR orders the rows.
  await page.getByTestId('calib-sort-sqnr:entropy').click();
  const sorted = await Promise.all((await rows.all()).map((r) => num(r, 'calib-sqnr-entropy')));
  const asc = [...sorted].sort((a, b) => a - b);
  expect(sorted.join() === asc.join() || sorted.join() === [...asc].reverse().join()).toBe(true);

  // The JSON download is the CalibrationResult; no TensorRT cache for a Llama checkpoint.
  const dl = page.waitForEvent('download');
  await page.getByTestId('calib-download-json').click();
  const json = JSON.parse(readFileSync((await (await dl).path())!, 'utf8')) as CalibrationResult;
  expect(json.format).toBe('quantlab-calibration');
  expect(json.tensors).toHaveLength(24);
  expect(json.method).toBe('entropy');
  expect(json.data).toMatchObject({ samples: 2, sequenceLength: 24, tokens: 48 });
  await expect(page.getByTestId('calib-download-cache')).toBeDisabled();

  // A text shorter than one sequence: a clear error, and the previous result stays.
  await page.getByTestId('calib-source').selectOption('text-files');
  await page.getByTestId('calib-files').setInputFiles({ name: 'tiny.txt', mimeType: 'text/plain', buffer: Buffer.from('Once upon a time.') });
  await page.getByTestId('calib-run').click();
  await expect(page.getByTestId('calib-status')).toHaveAttribute('data-state', 'error', { timeout: LONG });
  await expect(page.getByTestId('calib-error')).toContainText(/tiny\.txt gives \d+ tokens; one sequence of 24 tokens needs 23/);
  await expect(rows).toHaveCount(24);
});

test('PP-OCRv4 recogniser: rendered text lines, cancel then calibrate, TensorRT cache', async ({ page }) => {
  test.setTimeout(900_000);
  await openBundled(page, 'ppocr-rec', /PP-OCRv4/);
  await expect(page.getByTestId('calib-source')).toHaveValue('rendered-lines');
  await page.getByTestId('calib-samples').fill('2');
  await page.getByTestId('calib-run').click();
  await page.getByTestId('calib-cancel').click();
  await expect(page.getByTestId('calib-status')).toHaveAttribute('data-state', 'cancelled');
  await expect(page.getByTestId('calib-table')).toHaveCount(0);

  await page.getByTestId('calib-run').click();
  await expect(page.getByTestId('calib-status')).toHaveAttribute('data-state', 'done', { timeout: LONG });
  const rows = page.getByTestId('calib-row');
  // 47 quantizable layers read 47 distinct tensors.
  await expect(rows).toHaveCount(47);
  await expectBestIsHighest(page);
  await expect(page.getByTestId('calib-summary')).toContainText('rendered');

  const dl = page.waitForEvent('download');
  await page.getByTestId('calib-download-cache').click();
  const cache = parseTrtCalibrationCache(readFileSync((await (await dl).path())!, 'utf8'));
  expect(cache.header).toBe('TRT-8601-EntropyCalibration2');
  expect(cache.amax.size).toBe(47);
  const first = rows.first();
  const name = (await first.getAttribute('data-name'))!;
  const entropy = await num(first, 'calib-amax-entropy');
  expect(Math.abs(cache.amax.get(name)! - entropy) / entropy).toBeLessThan(1e-5);

  // An image that does not decode is named; the result on screen stays.
  await page.getByTestId('calib-source').selectOption('image-files');
  await page.getByTestId('calib-files').setInputFiles({ name: 'broken.png', mimeType: 'image/png', buffer: Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]) });
  await page.getByTestId('calib-run').click();
  await expect(page.getByTestId('calib-status')).toHaveAttribute('data-state', 'error', { timeout: LONG });
  await expect(page.getByTestId('calib-error')).toContainText('broken.png');
  await expect(rows).toHaveCount(47);
});
