/** The sections of the app, in the order a user walks through them, with what each one does. */
export type SectionId = 'playground' | 'model' | 'calibrate' | 'quantize' | 'evaluate' | 'export';

export interface Section {
  id: SectionId;
  title: string;
  /** One line for the tab tooltip and the page subtitle. */
  summary: string;
  /** What the step will do, for sections not built yet. */
  coming?: string[];
}

export const SECTIONS: Section[] = [
  {
    id: 'playground',
    title: 'Playground',
    summary: 'See what a quantizer does to one tensor: error, grid, clipping, outlier channels.',
  },
  {
    id: 'model',
    title: 'Model',
    summary: 'Load the network to quantize.',
    coming: [
      'Open a model from disk, without uploading it anywhere: ONNX graphs, llama2.c checkpoints, GGUF files and Hugging Face safetensors.',
      'You will see its layers, their shapes and dtypes, and which weights the later steps will quantize.',
    ],
  },
  {
    id: 'calibrate',
    title: 'Calibrate',
    summary: 'Choose activation ranges from sample data.',
    coming: [
      'Run sample inputs through the model and collect activation statistics on the GPU.',
      'Pick each activation’s range with the max, percentile (99.9 / 99.99 / 99.999), entropy (TensorRT style KL divergence) or MSE calibrator, and compare them on the histogram.',
    ],
  },
  {
    id: 'quantize',
    title: 'Quantize',
    summary: 'Turn weights (and activations) into low-bit codes.',
    coming: [
      'Quantize every layer with round-to-nearest, SmoothQuant (move activation outliers into the weights) or AWQ (activation-aware scale and clip search for INT4 weights).',
      'Bits, granularity and group size per layer, with the same kernels as the Playground.',
    ],
  },
  {
    id: 'evaluate',
    title: 'Evaluate',
    summary: 'Measure what quantization cost.',
    coming: [
      'Compare the full-precision and quantized models side by side: perplexity for language models, accuracy for classifiers, and SQNR layer by layer to find where the error comes from.',
    ],
  },
  {
    id: 'export',
    title: 'Export',
    summary: 'Save the quantized model for a runtime.',
    coming: [
      'Write the result in the format your runtime reads: ONNX with QuantizeLinear/DequantizeLinear for TensorRT, a TensorRT calibration cache, an AutoAWQ checkpoint, ONNX Runtime MatMulNBits, or GGUF.',
    ],
  },
];

export const DEFAULT_SECTION: SectionId = 'playground';

export function sectionFromHash(hash: string): SectionId | undefined {
  const id = hash.replace(/^#\/?/, '').split(/[/?]/)[0];
  return SECTIONS.find((s) => s.id === id)?.id;
}
