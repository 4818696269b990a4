/**
 * TinyChat (mit-han-lab/llm-awq) v2 INT4 checkpoints, the layout its Jetson Orin kernels read
 * (awq/quantize/qmodule.py WQLinear.from_linear and pack_intweight; tinychat/offline-weight-repacker.py;
 * REFERENCE.md section 5). Per linear, Hugging Face names (model.layers.N.self_attn.q_proj, ...):
 *
 *   qweight      int16 [N/4, K]  from the codes U [N, K]: within each 32 input channels the order
 *                                [0,1,8,9,16,17,24,25, 2,3,10,11, ...]; within each 8 of that, [0,2,4,6,1,3,5,7];
 *                                then rows interleaved 4 at a time with kstride 64: the 4 x 64 block of rows
 *                                4i..4i+3, columns 64j..64j+63 is read flat and cut into 64 runs of 4 nibbles,
 *                                each run one int16 (first nibble lowest)
 *   scales       fp16 [Kp, N]    the scales transposed, rows K/g..Kp-1 zero
 *   scaled_zeros fp16 [Kp, N]    -(scale_fp16 * zero), rounded to fp16
 *   bias         fp16 [N]
 *   Kp = 8 * ceil(ceil(K/g / 8) / m) * m with m = 1 for g >= 128, 2 for 64, 4 for 32 (calculate_zeros_width).
 * Embeddings, norms and lm_head fp16; q/k rows in rotate-half order. The container is safetensors with the
 * state dict's names (llm-awq saves the same dict with torch.save) beside config.json.
 */
import { f16Tensor, encodeSafetensorsRaw, int16Bytes, type SafetensorsRawTensor } from './safetensors-writer.ts';
import {
  checkInt4Export,
  hfConfigJson,
  hfModuleName,
  hfTensorName,
  int4Linears,
  linearToHfRows,
  quantizedLinears,
  type Int4ExportOptions,
  type LinearInt4,
  type LlmExportFile,
} from './llm-int4.ts';
import { f16ToF32, f32ToF16 } from '../model/formats/half.ts';
import { interleavedToRotateHalf, ropeHeadsOf } from '../model/llama/rope-layout.ts';
import type { LlamaCheckpoint } from '../model/llama/model.ts';

export const TINYCHAT_INTERLEAVE = 4;
export const TINYCHAT_KSTRIDE = 64;

/** Rows of TinyChat's scales / scaled_zeros for K input channels in groups of g (calculate_zeros_width * 8). */
export function tinyChatScaleRows(k: number, g: number): number {
  const m = g >= 128 ? 1 : g === 64 ? 2 : g === 32 ? 4 : 0;
  if (!m) throw new RangeError(`TinyChat supports group sizes 32, 64 and 128 or more, got ${g}`);
  const base = Math.ceil(k / g / 8);
  return Math.ceil(base / m) * m * 8;
}

/** Why a [N, K] linear cannot be a TinyChat v2 layer with group size g, or undefined. */
export function tinyChatPackingProblem(n: number, k: number, g: number): string | undefined {
  const why: string[] = [];
  if (n % 8 !== 0) why.push(`N = ${n} output channels is not a multiple of 8`);
  if (k % TINYCHAT_KSTRIDE !== 0) why.push(`K = ${k} input channels is not a multiple of ${TINYCHAT_KSTRIDE} (TinyChat's kstride)`);
  if (!(g === 32 || g === 64 || g >= 128)) why.push(`group size ${g} is not one TinyChat supports (32, 64, or 128 and more)`);
  return why.length ? why.join('; ') : undefined;
}

/** Packs codes U [N, K] (row-major, 0..15) into TinyChat's int16 [N/4, K]. */
export function packTinyChat(codes: ArrayLike<number>, n: number, k: number): Int16Array {
  // Position inside 32 input channels after the two reorders: P[b*32 + p] = U[b*32 + src32[p]].
  const src32 = new Int32Array(32);
  for (let m = 0; m < 4; m++) {
    for (let a = 0; a < 2; a++) {
      for (let c = 0; c < 4; c++) {
        const p1 = m * 8 + c * 2 + a; // after the first reorder, [0,1,8,9,...]: p1 = j*8 + i*2 + t holds i*8 + j*2 + t
        const j = Math.floor(p1 / 8);
        const i = Math.floor((p1 % 8) / 2);
        const t = p1 % 2;
        src32[m * 8 + a * 4 + c] = i * 8 + j * 2 + t;
      }
    }
  }
  const reordered = new Uint8Array(n * k);
  for (let r = 0; r < n; r++) for (let b = 0; b < k / 32; b++) for (let p = 0; p < 32; p++) reordered[r * k + b * 32 + p] = codes[r * k + b * 32 + src32[p]] & 0xf;
  const il = TINYCHAT_INTERLEAVE;
  const ks = TINYCHAT_KSTRIDE;
  const out = new Int16Array((n / il) * k);
  for (let nb = 0; nb < n / il; nb++) {
    for (let kb = 0; kb < k / ks; kb++) {
      for (let e = 0; e < ks; e++) {
        let word = 0;
        for (let f = 0; f < il; f++) {
          const flat = e * il + f; // index in the [interleave, kstride] block read flat
          const r = Math.floor(flat / ks);
          const x = flat % ks;
          word |= reordered[(nb * il + r) * k + kb * ks + x] << (4 * f);
        }
        out[nb * k + kb * ks + e] = word << 16 >> 16;
      }
    }
  }
  return out;
}

/** qweight, scales and scaled_zeros of one linear (already in the Hugging Face row order). */
export function tinyChatLinearTensors(prefix: string, lin: LinearInt4): SafetensorsRawTensor[] {
  const [n, k] = lin.shape;
  const g = lin.groupSize;
  const kg = k / g;
  const rows = tinyChatScaleRows(k, g);
  const scales = new Float32Array(rows * n);
  const scaledZeros = new Float32Array(rows * n);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < kg; j++) {
      const s16 = f16ToF32(f32ToF16(lin.scales[r * kg + j]));
      scales[j * n + r] = s16;
      scaledZeros[j * n + r] = Math.fround(-(s16 * lin.zeros[r * kg + j]));
    }
  }
  return [
    { name: `${prefix}.qweight`, dtype: 'I16', shape: [n / TINYCHAT_INTERLEAVE, k], bytes: int16Bytes(packTinyChat(lin.codes, n, k)) },
    f16Tensor(`${prefix}.scales`, [rows, n], scales),
    f16Tensor(`${prefix}.scaled_zeros`, [rows, n], scaledZeros),
  ];
}

export interface TinyChatExport {
  /** config.json and the v2 weights as safetensors. */
  files: LlmExportFile[];
  linears: Map<string, LinearInt4>;
}

/**
 * Writes a Llama-family checkpoint in TinyChat's v2 INT4 layout (see the file comment); linears not given in
 * `opts.linears` are quantized with the lab's RTN. Throws LlmExportError naming every layer that cannot be packed.
 */
export async function exportTinyChat(
  ckpt: Pick<LlamaCheckpoint, 'config' | 'tensors' | 'loadTensor' | 'name'>,
  opts: Int4ExportOptions = {},
): Promise<TinyChatExport> {
  const cfg = ckpt.config;
  const g = opts.groupSize ?? 128;
  checkInt4Export('TinyChat v2', ckpt, opts, g, (n, k) => tinyChatPackingProblem(n, k, g));
  const linears = await quantizedLinears(ckpt, opts, g);
  const linearNames = new Set(int4Linears(cfg).map((l) => l.name));
  const tensors: SafetensorsRawTensor[] = [];
  for (const t of ckpt.tensors) {
    if (linearNames.has(t.name)) {
      tensors.push(...tinyChatLinearTensors(hfModuleName(t.name), linearToHfRows(t.name, linears.get(t.name) as LinearInt4, cfg)));
      continue;
    }
    let data = opts.replaced?.get(t.name) ?? (await ckpt.loadTensor(t.name));
    const heads = ropeHeadsOf(t.name, cfg);
    if (heads !== undefined) data = interleavedToRotateHalf(data, heads, t.shape.length > 1 ? t.shape[1] : 1);
    tensors.push(f16Tensor(hfTensorName(t.name), t.shape, data));
  }
  return {
    files: [
      { name: 'config.json', chunks: [new TextEncoder().encode(JSON.stringify(hfConfigJson(cfg, 'float16'), null, 2) + '\n')] },
      { name: `model-w4-g${g}-awq-v2.safetensors`, chunks: encodeSafetensorsRaw(tensors, { format: 'pt', quantized_by: 'quantlab', layout: 'tinychat-v2' }) },
    ],
    linears,
  };
}
