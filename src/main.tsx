/** Entry point: the store, the GPU worker client and the Playground engine, then the React tree. */
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './app/app.tsx';
import { GpuClient } from './app/engine/gpu-client.ts';
import { ModelEngine } from './app/engine/model-engine.ts';
import { PlaygroundEngine } from './app/engine/playground-engine.ts';
import { EngineContext, ModelEngineContext } from './app/engine-context.ts';
import { useAppStore } from './app/store/index.ts';
import { syncHash } from './app/sync-hash.ts';
import './app/styles.css';

const client = new GpuClient();
const engine = new PlaygroundEngine(client, useAppStore);
const modelEngine = new ModelEngine(client, useAppStore);
syncHash(useAppStore);
void engine.start();

// ?debug exposes the engine for the end-to-end tests (device-loss recovery); it is never needed otherwise.
if (new URLSearchParams(location.search).has('debug')) {
  (window as unknown as { quantlab: unknown }).quantlab = { engine, modelEngine, store: useAppStore };
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <EngineContext.Provider value={engine}>
      <ModelEngineContext.Provider value={modelEngine}>
        <App />
      </ModelEngineContext.Provider>
    </EngineContext.Provider>
  </StrictMode>,
);
