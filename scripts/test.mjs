#!/usr/bin/env node
// npm test: install what is missing (npm packages; chromium and libvulkan1 through apt-get when root),
// then run every test: type check, unit and GPU-kernel tests (Vitest, WebGPU in Node through Dawn on
// SwiftShader), and the end-to-end tests in headless Chromium with WebGPU (Playwright).
// Ends with one line "tests: N passed, M failed".
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromiumPath, setup } from './setup.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
setup({ system: true });

const out = join(root, 'test-results');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const runtimeDir = join(out, 'xdg');
mkdirSync(runtimeDir, { recursive: true, mode: 0o700 });
const env = { ...process.env, CHROMIUM_PATH: chromiumPath() ?? '', XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? runtimeDir };
const bin = (pkg, file) => join(root, 'node_modules', pkg, file);
const run = (label, args) => {
  console.log(`\n=== ${label} ===`);
  return spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env }).status ?? 1;
};

let passed = 0;
let failed = 0;
const steps = [];

const tsc = run('type check', [bin('typescript', 'bin/tsc'), '--noEmit', '-p', '.']);
steps.push(['type check', tsc]);
tsc === 0 ? passed++ : failed++;

const vitestJson = join(out, 'vitest.json');
const vt = run('unit and GPU-kernel tests (Vitest, Node + Dawn)', [bin('vitest', 'vitest.mjs'), 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${vitestJson}`]);
steps.push(['vitest', vt]);
if (existsSync(vitestJson)) {
  const r = JSON.parse(readFileSync(vitestJson, 'utf8'));
  passed += r.numPassedTests ?? 0;
  failed += (r.numFailedTests ?? 0) + (r.numFailedTestSuites ?? 0) * (r.numTotalTests ? 0 : 1);
  if (vt !== 0 && !(r.numFailedTests > 0)) failed++;
} else if (vt !== 0) failed++;

const build = run('build (vite)', [bin('vite', 'bin/vite.js'), 'build']);
steps.push(['build', build]);
build === 0 ? passed++ : failed++;

if (build === 0) {
  const pwJson = join(out, 'playwright.json');
  const pw = spawnSync(process.execPath, [bin('playwright', 'cli.js'), 'test'], {
    cwd: root,
    stdio: 'inherit',
    env: { ...env, PLAYWRIGHT_JSON_OUTPUT_NAME: pwJson },
  }).status ?? 1;
  steps.push(['end-to-end (Playwright, Chromium)', pw]);
  if (existsSync(pwJson)) {
    const s = JSON.parse(readFileSync(pwJson, 'utf8')).stats ?? {};
    passed += s.expected ?? 0;
    failed += (s.unexpected ?? 0) + (s.flaky ?? 0);
    if (pw !== 0 && !(s.unexpected > 0)) failed++;
  } else if (pw !== 0) failed++;
}

console.log('\n' + steps.map(([n, c]) => `${c === 0 ? 'ok  ' : 'FAIL'} ${n}`).join('\n'));
console.log(`tests: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && steps.every(([, c]) => c === 0) ? 0 : 1);
