/**
 * The Llama forward pass in WGSL: embedding, per block RMSNorm -> q/k/v -> RoPE (interleaved pairs) ->
 * grouped-query attention over a KV cache -> o (+ residual) -> RMSNorm -> SwiGLU MLP (+ residual), final
 * norm and classifier. One command buffer per forward call. Weights are f32 on the GPU, in the PyTorch
 * [out, in] layout; `transformWeight` lets callers substitute fake-quantized weights at load time, and
 * setWeight replaces one later. The CPU reference is forward-cpu.ts.
 */
import { grid, type GpuContext, type Step } from '../../gpu/context.ts';
import { CancelledError } from '../../gpu/errors.ts';
import type { LlamaCheckpoint, LlamaConfig } from './model.ts';
import { actFakeQuantStep, checkActQuant, type ActQuantOptions } from '../../eval/act-fake-quant.ts';

export interface LlamaGpuOptions {
  /** Substitute a weight before upload (e.g. fake-quantized linears). Shapes are [out, in] for linears. */
  transformWeight?: (name: string, data: Float32Array, shape: number[]) => Float32Array | Promise<Float32Array>;
  onProgress?: (done: number, total: number, name: string) => void;
  signal?: AbortSignal;
  /** Most tokens per forward call (prompt chunks); default 64. */
  maxBatch?: number;
  /**
   * Fake-quantize the input of every linear of every block (attn_in, attn_out, mlp_in, mlp_mid) in forward
   * (W8A8 evaluation; shaders/act-fake-quant.wgsl). Captures see the activations before quantization;
   * moduleForward is not affected. The classifier input stays in float.
   */
  actQuant?: ActQuantOptions;
}

/** Most tokens the decode-shaped matvec kernel takes; larger batches use the tiled kernel. */
const MATVEC_MAX_M = 8;
/** Output rows per matvec workgroup (32 lanes each). */
const MATVEC_ROWS = 32;
const MATVEC_LANES = 8;

function ropeTable(cfg: LlamaConfig): Float32Array {
  const half = cfg.headDim / 2;
  const t = new Float32Array(cfg.seqLen * half * 2);
  for (let pos = 0; pos < cfg.seqLen; pos++) {
    for (let i = 0; i < half; i++) {
      const freq = 1 / Math.pow(cfg.ropeTheta, (2 * i) / cfg.headDim);
      const a = pos * freq;
      t[2 * (pos * half + i)] = Math.cos(a);
      t[2 * (pos * half + i) + 1] = Math.sin(a);
    }
  }
  return t;
}

/** A copy of one linear layer input, refreshed by every forward chunk while capture is enabled. */
export interface LlamaCapturePoint {
  /** `layers.3.attn_in`, `layers.3.attn_out`, `layers.3.mlp_in`, `layers.3.mlp_mid`. */
  name: string;
  block: number;
  point: 'attn_in' | 'attn_out' | 'mlp_in' | 'mlp_mid' | string;
  cols: number;
  /** The linear layers reading this activation. */
  layers: string[];
  /** [maxBatch, cols]; the first (chunk tokens) rows are valid after a chunk. */
  buffer: GPUBuffer;
}

/** Builds the steps of one command buffer: uniform parameters (released after the run) and the shared kernels. */
class StepBuilder {
  readonly steps: Step[] = [];
  private readonly uniforms: GPUBuffer[] = [];

  constructor(
    private readonly model: { config: LlamaConfig },
    private readonly ctx: GpuContext,
    private readonly noBias: GPUBuffer,
  ) {}

  u(words: number[], floats: Record<number, number> = {}): GPUBuffer {
    const ab = new ArrayBuffer(Math.max(16, Math.ceil(words.length / 4) * 16));
    new Uint32Array(ab).set(words);
    const fv = new Float32Array(ab);
    for (const [i, v] of Object.entries(floats)) fv[Number(i)] = v;
    const buf = this.ctx.uniform(ab);
    this.uniforms.push(buf);
    return buf;
  }

  /** y[m, n] = x[m, k] . w[n, k]^T (+ bias) (+= y when accumulating): matvec for a few rows, tiled otherwise. */
  linear(x: GPUBuffer, w: GPUBuffer, bias: GPUBuffer | undefined, y: GPUBuffer, m: number, n: number, k: number, accumulate = false): void {
    const params = this.u([m, n, k, 0]);
    const constants = { ACCUMULATE: accumulate, HAS_BIAS: Boolean(bias) };
    if (m <= MATVEC_MAX_M) {
      const maxM = m === 1 ? 1 : m <= 2 ? 2 : m <= 4 ? 4 : 8;
      this.steps.push({ shader: 'matvec.wgsl', constants: { ...constants, ROWS: MATVEC_ROWS, LANES: MATVEC_LANES, MAX_M: maxM }, bindings: [params, x, w, bias ?? this.noBias, y], workgroups: grid(Math.ceil(n / MATVEC_ROWS)) });
    } else {
      this.steps.push({ shader: 'linear.wgsl', constants, bindings: [params, x, w, bias ?? this.noBias, y], workgroups: [Math.ceil(n / 64), Math.ceil(m / 64)] });
    }
  }

  rmsnorm(x: GPUBuffer, w: GPUBuffer, y: GPUBuffer, rows: number): void {
    const c = this.model.config;
    const params = this.u([rows, c.dim, 0, 0], { 2: c.normEps });
    this.steps.push({ shader: 'rmsnorm.wgsl', constants: { WG: 256 }, bindings: [params, x, w, y], workgroups: [rows] });
  }

  /** Release this uniform with the others after the run. */
  adopt(buf: GPUBuffer): void {
    this.uniforms.push(buf);
  }

  elementwise(n: number): [number, number] {
    return grid(Math.ceil(n / 256)) as [number, number];
  }

  release(): void {
    this.ctx.pool.releaseAll(this.uniforms);
    this.uniforms.length = 0;
  }
}

export class LlamaGpu {
  private readonly weights = new Map<string, GPUBuffer>();
  private readonly bufs: Record<string, GPUBuffer> = {};
  private position = 0;
  private disposed = false;
  private captures?: Map<string, LlamaCapturePoint>;

  private constructor(
    readonly ctx: GpuContext,
    readonly config: LlamaConfig,
    readonly maxBatch: number,
    readonly actQuant?: ActQuantOptions,
  ) {}

  /** Upload the checkpoint's weights and allocate activations and the KV cache. */
  static async load(ctx: GpuContext, ckpt: LlamaCheckpoint, opts: LlamaGpuOptions = {}): Promise<LlamaGpu> {
    const cfg = ckpt.config;
    const maxBatch = Math.max(1, Math.min(opts.maxBatch ?? 64, cfg.seqLen));
    if (opts.actQuant) checkActQuant(opts.actQuant, cfg.nLayers);
    const m = new LlamaGpu(ctx, cfg, maxBatch, opts.actQuant);
    try {
      const names = ckpt.tensors.map((t) => t.name);
      let done = 0;
      for (const info of ckpt.tensors) {
        if (opts.signal?.aborted) throw new CancelledError('model loading cancelled');
        let data = await ckpt.loadTensor(info.name);
        if (opts.transformWeight) data = await opts.transformWeight(info.name, data, info.shape);
        m.weights.set(info.name, ctx.upload(data, info.name));
        opts.onProgress?.(++done, names.length, info.name);
      }
      if (!m.weights.has('output')) {
        if (!cfg.tiedEmbeddings) throw new Error('checkpoint has no classifier weight (output) and does not tie embeddings');
      }
      m.allocate();
      return m;
    } catch (e) {
      m.dispose();
      throw e;
    }
  }

  private allocate(): void {
    const { ctx, config: c, maxBatch: b } = this;
    const kvDim = c.nKvHeads * c.headDim;
    const f = (n: number, what: string) => ctx.storage(n * 4, what);
    Object.assign(this.bufs, {
      ids: f(b, 'token ids'),
      x: f(b * c.dim, 'residual stream'),
      xb: f(b * c.dim, 'normed activations'),
      xlast: f(c.dim, 'last token activations'),
      q: f(b * c.nHeads * c.headDim, 'queries'),
      k: f(b * kvDim, 'keys'),
      v: f(b * kvDim, 'values'),
      att: f(b * c.nHeads * c.headDim, 'attention output'),
      hb: f(b * c.hiddenDim, 'MLP gate'),
      hb2: f(b * c.hiddenDim, 'MLP up'),
      scores: f(b * c.nHeads * c.seqLen, 'attention scores'),
      kcache: f(c.nLayers * c.seqLen * kvDim, 'key cache'),
      vcache: f(c.nLayers * c.seqLen * kvDim, 'value cache'),
      logits: f(b * c.vocabSize, 'logits'),
      rope: ctx.upload(ropeTable(c), 'RoPE table'),
      noBias: f(4, 'no bias'),
    });
  }

  /**
   * Keep a copy of the input of every linear layer of each forward chunk (calibration): per block the
   * attention input (read by wq/wk/wv), the attention output (wo), the MLP input (w1/w3) and the SwiGLU
   * output (w2). Each point holds [tokens of the chunk, cols]; read them in forward's onChunk callback.
   */
  enableCapture(): LlamaCapturePoint[] {
    if (!this.captures) {
      const c = this.config;
      const qDim = c.nHeads * c.headDim;
      this.captures = new Map();
      for (let l = 0; l < c.nLayers; l++) {
        const p = `layers.${l}.`;
        const points: [string, number, string[]][] = [
          ['attn_in', c.dim, ['wq', 'wk', 'wv']],
          ['attn_out', qDim, ['wo']],
          ['mlp_in', c.dim, ['w1', 'w3']],
          ['mlp_mid', c.hiddenDim, ['w2']],
        ];
        for (const [point, cols, linears] of points) {
          const name = p + point;
          this.captures.set(name, { name, block: l, point, cols, layers: linears.map((n) => p + n), buffer: this.ctx.storage(this.maxBatch * cols * 4, `captured ${name}`) });
        }
      }
    }
    return [...this.captures.values()];
  }

  disableCapture(): void {
    if (this.captures) this.ctx.pool.releaseAll([...this.captures.values()].map((c) => c.buffer));
    this.captures = undefined;
  }

  /** Tokens processed so far (the next token's position). */
  get pos(): number {
    return this.position;
  }

  reset(): void {
    this.position = 0;
  }

  /** Replace a weight (e.g. with a fake-quantized version); same shape as before. */
  setWeight(name: string, data: Float32Array): void {
    const old = this.weights.get(name);
    if (!old) throw new Error(`no weight named ${name}`);
    if (old.size < data.byteLength) throw new Error(`weight ${name} has ${old.size / 4} elements, got ${data.length}`);
    this.ctx.device.queue.writeBuffer(old, 0, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
  }

  private w(name: string): GPUBuffer {
    const buf = this.weights.get(name);
    if (!buf) throw new Error(`missing weight ${name}`);
    return buf;
  }

  /**
   * Run `tokens` at the current position and return logits: [tokens.length, vocab] with allLogits,
   * else the last token's [vocab].
   */
  async forward(tokens: number[], opts: { allLogits?: boolean; onChunk?: (tokens: number) => Promise<void> | void; signal?: AbortSignal } = {}): Promise<Float32Array> {
    if (this.disposed) throw new Error('model was disposed');
    const c = this.config;
    if (tokens.length === 0) throw new RangeError('forward needs at least one token');
    if (this.position + tokens.length > c.seqLen) {
      throw new RangeError(`context length exceeded: position ${this.position} + ${tokens.length} tokens > ${c.seqLen}`);
    }
    const parts: Float32Array[] = [];
    for (let s = 0; s < tokens.length; s += this.maxBatch) {
      if (opts.signal?.aborted) throw new CancelledError();
      const chunk = tokens.slice(s, s + this.maxBatch);
      parts.push(await this.forwardChunk(chunk, Boolean(opts.allLogits)));
      await opts.onChunk?.(chunk.length);
    }
    if (!opts.allLogits) return parts[parts.length - 1];
    const all = new Float32Array(tokens.length * c.vocabSize);
    parts.forEach((p, i) => all.set(p, i * this.maxBatch * c.vocabSize));
    return all;
  }

  private async forwardChunk(tokens: number[], allLogits: boolean): Promise<Float32Array> {
    const { ctx, config: c, bufs: B } = this;
    const T = tokens.length;
    const pos0 = this.position;
    const sb = new StepBuilder(this, ctx, B.noBias);
    const capture = (name: string, src: GPUBuffer) => {
      const cap = this.captures?.get(name);
      if (cap) sb.steps.push({ copy: { src, srcOffset: 0, dst: cap.buffer, dstOffset: 0, size: T * cap.cols * 4 } });
    };
    const aq = this.actQuant;
    const quantAct = (name: string, x: GPUBuffer, cols: number) => {
      if (!aq) return;
      const { step, params } = actFakeQuantStep(ctx, x, T, cols, aq.bits, aq.granularity, aq.amax?.get(name) ?? 0);
      sb.adopt(params);
      sb.steps.push(step);
    };
    const qDim = c.nHeads * c.headDim;
    ctx.device.queue.writeBuffer(B.ids, 0, new Uint32Array(tokens));
    sb.steps.push({ shader: 'embed.wgsl', bindings: [sb.u([T, c.dim, c.vocabSize, 0]), B.ids, this.w('tok_embeddings'), B.x], workgroups: sb.elementwise(T * c.dim) });
    for (let l = 0; l < c.nLayers; l++) {
      const p = `layers.${l}.`;
      sb.rmsnorm(B.x, this.w(p + 'attention_norm'), B.xb, T);
      capture(p + 'attn_in', B.xb);
      quantAct(p + 'attn_in', B.xb, c.dim);
      this.attentionSteps(sb, l, T, pos0, B.xb, B.x, true, (att) => {
        capture(p + 'attn_out', att);
        quantAct(p + 'attn_out', att, qDim);
      });
      sb.rmsnorm(B.x, this.w(p + 'ffn_norm'), B.xb, T);
      capture(p + 'mlp_in', B.xb);
      quantAct(p + 'mlp_in', B.xb, c.dim);
      this.mlpSteps(sb, l, T, B.xb, B.x, true, (h) => {
        capture(p + 'mlp_mid', h);
        quantAct(p + 'mlp_mid', h, c.hiddenDim);
      });
    }
    sb.rmsnorm(B.x, this.w('norm'), B.xb, T);
    const classifier = this.weights.get('output') ?? this.w('tok_embeddings');
    const rows = allLogits ? T : 1;
    if (allLogits) {
      sb.linear(B.xb, classifier, undefined, B.logits, T, c.vocabSize, c.dim);
    } else {
      sb.steps.push({ copy: { src: B.xb, srcOffset: (T - 1) * c.dim * 4, dst: B.xlast, dstOffset: 0, size: c.dim * 4 } });
      sb.linear(B.xlast, classifier, undefined, B.logits, 1, c.vocabSize, c.dim);
    }
    try {
      await ctx.run(sb.steps);
    } finally {
      sb.release();
    }
    this.position += T;
    return ctx.readF32(B.logits, rows * c.vocabSize);
  }

  /**
   * Block l's attention on the normed activations `xb` [T, dim] at positions pos0.., through the KV cache:
   * q/k/v (+ biases), RoPE, grouped-query attention, o; the result is added into (accumulate) or written to `y`.
   */
  private attentionSteps(sb: StepBuilder, l: number, T: number, pos0: number, xb: GPUBuffer, y: GPUBuffer, accumulate: boolean, onAttention?: (att: GPUBuffer) => void): void {
    const { config: c, bufs: B } = this;
    const kvDim = c.nKvHeads * c.headDim;
    const qDim = c.nHeads * c.headDim;
    const p = `layers.${l}.`;
    const bias = (n: string) => this.weights.get(p + n);
    sb.linear(xb, this.w(p + 'wq'), bias('bq'), B.q, T, qDim, c.dim);
    sb.linear(xb, this.w(p + 'wk'), bias('bk'), B.k, T, kvDim, c.dim);
    sb.linear(xb, this.w(p + 'wv'), bias('bv'), B.v, T, kvDim, c.dim);
    sb.steps.push({ shader: 'rope.wgsl', bindings: [sb.u([T, qDim, c.headDim, pos0]), B.rope, B.q], workgroups: sb.elementwise((T * qDim) / 2) });
    sb.steps.push({ shader: 'rope.wgsl', bindings: [sb.u([T, kvDim, c.headDim, pos0]), B.rope, B.k], workgroups: sb.elementwise((T * kvDim) / 2) });
    const cacheOffset = l * c.seqLen * kvDim;
    const bytes = T * kvDim * 4;
    sb.steps.push({ copy: { src: B.k, srcOffset: 0, dst: B.kcache, dstOffset: (cacheOffset + pos0 * kvDim) * 4, size: bytes } });
    sb.steps.push({ copy: { src: B.v, srcOffset: 0, dst: B.vcache, dstOffset: (cacheOffset + pos0 * kvDim) * 4, size: bytes } });
    sb.steps.push({
      shader: 'attention.wgsl',
      bindings: [sb.u([T, c.nHeads, c.nKvHeads, c.headDim, pos0, c.seqLen, cacheOffset, 0]), B.q, B.kcache, B.vcache, B.scores, B.att],
      workgroups: [T * c.nHeads],
    });
    onAttention?.(B.att);
    sb.linear(B.att, this.w(p + 'wo'), undefined, y, T, c.dim, qDim, accumulate);
  }

  /** Block l's SwiGLU MLP on `xb` [T, dim]: w2(silu(w1 x) * w3 x), added into or written to `y`. */
  private mlpSteps(sb: StepBuilder, l: number, T: number, xb: GPUBuffer, y: GPUBuffer, accumulate: boolean, onHidden?: (h: GPUBuffer) => void): void {
    const { config: c, bufs: B } = this;
    const p = `layers.${l}.`;
    sb.linear(xb, this.w(p + 'w1'), undefined, B.hb, T, c.hiddenDim, c.dim);
    sb.linear(xb, this.w(p + 'w3'), undefined, B.hb2, T, c.hiddenDim, c.dim);
    sb.steps.push({ shader: 'swiglu.wgsl', bindings: [sb.u([T * c.hiddenDim, 0, 0, 0]), B.hb, B.hb2], workgroups: sb.elementwise(T * c.hiddenDim) });
    onHidden?.(B.hb);
    sb.linear(B.hb, this.w(p + 'w2'), undefined, y, T, c.dim, c.hiddenDim, accumulate);
  }

  /**
   * One module of block `layer` alone, on given inputs (AWQ's "inspected module"): the attention ('attention',
   * input = the attention norm's output) or the MLP ('mlp', input = the FFN norm's output), with the weights
   * the model holds now (setWeight swaps candidates in). `input` holds one sequence [tokens, dim] starting at
   * `inputOffset` floats, at positions 0..tokens-1 (attention overwrites this layer's KV cache); the module
   * output [tokens, dim] (before the residual add) goes to `out` from `outOffset` floats.
   */
  async moduleForward(layer: number, module: 'attention' | 'mlp', input: GPUBuffer, tokens: number, out: GPUBuffer, opts: { inputOffset?: number; outOffset?: number } = {}): Promise<void> {
    if (this.disposed) throw new Error('model was disposed');
    const { ctx, config: c, bufs: B } = this;
    if (!(layer >= 0 && layer < c.nLayers)) throw new RangeError(`layer ${layer} is outside 0..${c.nLayers - 1}`);
    if (tokens < 1 || tokens > c.seqLen) throw new RangeError(`a module runs 1 to ${c.seqLen} tokens, got ${tokens}`);
    const inOff = opts.inputOffset ?? 0;
    const outOff = opts.outOffset ?? 0;
    for (let s = 0; s < tokens; s += this.maxBatch) {
      const T = Math.min(this.maxBatch, tokens - s);
      const sb = new StepBuilder(this, ctx, B.noBias);
      sb.steps.push({ copy: { src: input, srcOffset: (inOff + s * c.dim) * 4, dst: B.xb, dstOffset: 0, size: T * c.dim * 4 } });
      if (module === 'attention') this.attentionSteps(sb, layer, T, s, B.xb, B.x, false);
      else this.mlpSteps(sb, layer, T, B.xb, B.x, false);
      sb.steps.push({ copy: { src: B.x, srcOffset: 0, dst: out, dstOffset: (outOff + s * c.dim) * 4, size: T * c.dim * 4 } });
      try {
        await ctx.run(sb.steps);
      } finally {
        sb.release();
      }
    }
  }

  /** Greedy decoding: the prompt, then `n` argmax tokens (stops early at `stopToken` when given). */
  async generate(prompt: number[], n: number, opts: { onToken?: (id: number) => void; signal?: AbortSignal; stopToken?: number } = {}): Promise<number[]> {
    this.reset();
    const out: number[] = [];
    let logits = await this.forward(prompt);
    for (let i = 0; i < n; i++) {
      if (opts.signal?.aborted) throw new CancelledError('generation cancelled');
      const next = argmax(logits);
      out.push(next);
      opts.onToken?.(next);
      if (next === opts.stopToken || this.position >= this.config.seqLen) break;
      logits = await this.forward([next]);
    }
    return out;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.ctx.pool.releaseAll(this.weights.values());
    this.ctx.pool.releaseAll(Object.values(this.bufs));
    this.disableCapture();
    this.weights.clear();
  }
}

export function argmax(v: Float32Array): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}
