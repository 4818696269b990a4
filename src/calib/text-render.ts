/**
 * Text lines rendered with a bundled font (DejaVu Sans from dejavu-fonts-ttf): the calibration and
 * accuracy data of the PP-OCR recogniser. opentype.js parses the font; the layout here is one glyph per
 * code point (cmap), advances from hmtx and pair kerning from GPOS / kern, no hinting, no ligatures or
 * other substitutions (opentype.js's shaper throws on DejaVu's ccmp lookups, and the recogniser's
 * alphabet has no ligatures anyway). Outlines, in font units, are scaled here and filled by the
 * hand-written rasteriser of raster.ts, so the same font bytes and text give the same pixels in Node and
 * in every browser.
 * No Node imports: the browser bundles this file.
 */
// opentype.js ships no type declarations (src/app/types.d.ts declares the module); the interfaces below
// describe the parts used here.
import * as opentypeModule from 'opentype.js';
import { mulberry32 } from '../util/random.ts';
import type { RgbaImage } from './image-preprocess.ts';
import { PathRasterizer, type PathCommand } from './raster.ts';

export type { RgbaImage };


/** The parts of an opentype.js Font this module uses (the package ships no types). */
export interface OpenTypeFont {
  unitsPerEm: number;
  ascender: number;
  descender: number;
  hasChar(c: string): boolean;
  charToGlyph(c: string): OpenTypeGlyph;
  /** Pair kerning in font units from the GPOS kerning lookups of the default script (DFLT), else the kern table. */
  getKerningValue(left: OpenTypeGlyph, right: OpenTypeGlyph): number;
  /** GPOS access; absent when the font has no GPOS table. */
  position?: {
    getKerningTables(script: string, language?: string): unknown[] | undefined;
    getKerningValue(kerningLookups: unknown[], leftIndex: number, rightIndex: number): number;
  };
}

/** The parts of an opentype.js Glyph this module uses. */
export interface OpenTypeGlyph {
  index: number;
  advanceWidth?: number;
  /** The outline in font units, y up. */
  path: { commands: PathCommand[] };
}

interface OpenTypeApi {
  parse(buffer: ArrayBuffer, options?: Record<string, unknown>): OpenTypeFont;
}

// Bundlers load the ESM build (named exports); Node loads the UMD build as CommonJS (everything on `default`).
const opentypeNs = opentypeModule as unknown as Partial<OpenTypeApi> & { default?: OpenTypeApi };
const opentype: OpenTypeApi = typeof opentypeNs.parse === 'function' ? (opentypeNs as OpenTypeApi) : opentypeNs.default!;

/** Parses a TrueType / OpenType font file. */
export function loadFont(bytes: ArrayBuffer): OpenTypeFont {
  return opentype.parse(bytes);
}

/** A grey level 0..255 or an RGB triple. */
export type Colour = number | readonly [number, number, number];

/** Random per-line variation, reproducible from `seed`. */
export interface TextJitter {
  seed: number;
  /** Largest vertical shift of the baseline, pixels (default 2). */
  maxShiftY?: number;
  /** Largest relative change of the font size (default 0.08: 0.92x .. 1.08x). */
  maxScale?: number;
}

export interface TextLineOptions {
  /** Image height in pixels (default 48, the PP-OCRv4 recogniser's input height). */
  height?: number;
  /** Font size in pixels (the em size; default 0.6 * height). */
  fontSize?: number;
  /**
   * Blank pixels left and right of the text (default height / 16, 3 px at 48). The PP-OCRv4 recogniser
   * reads wide blank margins as leading / trailing spaces (12 px margins: 15 of 20 lines got one).
   */
  paddingX?: number;
  /** Text colour (default 0, black). */
  foreground?: Colour;
  /** Background colour (default 255, white). */
  background?: Colour;
  jitter?: TextJitter;
  /** Vertical sub-scanlines of the rasteriser (default 16). */
  samplesPerPixel?: number;
}

/** Characters of `text` the font has no glyph for (space and other blanks excepted). */
export function missingCharacters(font: OpenTypeFont, text: string): string[] {
  const missing = new Set<string>();
  for (const c of text) if (!/\s/.test(c) && !font.hasChar(c)) missing.add(c);
  return [...missing];
}

/** Throws, naming the characters, when the font cannot draw `text`. */
function checkCoverage(font: OpenTypeFont, text: string): void {
  const missing = missingCharacters(font, text);
  if (missing.length > 0) {
    const names = missing.map((c) => `'${c}' (U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')})`);
    throw new Error(`the font has no glyph for ${names.join(', ')}`);
  }
}

const latinKerning = new WeakMap<OpenTypeFont, unknown[] | null>();

/**
 * Pair kerning in font units. The GPOS lookups of the Latin script come first: DejaVu Sans registers its
 * full kerning (A-V: -131 units) under 'latn' and only a small lookup under 'DFLT', which is all that
 * opentype.js's Font.getKerningValue consults (it gives 0 for A-V).
 */
export function pairKerning(font: OpenTypeFont, left: OpenTypeGlyph, right: OpenTypeGlyph): number {
  let tables = latinKerning.get(font);
  if (tables === undefined) {
    const t = font.position?.getKerningTables('latn');
    tables = t && t.length > 0 ? t : null;
    latinKerning.set(font, tables);
  }
  if (tables && font.position) return font.position.getKerningValue(tables, left.index, right.index);
  return font.getKerningValue(left, right);
}

/** Glyph positions in font units: one glyph per code point, advance plus kerning with the next glyph. */
export function layoutLine(font: OpenTypeFont, text: string): { glyphs: { glyph: OpenTypeGlyph; x: number }[]; advance: number } {
  const glyphs: { glyph: OpenTypeGlyph; x: number }[] = [];
  let x = 0;
  let previous: OpenTypeGlyph | undefined;
  for (const c of text) {
    const glyph = font.charToGlyph(c);
    if (previous) x += pairKerning(font, previous, glyph);
    glyphs.push({ glyph, x });
    x += glyph.advanceWidth ?? 0;
    previous = glyph;
  }
  return { glyphs, advance: x };
}

function rgb(c: Colour): [number, number, number] {
  const v = typeof c === 'number' ? [c, c, c] : [c[0], c[1], c[2]];
  for (const x of v) if (!(x >= 0 && x <= 255)) throw new Error(`colour components must be in [0, 255], got ${x}`);
  return v as [number, number, number];
}

/**
 * Renders one line of text: the glyph run is centred vertically on the font's ascender-descender box and
 * starts `paddingX` from the left; the width is the advance width (with kerning) plus both paddings,
 * rounded up. Pixels are `background + coverage * (foreground - background)`, rounded; alpha is 255.
 */
export function renderTextLine(font: OpenTypeFont, text: string, opts: TextLineOptions = {}): RgbaImage {
  checkCoverage(font, text);
  const height = opts.height ?? 48;
  if (!(Number.isInteger(height) && height > 0)) throw new Error(`height must be a positive integer, got ${height}`);
  let fontSize = opts.fontSize ?? 0.6 * height;
  const paddingX = opts.paddingX ?? height / 16;
  if (!(fontSize > 0) || !(paddingX >= 0)) throw new Error('fontSize must be > 0 and paddingX >= 0');
  let shiftY = 0;
  let shiftX = 0;
  if (opts.jitter) {
    const random = mulberry32(opts.jitter.seed);
    const maxShift = opts.jitter.maxShiftY ?? 2;
    const maxScale = opts.jitter.maxScale ?? 0.08;
    fontSize *= 1 + (2 * random() - 1) * maxScale;
    shiftY = (2 * random() - 1) * maxShift;
    shiftX = random();
  }
  const scale = fontSize / font.unitsPerEm;
  const run = layoutLine(font, text);
  const width = Math.max(1, Math.ceil(2 * paddingX + run.advance * scale + shiftX));
  const box = (font.ascender - font.descender) * scale;
  const baseline = (height - box) / 2 + font.ascender * scale + shiftY;

  const commands: PathCommand[] = [];
  const x0 = paddingX + shiftX;
  for (const { glyph, x } of run.glyphs) {
    // Font units (y up) -> pixels (y down).
    const px = (u: number) => x0 + (x + u) * scale;
    const py = (v: number) => baseline - v * scale;
    for (const c of glyph.path.commands) {
      switch (c.type) {
        case 'M':
        case 'L':
          commands.push({ type: c.type, x: px(c.x), y: py(c.y) });
          break;
        case 'Q':
          commands.push({ type: 'Q', x1: px(c.x1), y1: py(c.y1), x: px(c.x), y: py(c.y) });
          break;
        case 'C':
          commands.push({ type: 'C', x1: px(c.x1), y1: py(c.y1), x2: px(c.x2), y2: py(c.y2), x: px(c.x), y: py(c.y) });
          break;
        case 'Z':
          commands.push(c);
          break;
      }
    }
  }
  const raster = new PathRasterizer(width, height, { samplesPerPixel: opts.samplesPerPixel });
  raster.fillCommands(commands);

  const fg = rgb(opts.foreground ?? 0);
  const bg = rgb(opts.background ?? 255);
  const data = new Uint8ClampedArray(width * height * 4);
  const cov = raster.coverage;
  for (let i = 0; i < cov.length; i++) {
    const a = cov[i];
    data[4 * i] = Math.round(bg[0] + a * (fg[0] - bg[0]));
    data[4 * i + 1] = Math.round(bg[1] + a * (fg[1] - bg[1]));
    data[4 * i + 2] = Math.round(bg[2] + a * (fg[2] - bg[2]));
    data[4 * i + 3] = 255;
  }
  return { width, height, data };
}
