// While a large tensor is analyzed the page stays responsive, Cancel stops the run (the previous result stays; cancelled during the sweep, the finished numbers stay and the sweep is marked missing), and the next run starts promptly.
import { expect, test } from 'playwright/test';
import { metric, openPlayground, waitForDone } from './helpers.ts';

test('cancel a 2048 x 2048 analysis before and during the sweep', async ({ page }) => {
  await openPlayground(page);
  await waitForDone(page);
  const mseBefore = await metric(page, 'metric-mse');
  const versionBefore = await page.getByTestId('metrics').getAttribute('data-result-version');
  const tensorBefore = await page.getByTestId('result-tensor').textContent();

  await page.getByTestId('synthetic-rows').fill('2048');
  await page.getByTestId('synthetic-cols').fill('2048');
  const status = page.getByTestId('run-status');
  // The big tensor takes seconds on SwiftShader before its numbers appear; Cancel lands in that window.
  await expect(status).toHaveAttribute('data-state', 'running');
  await expect(page.getByTestId('cancel')).toBeVisible();

  // The main thread is free while the worker works: a timer fires on time and the controls react.
  const lag = await page.evaluate(() => new Promise<number>((resolve) => {
    const t0 = performance.now();
    setTimeout(() => resolve(performance.now() - t0 - 50), 50);
  }));
  expect(lag).toBeLessThan(200);
  const logY = page.getByTestId('log-y');
  await logY.uncheck();
  await expect(logY).not.toBeChecked();
  await logY.check();

  await page.getByTestId('cancel').click();
  await expect(status).toHaveAttribute('data-state', 'cancelled');
  await expect(status).toContainText('Cancelled');
  await expect(status).toContainText('previous result');
  expect(await metric(page, 'metric-mse')).toBe(mseBefore);
  await expect(page.getByTestId('metrics')).toHaveAttribute('data-result-version', versionBefore!);
  await expect(page.getByTestId('result-tensor')).toHaveText(tensorBefore!);
  // Still cancelled a moment later: a late answer from the worker must not overwrite the result.
  await page.waitForTimeout(1500);
  await expect(status).toHaveAttribute('data-state', 'cancelled');
  expect(await metric(page, 'metric-mse')).toBe(mseBefore);

  // Going back to the shape on screen needs no work; the page is still usable.
  await page.getByTestId('synthetic-rows').fill('256');
  await page.getByTestId('synthetic-cols').fill('512');
  await waitForDone(page);
  expect(await metric(page, 'metric-mse')).toBe(mseBefore);

  // Again, but cancel during the clipping sweep: the big tensor's numbers are complete and stay.
  await page.getByTestId('synthetic-rows').fill('2048');
  await page.getByTestId('synthetic-cols').fill('2048');
  await expect(page.getByTestId('result-tensor')).toContainText('2048 × 2048', { timeout: 120_000 });
  await expect(status).toContainText('clipping sweep');
  await page.getByTestId('cancel').click();
  await expect(status).toHaveAttribute('data-state', 'cancelled');
  await expect(status).toContainText('before the clipping sweep finished');
  await expect(page.getByTestId('sweep-placeholder')).toContainText('Not computed');

  // The worker lets go of the GPU at the end of the sweep chunk in flight, so the small tensor comes back soon.
  await page.getByTestId('synthetic-rows').fill('256');
  await page.getByTestId('synthetic-cols').fill('512');
  await waitForDone(page);
  await expect(page.getByTestId('result-tensor')).toContainText('256 × 512');
  expect(await metric(page, 'metric-mse')).toBe(mseBefore);
  await expect(page.getByTestId('sweep-placeholder')).toHaveCount(0);
});
