/**
 * Text boxes from a DB (Differentiable Binarization) detector's probability map, and how well one set of
 * boxes agrees with another, for evaluating the PP-OCR detector under quantization against its own FP32
 * boxes.
 *
 * Post-processing follows PaddleOCR's DBPostProcess (ppocr/postprocess/db_postprocess.py) with its
 * defaults, simplified: the map is binarized at `threshold` (0.3); each 8-connected component of the
 * bitmap (what cv2.findContours outlines) becomes the axis-aligned box of its pixels; a box whose shorter
 * side is under `minSize` pixels (3) is dropped; its score is the mean probability over the box
 * (box_score_fast over an axis-aligned box) and it is kept when the score is at least `boxThreshold`
 * (0.6); at most `maxCandidates` (1000) components are looked at, largest first. Unlike PaddleOCR there
 * are no minimum-area rotated rectangles, no polygons and no unclip (the 1.5x Vatti offset): boxes stay
 * in the map's pixel coordinates and hug the shrunk text kernels. Both sides of the comparison get the
 * same treatment, so agreement is unaffected by the simplification.
 *
 * Agreement: boxes are matched one to one, greedily by descending IoU, pairs with IoU >= 0.5 only;
 * precision = matches / boxes of the evaluated model, recall = matches / reference boxes, F1 their
 * harmonic mean (1 when both sides found nothing). No Node imports.
 */

/** A box in pixels of the probability map: x0, y0 inclusive, x1, y1 exclusive. */
export interface DetBox {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  /** Mean probability over the box. */
  score: number;
}

export interface DbPostprocessOptions {
  /** Binarization threshold of the probability map (PaddleOCR `thresh`, 0.3). */
  threshold?: number;
  /** Smallest mean probability of a kept box (PaddleOCR `box_thresh`, 0.6). */
  boxThreshold?: number;
  /** Smallest shorter side of a kept box, pixels (PaddleOCR `min_size`, 3). */
  minSize?: number;
  /** Smallest area of a kept box, pixels (0: no area filter besides minSize). */
  minArea?: number;
  /** Components looked at, largest first (PaddleOCR `max_candidates`, 1000). */
  maxCandidates?: number;
}

interface Component {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  pixels: number;
}

/** The 8-connected components of `bitmap` (nonzero = foreground), with their bounding boxes. */
function components(bitmap: Uint8Array, width: number, height: number): Component[] {
  const seen = new Uint8Array(bitmap.length);
  const stack = new Int32Array(bitmap.length);
  const out: Component[] = [];
  for (let start = 0; start < bitmap.length; start++) {
    if (!bitmap[start] || seen[start]) continue;
    let top = 0;
    stack[top++] = start;
    seen[start] = 1;
    const c: Component = { x0: width, y0: height, x1: 0, y1: 0, pixels: 0 };
    while (top > 0) {
      const p = stack[--top];
      const y = Math.floor(p / width);
      const x = p - y * width;
      c.pixels++;
      if (x < c.x0) c.x0 = x;
      if (y < c.y0) c.y0 = y;
      if (x + 1 > c.x1) c.x1 = x + 1;
      if (y + 1 > c.y1) c.y1 = y + 1;
      for (let dy = -1; dy <= 1; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= height) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          if (xx < 0 || xx >= width) continue;
          const q = yy * width + xx;
          if (bitmap[q] && !seen[q]) {
            seen[q] = 1;
            stack[top++] = q;
          }
        }
      }
    }
    out.push(c);
  }
  return out;
}

/** Boxes of one probability map [height, width] (row-major), in component order (top-left first). */
export function dbBoxes(prob: Float32Array, width: number, height: number, opts: DbPostprocessOptions = {}): DetBox[] {
  if (prob.length !== width * height) throw new RangeError(`probability map has ${prob.length} values, ${width}x${height} needs ${width * height}`);
  const threshold = opts.threshold ?? 0.3;
  const boxThreshold = opts.boxThreshold ?? 0.6;
  const minSize = opts.minSize ?? 3;
  const minArea = opts.minArea ?? 0;
  const maxCandidates = opts.maxCandidates ?? 1000;
  const bitmap = new Uint8Array(prob.length);
  for (let i = 0; i < prob.length; i++) bitmap[i] = prob[i] > threshold ? 1 : 0;
  let comps = components(bitmap, width, height);
  if (comps.length > maxCandidates) {
    const order = comps.map((c, i) => [c.pixels, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    const keep = new Set(order.slice(0, maxCandidates).map((p) => p[1]));
    comps = comps.filter((_, i) => keep.has(i));
  }
  const boxes: DetBox[] = [];
  for (const c of comps) {
    const w = c.x1 - c.x0;
    const h = c.y1 - c.y0;
    if (Math.min(w, h) < minSize || w * h < minArea) continue;
    let sum = 0;
    for (let y = c.y0; y < c.y1; y++) for (let x = c.x0; x < c.x1; x++) sum += prob[y * width + x];
    const score = sum / (w * h);
    if (score < boxThreshold) continue;
    boxes.push({ x0: c.x0, y0: c.y0, x1: c.x1, y1: c.y1, score });
  }
  return boxes;
}

/** Boxes of every image of a detector output [N, 1, H, W] (or [N, H, W]). */
export function dbBoxesOfOutput(data: Float32Array, dims: readonly number[], opts: DbPostprocessOptions = {}): DetBox[][] {
  const ok = (dims.length === 4 && dims[1] === 1) || dims.length === 3;
  if (!ok) throw new RangeError(`expected a probability map [N, 1, H, W], got [${dims.join(', ')}]`);
  const [n, h, w] = [dims[0], dims[dims.length - 2], dims[dims.length - 1]];
  if (data.length !== n * h * w) throw new RangeError(`output has ${data.length} values, dims [${dims.join(', ')}] need ${n * h * w}`);
  const out: DetBox[][] = [];
  for (let i = 0; i < n; i++) out.push(dbBoxes(data.subarray(i * h * w, (i + 1) * h * w), w, h, opts));
  return out;
}

/** Intersection over union of two boxes (0 when both are empty). */
export function boxIou(a: DetBox, b: DetBox): number {
  const iw = Math.max(0, Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0));
  const ih = Math.max(0, Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0));
  const inter = iw * ih;
  const union = (a.x1 - a.x0) * (a.y1 - a.y0) + (b.x1 - b.x0) * (b.y1 - b.y0) - inter;
  return union > 0 ? inter / union : 0;
}

export interface BoxMatchCounts {
  /** One-to-one pairs with IoU >= the threshold. */
  matched: number;
  /** Boxes of the evaluated model. */
  predicted: number;
  /** Boxes of the reference (FP32). */
  reference: number;
}

/**
 * Greedy one-to-one matching: every pair with IoU >= `iouThreshold`, taken by descending IoU (ties: lower
 * predicted index, then lower reference index), each box used at most once.
 */
export function matchBoxes(predicted: readonly DetBox[], reference: readonly DetBox[], iouThreshold = 0.5): BoxMatchCounts & { pairs: [number, number, number][] } {
  const candidates: [number, number, number][] = [];
  for (let i = 0; i < predicted.length; i++) {
    for (let j = 0; j < reference.length; j++) {
      const iou = boxIou(predicted[i], reference[j]);
      if (iou >= iouThreshold) candidates.push([i, j, iou]);
    }
  }
  candidates.sort((a, b) => b[2] - a[2] || a[0] - b[0] || a[1] - b[1]);
  const usedP = new Set<number>();
  const usedR = new Set<number>();
  const pairs: [number, number, number][] = [];
  for (const c of candidates) {
    if (usedP.has(c[0]) || usedR.has(c[1])) continue;
    usedP.add(c[0]);
    usedR.add(c[1]);
    pairs.push(c);
  }
  return { matched: pairs.length, predicted: predicted.length, reference: reference.length, pairs };
}

/** Precision, recall and F1 of summed match counts; 1 for all three when neither side has a box. */
export function boxAgreement(c: BoxMatchCounts): { precision: number; recall: number; f1: number } {
  if (c.predicted === 0 && c.reference === 0) return { precision: 1, recall: 1, f1: 1 };
  const precision = c.predicted > 0 ? c.matched / c.predicted : 0;
  const recall = c.reference > 0 ? c.matched / c.reference : 0;
  const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return { precision, recall, f1 };
}
