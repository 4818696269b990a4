// The hand-written rasteriser fills paths with exact areas under the nonzero rule, and rendered text lines are deterministic, laid out with the font's advances and kerning, and refuse characters the font cannot draw.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PathRasterizer, type PathCommand } from '../../src/calib/raster.ts';
import { layoutLine, loadFont, pairKerning, renderTextLine, type OpenTypeFont, type RgbaImage } from '../../src/calib/text-render.ts';

function fontPath(file: string): string {
  const pkg = createRequire(import.meta.url).resolve('dejavu-fonts-ttf/package.json');
  return path.join(path.dirname(pkg), 'ttf', file);
}

function readArrayBuffer(file: string): ArrayBuffer {
  const b = readFileSync(file);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

const font: OpenTypeFont = loadFont(readArrayBuffer(fontPath('DejaVuSans.ttf')));

const sum = (a: Float32Array) => a.reduce((s, v) => s + v, 0);

function polygon(points: [number, number][]): PathCommand[] {
  return [{ type: 'M', x: points[0][0], y: points[0][1] }, ...points.slice(1).map(([x, y]) => ({ type: 'L' as const, x, y })), { type: 'Z' }];
}

/** A circle as four cubic Beziers (kappa = 0.5523: radial error below 0.03 %). */
function circle(cx: number, cy: number, r: number): PathCommand[] {
  const k = 0.5522847498 * r;
  return [
    { type: 'M', x: cx + r, y: cy },
    { type: 'C', x1: cx + r, y1: cy + k, x2: cx + k, y2: cy + r, x: cx, y: cy + r },
    { type: 'C', x1: cx - k, y1: cy + r, x2: cx - r, y2: cy + k, x: cx - r, y: cy },
    { type: 'C', x1: cx - r, y1: cy - k, x2: cx - k, y2: cy - r, x: cx, y: cy - r },
    { type: 'C', x1: cx + k, y1: cy - r, x2: cx + r, y2: cy - k, x: cx + r, y: cy },
    { type: 'Z' },
  ];
}

function fill(commands: PathCommand[], w = 64, h = 64): Float32Array {
  const r = new PathRasterizer(w, h);
  r.fillCommands(commands);
  return r.coverage;
}

/** FNV-1a of the bytes, to pin the exact pixels of a rendering. */
function fnv1a(bytes: ArrayLike<number>): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

describe('path rasteriser', () => {
  it('an axis-aligned square with fractional edges covers its area (within 1 %)', () => {
    const area = (40.75 - 10.25) * (36.125 - 8.5);
    for (const pts of [
      [[10.25, 8.5], [40.75, 8.5], [40.75, 36.125], [10.25, 36.125]],
      [[10.25, 8.5], [10.25, 36.125], [40.75, 36.125], [40.75, 8.5]],
    ] as [number, number][][]) {
      const c = fill(polygon(pts));
      expect(Math.abs(sum(c) - area) / area).toBeLessThan(0.01);
      // Interior pixels fully covered, far pixels empty, edge pixels partial.
      expect(c[20 * 64 + 20]).toBe(1);
      expect(c[50 * 64 + 50]).toBe(0);
      expect(c[20 * 64 + 10]).toBeCloseTo(0.75, 5);
    }
  });

  it('a triangle covers its area (within 1 %) and coverage stays in [0, 1]', () => {
    const [a, b, c] = [[5.3, 4.1], [60.2, 12.7], [21.9, 58.4]] as [number, number][];
    const area = Math.abs((b[0] - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (b[1] - a[1])) / 2;
    const cov = fill(polygon([a, b, c]));
    expect(Math.abs(sum(cov) - area) / area).toBeLessThan(0.01);
    expect(Math.min(...cov)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...cov)).toBeLessThanOrEqual(1);
  });

  it('flattens cubic and quadratic curves: a circle covers pi r^2 (within 1 %)', () => {
    const r = 25.3;
    expect(Math.abs(sum(fill(circle(32.2, 31.7, r))) - Math.PI * r * r) / (Math.PI * r * r)).toBeLessThan(0.01);
    // A parabolic segment closed by its chord has 2/3 of the area of its control triangle.
    const para = fill([{ type: 'M', x: 4, y: 60 }, { type: 'Q', x1: 32, y1: -40, x: 60, y: 60 }, { type: 'Z' }]);
    const expected = (2 / 3) * ((56 * 100) / 2);
    expect(Math.abs(sum(para) - expected) / expected).toBeLessThan(0.01);
  });

  it('uses the nonzero rule: a reversed inner contour is a hole, a same-direction one is not', () => {
    const outer = polygon([[8, 8], [56, 8], [56, 56], [8, 56]]);
    const innerSame = polygon([[24, 24], [40, 24], [40, 40], [24, 40]]);
    const innerReversed = polygon([[24, 24], [24, 40], [40, 40], [40, 24]]);
    const hole = fill([...outer, ...innerReversed]);
    expect(hole[32 * 64 + 32]).toBe(0);
    expect(sum(hole)).toBeCloseTo(48 * 48 - 16 * 16, 3);
    const solid = fill([...outer, ...innerSame]); // winding 2 inside: filled (even-odd would leave a hole)
    expect(solid[32 * 64 + 32]).toBe(1);
    expect(sum(solid)).toBeCloseTo(48 * 48, 3);
  });

  it("the glyph 'O' has a hole, whether drawn through Path.draw(ctx) or from its commands", () => {
    const glyph = font.charToGlyph('O') as unknown as { getPath(x: number, y: number, size: number): { commands: PathCommand[]; draw(ctx: unknown): void } };
    const p = glyph.getPath(8, 80, 90);
    const viaDraw = new PathRasterizer(100, 100);
    p.draw(viaDraw);
    const viaCommands = new PathRasterizer(100, 100);
    viaCommands.fillCommands(p.commands);
    expect(viaDraw.coverage).toEqual(viaCommands.coverage);
    // Along the middle row: background, stroke, hole, stroke, background.
    const row = Array.from(viaDraw.coverage.subarray(47 * 100, 48 * 100), (v) => (v > 0.5 ? 1 : 0));
    const runs = row.filter((v, i) => i === 0 || v !== row[i - 1]);
    expect(runs).toEqual([0, 1, 0, 1, 0]);
  });

  it('is deterministic and clips shapes that leave the canvas', () => {
    const shape = [...circle(10, 10, 30), ...polygon([[-5, 40], [70, 45], [30, 70]])];
    expect(fill(shape)).toEqual(fill(shape));
    const c = fill(polygon([[-10, -10], [74, -10], [74, 74], [-10, 74]]));
    expect(c.every((v) => v === 1)).toBe(true);
  });
});

describe('text line rendering', () => {
  it('is 48 px high by default, and the width grows with the text by the advance widths', () => {
    const widths = ['Call', 'Call me', 'Call me Ishmael.'].map((t) => renderTextLine(font, t).width);
    expect(widths[0]).toBeLessThan(widths[1]);
    expect(widths[1]).toBeLessThan(widths[2]);
    const img = renderTextLine(font, 'Call me Ishmael.', { fontSize: 30, paddingX: 5 });
    expect(img.height).toBe(48);
    expect(img.width).toBe(Math.ceil(10 + (layoutLine(font, 'Call me Ishmael.').advance * 30) / font.unitsPerEm));
  });

  it("applies the font's GPOS kerning (A-V is tighter than the two advances)", () => {
    const a = font.charToGlyph('A');
    const v = font.charToGlyph('V');
    expect(pairKerning(font, a, v)).toBeLessThan(0);
    expect(layoutLine(font, 'AV').advance).toBe(a.advanceWidth! + v.advanceWidth! + pairKerning(font, a, v));
  });

  it('throws naming a character the font lacks', () => {
    expect(() => renderTextLine(font, 'the 鲸 whale')).toThrow(/'鲸' \(U\+9CB8\)/);
  });

  it('writes opaque grey pixels between foreground and background, with full-strength strokes', () => {
    const img = renderTextLine(font, 'Moby Dick; or, The Whale', { foreground: 20, background: 230 });
    let min = 255;
    let max = 0;
    let bad = 0;
    for (let i = 0; i < img.width * img.height; i++) {
      const [r, g, b, a] = img.data.subarray(4 * i, 4 * i + 4);
      if (a !== 255 || r !== g || g !== b || r < 20 || r > 230) bad++;
      min = Math.min(min, r);
      max = Math.max(max, r);
    }
    expect(bad).toBe(0);
    expect(min).toBe(20);
    expect(max).toBe(230);
    // The padding columns are background.
    for (let y = 0; y < img.height; y++) expect(img.data[4 * (y * img.width)]).toBe(230);
  });

  it('takes RGB colours', () => {
    const img = renderTextLine(font, 'Pequod', { foreground: [200, 10, 0], background: [0, 0, 255] });
    const pixels = Array.from({ length: img.width * img.height }, (_, i) => Array.from(img.data.subarray(4 * i, 4 * i + 3)));
    expect(pixels).toContainEqual([200, 10, 0]);
    expect(pixels).toContainEqual([0, 0, 255]);
  });

  it('is deterministic: same bytes every time (pinned), jitter reproducible from its seed', () => {
    const a = renderTextLine(font, 'Call me Ishmael. Some years ago');
    const b = renderTextLine(font, 'Call me Ishmael. Some years ago');
    expect(fnv1a(b.data)).toBe(fnv1a(a.data));
    expect(Buffer.compare(Buffer.from(b.data), Buffer.from(a.data))).toBe(0);
    // Pinned so that a change of rasteriser, layout or defaults is noticed: the browser must give these bytes too.
    expect(`${a.width}x${a.height}:${fnv1a(a.data)}`).toMatchInlineSnapshot(`"489x48:19139f30"`);
    const j1: RgbaImage = renderTextLine(font, 'Queequeg', { jitter: { seed: 3 } });
    const j2 = renderTextLine(font, 'Queequeg', { jitter: { seed: 3 } });
    const j3 = renderTextLine(font, 'Queequeg', { jitter: { seed: 4 } });
    expect(Buffer.compare(Buffer.from(j2.data), Buffer.from(j1.data))).toBe(0);
    expect(fnv1a(j3.data)).not.toBe(fnv1a(j1.data));
  });
});
