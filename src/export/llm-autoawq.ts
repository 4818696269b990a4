/**
 * AutoAWQ GEMM checkpoints (casper-hansen/AutoAWQ awq/modules/linear/gemm.py WQLinear_GEMM.from_linear;
 * REFERENCE.md section 5), in the Hugging Face Llama layout that transformers, vLLM and the TensorRT-LLM
 * converters read:
 *
 *   model.layers.N.self_attn.{q,k,v,o}_proj, model.layers.N.mlp.{gate,up,down}_proj:
 *     qweight int32 [K, N/8]   codes of input channel k, output columns 8c..8c+7 in one int32: logical column
 *                              j sits at nibble slot [0,4,1,5,2,6,3,7][j] (AutoAWQ's order_map [0,2,4,6,1,3,5,7]
 *                              lists the column of each slot), i.e. bit shift [0,16,4,20,8,24,12,28][j]
 *     qzeros  int32 [K/g, N/8] the zero points, packed the same way
 *     scales  fp16  [K/g, N]
 *     bias    fp16  [N]        (Qwen2's q/k/v)
 *   embed_tokens, norms, lm_head: fp16 (AutoAWQ does not quantize them). q_proj / k_proj rows are in
 *   rotate-half order (transformers' permute), converted from the lab's interleaved order.
 *   config.json: the model's config with quantization_config
 *     {"quant_method":"awq","zero_point":true,"group_size":g,"bits":4,"version":"gemm"}.
 *
 * The stored integer is the lab's code q = round(W/s) + z, dequantized as (q - z) * s; the scale is the
 * lab's float32 scale rounded to fp16, as AutoAWQ stores it.
 */
import { f16Tensor, encodeSafetensorsRaw, int32Bytes, type SafetensorsRawTensor } from './safetensors-writer.ts';
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
import { interleavedToRotateHalf, ropeHeadsOf } from '../model/llama/rope-layout.ts';
import type { LlamaCheckpoint } from '../model/llama/model.ts';

/** Nibble slot of logical column j inside a packed int32 (inverse of AutoAWQ's order_map [0,2,4,6,1,3,5,7]). */
export const AUTOAWQ_SLOT_OF_COLUMN = [0, 4, 1, 5, 2, 6, 3, 7] as const;

export const AUTOAWQ_DEFAULT_GROUP_SIZE = 128;

/** Why a [N, K] linear cannot be an AutoAWQ GEMM layer, or undefined. */
export function autoAwqPackingProblem(n: number): string | undefined {
  return n % 8 === 0 ? undefined : `N = ${n} output channels is not a multiple of 8 (AutoAWQ packs 8 output columns per int32)`;
}

/** Packs a [rows, N] matrix of 4-bit values (row-major) into int32 [rows, N/8] in AutoAWQ's order. */
export function packAutoAwq(values: ArrayLike<number>, rows: number, n: number): Int32Array {
  const out = new Int32Array((rows * n) / 8);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < n / 8; c++) {
      let word = 0;
      for (let j = 0; j < 8; j++) word |= (values[r * n + c * 8 + j] & 0xf) << (4 * AUTOAWQ_SLOT_OF_COLUMN[j]);
      out[r * (n / 8) + c] = word;
    }
  }
  return out;
}

/** qweight, qzeros and scales of one linear (already in the Hugging Face row order). */
export function autoAwqLinearTensors(prefix: string, lin: LinearInt4): SafetensorsRawTensor[] {
  const [n, k] = lin.shape;
  const g = lin.groupSize;
  const kg = k / g;
  // [N, K] -> [K, N]; [N, K/g] -> [K/g, N]
  const codesT = new Uint8Array(n * k);
  for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) codesT[c * n + r] = lin.codes[r * k + c];
  const zerosT = new Uint8Array(n * kg);
  const scalesT = new Float32Array(n * kg);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < kg; j++) {
      zerosT[j * n + r] = lin.zeros[r * kg + j];
      scalesT[j * n + r] = lin.scales[r * kg + j];
    }
  }
  return [
    { name: `${prefix}.qweight`, dtype: 'I32', shape: [k, n / 8], bytes: int32Bytes(packAutoAwq(codesT, k, n)) },
    { name: `${prefix}.qzeros`, dtype: 'I32', shape: [kg, n / 8], bytes: int32Bytes(packAutoAwq(zerosT, kg, n)) },
    f16Tensor(`${prefix}.scales`, [kg, n], scalesT),
  ];
}

export interface AutoAwqExport {
  /** config.json and model.safetensors. */
  files: LlmExportFile[];
  /** The quantized linears written (canonical names and basis), e.g. to show or to check. */
  linears: Map<string, LinearInt4>;
}

/**
 * Writes a Llama-family checkpoint as an AutoAWQ GEMM INT4 checkpoint (see the file comment). Linears not
 * given quantized in `opts.linears` are quantized with the lab's RTN (asymmetric INT4, group g). Throws
 * LlmExportError naming every layer that cannot be packed before any work.
 */
export async function exportAutoAwq(
  ckpt: Pick<LlamaCheckpoint, 'config' | 'tensors' | 'loadTensor' | 'name'>,
  opts: Int4ExportOptions = {},
): Promise<AutoAwqExport> {
  const cfg = ckpt.config;
  const g = opts.groupSize ?? AUTOAWQ_DEFAULT_GROUP_SIZE;
  checkInt4Export('AutoAWQ GEMM', ckpt, opts, g, (n) => autoAwqPackingProblem(n));
  const linears = await quantizedLinears(ckpt, opts, g);
  const linearNames = new Set(int4Linears(cfg).map((l) => l.name));
  const tensors: SafetensorsRawTensor[] = [];
  for (const t of ckpt.tensors) {
    if (linearNames.has(t.name)) {
      tensors.push(...autoAwqLinearTensors(hfModuleName(t.name), linearToHfRows(t.name, linears.get(t.name) as LinearInt4, cfg)));
      continue;
    }
    let data = opts.replaced?.get(t.name) ?? (await ckpt.loadTensor(t.name));
    const heads = ropeHeadsOf(t.name, cfg);
    if (heads !== undefined) data = interleavedToRotateHalf(data, heads, t.shape.length > 1 ? t.shape[1] : 1);
    tensors.push(f16Tensor(hfTensorName(t.name), t.shape, data));
  }
  const config = {
    ...hfConfigJson(cfg, 'float16'),
    quantization_config: { quant_method: 'awq', zero_point: true, group_size: g, bits: 4, version: 'gemm', modules_to_not_convert: null },
  };
  return {
    files: [
      { name: 'config.json', chunks: [new TextEncoder().encode(JSON.stringify(config, null, 2) + '\n')] },
      { name: 'model.safetensors', chunks: encodeSafetensorsRaw(tensors, { format: 'pt', quantized_by: 'quantlab' }) },
    ],
    linears,
  };
}
