/**
 * Which task an ONNX model performs, read from its input and output shapes, so the evaluation knows which
 * task metrics it can compute besides the output SQNR and cosine every model gets:
 *  - 'ocr-rec': one image input [N, 3, 48, W] and an output [N, T, C] of per-step class scores, C = the
 *    dictionary's classes (blank + keys + space: 6625 for PP-OCRv4) -> character / word / line accuracy;
 *  - 'ocr-det': one image input [N, 3, H, W] and an output [N, 1, H, W] (a DB probability map) -> box
 *    agreement with the FP32 boxes;
 *  - 'classifier': a single output [N, K], K >= 2 -> top-1 / top-5 agreement with FP32;
 *  - 'unknown': anything else -> SQNR and cosine only, with a note saying why.
 * Declared shapes may be symbolic (Paddle exports name every free dimension), so the task is checked again
 * on the dims of the first FP32 run (checkTaskOnDims). No Node imports.
 */

export type OnnxTaskKind = 'ocr-rec' | 'ocr-det' | 'classifier' | 'unknown';

export interface OnnxTask {
  kind: OnnxTaskKind;
  /** The output the task metrics read (absent for 'unknown'). */
  output?: string;
  /** Why the task is 'unknown' (or what was assumed); goes into every evaluation row. */
  note?: string;
}

export type ShapeDim = number | string | null;

export interface TensorShape {
  name: string;
  /** Declared dims; undefined when the graph declares none. */
  shape?: readonly ShapeDim[];
}

const fixed = (d: ShapeDim | undefined): d is number => typeof d === 'number' && d >= 0;

function show(t: TensorShape): string {
  return t.shape ? `${t.name} [${t.shape.map((d) => (d === null ? '?' : d)).join(', ')}]` : `${t.name} [?]`;
}

const KNOWN = 'OCR recogniser [N,3,48,W] -> [N,T,C], OCR detector [N,3,H,W] -> [N,1,H,W], classifier -> [N,K]';

/**
 * The task from declared shapes. `charsetSize` is the recogniser dictionary's class count (blank + keys +
 * space); without it, or when C differs from it, an OCR-recogniser shape cannot be decoded and the task
 * is 'unknown' with a note.
 */
export function detectOnnxTask(inputs: readonly TensorShape[], outputs: readonly TensorShape[], opts: { charsetSize?: number } = {}): OnnxTask {
  const unknown = (why: string): OnnxTask => ({ kind: 'unknown', note: `${why}: the outputs are compared by SQNR and cosine only (tasks known: ${KNOWN})` });
  if (outputs.length === 0) return unknown('the model has no outputs');
  const image = inputs.length === 1 && inputs[0].shape?.length === 4 && inputs[0].shape[1] === 3 ? inputs[0].shape : undefined;
  if (image && image[2] === 48) {
    const rec = outputs.find((o) => o.shape?.length === 3);
    if (rec) {
      const c = rec.shape![2];
      if (opts.charsetSize === undefined) return unknown(`${show(rec)} looks like an OCR recogniser's output, but no dictionary was given to decode it`);
      if (fixed(c) && c !== opts.charsetSize) return unknown(`${show(rec)} has ${c} classes but the dictionary gives ${opts.charsetSize} (blank + keys + space)`);
      return { kind: 'ocr-rec', output: rec.name };
    }
  }
  if (image) {
    const det = outputs.find((o) => o.shape?.length === 4 && o.shape[1] === 1);
    if (det) return { kind: 'ocr-det', output: det.name };
  }
  if (outputs.length === 1) {
    const s = outputs[0].shape;
    if (s?.length === 2 && (!fixed(s[1]) || s[1] >= 2)) return { kind: 'classifier', output: outputs[0].name };
  }
  return unknown(`no output matches a known task (outputs: ${outputs.map(show).join(', ')})`);
}

/**
 * The task checked against the dims of an actual output: a symbolic C, T or K resolved. Returns the task
 * unchanged when the dims fit, else 'unknown' with a note naming the dims.
 */
export function checkTaskOnDims(task: OnnxTask, dims: readonly number[] | undefined, opts: { charsetSize?: number } = {}): OnnxTask {
  if (task.kind === 'unknown' || !task.output) return task;
  const unknown = (why: string): OnnxTask => ({ kind: 'unknown', note: `${why}: the outputs are compared by SQNR and cosine only (tasks known: ${KNOWN})` });
  if (!dims) return unknown(`the model returned no output ${task.output}`);
  const shown = `${task.output} [${dims.join(', ')}]`;
  switch (task.kind) {
    case 'ocr-rec':
      if (dims.length !== 3) return unknown(`${shown} is not [N, T, C]`);
      if (dims[2] !== opts.charsetSize) return unknown(`${shown} has ${dims[2]} classes but the dictionary gives ${opts.charsetSize ?? 'none'}`);
      return task;
    case 'ocr-det':
      return dims.length === 4 && dims[1] === 1 ? task : unknown(`${shown} is not a probability map [N, 1, H, W]`);
    case 'classifier':
      return dims.length === 2 && dims[1] >= 2 ? task : unknown(`${shown} is not class scores [N, K] with K >= 2`);
  }
}
