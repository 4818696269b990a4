/**
 * Will it fit on the Jetson? Weight memory at FP16 / INT8 / INT4 plus the KV cache, against the unified
 * memory of the Jetson Orin modules (CPU and GPU share it; the OS and CUDA runtime take a part).
 */

export interface JetsonDevice {
  name: string;
  memoryGiB: number;
}

/** Jetson Orin modules (NVIDIA Jetson Orin data sheets). */
export const JETSON_DEVICES: JetsonDevice[] = [
  { name: 'Orin Nano 8GB', memoryGiB: 8 },
  { name: 'Orin NX 16GB', memoryGiB: 16 },
  { name: 'AGX Orin 32GB', memoryGiB: 32 },
  { name: 'AGX Orin 64GB', memoryGiB: 64 },
];

/** Memory the OS, CUDA context and runtime typically hold on a Jetson (an estimate, stated in the UI). */
export const RUNTIME_RESERVE_GIB = 2;

export interface MemoryModel {
  /** Parameters in linear layers that get quantized. */
  linearParams: number;
  /** Output channels summed over those layers (one INT8 scale each). */
  linearRows: number;
  /** Parameters kept at FP16 (embeddings, norms, excluded layers). */
  otherParams: number;
  nLayers: number;
  kvDim: number;
  contextLength: number;
  batch?: number;
}

export interface MemoryRow {
  weights: 'FP16' | 'INT8' | 'INT4';
  weightBytes: number;
  kvCacheBytes: number;
  totalBytes: number;
  fits: { device: string; fits: boolean; headroomGiB: number }[];
}

const GIB = 2 ** 30;

/** KV cache at FP16: keys and values, per layer, per position, per KV channel. */
export function kvCacheBytes(m: MemoryModel): number {
  return 2 * m.nLayers * m.contextLength * m.kvDim * 2 * (m.batch ?? 1);
}

/** Whether `totalBytes` fits each device after the runtime reserve, and by how much (GiB, negative when not). */
export function deviceFits(totalBytes: number, devices: JetsonDevice[] = JETSON_DEVICES): MemoryRow['fits'] {
  return devices.map((d) => {
    const headroomGiB = d.memoryGiB - RUNTIME_RESERVE_GIB - totalBytes / GIB;
    return { device: d.name, fits: headroomGiB >= 0, headroomGiB };
  });
}

/** INT8 per-channel and INT4 g128 weights with fp16 scales (and 4-bit zeros for INT4). */
export function estimateMemory(m: MemoryModel, devices: JetsonDevice[] = JETSON_DEVICES): MemoryRow[] {
  const kv = kvCacheBytes(m);
  const other = m.otherParams * 2;
  const rows: [MemoryRow['weights'], number][] = [
    ['FP16', m.linearParams * 2],
    ['INT8', m.linearParams * 1 + m.linearRows * 2],
    ['INT4', m.linearParams * 0.5 + (m.linearParams / 128) * 2.5],
  ];
  return rows.map(([weights, lin]) => {
    const totalBytes = lin + other + kv;
    return {
      weights,
      weightBytes: lin + other,
      kvCacheBytes: kv,
      totalBytes,
      fits: deviceFits(totalBytes, devices),
    };
  });
}
