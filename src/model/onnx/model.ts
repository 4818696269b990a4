/**
 * The in-memory ONNX model: plain, editable objects mirroring onnx.proto (onnx/onnx, onnx/onnx.in.proto)
 * closely enough that `serializeModel` writes back everything onnxruntime reads. Fields this codec does
 * not model (training_info, sparse initializers, device configurations, dimension denotations of
 * non-tensor types...) are kept as their original field records in `unknownFields` and written back
 * verbatim.
 *
 * Tensor element data is never decoded at load time: raw_data stays a view of the file bytes and
 * external data a reference until resolved (see tensor-data.ts for element access).
 */

/** TensorProto.DataType, by the names onnxruntime-web uses for tensor types. */
export type OnnxDataType =
  | 'undefined'
  | 'float32'
  | 'uint8'
  | 'int8'
  | 'uint16'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'string'
  | 'bool'
  | 'float16'
  | 'float64'
  | 'uint32'
  | 'uint64'
  | 'complex64'
  | 'complex128'
  | 'bfloat16'
  | 'float8e4m3fn'
  | 'float8e4m3fnuz'
  | 'float8e5m2'
  | 'float8e5m2fnuz'
  | 'uint4'
  | 'int4'
  | 'float4e2m1'
  | 'float8e8m0'
  | 'uint2'
  | 'int2'
  /** A code this table does not know yet (kept so the tensor still round-trips). */
  | `unknown-${number}`;

/** Enum value order = TensorProto.DataType code (onnx.proto: FLOAT = 1 ... FLOAT8E8M0 = 24, UINT2 = 25, INT2 = 26). */
const DATA_TYPE_BY_CODE: readonly OnnxDataType[] = [
  'undefined', 'float32', 'uint8', 'int8', 'uint16', 'int16', 'int32', 'int64', 'string', 'bool', 'float16',
  'float64', 'uint32', 'uint64', 'complex64', 'complex128', 'bfloat16', 'float8e4m3fn', 'float8e4m3fnuz',
  'float8e5m2', 'float8e5m2fnuz', 'uint4', 'int4', 'float4e2m1', 'float8e8m0', 'uint2', 'int2',
];

export function dataTypeFromCode(code: number): OnnxDataType {
  return DATA_TYPE_BY_CODE[code] ?? `unknown-${code}`;
}

export function dataTypeCode(t: OnnxDataType): number {
  const i = DATA_TYPE_BY_CODE.indexOf(t);
  if (i >= 0) return i;
  const m = /^unknown-(\d+)$/.exec(t);
  if (m) return Number(m[1]);
  throw new RangeError(`unknown ONNX data type "${t}"`);
}

/** Bits per element of a dense (raw_data) encoding; 0 for string and unknown types. */
export function dataTypeBits(t: OnnxDataType): number {
  switch (t) {
    case 'float32': case 'int32': case 'uint32': return 32;
    case 'uint8': case 'int8': case 'bool':
    case 'float8e4m3fn': case 'float8e4m3fnuz': case 'float8e5m2': case 'float8e5m2fnuz': case 'float8e8m0': return 8;
    case 'uint16': case 'int16': case 'float16': case 'bfloat16': return 16;
    case 'int64': case 'uint64': case 'float64': case 'complex64': return 64;
    case 'complex128': return 128;
    case 'uint4': case 'int4': case 'float4e2m1': return 4;
    case 'uint2': case 'int2': return 2;
    default: return 0;
  }
}

export interface StringStringEntry {
  key: string;
  value: string;
}

/** Where a tensor's elements are. */
export type OnnxTensorData =
  /** raw_data: little-endian fixed-width elements; a view of the model bytes when loaded from a file. */
  | { location: 'raw_data'; bytes: Uint8Array }
  /** One of the typed repeated fields (float_data, int32_data, ...), already decoded. */
  | { location: 'float_data'; values: Float32Array }
  | { location: 'int32_data'; values: Int32Array }
  | { location: 'int64_data'; values: BigInt64Array }
  | { location: 'double_data'; values: Float64Array }
  | { location: 'uint64_data'; values: BigUint64Array }
  | { location: 'string_data'; values: Uint8Array[] }
  /**
   * External data (data_location = EXTERNAL): `file` relative to the model's folder, `offset` and
   * `length` in bytes (length absent = to the end of the file). `bytes` is filled in by
   * resolveExternalData / loadModel. `entries` keeps every external_data key/value as read (checksum,
   * custom keys) so the reference round-trips.
   */
  | { location: 'external'; file: string; offset: number; length?: number; entries: StringStringEntry[]; bytes?: Uint8Array }
  /** No element field at all (valid for zero-element tensors). */
  | { location: 'none' };

/**
 * A TensorProto: initializer, Constant value, or tensor attribute.
 * Element count and byte length are derived (tensor-data.ts: tensorElementCount, tensorByteLength) rather
 * than stored, so editing dims or data cannot leave a stale copy behind.
 */
export interface OnnxTensor {
  name: string;
  dims: number[];
  dataType: OnnxDataType;
  data: OnnxTensorData;
  docString?: string;
  metadataProps?: StringStringEntry[];
  unknownFields?: Uint8Array[];
}

/** A tensor dimension: a size, a symbolic name (dim_param), or null when neither is given. */
export type OnnxDim = number | string | null;

export type OnnxType =
  /** TypeProto.tensor_type. `shape` undefined = rank unknown. */
  | { kind: 'tensor'; elemType: OnnxDataType; shape?: OnnxDim[]; unknownFields?: Uint8Array[] }
  /** Sequence, map, optional, sparse and opaque types: the TypeProto bytes, written back as they came. */
  | { kind: 'other'; bytes: Uint8Array };

export interface OnnxValueInfo {
  name: string;
  type?: OnnxType;
  docString?: string;
  metadataProps?: StringStringEntry[];
  unknownFields?: Uint8Array[];
}

/** AttributeProto value, by AttributeType. Integers are numbers when safe, bigints otherwise (e.g. INT64_MAX in Slice). */
export type OnnxAttributeValue =
  | { type: 'float'; value: number }
  | { type: 'int'; value: number | bigint }
  | { type: 'string'; value: string }
  | { type: 'tensor'; value: OnnxTensor }
  | { type: 'graph'; value: OnnxGraph }
  | { type: 'floats'; value: number[] }
  | { type: 'ints'; value: (number | bigint)[] }
  | { type: 'strings'; value: string[] }
  | { type: 'tensors'; value: OnnxTensor[] }
  | { type: 'graphs'; value: OnnxGraph[] }
  /** sparse_tensor(s), type_proto(s), or an attribute without a value (a reference in a function body). */
  | { type: 'other'; typeCode: number };

export type OnnxAttribute = OnnxAttributeValue & {
  name: string;
  /** Set in function bodies: the attribute takes the caller's attribute of this name. */
  refAttrName?: string;
  docString?: string;
  unknownFields?: Uint8Array[];
};

export interface OnnxNode {
  /** May be empty: node names are optional in ONNX. */
  name: string;
  opType: string;
  /** '' (or 'ai.onnx') is the standard operator set; 'com.microsoft' holds onnxruntime's contrib ops. */
  domain: string;
  /** Input tensor names; '' marks an omitted optional input. */
  inputs: string[];
  outputs: string[];
  attributes: OnnxAttribute[];
  overload?: string;
  docString?: string;
  metadataProps?: StringStringEntry[];
  unknownFields?: Uint8Array[];
}

export interface TensorAnnotation {
  tensorName: string;
  quantParameterTensorNames: StringStringEntry[];
}

export interface OnnxGraph {
  name: string;
  /** Topologically sorted (required by the ONNX spec, not checked here). */
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  valueInfo: OnnxValueInfo[];
  quantizationAnnotation?: TensorAnnotation[];
  docString?: string;
  metadataProps?: StringStringEntry[];
  unknownFields?: Uint8Array[];
}

export interface OperatorSetId {
  domain: string;
  version: number;
}

/** FunctionProto: a model-local function, called by nodes whose (domain, opType) match. */
export interface OnnxFunction {
  name: string;
  domain: string;
  overload?: string;
  inputs: string[];
  outputs: string[];
  attributes: string[];
  attributeProtos: OnnxAttribute[];
  nodes: OnnxNode[];
  opsetImports: OperatorSetId[];
  valueInfo: OnnxValueInfo[];
  docString?: string;
  metadataProps?: StringStringEntry[];
  unknownFields?: Uint8Array[];
}

export interface OnnxModel {
  irVersion: number;
  opsetImports: OperatorSetId[];
  producerName: string;
  producerVersion: string;
  domain: string;
  modelVersion: number;
  docString: string;
  graph: OnnxGraph;
  metadataProps: StringStringEntry[];
  functions: OnnxFunction[];
  /** training_info, configuration and fields of newer ONNX versions, as their original field records. */
  unknownFields?: Uint8Array[];
}

/** Bytes that are not an ONNX model, or a model this module cannot write; the message says where and why. */
export class OnnxFormatError extends Error {
  override name = 'OnnxFormatError';
}

/** External data that cannot be found or does not hold what the model says. */
export class OnnxExternalDataError extends Error {
  override name = 'OnnxExternalDataError';
}

/** Opset version of a domain ('' and 'ai.onnx' are the same), or undefined when the model does not import it. */
export function opsetVersion(model: Pick<OnnxModel, 'opsetImports'>, domain = ''): number | undefined {
  const norm = (d: string): string => (d === 'ai.onnx' ? '' : d);
  const want = norm(domain);
  let best: number | undefined;
  for (const o of model.opsetImports) if (norm(o.domain) === want && (best === undefined || o.version > best)) best = o.version;
  return best;
}
