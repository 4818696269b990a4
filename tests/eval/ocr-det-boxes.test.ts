// The detector post-processing finds the boxes of text regions in a DB probability map as PaddleOCR's DBPostProcess thresholds do (0.3 bitmap, 8-connected regions, mean score >= 0.6, shorter side >= 3), and IoU matching counts one-to-one agreements so precision, recall and F1 mean what they say.
import { describe, expect, it } from 'vitest';
import { boxAgreement, boxIou, dbBoxes, dbBoxesOfOutput, matchBoxes, type DetBox } from '../../src/eval/ocr-det-boxes.ts';

const W = 40;
const H = 30;

/** A map with background `bg` and each rectangle [x0, y0, x1, y1) filled with `p`. */
function map(rects: [number, number, number, number, number][], bg = 0.05): Float32Array {
  const m = new Float32Array(W * H).fill(bg);
  for (const [x0, y0, x1, y1, p] of rects) for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m[y * W + x] = p;
  return m;
}

const box = (x0: number, y0: number, x1: number, y1: number): DetBox => ({ x0, y0, x1, y1, score: 1 });

describe('DB probability map -> boxes', () => {
  it('finds each rectangle with its mean score, and drops faint, thin and below-threshold regions', () => {
    const m = map([
      [2, 3, 12, 8, 0.9], // a text line
      [20, 3, 35, 6, 0.7], // another, 3 px high
      [2, 15, 10, 25, 0.5], // above 0.3 but its mean score is under 0.6
      [20, 15, 22, 25, 0.95], // 2 px wide: under min size 3
      [30, 20, 38, 28, 0.25], // below the binarization threshold
    ]);
    const boxes = dbBoxes(m, W, H);
    expect(boxes.map(({ x0, y0, x1, y1 }) => [x0, y0, x1, y1])).toEqual([
      [2, 3, 12, 8],
      [20, 3, 35, 6],
    ]);
    expect(boxes[0].score).toBeCloseTo(0.9, 6);
    expect(boxes[1].score).toBeCloseTo(0.7, 6);
    expect(dbBoxes(m, W, H, { boxThreshold: 0.45 }).length).toBe(3);
    expect(dbBoxes(m, W, H, { minSize: 1 }).length).toBe(3);
  });

  it('joins diagonal neighbours (8-connectivity) and scores over the whole box', () => {
    const m = map([
      [5, 5, 9, 9, 0.9],
      [9, 9, 13, 13, 0.9],
    ]);
    const [b, ...rest] = dbBoxes(m, W, H, { boxThreshold: 0 });
    expect(rest).toEqual([]);
    expect([b.x0, b.y0, b.x1, b.y1]).toEqual([5, 5, 13, 13]);
    // Two 4x4 squares of 0.9 in an 8x8 box, the rest background.
    expect(b.score).toBeCloseTo((32 * 0.9 + 32 * 0.05) / 64, 6);
    expect(dbBoxes(m, W, H).length).toBe(0); // 0.5 < 0.6
  });

  it('reads every image of an [N, 1, H, W] output and refuses other shapes', () => {
    const two = new Float32Array(2 * W * H);
    two.set(map([[1, 1, 6, 6, 0.8]]), 0);
    two.set(map([]), W * H);
    const boxes = dbBoxesOfOutput(two, [2, 1, H, W]);
    expect(boxes.map((b) => b.length)).toEqual([1, 0]);
    expect(() => dbBoxesOfOutput(two, [2, 2, H, W / 2])).toThrow(/\[N, 1, H, W\]/);
    expect(() => dbBoxes(two, W, H)).toThrow(/needs/);
  });
});

describe('IoU matching', () => {
  it('IoU of boxes', () => {
    expect(boxIou(box(0, 0, 10, 10), box(0, 0, 10, 10))).toBe(1);
    expect(boxIou(box(0, 0, 10, 10), box(5, 0, 15, 10))).toBeCloseTo(50 / 150, 12);
    expect(boxIou(box(0, 0, 10, 10), box(10, 0, 20, 10))).toBe(0);
  });

  it('matches one to one by descending IoU, at IoU >= 0.5 only', () => {
    const ref = [box(0, 0, 10, 10), box(20, 0, 30, 10), box(40, 0, 50, 10)];
    const pred = [
      box(1, 0, 11, 10), // IoU 0.818 with ref 0
      box(0, 0, 10, 10), // IoU 1 with ref 0: wins it
      box(22, 0, 32, 10), // IoU 0.667 with ref 1
      box(45, 0, 55, 10), // IoU 0.333 with ref 2: no match
    ];
    const m = matchBoxes(pred, ref);
    expect(m.pairs.map(([p, r]) => [p, r])).toEqual([
      [1, 0],
      [2, 1],
    ]);
    expect([m.matched, m.predicted, m.reference]).toEqual([2, 4, 3]);
    const a = boxAgreement(m);
    expect(a.precision).toBeCloseTo(2 / 4, 12);
    expect(a.recall).toBeCloseTo(2 / 3, 12);
    expect(a.f1).toBeCloseTo((2 * 0.5 * (2 / 3)) / (0.5 + 2 / 3), 12);
    expect(matchBoxes(pred, ref, 0.3).matched).toBe(3);
  });

  it('all agree when neither side has a box; nothing when one side is empty', () => {
    expect(boxAgreement({ matched: 0, predicted: 0, reference: 0 })).toEqual({ precision: 1, recall: 1, f1: 1 });
    expect(boxAgreement(matchBoxes([box(0, 0, 5, 5)], []))).toEqual({ precision: 0, recall: 0, f1: 0 });
    expect(boxAgreement(matchBoxes([], [box(0, 0, 5, 5)]))).toEqual({ precision: 0, recall: 0, f1: 0 });
  });
});
