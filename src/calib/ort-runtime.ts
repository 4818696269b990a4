/**
 * The small slice of onnxruntime that activation capture needs, so the same capture code runs on
 * onnxruntime-node (CLI, tests: ort-node.ts) and onnxruntime-web in a browser worker (ort-web.ts), and
 * tests can substitute a fake. Tensors cross this boundary as float32 only: adapters convert float16 /
 * float64 outputs, and capture never feeds anything but float32.
 * No Node imports: the browser bundles this file.
 */
import { decodeF16 } from '../model/formats/half.ts';

/** A dense float32 tensor, row-major. */
export interface FloatTensor {
  data: Float32Array;
  dims: number[];
}

export interface OrtSessionLike {
  /** Names of the model's graph inputs, in model order. */
  readonly inputNames: readonly string[];
  /** Names of the model's graph outputs, in model order. */
  readonly outputNames: readonly string[];
  /**
   * Runs the model. `outputNames` picks the outputs to fetch (default: all); onnxruntime keeps only those
   * alive to the end of the run, which is what bounds the memory of one capture run.
   */
  run(feeds: Record<string, FloatTensor>, outputNames?: readonly string[]): Promise<Record<string, FloatTensor>>;
  /** Frees the native session; the object must not be used afterwards. */
  release(): Promise<void>;
}

export interface OrtRuntime {
  /** What runs the model, for reports: `onnxruntime-node (cpu)`, `onnxruntime-web (webgpu)`... */
  readonly name: string;
  /** A session over a serialized ModelProto whose weights are all inline (no external data). */
  createSession(modelBytes: Uint8Array): Promise<OrtSessionLike>;
}

/** The onnxruntime Tensor fields adapters read (node and web share this shape). */
export interface OrtTensorLike {
  type: string;
  dims: readonly number[];
  data: unknown;
}

/**
 * A float32 copy-free view (or converted copy) of an onnxruntime output tensor. float16 arrives as the raw
 * bit patterns (Uint16Array, or Float16Array where the JS engine has it), float64 as Float64Array.
 */
export function floatTensorFromOrt(name: string, t: OrtTensorLike, decodeHalf: (bits: Uint16Array) => Float32Array): FloatTensor {
  const dims = t.dims.map(Number);
  const d = t.data;
  if (t.type === 'float32' && d instanceof Float32Array) return { data: d, dims };
  if (t.type === 'float16') {
    if (d instanceof Uint16Array) return { data: decodeHalf(d), dims };
    // Float16Array (newer engines): its elements are already numbers.
    return { data: Float32Array.from(d as ArrayLike<number>), dims };
  }
  if (t.type === 'float64' && d instanceof Float64Array) return { data: Float32Array.from(d), dims };
  throw new TypeError(`output "${name}" is ${t.type}: activation capture reads floating-point tensors only`);
}

/** The parts of an onnxruntime InferenceSession (node or web) the wrapper uses. */
export interface OrtInferenceSessionLike<T> {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, T>, fetches: string[]): Promise<Record<string, OrtTensorLike>>;
  release(): Promise<void>;
}

function decodeHalfBits(bits: Uint16Array): Float32Array {
  return decodeF16(new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength), 0, bits.length);
}

/** An onnxruntime session (node or web) as an OrtSessionLike; `tensor` builds that runtime's float32 Tensor. */
export function wrapOrtSession<T>(session: OrtInferenceSessionLike<T>, tensor: (data: Float32Array, dims: number[]) => T): OrtSessionLike {
  return {
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    async run(feeds, outputNames) {
      const ortFeeds: Record<string, T> = {};
      for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = tensor(t.data, t.dims);
      const result = await session.run(ortFeeds, [...(outputNames ?? session.outputNames)]);
      const out: Record<string, FloatTensor> = {};
      // Outputs come back on the CPU (preferredOutputLocation defaults to 'cpu'), so `data` is readable.
      for (const [name, t] of Object.entries(result)) out[name] = floatTensorFromOrt(name, t, decodeHalfBits);
      return out;
    },
    release: () => session.release(),
  };
}
