#!/usr/bin/env node
// Installs what the lab needs on a fresh machine and does nothing when it is already there:
// npm dependencies (always), and with --system the Debian packages the tests need (chromium for the
// browser tests and SwiftShader's Vulkan driver, libvulkan1 for WebGPU in Node).
// Uses only Node built-ins: it runs before node_modules exists.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const log = (m) => console.log(`[setup] ${m}`);

export function chromiumPath() {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter(Boolean);
  return candidates.find((p) => existsSync(p));
}

function hasLibVulkan() {
  try {
    return execFileSync('/sbin/ldconfig', ['-p'], { encoding: 'utf8' }).includes('libvulkan.so.1');
  } catch {
    return existsSync('/usr/lib/x86_64-linux-gnu/libvulkan.so.1') || existsSync('/usr/lib/aarch64-linux-gnu/libvulkan.so.1');
  }
}

function ensureNpmDeps() {
  const marker = join(root, 'node_modules', '.package-lock.json');
  const lock = join(root, 'package-lock.json');
  const pkg = join(root, 'package.json');
  const stale = !existsSync(marker) || statSync(pkg).mtimeMs > statSync(marker).mtimeMs || (existsSync(lock) && statSync(lock).mtimeMs > statSync(marker).mtimeMs);
  if (!stale) return;
  log('installing npm dependencies ...');
  const env = { ...process.env, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: '1', ONNXRUNTIME_NODE_INSTALL_CUDA: 'skip' };
  const args = existsSync(lock) && process.env.CI ? ['ci', '--no-audit', '--no-fund'] : ['install', '--no-audit', '--no-fund'];
  const r = spawnSync('npm', args, { cwd: root, stdio: 'inherit', env });
  if (r.status !== 0) {
    console.error('[setup] npm install failed; see the messages above.');
    process.exit(r.status ?? 1);
  }
}

function ensureSystemPackages() {
  const missing = [];
  if (!chromiumPath()) missing.push('chromium');
  if (!hasLibVulkan()) missing.push('libvulkan1');
  if (missing.length === 0) return;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot || !existsSync('/usr/bin/apt-get')) {
    console.error(
      `[setup] missing system packages: ${missing.join(' ')}.\n` +
        `        Install them (Debian/Ubuntu: sudo apt-get install -y ${missing.join(' ')}), or set CHROMIUM_PATH to a Chromium binary.`,
    );
    process.exit(1);
  }
  log(`installing Debian packages: ${missing.join(' ')} ...`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update'], ['install', '-y', '--no-install-recommends', ...missing]]) {
    const r = spawnSync('apt-get', args, { stdio: 'inherit', env });
    if (r.status !== 0) {
      console.error(`[setup] apt-get ${args.join(' ')} failed.`);
      process.exit(r.status ?? 1);
    }
  }
}

export function setup({ system = false } = {}) {
  const [major] = process.versions.node.split('.').map(Number);
  if (major < 20) {
    console.error(`[setup] Node.js 20 or newer is needed, this is ${process.version}.`);
    process.exit(1);
  }
  if (system) ensureSystemPackages();
  ensureNpmDeps();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  setup({ system: process.argv.includes('--system') });
}
