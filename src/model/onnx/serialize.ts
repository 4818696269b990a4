/**
 * OnnxModel -> ModelProto bytes, with the field numbers decode.ts reads (onnx/onnx.in.proto). Repeated
 * scalars are written the way onnx's C++ protobuf writes them: TensorProto *_data packed, dims and
 * attribute lists unpacked. Fields kept in `unknownFields` are written back verbatim.
 *
 * A protobuf message cannot exceed 2 GiB; serializeModelWithExternalData moves initializer bytes to a
 * separate data file (onnx's "external data" convention) for models that are larger.
 */
import {
  OnnxExternalDataError,
  OnnxFormatError,
  dataTypeBits,
  dataTypeCode,
  type OnnxAttribute,
  type OnnxFunction,
  type OnnxGraph,
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
  type OnnxType,
  type OnnxValueInfo,
  type OperatorSetId,
  type StringStringEntry,
  type TensorAnnotation,
} from './model.ts';
import { WIRE_I32, WIRE_LEN, WireWriter } from './proto-wire.ts';
import { tensorBytes } from './tensor-data.ts';

/** Largest message protobuf parsers accept (onnxruntime and onnx refuse anything bigger). */
export const PROTOBUF_LIMIT = 2 ** 31 - 1;

export interface SerializeOptions {
  /**
   * External tensors whose bytes are loaded: true writes them inline as raw_data; false (default) keeps
   * the external reference, so the data file must travel with the model.
   */
  inlineExternalData?: boolean;
}

interface WriteContext {
  inlineExternalData: boolean;
  /** Set by serializeModelWithExternalData: initializers that go to the data file, by identity. */
  externalize?: Map<OnnxTensor, { offset: number; length: number }>;
  externalLocation?: string;
}

function writeEntries(w: WireWriter, field: number, entries: readonly StringStringEntry[] | undefined): void {
  if (!entries) return;
  for (const e of entries) {
    const c = new WireWriter();
    if (e.key) c.stringField(1, e.key);
    if (e.value) c.stringField(2, e.value);
    w.messageField(field, c);
  }
}

function writePackedFixed(w: WireWriter, field: number, values: Float32Array | Float64Array): void {
  if (values.length === 0) return;
  w.bytesField(field, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
}

function writePackedVarints(w: WireWriter, field: number, values: Int32Array | BigInt64Array | BigUint64Array): void {
  if (values.length === 0) return;
  const c = new WireWriter();
  for (const v of values) c.varint64(v);
  w.tag(field, WIRE_LEN);
  w.varint(c.length);
  for (const p of c.finishParts()) w.rawBytes(p);
}

function encodeTensor(t: OnnxTensor, ctx: WriteContext): WireWriter {
  // Fields in field-number order, as protobuf's own serializers write them.
  const w = new WireWriter();
  for (const d of t.dims) w.int64Field(1, d);
  w.int64Field(2, dataTypeCode(t.dataType));
  const moved = ctx.externalize?.get(t);
  const d = t.data;
  let raw: Uint8Array | undefined;
  let external: StringStringEntry[] | undefined;
  if (moved) {
    external = [
      { key: 'location', value: ctx.externalLocation! },
      { key: 'offset', value: String(moved.offset) },
      { key: 'length', value: String(moved.length) },
    ];
  } else if (d.location === 'raw_data') {
    raw = d.bytes;
  } else if (d.location === 'external') {
    if (ctx.inlineExternalData) {
      if (!d.bytes) throw new OnnxExternalDataError(`cannot inline tensor "${t.name}": its external data ("${d.file}") is not loaded`);
      raw = d.bytes;
    } else {
      external = d.entries;
    }
  }
  if (!moved) {
    if (d.location === 'float_data') writePackedFixed(w, 4, d.values);
    else if (d.location === 'int32_data') writePackedVarints(w, 5, d.values);
    else if (d.location === 'string_data') for (const s of d.values) w.bytesField(6, s);
    else if (d.location === 'int64_data') writePackedVarints(w, 7, d.values);
  }
  if (t.name) w.stringField(8, t.name);
  if (raw) w.bytesField(9, raw);
  if (!moved) {
    if (d.location === 'double_data') writePackedFixed(w, 10, d.values);
    else if (d.location === 'uint64_data') writePackedVarints(w, 11, d.values);
  }
  if (t.docString) w.stringField(12, t.docString);
  if (external) {
    writeEntries(w, 13, external);
    w.int64Field(14, 1);
  }
  writeEntries(w, 16, t.metadataProps);
  w.verbatim(t.unknownFields);
  return w;
}

function encodeType(t: OnnxType): WireWriter {
  const w = new WireWriter();
  if (t.kind === 'other') {
    w.rawBytes(t.bytes);
    return w;
  }
  const tt = new WireWriter();
  tt.int64Field(1, dataTypeCode(t.elemType));
  if (t.shape) {
    const shape = new WireWriter();
    for (const d of t.shape) {
      const dim = new WireWriter();
      if (typeof d === 'number') dim.int64Field(1, d);
      else if (typeof d === 'string') dim.stringField(2, d);
      shape.messageField(1, dim);
    }
    tt.messageField(2, shape);
  }
  w.messageField(1, tt);
  w.verbatim(t.unknownFields);
  return w;
}

function encodeValueInfo(v: OnnxValueInfo): WireWriter {
  const w = new WireWriter();
  if (v.name) w.stringField(1, v.name);
  if (v.type) w.messageField(2, encodeType(v.type));
  if (v.docString) w.stringField(3, v.docString);
  writeEntries(w, 4, v.metadataProps);
  w.verbatim(v.unknownFields);
  return w;
}

const ATTRIBUTE_TYPE_CODE = { float: 1, int: 2, string: 3, tensor: 4, graph: 5, floats: 6, ints: 7, strings: 8, tensors: 9, graphs: 10 } as const;

function encodeAttribute(a: OnnxAttribute, ctx: WriteContext): WireWriter {
  const w = new WireWriter();
  w.stringField(1, a.name);
  switch (a.type) {
    case 'float':
      w.floatField(2, a.value);
      break;
    case 'int':
      w.int64Field(3, a.value);
      break;
    case 'string':
      w.stringField(4, a.value);
      break;
    case 'tensor':
      w.messageField(5, encodeTensor(a.value, ctx));
      break;
    case 'graph':
      w.messageField(6, encodeGraph(a.value, ctx));
      break;
    case 'floats':
      for (const f of a.value) (w.tag(7, WIRE_I32), w.float32(f));
      break;
    case 'ints':
      for (const i of a.value) w.int64Field(8, i);
      break;
    case 'strings':
      for (const s of a.value) w.stringField(9, s);
      break;
    case 'tensors':
      for (const t of a.value) w.messageField(10, encodeTensor(t, ctx));
      break;
    case 'graphs':
      for (const g of a.value) w.messageField(11, encodeGraph(g, ctx));
      break;
    case 'other':
      break;
  }
  if (a.docString) w.stringField(13, a.docString);
  const code = a.type === 'other' ? a.typeCode : ATTRIBUTE_TYPE_CODE[a.type];
  if (code) w.int64Field(20, code);
  if (a.refAttrName) w.stringField(21, a.refAttrName);
  w.verbatim(a.unknownFields);
  return w;
}

function encodeNode(n: OnnxNode, ctx: WriteContext): WireWriter {
  const w = new WireWriter();
  for (const i of n.inputs) w.stringField(1, i);
  for (const o of n.outputs) w.stringField(2, o);
  if (n.name) w.stringField(3, n.name);
  w.stringField(4, n.opType);
  for (const a of n.attributes) w.messageField(5, encodeAttribute(a, ctx));
  if (n.docString) w.stringField(6, n.docString);
  if (n.domain) w.stringField(7, n.domain);
  if (n.overload) w.stringField(8, n.overload);
  writeEntries(w, 9, n.metadataProps);
  w.verbatim(n.unknownFields);
  return w;
}

function encodeAnnotation(a: TensorAnnotation): WireWriter {
  const w = new WireWriter();
  w.stringField(1, a.tensorName);
  writeEntries(w, 2, a.quantParameterTensorNames);
  return w;
}

function encodeGraph(g: OnnxGraph, ctx: WriteContext): WireWriter {
  const w = new WireWriter();
  for (const n of g.nodes) w.messageField(1, encodeNode(n, ctx));
  if (g.name) w.stringField(2, g.name);
  for (const t of g.initializers) w.messageField(5, encodeTensor(t, ctx));
  if (g.docString) w.stringField(10, g.docString);
  for (const v of g.inputs) w.messageField(11, encodeValueInfo(v));
  for (const v of g.outputs) w.messageField(12, encodeValueInfo(v));
  for (const v of g.valueInfo) w.messageField(13, encodeValueInfo(v));
  if (g.quantizationAnnotation) for (const a of g.quantizationAnnotation) w.messageField(14, encodeAnnotation(a));
  writeEntries(w, 16, g.metadataProps);
  w.verbatim(g.unknownFields);
  return w;
}

function encodeOpset(o: OperatorSetId): WireWriter {
  const w = new WireWriter();
  // Written even when empty, as onnx.helper.make_opsetid and most exporters do.
  w.stringField(1, o.domain);
  w.int64Field(2, o.version);
  return w;
}

function encodeFunction(f: OnnxFunction, ctx: WriteContext): WireWriter {
  const w = new WireWriter();
  w.stringField(1, f.name);
  for (const s of f.inputs) w.stringField(4, s);
  for (const s of f.outputs) w.stringField(5, s);
  for (const s of f.attributes) w.stringField(6, s);
  for (const n of f.nodes) w.messageField(7, encodeNode(n, ctx));
  if (f.docString) w.stringField(8, f.docString);
  for (const o of f.opsetImports) w.messageField(9, encodeOpset(o));
  if (f.domain) w.stringField(10, f.domain);
  for (const a of f.attributeProtos) w.messageField(11, encodeAttribute(a, ctx));
  for (const v of f.valueInfo) w.messageField(12, encodeValueInfo(v));
  if (f.overload) w.stringField(13, f.overload);
  writeEntries(w, 14, f.metadataProps);
  w.verbatim(f.unknownFields);
  return w;
}

function encodeModel(m: OnnxModel, ctx: WriteContext): WireWriter {
  const w = new WireWriter();
  w.int64Field(1, m.irVersion);
  if (m.producerName) w.stringField(2, m.producerName);
  if (m.producerVersion) w.stringField(3, m.producerVersion);
  if (m.domain) w.stringField(4, m.domain);
  if (m.modelVersion) w.int64Field(5, m.modelVersion);
  if (m.docString) w.stringField(6, m.docString);
  w.messageField(7, encodeGraph(m.graph, ctx));
  for (const o of m.opsetImports) w.messageField(8, encodeOpset(o));
  writeEntries(w, 14, m.metadataProps);
  for (const f of m.functions) w.messageField(25, encodeFunction(f, ctx));
  w.verbatim(m.unknownFields);
  return w;
}

function finishChecked(w: WireWriter): Uint8Array {
  if (w.length > PROTOBUF_LIMIT) {
    throw new OnnxFormatError(
      `the model serializes to ${(w.length / 2 ** 30).toFixed(2)} GiB, over protobuf's 2 GiB limit: ` +
        'write the weights as external data (serializeModelWithExternalData)',
    );
  }
  return w.finish();
}

/** ModelProto bytes of `model`. Throws OnnxFormatError when the result would exceed protobuf's 2 GiB limit. */
export function serializeModel(model: OnnxModel, options: SerializeOptions = {}): Uint8Array {
  return finishChecked(encodeModel(model, { inlineExternalData: options.inlineExternalData ?? false }));
}

export interface ExternalDataOptions {
  /** File name written into every moved tensor's `location`, relative to the model file. */
  location: string;
  /** Initializers with fewer data bytes stay inline (default 1024, onnx.save's size_threshold). */
  sizeThreshold?: number;
  /** Each tensor starts at a multiple of this (default 4096: the ONNX spec asks for page alignment so runtimes can mmap). */
  align?: number;
}

export interface ModelWithExternalData {
  model: Uint8Array;
  /** The data file's contents as consecutive byte runs (join or write them in order); `byteLength` in total. */
  externalData: { location: string; parts: Uint8Array[]; byteLength: number };
}

/**
 * ModelProto bytes with large initializers moved to one external data file. Every initializer's data must
 * be available (external tensors resolved first). Tensors in node attributes (Constant) stay inline.
 */
export function serializeModelWithExternalData(model: OnnxModel, options: ExternalDataOptions): ModelWithExternalData {
  const threshold = options.sizeThreshold ?? 1024;
  const align = options.align ?? 4096;
  if (!options.location || options.location.includes('..') || options.location.startsWith('/')) {
    throw new OnnxFormatError(`external data location "${options.location}" must be a file name relative to the model`);
  }
  const externalize = new Map<OnnxTensor, { offset: number; length: number }>();
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const t of model.graph.initializers) {
    if (dataTypeBits(t.dataType) === 0 || t.data.location === 'none') continue;
    const bytes = tensorBytes(t);
    if (bytes.length < threshold) continue;
    const start = Math.ceil(offset / align) * align;
    if (start > offset) parts.push(new Uint8Array(start - offset));
    parts.push(bytes);
    externalize.set(t, { offset: start, length: bytes.length });
    offset = start + bytes.length;
  }
  const bytes = finishChecked(encodeModel(model, { inlineExternalData: true, externalize, externalLocation: options.location }));
  return { model: bytes, externalData: { location: options.location, parts, byteLength: offset } };
}
