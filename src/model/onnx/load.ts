/**
 * Loading an ONNX model: bytes -> OnnxModel (decode.ts), then external data through a caller-supplied
 * reader (external-data.ts). No Node imports: the browser's model loader uses this module as is;
 * load-node.ts adds reading from disk.
 */
import { decodeModel } from './decode.ts';
import { externalTensorsByFile, resolveExternalData, type ExternalDataReader, type ExternalDataSource } from './external-data.ts';
import { OnnxExternalDataError, type OnnxModel } from './model.ts';

/**
 * Decodes ModelProto bytes. Tensor data is not copied (raw_data views `bytes`) and external data is left
 * unresolved; use loadModel to also read it. Throws OnnxFormatError ("not an ONNX model: ...") on bytes
 * that do not decode, naming the field where decoding failed.
 */
export function parseModel(bytes: Uint8Array): OnnxModel {
  return decodeModel(bytes);
}

export interface LoadModelOptions {
  /**
   * Finds external data files by their location relative to the model: a whole-file reader, or a ranged
   * source for files too large to hold whole. Required when the model has external data.
   */
  readExternalData?: ExternalDataReader | ExternalDataSource;
  /**
   * Read external tensors now (default true). With false the files are only checked (present, long
   * enough); read tensors on demand with loadExternalTensor, e.g. one layer at a time for models larger
   * than memory.
   */
  loadExternalData?: boolean;
}

/** parseModel, then every external tensor checked against its file and (by default) read. */
export async function loadModel(bytes: Uint8Array, options: LoadModelOptions = {}): Promise<OnnxModel> {
  const model = decodeModel(bytes);
  const files = externalTensorsByFile(model);
  if (files.size === 0) return model;
  if (!options.readExternalData) {
    throw new OnnxExternalDataError(
      `the model keeps weights in external data file${files.size > 1 ? 's' : ''} ${[...files.keys()].map((f) => `"${f}"`).join(', ')}: ` +
        'load the model together with them',
    );
  }
  await resolveExternalData(model, options.readExternalData, { load: options.loadExternalData ?? true });
  return model;
}
