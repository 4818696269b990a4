/**
 * Sampled activation rows for SmoothQuant's W8A8 error evaluation: the calibration statistics give
 * max|X_j|, but the output error needs actual rows of each group's input. The first `maxRows` rows seen
 * are kept per captured tensor (calibration order: sequence by sequence, batch by batch).
 * Llama: LlamaGpu capture points (attn_in, mlp_in) read after each forward chunk. ONNX: captureActivations
 * restricted to the tensors the groups' linears read. No Node imports.
 */
import type { LlamaGpu } from '../model/llama/forward-gpu.ts';
import type { OnnxModelHandle } from '../model/workspace.ts';
import { captureActivations, planCapture, type CaptureBatch } from '../calib/onnx-capture.ts';
import type { OrtRuntime } from '../calib/ort-runtime.ts';

/** Rows of one activation tensor, row-major [rows, channels]. */
export interface SampledRows {
  name: string;
  channels: number;
  rows: number;
  data: Float32Array;
}

class RowKeeper {
  private readonly chunks: Float32Array[] = [];
  rows = 0;
  constructor(
    readonly name: string,
    readonly channels: number,
    readonly maxRows: number,
  ) {}
  get full(): boolean {
    return this.rows >= this.maxRows;
  }
  add(data: Float32Array, rows: number): void {
    const take = Math.min(rows, this.maxRows - this.rows);
    if (take <= 0) return;
    this.chunks.push(data.slice(0, take * this.channels));
    this.rows += take;
  }
  result(): SampledRows {
    const data = new Float32Array(this.rows * this.channels);
    let o = 0;
    for (const c of this.chunks) {
      data.set(c, o);
      o += c.length;
    }
    return { name: this.name, channels: this.channels, rows: this.rows, data };
  }
}

/** The first `maxRows` rows of each named capture point (`layers.N.attn_in` ...) over the sequences. */
export async function captureLlamaRows(llm: LlamaGpu, sequences: number[][], points: readonly string[], maxRows: number): Promise<Map<string, SampledRows>> {
  const all = llm.enableCapture();
  const wanted = points.map((p) => {
    const cp = all.find((c) => c.name === p);
    if (!cp) throw new RangeError(`no capture point ${p}`);
    return { cp, keep: new RowKeeper(p, cp.cols, maxRows) };
  });
  try {
    for (const seq of sequences) {
      if (wanted.every((w) => w.keep.full)) break;
      llm.reset();
      await llm.forward(seq, {
        onChunk: async (rows) => {
          for (const w of wanted) {
            if (w.keep.full) continue;
            const take = Math.min(rows, maxRows - w.keep.rows);
            w.keep.add(await llm.ctx.readF32(w.cp.buffer, take * w.cp.cols), take);
          }
        },
      });
    }
    return new Map(wanted.map((w) => [w.cp.name, w.keep.result()]));
  } finally {
    llm.disableCapture();
    llm.reset();
  }
}

/**
 * The first `maxRows` rows of the input of each listed layer group, keyed by the first linear's name:
 * the model runs with only those tensors captured.
 */
export async function captureOnnxRows(
  h: OnnxModelHandle,
  runtime: OrtRuntime,
  batches: AsyncIterable<CaptureBatch> | Iterable<CaptureBatch>,
  linears: readonly string[],
  maxRows: number,
): Promise<Map<string, SampledRows>> {
  const plan = planCapture(h);
  const wanted = new Set(linears);
  const targets = plan.targets.filter((t) => t.layers.some((l) => wanted.has(l)));
  const keepers = new Map(targets.map((t) => [t.name, new RowKeeper(t.name, t.channels, maxRows)]));
  await captureActivations(
    h,
    runtime,
    batches,
    (t) => {
      keepers.get(t.name)?.add(t.data, t.rows);
    },
    { plan: { ...plan, targets } },
  );
  const out = new Map<string, SampledRows>();
  for (const t of targets) {
    const rows = keepers.get(t.name)!.result();
    for (const l of t.layers) if (wanted.has(l)) out.set(l, rows);
  }
  return out;
}
