/**
 * Stored ONNX weight <-> QuantLab's [out, in] row-major matrix (quant/layout.ts: rows are output channels,
 * groups run along a row). Conv weights [O, I/g, k...] already are that matrix; MatMul B [K, N] and Gemm
 * with transB = 0 are its transpose; ConvTranspose [I, O/g, k...] keeps output channels on axis 1, so its
 * rows gather W[g * I/g + ic, oc, k...] over (ic, k...) for output channel o = g * O/g + oc.
 */
import type { QuantizableLayer } from './analyze.ts';

type View = Pick<QuantizableLayer, 'op' | 'weightShape' | 'outChannels' | 'inChannels' | 'needsRearrange' | 'groups'>;

/** For each [out, in] element (row-major), the index of the stored element it comes from. */
function storedIndexOf(layer: View): (o: number, i: number) => number {
  const { outChannels: out, inChannels: inn } = layer;
  if (!layer.needsRearrange) return (o, i) => o * inn + i;
  if (layer.op === 'ConvTranspose') {
    const [cin, coutG] = layer.weightShape;
    const kernel = layer.weightShape.slice(2).reduce((a, b) => a * b, 1);
    const cinG = cin / layer.groups;
    return (o, i) => {
      const g = Math.floor(o / coutG);
      const oc = o - g * coutG;
      const ic = Math.floor(i / kernel);
      const k = i - ic * kernel;
      return ((g * cinG + ic) * coutG + oc) * kernel + k;
    };
  }
  // Stored [in, out].
  return (o, i) => i * out + o;
}

/** The stored weight's values (flat, stored order) as the [out, in] row-major matrix. */
export function weightToOutIn(layer: View, stored: Float32Array): Float32Array {
  const { outChannels: out, inChannels: inn } = layer;
  if (stored.length !== out * inn) throw new RangeError(`weight has ${stored.length} values, [out, in] = [${out}, ${inn}] needs ${out * inn}`);
  if (!layer.needsRearrange) return stored.slice();
  const at = storedIndexOf(layer);
  const m = new Float32Array(out * inn);
  for (let o = 0; o < out; o++) for (let i = 0; i < inn; i++) m[o * inn + i] = stored[at(o, i)];
  return m;
}

/** Inverse of weightToOutIn: an [out, in] matrix back in the stored layout (for writing quantized weights). */
export function outInToWeight(layer: View, matrix: Float32Array): Float32Array {
  const { outChannels: out, inChannels: inn } = layer;
  if (matrix.length !== out * inn) throw new RangeError(`matrix has ${matrix.length} values, [out, in] = [${out}, ${inn}] needs ${out * inn}`);
  if (!layer.needsRearrange) return matrix.slice();
  const at = storedIndexOf(layer);
  const w = new Float32Array(out * inn);
  for (let o = 0; o < out; o++) for (let i = 0; i < inn; i++) w[at(o, i)] = matrix[o * inn + i];
  return w;
}
