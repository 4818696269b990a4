/**
 * The PP-OCR text recogniser's input and output conventions, and the accuracy metrics of its predictions.
 * Input: PaddleOCR's `resize_norm_img` (tools/infer/predict_rec.py): BGR, height 48, aspect ratio kept,
 * x / 255, (x - 0.5) / 0.5, NCHW, right-padded with zeros to the batch width. Output: [N, T, C] class
 * scores (softmax probabilities for ch_PP-OCRv4_rec_infer.onnx), decoded CTC-greedily as PaddleOCR's
 * CTCLabelDecode (ppocr/postprocess/rec_postprocess.py): class 0 is the CTC blank, classes 1..K the lines
 * of the key file (ppocr_keys_v1.txt: 6623 keys) in order, and with use_space_char=True one last class
 * for ' ', so C = 6625. No Node imports: the browser bundles this file.
 */

/** The lines of a PaddleOCR key file (one character per line; '\r\n' tolerated, a final empty line dropped). */
export function ppocrKeys(keysText: string): string[] {
  const lines = keysText.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** Class index -> string: '' for the blank (class 0), the keys, then ' ' when `useSpaceChar`. */
export function ppocrCharset(keysText: string, useSpaceChar = true): string[] {
  return ['', ...ppocrKeys(keysText), ...(useSpaceChar ? [' '] : [])];
}

/** What the recogniser can output besides the blank: the keys plus ' ' (for `sampleTextLines`' `allowed`). */
export function ppocrAlphabet(keysText: string): Set<string> {
  return new Set([...ppocrKeys(keysText), ' ']);
}

export interface DecodedLine {
  text: string;
  /** Mean of the winning class scores over the kept characters (PaddleOCR's confidence); 0 when empty. */
  score: number;
}

/**
 * CTC greedy decoding: the arg-max class of every time step, repeats merged, blanks dropped.
 * `charset[c]` is the string of class c (`ppocrCharset`); its length must equal C.
 */
export function ctcGreedyDecode(scores: Float32Array, dims: readonly number[], charset: readonly string[]): DecodedLine[] {
  if (dims.length !== 3) throw new Error(`expected recogniser output [N, T, C], got [${dims.join(', ')}]`);
  const [N, T, C] = dims;
  if (C !== charset.length) {
    throw new Error(`the recogniser has ${C} classes but the dictionary gives ${charset.length} (blank + keys + space)`);
  }
  if (scores.length !== N * T * C) throw new Error(`output has ${scores.length} values, dims say ${N * T * C}`);
  const lines: DecodedLine[] = [];
  for (let b = 0; b < N; b++) {
    let text = '';
    let sum = 0;
    let kept = 0;
    let previous = -1;
    for (let t = 0; t < T; t++) {
      const base = (b * T + t) * C;
      let best = 0;
      let bestScore = scores[base];
      for (let c = 1; c < C; c++) {
        if (scores[base + c] > bestScore) {
          bestScore = scores[base + c];
          best = c;
        }
      }
      if (best !== 0 && best !== previous) {
        text += charset[best];
        sum += bestScore;
        kept++;
      }
      previous = best;
    }
    lines.push({ text, score: kept > 0 ? sum / kept : 0 });
  }
  return lines;
}

/** Levenshtein distance (unit insert / delete / substitute) between two sequences. */
export function editDistance<T>(a: readonly T[], b: readonly T[]): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  let cur = new Array<number>(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length];
}

/**
 * 1 - (character edit distance) / (characters of the truth), clamped at 0; characters are code points.
 * An empty truth scores 1 for an empty prediction, else 0. (PaddleOCR's norm_edit_dis divides by the
 * longer of the two strings instead.)
 */
export function characterAccuracy(pred: string, truth: string): number {
  const t = Array.from(truth);
  const p = Array.from(pred);
  if (t.length === 0) return p.length === 0 ? 1 : 0;
  return Math.max(0, 1 - editDistance(p, t) / t.length);
}

/**
 * Word-level analogue of characterAccuracy: 1 - (edit distance over whitespace-separated words) / (words of
 * the truth), clamped at 0 (i.e. 1 - word error rate).
 */
export function wordAccuracy(pred: string, truth: string): number {
  const words = (s: string) => s.split(/\s+/).filter((w) => w.length > 0);
  const t = words(truth);
  const p = words(pred);
  if (t.length === 0) return p.length === 0 ? 1 : 0;
  return Math.max(0, 1 - editDistance(p, t) / t.length);
}

/** Fraction of lines predicted exactly (PaddleOCR's RecMetric "acc" without its space stripping). */
export function lineAccuracy(preds: readonly string[], truths: readonly string[]): number {
  if (preds.length !== truths.length) throw new Error(`${preds.length} predictions for ${truths.length} lines`);
  if (truths.length === 0) return 0;
  let exact = 0;
  for (let i = 0; i < truths.length; i++) if (preds[i] === truths[i]) exact++;
  return exact / truths.length;
}
