#!/usr/bin/env node
// npm run bench: install what is missing (npm packages; chromium for SwiftShader's Vulkan driver and
// libvulkan1 through apt-get when root), then run the benchmark (bench/run.ts, TypeScript through tsx: the
// kernels, then the stories15M forward pass and whole-model RTN, then the calibration cases) with the arguments
// given, e.g. `npm run bench -- --sizes 1M,4M --out bench-results/k.json`, `npm run bench -- --only model`,
// `npm run bench -- --only calib --quick`, `--no-model`.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setup } from './setup.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
setup({ system: true });

// Dawn's Vulkan loader complains on every start when XDG_RUNTIME_DIR is unset; give it a private one.
let runtimeDir;
if (!process.env.XDG_RUNTIME_DIR) runtimeDir = mkdtempSync(join(tmpdir(), 'quantlab-bench-xdg-'));
const env = { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? runtimeDir };

// --expose-gc lets the bench free one size's tensors before building the next.
const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', 'bench/run.ts', ...process.argv.slice(2)], { cwd: root, stdio: 'inherit', env });
if (runtimeDir) rmSync(runtimeDir, { recursive: true, force: true });
if (r.error) console.error(`[bench] could not start: ${r.error.message}`);
process.exit(r.status ?? 1);
