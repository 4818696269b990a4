/**
 * Folding SmoothQuant factors into a Llama-family checkpoint: per block, attention_norm / s with the
 * columns of wq, wk, wv times s, and ffn_norm / s with the columns of w1, w3 times s (smooth.py
 * smooth_ln_fcs on input_layernorm -> q,k,v and post_attention_layernorm -> gate,up). RMSNorm has no bias.
 * The smoothed model is written in llama2.c's format (encodeCheckpointLlama2c). No Node imports.
 */
import type { LlamaCheckpoint, LlamaConfig } from '../model/llama/model.ts';
import { llamaGroups, type GroupInfo } from '../model/workspace.ts';
import { fround } from '../quant/reference/f32.ts';
import { SmoothQuantError } from './smoothquant.ts';

/** The norm -> linear groups SmoothQuant smooths (the rmsnorm groups of llamaGroups). */
export function llamaSmoothGroups(cfg: LlamaConfig): GroupInfo[] {
  return llamaGroups(cfg).filter((g) => g.kind === 'rmsnorm');
}

/** The capture point (LlamaGpu.enableCapture) whose rows a norm group's linears read. */
export function llamaCapturePoint(norm: string): string {
  const m = /^layers\.(\d+)\.(attention_norm|ffn_norm)$/.exec(norm);
  if (!m) throw new SmoothQuantError(`${norm} is not a Llama block norm`);
  return `layers.${m[1]}.${m[2] === 'attention_norm' ? 'attn_in' : 'mlp_in'}`;
}

/**
 * The smoothed tensors: for every group with factors (keyed by the norm's name), the norm divided by s and
 * each linear's input columns multiplied by s. Other tensors are not returned.
 */
export async function smoothLlamaTensors(
  ckpt: Pick<LlamaCheckpoint, 'config' | 'loadTensor'>,
  factors: ReadonlyMap<string, Float32Array>,
): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  const dim = ckpt.config.dim;
  for (const g of llamaSmoothGroups(ckpt.config)) {
    const s = factors.get(g.prev);
    if (!s) continue;
    if (s.length !== dim) throw new SmoothQuantError(`${g.prev}: ${s.length} factors for ${dim} channels`);
    const norm = await ckpt.loadTensor(g.prev);
    out.set(g.prev, norm.map((v, j) => fround(v / s[j])));
    for (const name of g.linears) {
      const w = await ckpt.loadTensor(name);
      const y = new Float32Array(w.length);
      for (let i = 0; i < w.length; i++) y[i] = fround(w[i] * s[i % dim]);
      out.set(name, y);
    }
  }
  for (const name of factors.keys()) {
    if (!out.has(name)) throw new SmoothQuantError(`${name} is not a norm of a norm -> linear group of this model`);
  }
  return out;
}

