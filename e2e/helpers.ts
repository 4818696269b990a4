/** Shared steps of the end-to-end tests: reading the Playground's numbers and waiting for analyses. */
import { expect, type Page } from 'playwright/test';
import { analyzeTensorRef, type TensorAnalysis } from '../src/quant/analyze.ts';
import type { QuantConfig } from '../src/quant/config.ts';
import { syntheticTensor, type SyntheticKind, type SyntheticSpec } from '../src/quant/synthetic.ts';

/** Generous: the first analysis compiles every kernel on SwiftShader (about half a second each). */
export const ANALYSIS_TIMEOUT = 120_000;

export async function openPlayground(page: Page, query = ''): Promise<void> {
  await page.goto(`/${query}#/playground`);
  await expect(page.getByTestId('page-playground')).toBeVisible();
}

export async function waitForDone(page: Page): Promise<void> {
  await expect(page.getByTestId('run-status')).toHaveAttribute('data-state', 'done', { timeout: ANALYSIS_TIMEOUT });
}

/** The full-precision number behind a displayed metric. */
export async function metric(page: Page, testId: string): Promise<number> {
  const v = await page.getByTestId(testId).getAttribute('data-value');
  if (v === null) throw new Error(`${testId} has no data-value`);
  return Number(v);
}

/** The synthetic tensor the form describes, read from the form as the user sees it. */
export async function syntheticSpecOnScreen(page: Page): Promise<SyntheticSpec> {
  return {
    kind: (await page.getByTestId('synthetic-kind').inputValue()) as SyntheticKind,
    rows: Number(await page.getByTestId('synthetic-rows').inputValue()),
    cols: Number(await page.getByTestId('synthetic-cols').inputValue()),
    seed: Number(await page.getByTestId('synthetic-seed').inputValue()),
  };
}

/**
 * Wait until the result on screen is for `cfg`, then check its numbers against the CPU reference on the same
 * tensor: MSE within 1e-5 relative (the GPU sums in f32 partials), group count and bits per weight exactly.
 */
export async function expectMatchesReference(page: Page, x: Float32Array, shape: [number, number], cfg: QuantConfig): Promise<TensorAnalysis> {
  const ref = analyzeTensorRef(x, shape, cfg, { ratios: [] });
  await expect(page.getByTestId('metrics')).toHaveAttribute('data-result-config', JSON.stringify(ref.config), { timeout: ANALYSIS_TIMEOUT });
  const mse = await metric(page, 'metric-mse');
  expect(Math.abs(mse - ref.metrics.mse) / ref.metrics.mse).toBeLessThan(1e-5);
  // SQNR = 10 log10(Σx²/SSE): a 1e-5 relative MSE difference moves it by about 4e-5 dB.
  expect(Math.abs((await metric(page, 'metric-sqnr')) - ref.metrics.sqnr)).toBeLessThan(1e-4);
  expect(await metric(page, 'metric-groups')).toBe(ref.numGroups);
  expect(await metric(page, 'metric-bpw')).toBe(ref.bitsPerWeight);
  return ref;
}

export function referenceTensor(spec: SyntheticSpec): Float32Array {
  return syntheticTensor(spec);
}
