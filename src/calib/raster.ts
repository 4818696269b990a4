/**
 * A small anti-aliased path rasteriser, so rendered text lines are the same bytes in Node and in every
 * browser (no canvas, no platform font rendering). It implements the subset of the Canvas 2D path API that
 * opentype.js's `Path.draw(ctx)` calls, and can also consume `path.commands` directly.
 *
 * Method (the choice the calibration data depends on):
 * - Curves are flattened to line segments with a per-curve segment count chosen from the curve's second
 *   difference, so the chord error stays below `tolerance` pixels (uniform subdivision of a Bezier of degree
 *   d with n pieces deviates by at most max|B''| / (8 n^2)).
 * - Filling uses the nonzero winding rule on `samplesPerPixel` sub-scanlines per pixel row (sample centres
 *   at y = row + (s + 0.5) / S). On each sub-scanline the crossings are sorted by x, the winding number is
 *   summed left to right, and every span with winding != 0 adds its exact horizontal overlap with each pixel,
 *   weighted 1 / S. Coverage is therefore exact horizontally and supersampled (S levels) vertically.
 * - Only IEEE-exact arithmetic is used (+, -, *, /, sqrt, floor, ceil): results are bit-identical across
 *   JavaScript engines.
 * Subpaths are closed implicitly at `moveTo` and `fill`, as in Canvas 2D.
 */

/** Options of {@link PathRasterizer}. */
export interface RasterOptions {
  /** Sub-scanlines per pixel row (vertical supersampling). Default 16. */
  samplesPerPixel?: number;
  /** Maximum distance, in pixels, between a curve and its flattened polyline. Default 0.05. */
  tolerance?: number;
}

/** A coverage mask: values in [0, 1], row-major [height, width]. */
export interface CoverageMask {
  width: number;
  height: number;
  data: Float32Array;
}

/** One opentype.js path command (the shape of `Path.commands` entries). */
export type PathCommand =
  | { type: 'M' | 'L'; x: number; y: number }
  | { type: 'Q'; x1: number; y1: number; x: number; y: number }
  | { type: 'C'; x1: number; y1: number; x2: number; y2: number; x: number; y: number }
  | { type: 'Z' };

/**
 * Accumulates filled paths into a coverage mask. Successive `fill()` calls are combined with
 * "union" semantics by clamping (coverage = min(1, sum)), which matches Canvas source-over drawing of
 * opaque shapes that do not overlap; glyphs of one text line do not overlap in practice.
 */
export class PathRasterizer {
  readonly width: number;
  readonly height: number;
  readonly coverage: Float32Array;
  private readonly samples: number;
  private readonly tolerance: number;
  /** Edges of the current path: x0, y0, x1, y1 quadruples. */
  private edges: number[] = [];
  private startX = 0;
  private startY = 0;
  private curX = 0;
  private curY = 0;
  private open = false;

  constructor(width: number, height: number, options: RasterOptions = {}) {
    if (!(Number.isInteger(width) && width > 0 && Number.isInteger(height) && height > 0)) {
      throw new Error(`raster size must be positive integers, got ${width}x${height}`);
    }
    this.width = width;
    this.height = height;
    this.coverage = new Float32Array(width * height);
    this.samples = options.samplesPerPixel ?? 16;
    this.tolerance = options.tolerance ?? 0.05;
    if (!(Number.isInteger(this.samples) && this.samples >= 1)) throw new Error(`samplesPerPixel must be a positive integer, got ${this.samples}`);
    if (!(this.tolerance > 0)) throw new Error(`tolerance must be > 0, got ${this.tolerance}`);
  }

  beginPath(): void {
    this.edges = [];
    this.open = false;
  }

  moveTo(x: number, y: number): void {
    this.closePath();
    this.startX = this.curX = x;
    this.startY = this.curY = y;
    this.open = true;
  }

  lineTo(x: number, y: number): void {
    if (!this.open) {
      this.moveTo(x, y);
      return;
    }
    this.addEdge(this.curX, this.curY, x, y);
    this.curX = x;
    this.curY = y;
  }

  quadraticCurveTo(cx: number, cy: number, x: number, y: number): void {
    if (!this.open) this.moveTo(cx, cy);
    const x0 = this.curX;
    const y0 = this.curY;
    // max|B''| = 2 |p0 - 2 p1 + p2|; error bound |B''| / (8 n^2).
    const ddx = x0 - 2 * cx + x;
    const ddy = y0 - 2 * cy + y;
    const n = segmentCount(2 * Math.sqrt(ddx * ddx + ddy * ddy), this.tolerance);
    for (let i = 1; i <= n; i++) {
      const t = i / n;
      const u = 1 - t;
      this.lineTo(u * u * x0 + 2 * u * t * cx + t * t * x, u * u * y0 + 2 * u * t * cy + t * t * y);
    }
  }

  bezierCurveTo(c1x: number, c1y: number, c2x: number, c2y: number, x: number, y: number): void {
    if (!this.open) this.moveTo(c1x, c1y);
    const x0 = this.curX;
    const y0 = this.curY;
    // B'' is 6 times a convex combination of the two second differences.
    const ax = x0 - 2 * c1x + c2x;
    const ay = y0 - 2 * c1y + c2y;
    const bx = c1x - 2 * c2x + x;
    const by = c1y - 2 * c2y + y;
    const m = Math.max(Math.sqrt(ax * ax + ay * ay), Math.sqrt(bx * bx + by * by));
    const n = segmentCount(6 * m, this.tolerance);
    for (let i = 1; i <= n; i++) {
      const t = i / n;
      const u = 1 - t;
      const a = u * u * u;
      const b = 3 * u * u * t;
      const c = 3 * u * t * t;
      const d = t * t * t;
      this.lineTo(a * x0 + b * c1x + c * c2x + d * x, a * y0 + b * c1y + c * c2y + d * y);
    }
  }

  closePath(): void {
    if (!this.open) return;
    if (this.curX !== this.startX || this.curY !== this.startY) this.addEdge(this.curX, this.curY, this.startX, this.startY);
    this.curX = this.startX;
    this.curY = this.startY;
  }

  /** Fills the current path (nonzero rule) into the coverage mask. `fillStyle` is accepted and ignored. */
  fill(): void {
    this.closePath();
    this.open = false;
    fillNonzero(this.edges, this.coverage, this.width, this.height, this.samples);
  }

  /** Canvas 2D compatibility: opentype.js assigns it before `fill()`. Colour is applied later, by the caller. */
  fillStyle: unknown = undefined;

  /** Replays opentype.js path commands and fills them. */
  fillCommands(commands: readonly PathCommand[]): void {
    this.beginPath();
    for (const c of commands) {
      switch (c.type) {
        case 'M':
          this.moveTo(c.x, c.y);
          break;
        case 'L':
          this.lineTo(c.x, c.y);
          break;
        case 'Q':
          this.quadraticCurveTo(c.x1, c.y1, c.x, c.y);
          break;
        case 'C':
          this.bezierCurveTo(c.x1, c.y1, c.x2, c.y2, c.x, c.y);
          break;
        case 'Z':
          this.closePath();
          break;
      }
    }
    this.fill();
  }

  /** The mask (shares memory with the rasteriser). */
  mask(): CoverageMask {
    return { width: this.width, height: this.height, data: this.coverage };
  }

  private addEdge(x0: number, y0: number, x1: number, y1: number): void {
    if (y0 === y1) return; // horizontal edges never cross a sub-scanline
    if (!(Number.isFinite(x0) && Number.isFinite(y0) && Number.isFinite(x1) && Number.isFinite(y1))) {
      throw new Error('path coordinates must be finite');
    }
    this.edges.push(x0, y0, x1, y1);
  }
}

function segmentCount(secondDerivativeBound: number, tolerance: number): number {
  const n = Math.ceil(Math.sqrt(secondDerivativeBound / (8 * tolerance)));
  return Math.min(Math.max(n, 1), 256);
}

/**
 * Nonzero fill of a closed edge list. An edge going down (y0 < y1) crosses a sub-scanline with winding +1,
 * an edge going up with -1; an edge covers sample y when min(y0, y1) <= y < max(y0, y1) (half-open, so a
 * vertex shared by two edges is counted once).
 */
function fillNonzero(edges: readonly number[], out: Float32Array, width: number, height: number, samples: number): void {
  const count = edges.length / 4;
  if (count === 0) return;
  // Edges sorted by their top, scanned with an active list.
  const order = Array.from({ length: count }, (_, i) => i);
  const top = (i: number) => Math.min(edges[4 * i + 1], edges[4 * i + 3]);
  const bottom = (i: number) => Math.max(edges[4 * i + 1], edges[4 * i + 3]);
  order.sort((a, b) => top(a) - top(b) || a - b);
  const active: number[] = [];
  let next = 0;
  const xs: number[] = [];
  const winds: number[] = [];
  const idx: number[] = [];
  const weight = 1 / samples;
  for (let row = 0; row < height; row++) {
    for (let s = 0; s < samples; s++) {
      const y = row + (s + 0.5) / samples;
      while (next < count && top(order[next]) <= y) active.push(order[next++]);
      let k = 0;
      xs.length = 0;
      winds.length = 0;
      for (let a = 0; a < active.length; a++) {
        const e = active[a];
        if (bottom(e) <= y) continue; // finished: drop from the active list
        active[k++] = e;
        const x0 = edges[4 * e];
        const y0 = edges[4 * e + 1];
        const x1 = edges[4 * e + 2];
        const y1 = edges[4 * e + 3];
        if (y < Math.min(y0, y1)) continue;
        xs.push(x0 + ((y - y0) * (x1 - x0)) / (y1 - y0));
        winds.push(y1 > y0 ? 1 : -1);
      }
      active.length = k;
      if (xs.length < 2) continue;
      idx.length = xs.length;
      for (let i = 0; i < xs.length; i++) idx[i] = i;
      idx.sort((a, b) => xs[a] - xs[b] || a - b);
      let winding = 0;
      for (let i = 0; i < idx.length; i++) {
        const before = winding;
        winding += winds[idx[i]];
        if (before !== 0 && i > 0) addSpan(out, row * width, width, xs[idx[i - 1]], xs[idx[i]], weight);
      }
    }
  }
  for (let i = 0; i < out.length; i++) if (out[i] > 1) out[i] = 1;
}

/** Adds `weight` times the overlap of [xa, xb) with each pixel of one row. */
function addSpan(out: Float32Array, rowStart: number, width: number, xa: number, xb: number, weight: number): void {
  if (xb <= 0 || xa >= width || xb <= xa) return;
  if (xa < 0) xa = 0;
  if (xb > width) xb = width;
  const ia = Math.floor(xa);
  const ib = Math.floor(xb);
  if (ia === ib) {
    out[rowStart + ia] += (xb - xa) * weight;
    return;
  }
  out[rowStart + ia] += (ia + 1 - xa) * weight;
  for (let i = ia + 1; i < ib; i++) out[rowStart + i] += weight;
  if (ib < width) out[rowStart + ib] += (xb - ib) * weight;
}
