/**
 * OrtRuntime over onnxruntime-web for the lab's worker: the WebGPU execution provider when the browser has
 * one, the WebAssembly CPU provider otherwise. onnxruntime-web loads its .wasm (and .mjs glue) from
 * `wasmPaths`, a URL prefix the caller gives (where the app serves node_modules/onnxruntime-web/dist).
 * Browser only: the CLI and the tests use ort-node.ts.
 */
import * as ort from 'onnxruntime-web/webgpu';
import { decodeF16 } from '../model/formats/half.ts';
import { floatTensorFromOrt, type FloatTensor, type OrtRuntime, type OrtSessionLike } from './ort-runtime.ts';

export interface WebRuntimeOptions {
  /** URL prefix (ending in '/') of onnxruntime-web's dist files: `ort-wasm-simd-threaded.jsep.wasm` etc. */
  wasmPaths: string;
  /** WebAssembly threads (default: onnxruntime-web's choice; 1 unless the page is cross-origin isolated). */
  numThreads?: number;
  /** Skip WebGPU and use the wasm provider only. */
  wasmOnly?: boolean;
  /** Told which provider each new session got, and why WebGPU was given up when it was. */
  onProvider?: (provider: 'webgpu' | 'wasm', reason?: string) => void;
}

function decodeHalf(bits: Uint16Array): Float32Array {
  return decodeF16(new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength), 0, bits.length);
}

function wrap(session: ort.InferenceSession): OrtSessionLike {
  return {
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    async run(feeds, outputNames) {
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = new ort.Tensor('float32', t.data, t.dims);
      const result = outputNames ? await session.run(ortFeeds, [...outputNames]) : await session.run(ortFeeds);
      const out: Record<string, FloatTensor> = {};
      // Outputs come back on the CPU (preferredOutputLocation defaults to 'cpu'), so `data` is readable.
      for (const [name, t] of Object.entries(result)) out[name] = floatTensorFromOrt(name, t, decodeHalf);
      return out;
    },
    release: () => session.release(),
  };
}

/**
 * The worker's runtime. Each session is first created with ['webgpu', 'wasm'] (onnxruntime places the ops
 * WebGPU lacks on the CPU); when that throws (no adapter, device lost, a kernel that fails to compile), the
 * session is created again with ['wasm'] alone, and `name` says so from then on.
 */
export function webOrtRuntime(options: WebRuntimeOptions): OrtRuntime {
  ort.env.wasm.wasmPaths = options.wasmPaths;
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
