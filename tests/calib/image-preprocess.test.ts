// Calibration images reach the model as PaddleOCR / torchvision would feed them: the bilinear resize matches a naive half-pixel-centre implementation, each preset's sizes, channel order, normalisation and padding match hand-computed pixels, models pick their preset from the input shape, JPEG and PNG files decode (the bundled photos included) and bad images fail with the file and the reason.
import { PNG } from 'pngjs';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BUNDLED_IMAGES } from '../../src/calib/bundled-images.ts';
import { decodeImageBytes, decodeImageFile, ImageDecodeError, loadBundledImagesNode } from '../../src/calib/image-decode-node.ts';
import {
  cropImage,
  detResizeSize,
  ImageInputError,
  preprocessBatch,
  presetForInput,
  recWidths,
  resizeBilinear,
  roundHalfEven,
  type RgbaImage,
} from '../../src/calib/image-preprocess.ts';
import { rng } from '../helpers/random.ts';

function randomImage(width: number, height: number, seed: number): RgbaImage {
  const r = rng(seed);
  return { width, height, data: Uint8ClampedArray.from({ length: width * height * 4 }, () => Math.floor(r() * 256)) };
}

function solid(width: number, height: number, rgb: [number, number, number]): RgbaImage {
  const data = new Uint8ClampedArray(width * height * 4);
  for (let i = 0; i < width * height; i++) data.set([...rgb, 255], i * 4);
  return { width, height, data };
}

/**
 * Naive bilinear resize, one output sample at a time: the source point (x + 0.5) * sw / dw - 0.5 clamped
 * into the image, its four neighbours weighted by area.
 */
function naiveResize(img: RgbaImage, dw: number, dh: number, x: number, y: number, c: number): number {
  const px = (i: number, j: number): number => img.data[(j * img.width + i) * 4 + c];
  const sx = Math.min(Math.max(((x + 0.5) * img.width) / dw - 0.5, 0), img.width - 1);
  const sy = Math.min(Math.max(((y + 0.5) * img.height) / dh - 0.5, 0), img.height - 1);
  const x0 = Math.floor(sx), y0 = Math.floor(sy);
  const x1 = Math.min(x0 + 1, img.width - 1), y1 = Math.min(y0 + 1, img.height - 1);
  const ax = sx - x0, ay = sy - y0;
  return (1 - ax) * (1 - ay) * px(x0, y0) + ax * (1 - ay) * px(x1, y0) + (1 - ax) * ay * px(x0, y1) + ax * ay * px(x1, y1);
}

describe('bilinear resize', () => {
  it('matches the naive implementation when shrinking, growing and changing aspect', () => {
    const cases: [number, number, number, number][] = [[7, 5, 3, 4], [3, 3, 8, 5], [1, 1, 4, 4], [10, 2, 4, 7], [5, 9, 5, 3]];
    cases.forEach(([sw, sh, dw, dh], k) => {
      const img = randomImage(sw, sh, 100 + k);
      const r = resizeBilinear(img, dw, dh);
      expect([r.width, r.height, r.data.length]).toEqual([dw, dh, dw * dh * 3]);
      let worst = 0;
      for (let y = 0; y < dh; y++) for (let x = 0; x < dw; x++) for (let c = 0; c < 3; c++) {
        worst = Math.max(worst, Math.abs(r.data[(y * dw + x) * 3 + c] - naiveResize(img, dw, dh, x, y, c)));
      }
      expect(worst, `${sw}x${sh} -> ${dw}x${dh}`).toBeLessThan(1e-3);
    });
  });

  it('same size is the identity; a 2-pixel row doubled gives OpenCV INTER_LINEAR values', () => {
    const img = randomImage(6, 4, 7);
    const same = resizeBilinear(img, 6, 4);
    for (let i = 0; i < 24; i++) for (let c = 0; c < 3; c++) expect(same.data[i * 3 + c]).toBe(img.data[i * 4 + c]);
    // Samples at -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1): 0, 63.75, 191.25, 255.
    const row: RgbaImage = { width: 2, height: 1, data: Uint8Array.from([0, 0, 0, 255, 255, 255, 255, 255]) };
    expect(Array.from(resizeBilinear(row, 4, 1).data.filter((_, i) => i % 3 === 0))).toEqual([0, 63.75, 191.25, 255]);
  });

  it('crops exactly the asked rectangle', () => {
    const img = randomImage(5, 4, 8);
    const c = cropImage(img, 1, 2, 3, 2);
    expect([c.width, c.height]).toEqual([3, 2]);
    expect(Array.from(c.data.subarray(0, 4))).toEqual(Array.from(img.data.subarray((2 * 5 + 1) * 4, (2 * 5 + 2) * 4)));
    expect(Array.from(c.data.subarray(20, 24))).toEqual(Array.from(img.data.subarray((3 * 5 + 3) * 4, (3 * 5 + 4) * 4)));
    expect(() => cropImage(img, 3, 0, 3, 1)).toThrow(ImageInputError);
  });
});

describe('presets', () => {
  it('ppocr-rec: BGR planes, (x/255 - 0.5)/0.5, width ceil(48 w/h), zero padding to the widest line', () => {
    // A 4:1 line -> 192 wide; a 10:1 line -> 480, capped at 320. Solid colours survive resizing exactly.
    const a = solid(40, 10, [255, 0, 51]);
    const b = solid(100, 10, [0, 102, 255]);
    const t = preprocessBatch([a, b], 'ppocr-rec');
    expect(t.dims).toEqual([2, 3, 48, 320]);
    const at = (n: number, c: number, y: number, x: number): number => t.data[((n * 3 + c) * 48 + y) * 320 + x];
    // Image a: B = 51 -> 51/127.5 - 1 = -0.6, G = 0 -> -1, R = 255 -> 1.
    expect(at(0, 0, 10, 0)).toBeCloseTo(-0.6, 6);
    expect(at(0, 1, 47, 191)).toBeCloseTo(-1, 6);
    expect(at(0, 2, 0, 100)).toBeCloseTo(1, 6);
    // Right of 192: padding zeros, in every plane.
    expect([at(0, 0, 0, 192), at(0, 1, 20, 250), at(0, 2, 47, 319)]).toEqual([0, 0, 0]);
    // Image b fills the batch: B = 255 -> 1, G = 102 -> -0.2, R = 0 -> -1.
    expect(at(1, 0, 5, 319)).toBeCloseTo(1, 6);
    expect(at(1, 1, 5, 0)).toBeCloseTo(-0.2, 6);
    expect(at(1, 2, 40, 200)).toBeCloseTo(-1, 6);
    // A batch of narrow lines is only as wide as its widest line.
    expect(preprocessBatch([solid(30, 15, [1, 2, 3])], 'ppocr-rec').dims).toEqual([1, 3, 48, 96]);
  });

  it("ppocr-rec 'paddleocr' width mode: the batch is floor(48 x max(320/48, widest ratio)) wide", () => {
    expect(recWidths([{ width: 40, height: 10 }, { width: 100, height: 10 }], { recWidthMode: 'paddleocr' })).toEqual({ widths: [192, 480], batchWidth: 480 });
    expect(recWidths([{ width: 30, height: 15 }], { recWidthMode: 'paddleocr' })).toEqual({ widths: [96], batchWidth: 320 });
    expect(recWidths([{ width: 30, height: 15 }, { width: 7, height: 3 }])).toEqual({ widths: [96, 112], batchWidth: 112 });
  });

  it('ppocr-det: sizes are multiples of 32 rounded half to even, capped by limitSideLen; ImageNet constants on BGR', () => {
    expect(detResizeSize(100, 50)).toEqual({ width: 96, height: 64 }); // 3.125 -> 3, 1.5625 -> 2
    expect(detResizeSize(80, 112)).toEqual({ width: 64, height: 128 }); // 2.5 -> 2, 3.5 -> 4 (Python round)
    expect(detResizeSize(10, 10)).toEqual({ width: 32, height: 32 }); // at least 32
    expect(detResizeSize(2000, 1000)).toEqual({ width: 960, height: 480 });
    expect(detResizeSize(1000, 3000, 640)).toEqual({ width: 224, height: 640 }); // int(213.33) = 213 -> 6.66 -> 7 x 32
    const t = preprocessBatch([solid(100, 50, [10, 20, 30])], 'ppocr-det');
    expect(t.dims).toEqual([1, 3, 64, 96]);
    const plane = 64 * 96;
    expect(t.data[0]).toBeCloseTo((30 / 255 - 0.485) / 0.229, 5); // B with mean[0], std[0]
    expect(t.data[plane + 17]).toBeCloseTo((20 / 255 - 0.456) / 0.224, 5);
    expect(t.data[2 * plane + plane - 1]).toBeCloseTo((10 / 255 - 0.406) / 0.225, 5);
    expect(preprocessBatch([solid(100, 50, [0, 0, 0])], 'ppocr-det', { limitSideLen: 64 }).dims).toEqual([1, 3, 32, 64]);
  });

  it('imagenet: RGB, shorter side 256, centre crop 224, ImageNet mean/std', () => {
    // 300x200 -> 384x256; the crop starts at x = 80, y = 16. Left third red, the rest blue: crop column
    // c shows resized column c + 80, red up to the edge near source column 100 -> resized 128.
    const img = solid(300, 200, [0, 0, 255]);
    for (let y = 0; y < 200; y++) for (let x = 0; x < 100; x++) img.data.set([255, 0, 0, 255], (y * 300 + x) * 4);
    const t = preprocessBatch([img], 'imagenet');
    expect(t.dims).toEqual([1, 3, 224, 224]);
    const at = (c: number, y: number, x: number): number => t.data[(c * 224 + y) * 224 + x];
    const red = (255 / 255 - 0.485) / 0.229;
    const noRed = (0 - 0.485) / 0.229;
    expect(at(0, 100, 0)).toBeCloseTo(red, 5);
    expect(at(0, 100, 46)).toBeCloseTo(red, 5); // resized column 126: source 126.5 x 300/384 - 0.5 = 98.3, all red
    expect(at(0, 100, 49)).toBeCloseTo(noRed, 5); // resized column 129: source 100.3, all blue
    expect(at(2, 0, 223)).toBeCloseTo((1 - 0.406) / 0.225, 5);
    expect(at(1, 50, 50)).toBeCloseTo((0 - 0.456) / 0.224, 5);
  });

  it('presets from model inputs: PP-OCR rec [N, 3, 48, W], PP-OCR det [N, 3, H, W] named x, 224x224 classifiers', () => {
    expect(presetForInput({ name: 'x', shape: ['p2o.DynamicDimension.0', 3, 48, 'p2o.DynamicDimension.1'] })).toBe('ppocr-rec');
    expect(presetForInput({ name: 'x', shape: ['p2o.DynamicDimension.0', 3, 'p2o.DynamicDimension.1', 'p2o.DynamicDimension.2'] })).toBe('ppocr-det');
    expect(presetForInput({ name: 'pixel_values', shape: ['batch', 3, 224, 224] })).toBe('imagenet');
    expect(presetForInput({ name: 'input_ids', shape: ['batch', 'seq'] })).toBeUndefined();
    expect(presetForInput({ name: 'images', shape: [1, 3, 640, 640] })).toBeUndefined();
  });

  it('refuses empty images, wrong data lengths, empty batches and unknown presets', () => {
    expect(() => preprocessBatch([{ width: 0, height: 5, data: new Uint8Array(0) }], 'imagenet')).toThrow(/image 1 is 0x5/);
    expect(() => preprocessBatch([solid(2, 2, [0, 0, 0]), { width: 3, height: 3, data: new Uint8Array(35) }], 'ppocr-rec')).toThrow(/image 2: 35 bytes.*needs 36/);
    expect(() => preprocessBatch([], 'ppocr-det')).toThrow(ImageInputError);
    expect(() => preprocessBatch([solid(2, 2, [0, 0, 0])], 'yolo' as never)).toThrow(/unknown preprocessing preset "yolo"/);
    expect(roundHalfEven(2.5)).toBe(2);
    expect(roundHalfEven(3.5)).toBe(4);
    expect(roundHalfEven(-0.5)).toBe(-0);
  });
});

describe('decoding (Node)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'quantlab-img-'));

  it('a PNG written by pngjs decodes to its pixels', async () => {
    const data = Buffer.from(randomImage(5, 3, 9).data);
    const file = path.join(dir, 'tiny.png');
    writeFileSync(file, PNG.sync.write({ width: 5, height: 3, data }));
    const img = await decodeImageFile(file);
    expect([img.width, img.height]).toEqual([5, 3]);
    expect(Buffer.from(img.data).equals(data)).toBe(true);
  });

  it('the bundled photos decode, and preprocess', async () => {
    const imgs = await loadBundledImagesNode();
    expect(imgs.map((i) => i.id)).toEqual(BUNDLED_IMAGES.map((b) => b.id));
    for (const img of imgs) {
      expect(img.width * img.height * 4).toBe(img.data.length);
      expect(Math.min(img.width, img.height)).toBeGreaterThan(200);
      // A photograph: many distinct grey levels in the first row.
      expect(new Set(Array.from(img.data.subarray(0, img.width * 4)).filter((_, i) => i % 4 === 0)).size).toBeGreaterThan(10);
    }
    const det = preprocessBatch([imgs[0]], 'ppocr-det', { limitSideLen: 320 });
    expect(det.dims[2] % 32 + det.dims[3] % 32).toBe(0);
    expect(Math.max(det.dims[2], det.dims[3])).toBe(320);
  });

  it('files that are not images, or do not decode, name the file and the reason', async () => {
    expect(() => decodeImageBytes('notes.jpg', new TextEncoder().encode('hello'))).toThrow(/notes\.jpg: .*JPEG signature/);
    const png = PNG.sync.write({ width: 4, height: 4, data: Buffer.alloc(64, 200) });
    const cut = path.join(dir, 'cut.png');
    writeFileSync(cut, png.subarray(0, 40));
    await expect(decodeImageFile(cut)).rejects.toThrow(/cut\.png: the PNG data does not decode: .+/);
    const badJpeg = Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(() => decodeImageBytes('broken.jpg', badJpeg)).toThrow(ImageDecodeError);
    expect(() => decodeImageBytes('broken.jpg', badJpeg)).toThrow(/broken\.jpg: the JPEG data does not decode/);
    await expect(decodeImageFile(path.join(dir, 'missing.png'))).rejects.toThrow(/missing\.png: cannot read/);
  });
});
