/**
 * Calibration images -> model input tensors (NCHW float32), the way each model family's own inference code
 * prepares them, so captured activations have the ranges the deployed model sees:
 *  - 'ppocr-rec' (PP-OCRv4 recogniser; PaddleOCR tools/infer/predict_rec.py resize_norm_img): BGR planes
 *    (PaddleOCR reads images with cv2 and never converts), height 48, width ceil(48 w/h) capped at 320,
 *    x/255, (x - 0.5) / 0.5, zero padding on the right up to the batch width.
 *  - 'ppocr-det' (PP-OCRv4 detector; ppocr/data/imaug/operators.py DetResizeForTest with limit_type 'max',
 *    NormalizeImage): BGR, longer side scaled down to limitSideLen (960) when above it, each side rounded
 *    to a multiple of 32 (at least 32), x/255, mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225] taken
 *    in that order over the B, G, R planes (PaddleOCR applies the ImageNet constants to BGR as they are).
 *  - 'imagenet' (torchvision's classic eval transform): RGB, shorter side resized to 256, centre crop 224,
 *    x/255, ImageNet mean and std.
 *
 * Resizing is bilinear with half-pixel centres, OpenCV's INTER_LINEAR convention: output pixel x samples
 * the source at (x + 0.5) * srcW / dstW - 0.5, clamped to [0, srcW - 1] (edge pixels repeat). Two
 * differences from cv2.resize, both under half a grey level: OpenCV interpolates uint8 images in fixed
 * point and rounds the result to uint8, this code keeps floats. Neither OpenCV's INTER_LINEAR nor this
 * antialiases when shrinking (torchvision's PIL resize does, so 'imagenet' differs slightly there).
 * Alpha is ignored (cv2.imread drops it too).
 * No Node imports: the browser bundles this file.
 */
import type { FloatTensor } from './ort-runtime.ts';

/** Decoded image, RGBA bytes row by row (ImageData's layout). */
export interface RgbaImage {
  width: number;
  height: number;
  data: Uint8ClampedArray | Uint8Array;
}

/** An RGB image with float samples in [0, 255], interleaved (HWC). */
export interface RgbFloatImage {
  width: number;
  height: number;
  data: Float32Array;
}

export type ImagePreset = 'ppocr-rec' | 'ppocr-det' | 'imagenet';

export const IMAGE_PRESETS: readonly ImagePreset[] = ['ppocr-rec', 'ppocr-det', 'imagenet'];

export interface PreprocessOptions {
  /** ppocr-rec: input height (48, PP-OCRv4's rec_image_shape [3, 48, 320]). */
  recHeight?: number;
  /** ppocr-rec: widest resized line (320). */
  recMaxWidth?: number;
  /**
   * ppocr-rec batch width. 'capped' (default): every line is ceil(h w/h) wide capped at recMaxWidth, and
   * the batch pads to its widest line (at most recMaxWidth), keeping calibration tensors small.
   * 'paddleocr': predict_rec.py's rule, batch width floor(h x max(recMaxWidth / h, widest w/h)): at
   * least recMaxWidth, and wider for long lines, which are then not squeezed.
   */
  recWidthMode?: 'capped' | 'paddleocr';
  /** ppocr-det: longest side after resizing (960, PaddleOCR's det_limit_side_len; smaller for quick calibration). */
  limitSideLen?: number;
  /** imagenet: shorter side after resizing (256) and centre crop (224). */
  resizeShorter?: number;
  cropSize?: number;
}

/** An image that cannot be preprocessed; the message says why. */
export class ImageInputError extends Error {
  override name = 'ImageInputError';
}

export function checkImage(img: RgbaImage, label = 'image'): void {
  const { width, height, data } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new ImageInputError(`${label} is ${width}x${height}: width and height must be positive integers`);
  }
  if (data.length !== width * height * 4) {
    throw new ImageInputError(`${label}: ${data.length} bytes of pixel data, ${width}x${height} RGBA needs ${width * height * 4}`);
  }
}

/** Python's round(): halves go to the even neighbour (PaddleOCR's multiple-of-32 rounding uses it). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Source index pairs and weights of one axis (half-pixel centres, clamped). */
function axisSamples(src: number, dst: number): { i0: Int32Array; i1: Int32Array; w1: Float32Array } {
  const i0 = new Int32Array(dst);
  const i1 = new Int32Array(dst);
  const w1 = new Float32Array(dst);
  const scale = src / dst;
  for (let d = 0; d < dst; d++) {
    const s = Math.min(Math.max((d + 0.5) * scale - 0.5, 0), src - 1);
    const lo = Math.floor(s);
    i0[d] = lo;
    i1[d] = Math.min(lo + 1, src - 1);
    w1[d] = s - lo;
  }
  return { i0, i1, w1 };
}

/** Bilinear resize (see the file comment for the sampling convention) of the RGB channels. */
export function resizeBilinear(img: RgbaImage, width: number, height: number): RgbFloatImage {
  checkImage(img);
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new ImageInputError(`cannot resize to ${width}x${height}`);
  }
  const src = img.data;
  const sw = img.width;
  const xs = axisSamples(sw, width);
  const ys = axisSamples(img.height, height);
  const out = new Float32Array(width * height * 3);
  let o = 0;
  for (let y = 0; y < height; y++) {
    const r0 = ys.i0[y] * sw * 4;
    const r1 = ys.i1[y] * sw * 4;
    const wy = ys.w1[y];
    for (let x = 0; x < width; x++) {
      const a = xs.i0[x] * 4;
      const b = xs.i1[x] * 4;
      const wx = xs.w1[x];
      for (let c = 0; c < 3; c++) {
        const top = src[r0 + a + c] + (src[r0 + b + c] - src[r0 + a + c]) * wx;
        const bottom = src[r1 + a + c] + (src[r1 + b + c] - src[r1 + a + c]) * wx;
        out[o++] = top + (bottom - top) * wy;
      }
    }
  }
  return { width, height, data: out };
}

/** The rectangle [x, x + width) x [y, y + height) of an image (e.g. a text-line crop for the recogniser). */
export function cropImage(img: RgbaImage, x: number, y: number, width: number, height: number): RgbaImage {
  checkImage(img);
  if (![x, y, width, height].every(Number.isInteger) || x < 0 || y < 0 || width <= 0 || height <= 0 || x + width > img.width || y + height > img.height) {
    throw new ImageInputError(`crop ${width}x${height} at (${x}, ${y}) is not inside the ${img.width}x${img.height} image`);
  }
  const data = new Uint8ClampedArray(width * height * 4);
  for (let r = 0; r < height; r++) {
    const s = ((y + r) * img.width + x) * 4;
    data.set(img.data.subarray(s, s + width * 4), r * width * 4);
  }
  return { width, height, data };
}

/** Per preset: source channel (0 R, 1 G, 2 B) of each output plane, and out = v * mul + add per plane. */
interface Normalization {
  planes: [number, number, number];
  mul: [number, number, number];
  add: [number, number, number];
}

const IMAGENET_MEAN = [0.485, 0.456, 0.406];
const IMAGENET_STD = [0.229, 0.224, 0.225];

function normalization(preset: ImagePreset): Normalization {
  if (preset === 'ppocr-rec') {
    // (v / 255 - 0.5) / 0.5 on B, G, R.
    return { planes: [2, 1, 0], mul: [2 / 255, 2 / 255, 2 / 255], add: [-1, -1, -1] };
  }
  const planes: [number, number, number] = preset === 'ppocr-det' ? [2, 1, 0] : [0, 1, 2];
  const mul = IMAGENET_STD.map((s) => 1 / (255 * s)) as [number, number, number];
  const add = IMAGENET_MEAN.map((m, i) => -m / IMAGENET_STD[i]) as [number, number, number];
  return { planes, mul, add };
}

/** Where one image goes in the batch: resized size, then the crop of it kept (imagenet), at the top left. */
interface Placement {
  resizeW: number;
  resizeH: number;
  cropX: number;
  cropY: number;
  width: number;
  height: number;
}

/** PaddleOCR DetResizeForTest, limit_type 'max': the resized (width, height). */
export function detResizeSize(width: number, height: number, limitSideLen = 960): { width: number; height: number } {
  const ratio = Math.max(width, height) > limitSideLen ? limitSideLen / Math.max(width, height) : 1;
  const to32 = (v: number): number => Math.max(roundHalfEven(Math.trunc(v * ratio) / 32) * 32, 32);
  return { width: to32(width), height: to32(height) };
}

/** Width of each line and of the batch for 'ppocr-rec'. */
export function recWidths(images: readonly { width: number; height: number }[], opts: PreprocessOptions = {}): { widths: number[]; batchWidth: number } {
  const h = opts.recHeight ?? 48;
  const maxW = opts.recMaxWidth ?? 320;
  if (opts.recWidthMode === 'paddleocr') {
    const maxRatio = Math.max(maxW / h, ...images.map((i) => i.width / i.height));
    const batchWidth = Math.floor(h * maxRatio);
    return { widths: images.map((i) => Math.min(batchWidth, Math.ceil((h * i.width) / i.height))), batchWidth };
  }
  const widths = images.map((i) => Math.min(maxW, Math.ceil((h * i.width) / i.height)));
  return { widths, batchWidth: Math.max(...widths) };
}

function placements(images: readonly RgbaImage[], preset: ImagePreset, opts: PreprocessOptions): { items: Placement[]; width: number; height: number } {
  if (preset === 'ppocr-rec') {
    const h = opts.recHeight ?? 48;
    const { widths, batchWidth } = recWidths(images, opts);
    return { items: widths.map((w) => ({ resizeW: w, resizeH: h, cropX: 0, cropY: 0, width: w, height: h })), width: batchWidth, height: h };
  }
  if (preset === 'ppocr-det') {
    const items = images.map((img) => {
      const s = detResizeSize(img.width, img.height, opts.limitSideLen ?? 960);
      return { resizeW: s.width, resizeH: s.height, cropX: 0, cropY: 0, width: s.width, height: s.height };
    });
    return { items, width: Math.max(...items.map((i) => i.width)), height: Math.max(...items.map((i) => i.height)) };
  }
  const shorter = opts.resizeShorter ?? 256;
  const crop = opts.cropSize ?? 224;
  if (crop > shorter) throw new ImageInputError(`imagenet preset: crop ${crop} is larger than the resized shorter side ${shorter}`);
  const items = images.map((img) => {
    // torchvision Resize(int): the shorter side becomes `shorter`, the longer one int(shorter x long / short).
    const [rw, rh] = img.width <= img.height ? [shorter, Math.trunc((shorter * img.height) / img.width)] : [Math.trunc((shorter * img.width) / img.height), shorter];
    // CenterCrop: offsets int(round((size - crop) / 2)).
    return { resizeW: rw, resizeH: rh, cropX: roundHalfEven((rw - crop) / 2), cropY: roundHalfEven((rh - crop) / 2), width: crop, height: crop };
  });
  return { items, width: crop, height: crop };
}

/**
 * Preprocesses images into one NCHW float32 batch [N, 3, H, W]. Images smaller than the batch (ppocr-rec
 * lines narrower than the widest; ppocr-det images of different sizes, which PaddleOCR never batches) sit
 * at the top left, the rest is zero, as predict_rec.py pads.
 */
export function preprocessBatch(images: readonly RgbaImage[], preset: ImagePreset, opts: PreprocessOptions = {}): FloatTensor {
  if (images.length === 0) throw new ImageInputError('no images to preprocess');
  if (!IMAGE_PRESETS.includes(preset)) throw new ImageInputError(`unknown preprocessing preset "${preset}" (known: ${IMAGE_PRESETS.join(', ')})`);
  images.forEach((img, i) => checkImage(img, `image ${i + 1}`));
  const { items, width, height } = placements(images, preset, opts);
  const norm = normalization(preset);
  const plane = width * height;
  const out = new Float32Array(images.length * 3 * plane);
  images.forEach((img, n) => {
    const p = items[n];
    const r = resizeBilinear(img, p.resizeW, p.resizeH);
    for (let c = 0; c < 3; c++) {
      const src = norm.planes[c];
      const mul = norm.mul[c];
      const add = norm.add[c];
      const base = (n * 3 + c) * plane;
      for (let y = 0; y < p.height; y++) {
        let s = ((y + p.cropY) * r.width + p.cropX) * 3 + src;
        let d = base + y * width;
        for (let x = 0; x < p.width; x++, s += 3, d++) out[d] = r.data[s] * mul + add;
      }
    }
  });
  return { data: out, dims: [images.length, 3, height, width] };
}

/**
 * The preset a model's image input implies, when recognisable: [N, 3, 48, W] with W free is the PP-OCR
 * recogniser, [N, 3, H, W] with H and W free from a Paddle export (input "x") the PP-OCR detector,
 * [N, 3, 224, 224] an ImageNet classifier. Undefined otherwise: ask the user.
 */
export function presetForInput(input: { name: string; shape: readonly (number | string | null)[] }): ImagePreset | undefined {
  const s = input.shape;
  if (s.length !== 4 || s[1] !== 3) return undefined;
  const free = (d: number | string | null): boolean => typeof d !== 'number' || d < 0;
  if (s[2] === 48 && free(s[3])) return 'ppocr-rec';
  if (s[2] === 224 && s[3] === 224) return 'imagenet';
  if (input.name === 'x' && free(s[2]) && free(s[3])) return 'ppocr-det';
  return undefined;
}
