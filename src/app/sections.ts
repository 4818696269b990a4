/** The sections of the app, in the order a user walks through them, with what each one does. */
export type SectionId = 'playground' | 'model' | 'calibrate' | 'awq' | 'quantize' | 'evaluate' | 'export';

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
    summary: 'Open the network to quantize: bundled models or your own ONNX, llama2.c, GGUF or safetensors files.',
  },
  {
    id: 'calibrate',
    title: 'Calibrate',
    summary: 'Run sample data through the model, compare the max, percentile, entropy and MSE calibrators per activation, find the outlier channels, and download the ranges.',
  },
  {
    id: 'awq',
    title: 'AWQ & SmoothQuant',
    summary: 'Let calibration data steer quantization: AWQ scale and clip search block by block (INT4 and lower), SmoothQuant alpha sweep (W8A8).',
  },
  {
    id: 'quantize',
    title: 'Quantize',
    summary: 'Quantize every weight of the model (round-to-nearest), see the error per layer, and run the quantized model.',
  },
  {
    id: 'evaluate',
    title: 'Evaluate',
    summary: 'Compare quantized configurations with the full-precision model on held-out text: perplexity, KL divergence, top-1 agreement, generations, accuracy against size.',
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

export const DEFAULT_SECTION: SectionId = 'model';

export function sectionFromHash(hash: string): SectionId | undefined {
  const id = hash.replace(/^#\/?/, '').split(/[/?]/)[0];
  return SECTIONS.find((s) => s.id === id)?.id;
}
