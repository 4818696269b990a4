// Without WebGPU the app says so, explains how to enable it, and disables the controls instead of failing silently.
import { expect, test } from 'playwright/test';

test('a browser without navigator.gpu gets the WebGPU-unavailable message', async ({ page }) => {
  await page.addInitScript(() => {
    // As in a browser without WebGPU: the property does not exist at all.
    delete (Navigator.prototype as unknown as { gpu?: unknown }).gpu;
  });
  await page.goto('/');
  // The lab opens on the model picker; models can be opened and inspected without a GPU.
  await expect(page).toHaveURL(/#\/model$/);
  await expect(page.getByTestId('webgpu-unavailable')).toBeVisible();
  await expect(page.getByTestId('open-stories15M')).toBeEnabled();
  await page.getByTestId('tab-playground').click();
  const banner = page.getByTestId('webgpu-unavailable');
  await expect(banner).toBeVisible();
  await expect(banner).toContainText('WebGPU is not available');
  await expect(banner).toContainText('--enable-unsafe-webgpu');
  await expect(page.getByTestId('device-status')).toHaveAttribute('data-status', 'unavailable');
  await expect(page.getByTestId('device-status')).toContainText('WebGPU unavailable');
  await expect(page.getByTestId('bits')).toBeDisabled();
  await expect(page.getByTestId('synthetic-rows')).toBeDisabled();
  await expect(page.getByTestId('npy-input')).toBeDisabled();
  await expect(page.getByTestId('run-status')).toHaveCount(0);
  // The other sections still open: they describe what is coming and need no GPU.
  await page.getByTestId('tab-export').click();
  await expect(page.getByTestId('page-export')).toBeVisible();
});
