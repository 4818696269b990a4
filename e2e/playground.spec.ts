// The Playground shows the device, analyzes the default tensor, re-analyzes in place when bits and granularity change with numbers equal to the CPU reference, draws its three charts, lists all seven sections, and keeps the last result when a bad .npy is loaded.
import { expect, test } from 'playwright/test';
import { expectMatchesReference, metric, openPlayground, referenceTensor, syntheticSpecOnScreen, waitForDone } from './helpers.ts';

test('analysis follows the controls and matches the CPU reference', async ({ page }) => {
  await openPlayground(page);

  await expect(page.getByTestId('device-status')).toHaveAttribute('data-status', 'ready', { timeout: 60_000 });
  await expect(page.getByTestId('device-status')).toContainText(/\S/);

  const nav = page.getByRole('navigation', { name: 'Sections' }).getByRole('link');
  await expect(nav).toHaveCount(7);
  for (const [i, title] of ['Playground', 'Model', 'Calibrate', 'AWQ & SmoothQuant', 'Quantize', 'Evaluate', 'Export'].entries()) {
    await expect(nav.nth(i)).toContainText(title);
  }
  await expect(page.getByTestId('tab-playground')).toHaveAttribute('aria-current', 'page');

  await waitForDone(page);
  const spec = await syntheticSpecOnScreen(page);
  const x = referenceTensor(spec);
  const shape: [number, number] = [spec.rows, spec.cols];

  // The defaults: INT4, per-channel, symmetric, no clipping.
  await expectMatchesReference(page, x, shape, { bits: 4, granularity: 'channel', scheme: 'sym', format: 'int', clipRatio: 1 });
  await expect(page.getByTestId('sweep-placeholder')).toHaveCount(0);
  for (const chart of ['plot-histogram', 'plot-sweep', 'plot-absmax']) {
    await expect(page.getByTestId(chart).locator('.main-svg').first()).toBeAttached();
  }
  // Marks on the page and on the chart element: a reload or a rebuilt chart would lose them.
  await page.evaluate(() => ((window as unknown as { stillHere: boolean }).stillHere = true));
  await page.getByTestId('plot-histogram').evaluate((el) => ((el as unknown as { mark: number }).mark = 42));

  // 4 -> 3 bits with the keyboard, as a user on the slider would.
  await page.getByTestId('bits').focus();
  await page.keyboard.press('ArrowLeft');
  await expectMatchesReference(page, x, shape, { bits: 3, granularity: 'channel', scheme: 'sym', format: 'int', clipRatio: 1 });

  // Per-channel -> per-group with g = 32.
  await page.getByRole('radio', { name: 'Group', exact: true }).check();
  await page.getByTestId('group-size').fill('32');
  const perGroup = await expectMatchesReference(page, x, shape, { bits: 3, granularity: 'group', groupSize: 32, scheme: 'sym', format: 'int', clipRatio: 1 });
  expect(perGroup.numGroups).toBe((spec.rows * spec.cols) / 32);
  await waitForDone(page);

  // Updated in place: the same page and the same chart element.
  expect(await page.evaluate(() => (window as unknown as { stillHere?: boolean }).stillHere)).toBe(true);
  expect(await page.getByTestId('plot-histogram').evaluate((el) => (el as unknown as { mark?: number }).mark)).toBe(42);

  // An invalid group size asks for a fix and sends nothing: the result stays.
  const version = await page.getByTestId('metrics').getAttribute('data-result-version');
  await page.getByTestId('group-size').fill('0');
  await expect(page.getByTestId('config-error')).toBeVisible();
  await page.getByTestId('group-size').fill('');
  await expect(page.getByTestId('config-error')).toContainText('group size');
  await page.waitForTimeout(500);
  await expect(page.getByTestId('metrics')).toHaveAttribute('data-result-version', version!);
  await page.getByTestId('group-size').fill('32');
  await expect(page.getByTestId('config-error')).toHaveCount(0);

  // A file that is not .npy: inline error naming it, and the previous numbers and charts stay.
  const mseBefore = await metric(page, 'metric-mse');
  await page.getByTestId('npy-input').setInputFiles({ name: 'garbage.npy', mimeType: 'application/octet-stream', buffer: Buffer.from('this is not a numpy file, just text') });
  await expect(page.getByTestId('source-error')).toContainText('garbage.npy');
  await expect(page.getByTestId('source-error')).toContainText('not a .npy file');
  expect(await metric(page, 'metric-mse')).toBe(mseBefore);
  await expect(page.getByTestId('metrics')).toHaveAttribute('data-result-version', version!);
  await expect(page.getByTestId('plot-histogram').locator('.main-svg').first()).toBeAttached();
  await expect(page.getByTestId('tensor-info')).toContainText(`${spec.rows} × ${spec.cols}`);
});

test('the sections not built yet say what they will do, with no controls', async ({ page }) => {
  await openPlayground(page);
  // The built sections point to the Model page while no model is open.
  for (const id of ['quantize', 'calibrate', 'awq', 'evaluate']) {
    await page.getByTestId(`tab-${id}`).click();
    await expect(page.getByTestId('no-model')).toContainText('Choose one on the Model page');
  }
  await page.getByTestId('tab-model').click();
  await expect(page.getByTestId('page-model')).toContainText(/ONNX.*llama2\.c.*GGUF.*safetensors/s);
  await page.getByTestId('tab-export').click();
  await expect(page).toHaveURL(/#\/export$/);
  const section = page.getByTestId('page-export');
  await expect(section).toContainText(/QuantizeLinear.*TensorRT.*AutoAWQ.*MatMulNBits.*GGUF/s);
  await expect(section.locator('button, input, select')).toHaveCount(0);
  await page.goBack();
  await expect(page).toHaveURL(/#\/model$/);
  await page.getByTestId('tab-playground').click();
  await expect(page.getByTestId('page-playground')).toBeVisible();
});
