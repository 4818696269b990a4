/**
 * OrtRuntime over onnxruntime-node (CPU execution provider), for the CLI and the tests.
 * Node only: imports the native addon.
 */
import * as ort from 'onnxruntime-node';
import { decodeF16 } from '../model/formats/half.ts';
import { floatTensorFromOrt, type FloatTensor, type OrtRuntime, type OrtSessionLike } from './ort-runtime.ts';

export interface NodeRuntimeOptions {
  /** Intra-op threads (default: onnxruntime's choice, one per core). */
  intraOpNumThreads?: number;
}

function decodeHalf(bits: Uint16Array): Float32Array {
  return decodeF16(new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength), 0, bits.length);
}

export function nodeOrtRuntime(options: NodeRuntimeOptions = {}): OrtRuntime {
  return {
    name: 'onnxruntime-node (cpu)',
    async createSession(modelBytes: Uint8Array): Promise<OrtSessionLike> {
      const session = await ort.InferenceSession.create(modelBytes, {
        executionProviders: ['cpu'],
        ...(options.intraOpNumThreads ? { intraOpNumThreads: options.intraOpNumThreads } : {}),
      });
      return {
        inputNames: session.inputNames,
        outputNames: session.outputNames,
        async run(feeds, outputNames) {
          const ortFeeds: Record<string, ort.Tensor> = {};
          for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = new ort.Tensor('float32', t.data, t.dims);
          const result = outputNames ? await session.run(ortFeeds, [...outputNames]) : await session.run(ortFeeds);
          const out: Record<string, FloatTensor> = {};
          for (const [name, t] of Object.entries(result)) {
            out[name] = floatTensorFromOrt(name, t, decodeHalf);
          }
          return out;
        },
        release: () => session.release(),
      };
    },
  };
}
