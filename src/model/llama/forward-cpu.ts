/**
 * The CPU reference forward pass of a Llama-family decoder in float32, one token at a time with a KV
 * cache: the specification the WGSL forward pass (forward-gpu.ts) is tested against. It follows
 * llama2.c run.c `forward` (karpathy/llama2.c):
 *
 *   x = tok_embeddings[token]
 *   per layer: xb = rmsnorm(x, attention_norm)          rmsnorm(x, w) = w * x / sqrt(mean(x^2) + eps)
 *              q = wq xb (+ bq), k = wk xb (+ bk), v = wv xb (+ bv)
 *              RoPE on q and k: each head's pairs (2i, 2i+1) rotated by pos * theta^(-2i/headDim)
 *              k, v -> cache[pos]; head h attends over positions 0..pos with KV head h / (nHeads / nKvHeads),
 *              softmax(q.k / sqrt(headDim)) weights the cached v
 *              x += wo att
 *              xb = rmsnorm(x, ffn_norm); x += w2 (silu(w1 xb) * w3 xb)
 *   logits = output (or tok_embeddings when tied) rmsnorm(x, norm)
 *
 * Sums are accumulated in double (JavaScript numbers) and stored as float32, so results differ from
 * run.c's float accumulation by rounding only. Weights are held as float32 in memory (about 4 bytes per
 * parameter): meant for small models and for checking; large models run on the GPU.
 */
import { CheckpointError, expectedTensors, numel, type LlamaCheckpoint, type LlamaConfig } from './model.ts';
import { mulberry32 } from '../../util/random.ts';
import { actFakeQuantRef, checkActQuant, type ActQuantOptions } from '../../eval/act-fake-quant.ts';

export interface LlamaCpuOptions {
  /** KV cache length; defaults to the model's seqLen. */
  maxSeqLen?: number;
  /** Substitute a weight at load time (e.g. fake-quantized linears); must keep the length. */
  transformWeight?: (name: string, data: Float32Array, shape: number[]) => Float32Array | Promise<Float32Array>;
  onProgress?: (done: number, total: number, name: string) => void;
  /**
   * Fake-quantize the input of every linear of every block (the reference of LlamaGpuOptions.actQuant):
   * per token, each position's vector is one row. The linear-input hook sees the values before quantization.
   */
  actQuant?: ActQuantOptions;
}

/**
 * Receives the input vector of a linear layer during forward: `layers.N.wq` (shared by wq, wk, wv),
 * `layers.N.wo`, `layers.N.w1` (shared by w1, w3), `layers.N.w2`, `output`. The array is reused: copy
 * what you keep. Used to collect calibration statistics.
 */
export type LinearInputHook = (linear: string, x: Float32Array, pos: number) => void;

export interface GenerateOptions {
  /** Argmax decoding (default). With false, samples from softmax(logits / temperature). */
  greedy?: boolean;
  temperature?: number;
  /** Seed of the sampler (mulberry32). */
  seed?: number;
  /** Stop after emitting one of these tokens (it is included in the result). */
  stopTokens?: number[];
  onToken?: (id: number) => void;
}

interface LayerWeights {
  attentionNorm: Float32Array;
  wq: Float32Array;
  wk: Float32Array;
  wv: Float32Array;
  wo: Float32Array;
  bq?: Float32Array;
  bk?: Float32Array;
  bv?: Float32Array;
  ffnNorm: Float32Array;
  w1: Float32Array;
  w2: Float32Array;
  w3: Float32Array;
}

const LAYER_FIELDS: Record<string, keyof LayerWeights> = {
  attention_norm: 'attentionNorm',
  wq: 'wq',
  wk: 'wk',
  wv: 'wv',
  wo: 'wo',
  bq: 'bq',
  bk: 'bk',
  bv: 'bv',
  ffn_norm: 'ffnNorm',
  w1: 'w1',
  w2: 'w2',
  w3: 'w3',
};

export class LlamaCpu {
  readonly config: LlamaConfig;
  /** Positions the KV cache holds. */
  readonly cacheLength: number;
  private readonly shapes = new Map<string, number[]>();
  private readonly layers: LayerWeights[];
  private tokEmbeddings: Float32Array;
  private finalNorm: Float32Array;
  private output?: Float32Array;
  private readonly keyCache: Float32Array;
  private readonly valueCache: Float32Array;
  private readonly invFreq: Float64Array;
  private hook?: LinearInputHook;
  // Activations, reused across calls.
  private readonly x: Float32Array;
  private readonly xb: Float32Array;
  private readonly xb2: Float32Array;
  private readonly q: Float32Array;
  private readonly k: Float32Array;
  private readonly v: Float32Array;
  private readonly att: Float32Array;
  private readonly hb: Float32Array;
  private readonly hb2: Float32Array;
  private readonly scores: Float64Array;
  private readonly logits: Float32Array;
  /** Next position generate() and forwardNext() use. */
  private position = 0;
  private readonly actQuant?: ActQuantOptions;

  private constructor(config: LlamaConfig, weights: Map<string, Float32Array>, cacheLength: number, actQuant?: ActQuantOptions) {
    this.config = config;
    this.cacheLength = cacheLength;
    if (actQuant) checkActQuant(actQuant, config.nLayers);
    this.actQuant = actQuant;
    const c = config;
    for (const e of expectedTensors(c, weights.has('layers.0.bq'))) this.shapes.set(e.name, e.shape);
    const get = (name: string) => {
      const w = weights.get(name);
      if (!w) throw new CheckpointError(`model has no tensor ${name}`);
      return w;
    };
    this.tokEmbeddings = get('tok_embeddings');
    this.finalNorm = get('norm');
    this.output = weights.get('output');
    if (!this.output && !c.tiedEmbeddings) throw new CheckpointError('model has no classifier (output) and does not tie it to the embeddings');
    this.layers = [];
    for (let l = 0; l < c.nLayers; l++) {
      const p = `layers.${l}.`;
      this.layers.push({
        attentionNorm: get(p + 'attention_norm'),
        wq: get(p + 'wq'),
        wk: get(p + 'wk'),
        wv: get(p + 'wv'),
        wo: get(p + 'wo'),
        bq: weights.get(p + 'bq'),
        bk: weights.get(p + 'bk'),
        bv: weights.get(p + 'bv'),
        ffnNorm: get(p + 'ffn_norm'),
        w1: get(p + 'w1'),
        w2: get(p + 'w2'),
        w3: get(p + 'w3'),
      });
    }
    const qDim = c.nHeads * c.headDim;
    const kvDim = c.nKvHeads * c.headDim;
    this.keyCache = new Float32Array(c.nLayers * cacheLength * kvDim);
    this.valueCache = new Float32Array(c.nLayers * cacheLength * kvDim);
    this.invFreq = new Float64Array(c.headDim / 2);
    for (let i = 0; i < c.headDim / 2; i++) this.invFreq[i] = 1 / Math.pow(c.ropeTheta, (2 * i) / c.headDim);
    this.x = new Float32Array(c.dim);
    this.xb = new Float32Array(c.dim);
    this.xb2 = new Float32Array(c.dim);
    this.q = new Float32Array(qDim);
    this.k = new Float32Array(kvDim);
    this.v = new Float32Array(kvDim);
    this.att = new Float32Array(qDim);
    this.hb = new Float32Array(c.hiddenDim);
    this.hb2 = new Float32Array(c.hiddenDim);
    this.scores = new Float64Array(cacheLength);
    this.logits = new Float32Array(c.vocabSize);
  }

  /** Loads every tensor of the checkpoint (dequantized to float32) and allocates the KV cache. */
  static async load(ckpt: LlamaCheckpoint, opts: LlamaCpuOptions = {}): Promise<LlamaCpu> {
    const cacheLength = Math.min(opts.maxSeqLen ?? ckpt.config.seqLen, ckpt.config.seqLen);
    if (!(cacheLength >= 1)) throw new RangeError(`maxSeqLen must be at least 1, got ${opts.maxSeqLen}`);
    const weights = new Map<string, Float32Array>();
    let done = 0;
    for (const t of ckpt.tensors) {
      let data = await ckpt.loadTensor(t.name);
      if (opts.transformWeight) {
        data = await opts.transformWeight(t.name, data, t.shape);
        if (data.length !== numel(t.shape)) throw new RangeError(`transformWeight changed the length of ${t.name}: ${data.length} != ${numel(t.shape)}`);
      }
      weights.set(t.name, data);
      opts.onProgress?.(++done, ckpt.tensors.length, t.name);
    }
    return new LlamaCpu(ckpt.config, weights, cacheLength, opts.actQuant);
  }

  /** Builds a model from tensors already in memory (canonical names, interleaved q/k). */
  static fromWeights(config: LlamaConfig, weights: Map<string, Float32Array>, opts: { maxSeqLen?: number; actQuant?: ActQuantOptions } = {}): LlamaCpu {
    return new LlamaCpu(config, weights, Math.min(opts.maxSeqLen ?? config.seqLen, config.seqLen), opts.actQuant);
  }

  /** Fake-quantizes one linear input in place when actQuant is set (`point`: layers.N.attn_in etc.). */
  private quantAct(point: string, v: Float32Array): void {
    const q = this.actQuant;
    if (q) v.set(actFakeQuantRef(v, 1, v.length, q.bits, q.granularity, q.amax?.get(point) ?? 0));
  }

  /** Shape of a weight the model uses ([out, in] for linears). */
  shapeOf(name: string): number[] {
    const s = this.shapes.get(name);
    if (!s) throw new RangeError(`no weight named ${name}`);
    return s;
  }

  /** The weight in use (not a copy). */
  getWeight(name: string): Float32Array {
    this.shapeOf(name);
    if (name === 'tok_embeddings') return this.tokEmbeddings;
    if (name === 'norm') return this.finalNorm;
    if (name === 'output') return this.output as Float32Array;
    const m = /^layers\.(\d+)\.(\w+)$/.exec(name) as RegExpExecArray;
    return this.layers[Number(m[1])][LAYER_FIELDS[m[2]]] as Float32Array;
  }

  /**
   * Replaces a weight, e.g. a linear with its fake-quantized version ([out, in], interleaved q/k rows).
   * Works for any tensor of the model; the KV cache is not cleared.
   */
  setWeight(name: string, data: Float32Array): void {
    const shape = this.shapeOf(name);
    if (data.length !== numel(shape)) throw new RangeError(`weight ${name} has shape [${shape.join(', ')}] (${numel(shape)} elements), got ${data.length}`);
    if (name === 'tok_embeddings') this.tokEmbeddings = data;
    else if (name === 'norm') this.finalNorm = data;
    else if (name === 'output') this.output = data;
    else {
      const m = /^layers\.(\d+)\.(\w+)$/.exec(name) as RegExpExecArray;
      (this.layers[Number(m[1])] as unknown as Record<string, Float32Array>)[LAYER_FIELDS[m[2]]] = data;
    }
  }

  /** setWeight for linear layers (wq, wk, wv, wo, w1, w2, w3, output). */
  setLinearWeight(name: string, data: Float32Array): void {
    if (!/^(layers\.\d+\.w[qkvo123]|output)$/.test(name)) throw new RangeError(`${name} is not a linear layer`);
    this.setWeight(name, data);
  }

  /** Observe linear-layer inputs during forward (undefined removes the hook). */
  setLinearInputHook(hook: LinearInputHook | undefined): void {
    this.hook = hook;
  }

  /** Forgets the KV cache contents: the next sequence starts at position 0. */
  reset(): void {
    this.position = 0;
  }

  /** Tokens processed since reset() by forwardNext/generate. */
  get pos(): number {
    return this.position;
  }

  /**
   * Runs one token at position `pos` (positions 0..pos-1 must already be in the KV cache) and returns
   * its next-token logits (a fresh array of vocabSize).
   */
  forward(token: number, pos: number): Float32Array {
    const c = this.config;
    if (!Number.isInteger(token) || token < 0 || token >= c.vocabSize) throw new RangeError(`token ${token} is outside the vocabulary (0..${c.vocabSize - 1})`);
    if (!Number.isInteger(pos) || pos < 0 || pos >= this.cacheLength) throw new RangeError(`position ${pos} is outside the KV cache (0..${this.cacheLength - 1})`);
    const { x, xb, xb2, q, k, v, att, hb, hb2, scores } = this;
    const dim = c.dim;
    const hd = c.headDim;
    const kvDim = c.nKvHeads * hd;
    const kvMul = c.nHeads / c.nKvHeads;
    const scale = 1 / Math.sqrt(hd);
    x.set(this.tokEmbeddings.subarray(token * dim, (token + 1) * dim));
    for (let l = 0; l < c.nLayers; l++) {
      const w = this.layers[l];
      const p = `layers.${l}.`;
      rmsnorm(xb, x, w.attentionNorm, c.normEps);
      this.hook?.(p + 'wq', xb, pos);
      this.quantAct(p + 'attn_in', xb);
      matvec(q, xb, w.wq, w.bq);
      matvec(k, xb, w.wk, w.bk);
      matvec(v, xb, w.wv, w.bv);
      this.rope(q, pos);
      this.rope(k, pos);
      const loff = l * this.cacheLength * kvDim;
      this.keyCache.set(k, loff + pos * kvDim);
      this.valueCache.set(v, loff + pos * kvDim);
      for (let h = 0; h < c.nHeads; h++) {
        const qo = h * hd;
        const ko = Math.floor(h / kvMul) * hd;
        let max = -Infinity;
        for (let t = 0; t <= pos; t++) {
          const kr = loff + t * kvDim + ko;
          let s = 0;
          for (let i = 0; i < hd; i++) s += q[qo + i] * this.keyCache[kr + i];
          s *= scale;
          scores[t] = s;
          if (s > max) max = s;
        }
        let sum = 0;
        for (let t = 0; t <= pos; t++) {
          scores[t] = Math.exp(scores[t] - max);
          sum += scores[t];
        }
        for (let i = 0; i < hd; i++) {
          let acc = 0;
          for (let t = 0; t <= pos; t++) acc += scores[t] * this.valueCache[loff + t * kvDim + ko + i];
          att[qo + i] = acc / sum;
        }
      }
      this.hook?.(p + 'wo', att, pos);
      this.quantAct(p + 'attn_out', att);
      matvec(xb2, att, w.wo);
      for (let i = 0; i < dim; i++) x[i] += xb2[i];
      rmsnorm(xb, x, w.ffnNorm, c.normEps);
      this.hook?.(p + 'w1', xb, pos);
      this.quantAct(p + 'mlp_in', xb);
      matvec(hb, xb, w.w1);
      matvec(hb2, xb, w.w3);
      for (let i = 0; i < c.hiddenDim; i++) {
        const g = hb[i];
        hb[i] = (g / (1 + Math.exp(-g))) * hb2[i];
      }
      this.hook?.(p + 'w2', hb, pos);
      this.quantAct(p + 'mlp_mid', hb);
      matvec(xb2, hb, w.w2);
      for (let i = 0; i < dim; i++) x[i] += xb2[i];
    }
    rmsnorm(xb, x, this.finalNorm, c.normEps);
    this.hook?.('output', xb, pos);
    matvec(this.logits, xb, this.output ?? this.tokEmbeddings);
    return this.logits.slice();
  }

  /** forward() at the next position (pos), then pos + 1. */
  forwardNext(token: number): Float32Array {
    const logits = this.forward(token, this.position);
    this.position++;
    return logits;
  }

  /**
   * Resets, runs the prompt, then produces up to `nTokens` new tokens (greedy by default) and returns
   * them (the prompt not included). Stops early at a stop token or when the KV cache is full.
   */
  generate(promptIds: readonly number[], nTokens: number, opts: GenerateOptions = {}): number[] {
    if (promptIds.length === 0) throw new RangeError('generate needs at least one prompt token (e.g. BOS)');
    if (promptIds.length > this.cacheLength) throw new RangeError(`prompt of ${promptIds.length} tokens is longer than the KV cache (${this.cacheLength})`);
    this.reset();
    let logits: Float32Array = new Float32Array(0);
    for (const t of promptIds) logits = this.forwardNext(t);
    const greedy = opts.greedy ?? true;
    const random = mulberry32(opts.seed ?? 1);
    const stop = new Set(opts.stopTokens ?? []);
    const out: number[] = [];
    for (let i = 0; i < nTokens; i++) {
      const next = greedy ? argmax(logits) : sample(logits, opts.temperature ?? 1, random);
      out.push(next);
      opts.onToken?.(next);
      if (stop.has(next) || this.position >= this.cacheLength || i === nTokens - 1) break;
      logits = this.forwardNext(next);
    }
    return out;
  }

  /** Rotates each head's pairs (2i, 2i+1) of `vec` by pos * invFreq[i] (run.c's RoPE). */
  private rope(vec: Float32Array, pos: number): void {
    const hd = this.config.headDim;
    const half = hd / 2;
    for (let i = 0; i < half; i++) {
      const a = pos * this.invFreq[i];
      const cr = Math.cos(a);
      const ci = Math.sin(a);
      for (let o = 2 * i; o < vec.length; o += hd) {
        const v0 = vec[o];
        const v1 = vec[o + 1];
        vec[o] = v0 * cr - v1 * ci;
        vec[o + 1] = v0 * ci + v1 * cr;
      }
    }
  }
}

/** o = w * x / sqrt(mean(x^2) + eps). */
export function rmsnorm(o: Float32Array, x: Float32Array, w: Float32Array, eps: number): void {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i] * x[i];
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  for (let i = 0; i < x.length; i++) o[i] = w[i] * (inv * x[i]);
}

/** out = W x (+ b) for W [out.length, x.length] row-major. */
export function matvec(out: Float32Array, x: Float32Array, w: Float32Array, bias?: Float32Array): void {
  const n = x.length;
  const d = out.length;
  if (w.length !== n * d) throw new RangeError(`matvec: weight has ${w.length} elements, expected ${d} x ${n}`);
  for (let i = 0; i < d; i++) {
    const row = i * n;
    let a0 = 0;
    let a1 = 0;
    let a2 = 0;
    let a3 = 0;
    let j = 0;
    for (; j + 3 < n; j += 4) {
      a0 += w[row + j] * x[j];
      a1 += w[row + j + 1] * x[j + 1];
      a2 += w[row + j + 2] * x[j + 2];
      a3 += w[row + j + 3] * x[j + 3];
    }
    for (; j < n; j++) a0 += w[row + j] * x[j];
    out[i] = a0 + a1 + a2 + a3 + (bias ? bias[i] : 0);
  }
}

export function argmax(v: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}

function sample(logits: Float32Array, temperature: number, random: () => number): number {
  if (!(temperature > 0)) return argmax(logits);
  let max = -Infinity;
  for (const l of logits) if (l > max) max = l;
  const p = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += p[i] = Math.exp((logits[i] - max) / temperature);
  let r = random() * sum;
  for (let i = 0; i < p.length; i++) {
    r -= p[i];
    if (r < 0) return i;
  }
  return p.length - 1;
}

