/**
 * The GPU context: the one owner of the WebGPU device, its pipeline cache and its buffer pool.
 * It runs unchanged in Chromium (navigator.gpu) and in Node (npm `webgpu`, Dawn): the caller passes
 * the GPU object and a shader loader. Device loss becomes a GpuDeviceLostError on the next call,
 * validation and out-of-memory errors of a dispatch become a GpuValidationError for that call.
 */
import { BufferPool } from './buffer-pool.ts';
import { GpuDeviceLostError, GpuLimitError, GpuUnavailableError, GpuValidationError, howToEnableWebGpu } from './errors.ts';
import { resolveIncludes, type ShaderLoader } from './shader-source.ts';

export type OptionalFeature = 'shader-f16' | 'subgroups' | 'timestamp-query';
const OPTIONAL_FEATURES: OptionalFeature[] = ['shader-f16', 'subgroups', 'timestamp-query'];

/** Limits requested at the adapter's maximum: real LLM layers exceed the 128 MiB default binding size. */
const RAISED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupsPerDimension',
] as const;

export interface GpuContextOptions {
  /** navigator.gpu in a browser or worker; the Dawn GPU object in Node. */
  gpu: GPU | undefined;
  loadShader: ShaderLoader;
  adapterOptions?: GPURequestAdapterOptions;
  /** Called once when the device is lost (not when it is disposed). */
  onLost?: (err: GpuDeviceLostError) => void;
}

export type Constants = Record<string, number | boolean>;

/** One compute pass: a kernel file, its override constants, its storage/uniform buffers in binding order, the grid. */
export interface ComputeStep {
  shader: string;
  entryPoint?: string;
  constants?: Constants;
  bindings: GPUBuffer[];
  workgroups: readonly [number, number?, number?];
}

/** A buffer-to-buffer copy between passes (e.g. new keys and values into the KV cache). */
export interface CopyStep {
  copy: { src: GPUBuffer; srcOffset: number; dst: GPUBuffer; dstOffset: number; size: number };
}

export type Step = ComputeStep | CopyStep;

function isCopy(s: Step): s is CopyStep {
  return 'copy' in s;
}

export interface DeviceDescription {
  vendor: string;
  architecture: string;
  description: string;
  features: OptionalFeature[];
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  isFallbackAdapter: boolean;
}

export class GpuContext {
  readonly pool: BufferPool;
  private readonly pipelines = new Map<string, Promise<GPUComputePipeline>>();
  private readonly modules = new Map<string, GPUShaderModule>();
  private lostError: GpuDeviceLostError | undefined;
  private disposed = false;

  private constructor(
    readonly device: GPUDevice,
    readonly description: DeviceDescription,
    private readonly loadShader: ShaderLoader,
  ) {
    this.pool = new BufferPool(device);
  }

  static async create(opts: GpuContextOptions): Promise<GpuContext> {
    if (!opts.gpu) throw new GpuUnavailableError(howToEnableWebGpu());
    const adapter = await opts.gpu.requestAdapter(opts.adapterOptions);
    if (!adapter) throw new GpuUnavailableError(`No WebGPU adapter was found. ${howToEnableWebGpu()}`);
    const features = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f));
    const requiredLimits: Record<string, number> = {};
    for (const name of RAISED_LIMITS) {
      const v = (adapter.limits as unknown as Record<string, number>)[name];
      if (typeof v === 'number') requiredLimits[name] = v;
    }
    const device = await adapter.requestDevice({ requiredFeatures: features, requiredLimits, label: 'quantlab' });
    const info = adapter.info;
    const ctx = new GpuContext(
      device,
      {
        vendor: info?.vendor ?? '',
        architecture: info?.architecture ?? '',
        description: info?.description ?? '',
        features,
        maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
        maxBufferSize: device.limits.maxBufferSize,
        isFallbackAdapter: Boolean((info as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter),
      },
      opts.loadShader,
    );
    void device.lost.then((lost) => {
      if (ctx.disposed) return;
      ctx.lostError = new GpuDeviceLostError(lost.reason ?? 'unknown', lost.message);
      opts.onLost?.(ctx.lostError);
    });
    return ctx;
  }

  get isLost(): boolean {
    return this.lostError !== undefined;
  }

  /** A software adapter (SwiftShader, or one the browser marks as fallback): the CPU beats it at small jobs. */
  get isSoftware(): boolean {
    const d = this.description;
    return d.isFallbackAdapter || /swiftshader|llvmpipe|lavapipe/i.test(`${d.vendor} ${d.architecture} ${d.description}`);
  }

  hasFeature(f: OptionalFeature): boolean {
    return this.description.features.includes(f);
  }

  /** Throws if the device is gone; every operation calls it first. */
  assertAlive(): void {
    if (this.lostError) throw this.lostError;
    if (this.disposed) throw new GpuDeviceLostError('destroyed', 'the GPU context was disposed');
  }

  /** Throws a GpuLimitError naming the tensor when a binding would exceed the device limits. */
  checkBindingSize(bytes: number, what: string): void {
    const max = Math.min(this.description.maxStorageBufferBindingSize, this.description.maxBufferSize);
    if (bytes > max) {
      const mib = (b: number) => (b / 2 ** 20).toFixed(1);
      throw new GpuLimitError(`${what} needs ${mib(bytes)} MiB in one GPU buffer, but this device allows at most ${mib(max)} MiB per storage binding`);
    }
  }

  private module(file: string): GPUShaderModule {
    let m = this.modules.get(file);
    if (!m) {
      m = this.device.createShaderModule({ label: file, code: resolveIncludes(file, this.loadShader) });
      this.modules.set(file, m);
    }
    return m;
  }

  /** Cached compute pipeline for (kernel file, entry point, override constants). */
  pipeline(file: string, entryPoint = 'main', constants: Constants = {}): Promise<GPUComputePipeline> {
    const key = `${file}|${entryPoint}|${Object.keys(constants)
      .sort()
      .map((k) => `${k}=${Number(constants[k])}`)
      .join(',')}`;
    let p = this.pipelines.get(key);
    if (!p) {
      const module = this.module(file);
      const numeric: Record<string, number> = {};
      for (const [k, v] of Object.entries(constants)) numeric[k] = Number(v);
      p = this.device
        .createComputePipelineAsync({ label: key, layout: 'auto', compute: { module, entryPoint, constants: numeric } })
        .catch(async (e: unknown) => {
          this.pipelines.delete(key);
          const info = await module.getCompilationInfo();
          const msgs = info.messages.map((m) => `${file}:${m.lineNum}:${m.linePos} ${m.type}: ${m.message}`).join('\n');
          throw new GpuValidationError(`cannot build kernel ${key}: ${e instanceof Error ? e.message : String(e)}${msgs ? `\n${msgs}` : ''}`);
        });
      this.pipelines.set(key, p);
    }
    return p;
  }

  /** A storage buffer holding `data` (padded to 4 bytes). Release it with ctx.pool.release. */
  upload(data: ArrayBufferView, what = 'tensor'): GPUBuffer {
    this.assertAlive();
    const bytes = Math.max(4, Math.ceil(data.byteLength / 4) * 4);
    this.checkBindingSize(bytes, what);
    const buf = this.pool.acquire(bytes, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST);
    const src = new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
    if (data.byteLength % 4 === 0) this.device.queue.writeBuffer(buf, 0, src);
    else {
      const padded = new Uint8Array(bytes);
      padded.set(src);
      this.device.queue.writeBuffer(buf, 0, padded);
    }
    return buf;
  }

  /** A storage buffer of `bytes` (not cleared unless `zero`). */
  storage(bytes: number, what = 'buffer', zero = false): GPUBuffer {
    this.assertAlive();
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    this.checkBindingSize(size, what);
    const buf = this.pool.acquire(size, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST);
    if (zero) {
      const enc = this.device.createCommandEncoder();
      enc.clearBuffer(buf, 0, size);
      this.device.queue.submit([enc.finish()]);
    }
    return buf;
  }

  /** A uniform buffer holding the given 32-bit words (u32/i32/f32 views of one ArrayBuffer). */
  uniform(words: ArrayBuffer): GPUBuffer {
    this.assertAlive();
    const size = Math.max(16, Math.ceil(words.byteLength / 16) * 16);
    const buf = this.pool.acquire(size, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    this.device.queue.writeBuffer(buf, 0, words);
    return buf;
  }

  /**
   * GPU time per kernel file, recorded with timestamp queries while `profiling` is set (benchmarks).
   * Each profiled run waits for its timestamps, so leave it off outside measurements.
   */
  profiling = false;
  readonly gpuTimeMs = new Map<string, number>();

  /** Encode and submit the steps in order, in one command buffer. */
  async run(allSteps: Step[]): Promise<void> {
    this.assertAlive();
    const order = allSteps;
    const steps = allSteps.filter((s): s is ComputeStep => !isCopy(s));
    const pipelines = await Promise.all(steps.map((s) => this.pipeline(s.shader, s.entryPoint, s.constants)));
    this.assertAlive();
    const device = this.device;
    // A run of copies alone has no pass to time (and a query set cannot be empty).
    const timed = this.profiling && this.hasFeature('timestamp-query') && steps.length > 0;
    const querySet = timed ? device.createQuerySet({ type: 'timestamp', count: 2 * steps.length }) : undefined;
    const resolveBytes = 16 * steps.length;
    const resolveBuf = timed ? this.pool.acquire(resolveBytes, GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC) : undefined;
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    const enc = device.createCommandEncoder();
    let i = -1;
    for (const step of order) {
      if (isCopy(step)) {
        const c = step.copy;
        enc.copyBufferToBuffer(c.src, c.srcOffset, c.dst, c.dstOffset, c.size);
        continue;
      }
      i++;
      const pipeline = pipelines[i];
      const pass = enc.beginComputePass(querySet ? { timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } } : {});
      pass.setPipeline(pipeline);
      pass.setBindGroup(
        0,
        device.createBindGroup({
          layout: pipeline.getBindGroupLayout(0),
          entries: step.bindings.map((buffer, binding) => ({ binding, resource: { buffer } })),
        }),
      );
      const [x, y = 1, z = 1] = step.workgroups;
      if (x > 0 && y > 0 && z > 0) pass.dispatchWorkgroups(x, y, z);
      pass.end();
    }
    if (querySet && resolveBuf) enc.resolveQuerySet(querySet, 0, 2 * steps.length, resolveBuf, 0);
    device.queue.submit([enc.finish()]);
    const validation = await device.popErrorScope();
    const oom = await device.popErrorScope();
    const err = validation ?? oom;
    if (err) {
      this.assertAlive();
      throw new GpuValidationError(`GPU ${validation ? 'validation' : 'out-of-memory'} error in ${steps.map((s) => s.shader).join(', ')}: ${err.message}`);
    }
    if (querySet && resolveBuf) {
      const t = new BigUint64Array(await this.read(resolveBuf, resolveBytes));
      this.pool.release(resolveBuf);
      querySet.destroy();
      steps.forEach((s, i) => {
        const ms = Number(t[2 * i + 1] - t[2 * i]) / 1e6;
        this.gpuTimeMs.set(s.shader, (this.gpuTimeMs.get(s.shader) ?? 0) + ms);
      });
    }
  }

  /** Copy `bytes` of a buffer back to the CPU. */
  async read(buffer: GPUBuffer, bytes: number, offset = 0): Promise<ArrayBuffer> {
    this.assertAlive();
    const size = Math.ceil(bytes / 4) * 4;
    const staging = this.pool.acquire(size, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(buffer, offset, staging, 0, size);
    this.device.queue.submit([enc.finish()]);
    try {
      await staging.mapAsync(GPUMapMode.READ, 0, size);
    } catch (e) {
      // A lost device rejects pending maps; give device.lost a moment to report why.
      await Promise.race([this.device.lost, new Promise((r) => setTimeout(r, 100))]);
      this.assertAlive();
      throw e;
    }
    const out = staging.getMappedRange(0, size).slice(0, bytes);
    staging.unmap();
    this.pool.release(staging);
    return out;
  }

  async readF32(buffer: GPUBuffer, count: number): Promise<Float32Array> {
    return new Float32Array(await this.read(buffer, count * 4));
  }

  /** Destroy every buffer and the device. The context cannot be used afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.pool.destroyAll();
    this.pipelines.clear();
    this.modules.clear();
    this.device.destroy();
  }
}

/** Largest workgroup count per grid dimension in WebGPU's default limits. */
export const MAX_GRID_DIM = 65535;

/**
 * A 2-D grid holding at least `count` workgroups (one dimension is capped at 65535). Kernels compute
 * their linear workgroup index as wid.x + wid.y * num_workgroups.x and skip indices >= count.
 */
export function grid(count: number): [number, number] {
  if (count <= MAX_GRID_DIM) return [Math.max(count, 0), 1];
  const y = Math.ceil(count / MAX_GRID_DIM);
  return [Math.ceil(count / y), y];
}
