// Bad model files in the lab: each gets an error naming the file and the problem, and the model already open stays.
import { expect, test } from 'playwright/test';

test('a corrupt ONNX and a truncated GGUF are refused by name; the open model stays', async ({ page }) => {
  await page.goto('/#/model');
  await page.getByTestId('open-ppocr-det').click();
  const summary = page.getByTestId('model-summary');
  await expect(summary).toHaveAttribute('data-name', 'PP-OCRv4 detection', { timeout: 120_000 });
  const layers = await page.getByTestId('model-layer-count').textContent();

  await page.getByTestId('model-files').setInputFiles({ name: 'broken.onnx', mimeType: 'application/octet-stream', buffer: Buffer.from([0x08, 0x07, 0x12, 0xff, 0xff, 0x01, 0x41]) });
  await expect(page.getByTestId('open-status')).toHaveAttribute('data-state', 'error', { timeout: 60_000 });
  await expect(page.getByTestId('open-status')).toContainText('broken.onnx');
  await expect(summary).toHaveAttribute('data-name', 'PP-OCRv4 detection');
  await expect(page.getByTestId('model-layer-count')).toHaveText(layers!);

  // "GGUF", version 3, then the file stops inside the header.
  const gguf = Buffer.from([0x47, 0x47, 0x55, 0x46, 3, 0, 0, 0, 9, 0]);
  await page.getByTestId('model-files').setInputFiles({ name: 'cut.gguf', mimeType: 'application/octet-stream', buffer: gguf });
  await expect(page.getByTestId('open-status')).toHaveAttribute('data-state', 'error', { timeout: 60_000 });
  await expect(page.getByTestId('open-status')).toContainText('cut.gguf');
  await expect(summary).toHaveAttribute('data-name', 'PP-OCRv4 detection');
});
