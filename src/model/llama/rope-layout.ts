/**
 * Row orders of q/k projections for the two RoPE conventions.
 *
 * Interleaved (Meta's reference code, llama2.c run.c, GGUF llama): RoPE rotates the pairs (2i, 2i+1)
 * of each head. Rotate-half (Hugging Face transformers): it rotates (i, i + headDim/2). Both use the
 * frequency theta^(-2i/headDim) for pair i, so one layout turns into the other by reordering the rows
 * of wq and wk (and their biases) inside each head; attention scores q.k are unchanged because q and k
 * get the same reordering. transformers' convert_llama_weights_to_hf.py applies
 *   permute(w) = w.view(n_heads, head_dim/2, 2, in).transpose(1, 2).reshape(out, in)
 * (REFERENCE.md section 5), i.e. rotate-half row h*hd + a*hd/2 + b holds interleaved row h*hd + 2b + a
 * (a in {0, 1}). llama.cpp's convert_hf_to_gguf.py (LlamaModel.permute) undoes it for GGUF; wk uses
 * n_kv_heads.
 */

function reorderRows(w: Float32Array, nHeads: number, cols: number, toRotateHalf: boolean): Float32Array {
  const rows = w.length / cols;
  if (!Number.isInteger(rows) || rows % nHeads !== 0 || (rows / nHeads) % 2 !== 0) {
    throw new RangeError(`cannot reorder ${w.length} elements as ${nHeads} heads x even head dim x ${cols} columns`);
  }
  const hd = rows / nHeads;
  const half = hd / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHeads; h++) {
    for (let b = 0; b < half; b++) {
      for (let a = 0; a < 2; a++) {
        const inter = h * hd + 2 * b + a;
        const rot = h * hd + a * half + b;
        const [src, dst] = toRotateHalf ? [inter, rot] : [rot, inter];
        out.set(w.subarray(src * cols, (src + 1) * cols), dst * cols);
      }
    }
  }
  return out;
}

/** Hugging Face's permute: interleaved rows -> rotate-half rows, for a [nHeads * headDim, cols] matrix (cols 1 for a bias). */
export function interleavedToRotateHalf(w: Float32Array, nHeads: number, cols: number): Float32Array {
  return reorderRows(w, nHeads, cols, true);
}

/** The inverse permutation: rotate-half rows -> interleaved rows (what loaders apply to HF q_proj/k_proj). */
export function rotateHalfToInterleaved(w: Float32Array, nHeads: number, cols: number): Float32Array {
  return reorderRows(w, nHeads, cols, false);
}

/** Heads a q/k tensor is split into, or undefined for tensors RoPE does not touch. */
export function ropeHeadsOf(name: string, cfg: { nHeads: number; nKvHeads: number }): number | undefined {
  if (/\.(wq|bq)$/.test(name)) return cfg.nHeads;
  if (/\.(wk|bk)$/.test(name)) return cfg.nKvHeads;
  return undefined;
}
