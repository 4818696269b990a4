/**
 * OrtRuntime over onnxruntime-node (CPU execution provider), for the CLI and the tests.
 * Node only: imports the native addon.
 */
import * as ort from 'onnxruntime-node';
import { wrapOrtSession, type OrtRuntime, type OrtSessionLike } from './ort-runtime.ts';

export interface NodeRuntimeOptions {
  /** Intra-op threads (default: onnxruntime's choice, one per core). */
  intraOpNumThreads?: number;
}

export function nodeOrtRuntime(options: NodeRuntimeOptions = {}): OrtRuntime {
  return {
    name: 'onnxruntime-node (cpu)',
    async createSession(modelBytes: Uint8Array): Promise<OrtSessionLike> {
      const session = await ort.InferenceSession.create(modelBytes, {
        executionProviders: ['cpu'],
        ...(options.intraOpNumThreads ? { intraOpNumThreads: options.intraOpNumThreads } : {}),
      });
      return wrapOrtSession(session, (data, dims) => new ort.Tensor('float32', data, dims));
    },
  };
}
