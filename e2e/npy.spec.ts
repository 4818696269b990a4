// A .npy file, chosen or dropped on the page, becomes the Playground's tensor (1-D as one row, N-D flattened to [first axis, rest]) with numbers equal to the CPU reference, and a file with NaN/Inf is refused with the count while the previous result stays.
import { expect, test } from 'playwright/test';
import { npyToFloat32, readNpy, writeNpy } from '../src/io/npy.ts';
import { mulberry32 } from '../src/util/random.ts';
import { expectMatchesReference, metric, openPlayground, waitForDone } from './helpers.ts';

function laplaceLike(n: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: n }, () => Math.fround(Math.log(rand() + 1e-6) * (rand() < 0.5 ? -1 : 1)));
}

test('load a 3-D float16 .npy, drop a 1-D one, refuse one with NaNs', async ({ page }) => {
  await openPlayground(page);
  await waitForDone(page);

  // [16, 4, 32] float16: analyzed as 16 x 128; the reference sees the same float16-rounded values.
  const values = laplaceLike(16 * 4 * 32, 5);
  const file = writeNpy(values, [16, 4, 32], 'float16');
  await page.getByTestId('npy-input').setInputFiles({ name: 'block.npy', mimeType: 'application/octet-stream', buffer: Buffer.from(file) });
  await expect(page.getByTestId('result-tensor')).toContainText('block.npy [16, 4, 32] float16 → 16 × 128', { timeout: 60_000 });
  await waitForDone(page);
  const x = npyToFloat32(readNpy(file));
  await expectMatchesReference(page, x, [16, 128], { bits: 4, granularity: 'channel', scheme: 'sym', format: 'int', clipRatio: 1 });
  const mse = await metric(page, 'metric-mse');

  const bad = new Float32Array(64).fill(0.5);
  bad[3] = NaN;
  bad[10] = Infinity;
  bad[11] = -Infinity;
  await page.getByTestId('npy-input').setInputFiles({ name: 'nan.npy', mimeType: 'application/octet-stream', buffer: Buffer.from(writeNpy(bad, [8, 8])) });
  await expect(page.getByTestId('source-error')).toContainText('nan.npy holds 3 non-finite values');
  expect(await metric(page, 'metric-mse')).toBe(mse);
  await expect(page.getByTestId('result-tensor')).toContainText('block.npy');

  // Dropped anywhere on the page: a 1-D vector becomes one row.
  const vec = laplaceLike(300, 9);
  const vecFile = Array.from(writeNpy(vec, [300]));
  await page.evaluate((bytes) => {
    const dt = new DataTransfer();
    dt.items.add(new File([new Uint8Array(bytes)], 'vec.npy'));
    for (const type of ['dragenter', 'dragover', 'drop']) document.body.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, vecFile);
  await expect(page.getByTestId('result-tensor')).toContainText('vec.npy [300] float32 → 1 × 300', { timeout: 60_000 });
  await expect(page.getByTestId('source-error')).toHaveCount(0);
  await expectMatchesReference(page, vec, [1, 300], { bits: 4, granularity: 'channel', scheme: 'sym', format: 'int', clipRatio: 1 });
});
