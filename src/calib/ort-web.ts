/**
 * OrtRuntime over onnxruntime-web for the lab's worker: the WebGPU execution provider when the browser has
 * one, the WebAssembly CPU provider otherwise. onnxruntime-web loads its .wasm from the asset the bundler
 * emits for it, or from `wasmPaths` when given.
 * Browser only: the CLI and the tests use ort-node.ts.
 */
import * as ort from 'onnxruntime-web/webgpu';
import { wrapOrtSession, type OrtRuntime, type OrtSessionLike } from './ort-runtime.ts';

export interface WebRuntimeOptions {
  /**
   * URL prefix (ending in '/') of onnxruntime-web's .wasm files. Default: where the bundler put the file the
   * bundle references (vite emits it as an asset: the WebGPU bundle of 1.30 loads the asyncify build).
   */
  wasmPaths?: string;
  /** WebAssembly threads (default: onnxruntime-web's choice; 1 unless the page is cross-origin isolated). */
  numThreads?: number;
  /** Skip WebGPU and use the wasm provider only. */
  wasmOnly?: boolean;
  /** Told which provider each new session got, and why WebGPU was given up when it was. */
  onProvider?: (provider: 'webgpu' | 'wasm', reason?: string) => void;
}

function wrap(session: ort.InferenceSession): OrtSessionLike {
  return wrapOrtSession(session, (data, dims) => new ort.Tensor('float32', data, dims));
}

/**
 * The worker's runtime. Each session is first created with ['webgpu', 'wasm'] (onnxruntime places the ops
 * WebGPU lacks on the CPU); when that throws (no adapter, device lost, a kernel that fails to compile), the
 * session is created again with ['wasm'] alone, and `name` says so from then on.
 */
export function webOrtRuntime(options: WebRuntimeOptions): OrtRuntime {
  if (options.wasmPaths) ort.env.wasm.wasmPaths = options.wasmPaths;
  if (options.numThreads !== undefined) ort.env.wasm.numThreads = options.numThreads;
  let webgpuFailed = options.wasmOnly ?? false;
  const runtime = {
    name: webgpuFailed ? 'onnxruntime-web (wasm)' : 'onnxruntime-web (webgpu)',
    async createSession(modelBytes: Uint8Array): Promise<OrtSessionLike> {
      const hasWebGpu = typeof navigator !== 'undefined' && 'gpu' in navigator;
      if (!webgpuFailed && hasWebGpu) {
        try {
          const session = await ort.InferenceSession.create(modelBytes, { executionProviders: ['webgpu', 'wasm'] });
          options.onProvider?.('webgpu');
          return wrap(session);
        } catch (e) {
          webgpuFailed = true;
          runtime.name = 'onnxruntime-web (wasm; WebGPU session failed)';
          options.onProvider?.('wasm', (e as Error).message);
        }
      } else if (!hasWebGpu && !webgpuFailed) {
        webgpuFailed = true;
        runtime.name = 'onnxruntime-web (wasm; no WebGPU)';
        options.onProvider?.('wasm', 'navigator.gpu is not available');
      } else {
        options.onProvider?.('wasm');
      }
      return wrap(await ort.InferenceSession.create(modelBytes, { executionProviders: ['wasm'] }));
    },
  };
  return runtime;
}
