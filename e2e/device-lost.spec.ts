// A lost GPU device is reported with a Restart GPU button that brings the analysis back without losing the tensor or the settings.
import { expect, test } from 'playwright/test';
import { metric, openPlayground, waitForDone } from './helpers.ts';

test('restart the GPU after a device loss', async ({ page }) => {
  await openPlayground(page, '?debug');
  await waitForDone(page);
  await page.getByRole('radio', { name: 'Asymmetric' }).check();
  await waitForDone(page);
  await expect(page.getByTestId('metrics')).toHaveAttribute('data-result-config', /"scheme":"asym"/);
  const mse = await metric(page, 'metric-mse');

  await page.evaluate(() => (window as unknown as { quantlab: { engine: { loseDevice(): Promise<void> } } }).quantlab.engine.loseDevice());
  const banner = page.getByTestId('device-lost');
  await expect(banner).toBeVisible();
  await expect(banner).toContainText('GPU device lost');
  await expect(page.getByTestId('device-status')).toHaveAttribute('data-status', 'lost');
  // The result computed before the loss stays.
  expect(await metric(page, 'metric-mse')).toBe(mse);

  await page.getByTestId('restart-gpu').click();
  await expect(page.getByTestId('device-status')).toHaveAttribute('data-status', 'ready', { timeout: 60_000 });
  await expect(banner).toHaveCount(0);
  await waitForDone(page);
  // Same tensor, same settings, new device: the same numbers.
  await expect(page.getByRole('radio', { name: 'Asymmetric' })).toBeChecked();
  await expect(page.getByTestId('metrics')).toHaveAttribute('data-result-config', /"scheme":"asym"/);
  expect(Math.abs((await metric(page, 'metric-mse')) - mse) / mse).toBeLessThan(1e-6);
});
