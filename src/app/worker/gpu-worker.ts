/**
 * The GPU worker: owns the GpuContext, the QuantKernels and the tensor under study, so that uploads, kernel
 * compiles and read-backs never block the page. It serves the requests of protocol.ts one message at a time;
 * analyses run one after another, and a new analyze cancels the one before it.
 */
import { GpuContext } from '../../gpu/context.ts';
import { CancelledError, GpuDeviceLostError } from '../../gpu/errors.ts';
import { browserShaderLoader } from '../../gpu/shaders-browser.ts';
import { analyzeTensor, defaultSweepRatios, type TensorAnalysis } from '../../quant/analyze.ts';
import { QuantKernels } from '../../quant/gpu-kernels.ts';
import type { QuantConfig } from '../../quant/config.ts';
import { makeGroupLayout } from '../../quant/layout.ts';
import type { ClipSweepPoint } from '../../quant/reference/metrics.ts';
import { withProgress } from './progress-kernels.ts';
import type { FromWorker, Progress, RequestMap, ToWorker, WorkerRequest } from './protocol.ts';
import { loadTensor, type LoadedTensor } from './tensor-input.ts';
import { ModelSession } from './model-session.ts';

const scope = self as unknown as DedicatedWorkerGlobalScope;

let context: Promise<GpuContext> | undefined;
/** The context once created, to ask synchronously whether its device is gone. */
let created: GpuContext | undefined;
let tensor: LoadedTensor | undefined;
/** The analysis now running; the next analyze aborts it and waits for it to let go of the GPU. */
let running: { controller: AbortController; done: Promise<unknown> } | undefined;
const controllers = new Map<number, AbortController>();
const session = new ModelSession();

function post(msg: FromWorker, transfer: Transferable[] = []): void {
  scope.postMessage(msg, transfer);
}

function createContext(): Promise<GpuContext> {
  const pending = GpuContext.create({
    gpu: scope.navigator.gpu,
    loadShader: browserShaderLoader,
    onLost: (err) => post({ type: 'deviceLost', message: err.message }),
  });
  pending.then(
    (ctx) => {
      // A context created before a restart finished must not pass for the current one.
      if (context === pending) created = ctx;
    },
    // A failed creation is not cached: the next init or restart tries again.
    () => {
      if (context === pending) context = undefined;
    },
  );
  return pending;
}

async function liveContext(): Promise<GpuContext> {
  context ??= createContext();
  const ctx = await context;
  ctx.assertAlive();
  return ctx;
}

async function kernels(): Promise<QuantKernels> {
  return new QuantKernels(await liveContext());
}

/** The typed arrays of an analysis, listed once each (two views of one buffer cannot both be transferred). */
function transferablesOf(a: TensorAnalysis): Transferable[] {
  const set = new Set<ArrayBuffer>();
  for (const arr of [a.histogram.counts, a.rowAbsmax, a.colAbsmax]) set.add(arr.buffer as ArrayBuffer);
  return [...set];
}

/** Share of the progress bar for everything before the sweep (the sweep is the slowest part on software GPUs). */
const PARTIAL_SHARE = 0.5;
/**
 * Values x ratios per sweep dispatch. The sweep can only stop between dispatches; about 2M evaluations take a
 * few seconds on SwiftShader and microseconds on a real GPU, so Cancel stays prompt at any tensor size.
 */
const SWEEP_CHUNK_WORK = 2 ** 21;

/**
 * The clipping sweep in chunks of ratios, on one upload and one set of group statistics. Each ratio's sums are
 * independent of the others, so the chunks give exactly the one-dispatch result.
 */
async function chunkedSweep(
  k: QuantKernels,
  x: Float32Array,
  shape: [number, number],
  cfg: Required<QuantConfig>,
  ratios: number[],
  signal: AbortSignal,
  progress: (p: Progress) => void,
): Promise<ClipSweepPoint[]> {
  const layout = makeGroupLayout(shape, cfg.granularity, cfg.groupSize);
  const t = k.upload(x, 'tensor');
  let stats: GPUBuffer | undefined;
  try {
    stats = await k.groupStatsBuffer(t, layout);
    const out: ClipSweepPoint[] = [];
    const chunk = Math.max(1, Math.floor(SWEEP_CHUNK_WORK / x.length));
    for (let i = 0; i < ratios.length; i += chunk) {
      if (signal.aborted) throw new CancelledError();
      progress({ stage: `clipping sweep, ${i} of ${ratios.length} ratios`, fraction: PARTIAL_SHARE + ((1 - PARTIAL_SHARE) * i) / ratios.length });
      out.push(...(await k.clipSweepFromStats(t, layout, stats, cfg, ratios.slice(i, i + chunk))));
    }
    if (signal.aborted) throw new CancelledError();
    return out;
  } finally {
    if (stats) k.ctx.pool.release(stats);
    k.release(t);
  }
}

/**
 * Everything but the sweep first (posted through `partial` as soon as it is ready, so the numbers and two of
 * the three charts appear early), then the clipping sweep, the slowest kernel by far.
 */
async function analyze(
  payload: RequestMap['analyze']['payload'],
  signal: AbortSignal,
  progress: (p: Progress) => void,
  partial: (a: TensorAnalysis) => void,
): Promise<{ sweep: ClipSweepPoint[] }> {
  const previous = running;
  previous?.controller.abort();
  const controller = new AbortController();
  signal.addEventListener('abort', () => controller.abort(), { once: true });
  const work = (async () => {
    // The superseded analysis stops at its next kernel; wait so that two analyses never share the queue.
    if (previous) await previous.done.catch(() => undefined);
    if (controller.signal.aborted) throw new CancelledError();
    if (!tensor) throw new Error('no tensor loaded: choose a synthetic tensor or a .npy file first');
    const { x, info } = tensor;
    progress({ stage: created ? 'starting' : 'starting the GPU', fraction: 0 });
    const raw = await kernels();
    const a = await analyzeTensor(withProgress(raw, controller.signal, progress, [0, PARTIAL_SHARE]), x, info.shape, payload.config, {
      ratios: [],
      signal: controller.signal,
    });
    partial(a);
    const sweep = await chunkedSweep(raw, x, info.shape, a.config, payload.ratios ?? defaultSweepRatios(), controller.signal, progress);
    return { sweep };
  })();
  const entry = { controller, done: work };
  running = entry;
  try {
    return await work;
  } finally {
    if (running === entry) running = undefined;
  }
}

async function handle(req: WorkerRequest, signal: AbortSignal): Promise<{ result: unknown; transfer?: Transferable[] }> {
  const progress = (p: Progress) => post({ type: 'progress', id: req.id, progress: p });
  switch (req.kind) {
    case 'init':
      context ??= createContext();
      return { result: (await context).description };
    case 'restart': {
      const old = context;
      context = undefined;
      running?.controller.abort();
      const oldCtx = await old?.catch(() => undefined);
      session.dropEngine();
      oldCtx?.dispose();
      created = undefined;
      context = createContext();
      return { result: (await context).description };
    }
    case 'setTensor': {
      progress({ stage: req.payload.kind === 'npy' ? `reading ${req.payload.name}` : 'generating tensor' });
      // Parse into a candidate first: a rejected file must leave the current tensor in place.
      const next = loadTensor(req.payload);
      if (signal.aborted) throw new CancelledError();
      tensor = next;
      return { result: next.info };
    }
    case 'analyze': {
      const result = await analyze(req.payload, signal, progress, (a) => post({ type: 'partial', id: req.id, partial: a }, transferablesOf(a)));
      return { result };
    }
    case 'openModel':
      return { result: await session.open(req.payload, signal, progress) };
    case 'quantizeModel':
      return { result: await session.quantize(await liveContext(), req.payload, signal, progress) };
    case 'generate': {
      const ctx = await liveContext();
      return { result: await session.generate(ctx, req.payload, signal, progress, (p) => post({ type: 'partial', id: req.id, partial: p })) };
    }
    case 'calibrate':
      return { result: await session.calibrate(await liveContext(), req.payload, signal, progress) };
    case 'awq': {
      const ctx = await liveContext();
      return { result: await session.awq(ctx, req.payload, signal, progress, (p) => post({ type: 'partial', id: req.id, partial: p })) };
    }
    case 'smoothquant':
      return { result: await session.smoothquant(await liveContext(), req.payload, signal, progress) };
    case 'evaluate': {
      const ctx = await liveContext();
      return { result: await session.evaluate(ctx, req.payload, signal, progress, (row) => post({ type: 'partial', id: req.id, partial: row })) };
    }
    case 'loseDevice': {
      const ctx = await context;
      ctx?.device.destroy();
      return { result: null };
    }
  }
}

function errorData(e: unknown): { name: string; message: string } {
  if (e instanceof Error) return { name: e.name, message: e.message };
  return { name: 'Error', message: String(e) };
}

scope.onmessage = (ev: MessageEvent<ToWorker>) => {
  const msg = ev.data;
  if (msg.type === 'cancel') {
    controllers.get(msg.id)?.abort();
    return;
  }
  const controller = new AbortController();
  controllers.set(msg.id, controller);
  handle(msg, controller.signal)
    .then(({ result, transfer }) => post({ type: 'result', id: msg.id, result }, transfer))
    .catch((e: unknown) => {
      // A lost device surfaces in many shapes (failed map, validation error); name it once, clearly.
      const lost = e instanceof CancelledError ? undefined : lostError();
      post({ type: 'error', id: msg.id, error: errorData(lost ?? e) });
    })
    .finally(() => controllers.delete(msg.id));
};

/** The loss error of the current context when its device is gone. */
function lostError(): GpuDeviceLostError | undefined {
  try {
    created?.assertAlive();
  } catch (e) {
    if (e instanceof GpuDeviceLostError) return e;
  }
  return undefined;
}
