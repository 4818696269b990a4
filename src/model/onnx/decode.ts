/**
 * ModelProto bytes -> OnnxModel. Field numbers from onnx/onnx.in.proto (IR version 11): each message
 * decoder below lists the ones it reads; everything else is kept verbatim in `unknownFields`.
 *
 * Errors are WireErrors whose `path` names the innermost field being decoded, e.g.
 * `graph.initializer[57] "conv1.weight".raw_data`; load.ts turns them into OnnxFormatError.
 */
import {
  OnnxFormatError,
  dataTypeBits,
  dataTypeFromCode,
  type OnnxAttribute,
  type OnnxDim,
  type OnnxFunction,
  type OnnxGraph,
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
  type OnnxTensorData,
  type OnnxType,
  type OnnxValueInfo,
  type OperatorSetId,
  type StringStringEntry,
  type TensorAnnotation,
} from './model.ts';
import { WIRE_I32, WIRE_I64, WIRE_LEN, WIRE_VARINT, WireError, WireReader, expectWire } from './proto-wire.ts';

type FieldHandler = (field: number, wire: number) => boolean;

/**
 * Reads every field of one message. `handle` returns false for fields it does not model; those are skipped
 * and their records (tag included) returned so the writer can put them back.
 */
function readFields(r: WireReader, where: () => string, names: Record<number, string>, handle: FieldHandler): Uint8Array[] | undefined {
  let unknown: Uint8Array[] | undefined;
  while (!r.done) {
    const start = r.pos;
    let field = 0;
    try {
      const tag = r.tag();
      field = Math.floor(tag / 8);
      const wire = tag & 7;
      if (field === 0) throw new WireError(`invalid field number 0 at byte ${start}`, start);
      if (!handle(field, wire)) {
        r.skip(wire, field);
        (unknown ??= []).push(r.buf.subarray(start, r.pos));
      }
    } catch (e) {
      if (e instanceof WireError && e.path === undefined) {
        e.path = field > 0 ? `${where()}.${names[field] ?? `field ${field}`}` : where();
      }
      throw e;
    }
  }
  if (r.clamped) {
    const e = new WireError(`the data ends inside this message (file truncated?)`, r.pos, true);
    e.path = where();
    throw e;
  }
  return unknown;
}

function len(wire: number, field: number, r: WireReader): void {
  expectWire(wire, WIRE_LEN, field, r.pos);
}

function varintWire(wire: number, field: number, r: WireReader): void {
  expectWire(wire, WIRE_VARINT, field, r.pos);
}

function toSafeNumber(v: number | bigint, what: string, pos: number): number {
  if (typeof v === 'number') return v;
  throw new WireError(`${what} ${v} is out of the range this loader handles`, pos);
}

// ---------------------------------------------------------------------------------------------
// Small messages

function decodeEntry(r: WireReader, where: string): StringStringEntry {
  const e: StringStringEntry = { key: '', value: '' };
  readFields(r, () => where, { 1: 'key', 2: 'value' }, (f, w) => {
    if (f === 1) (len(w, f, r), (e.key = r.string()));
    else if (f === 2) (len(w, f, r), (e.value = r.string()));
    else return false;
    return true;
  });
  return e;
}

function decodeOpset(r: WireReader, where: string): OperatorSetId {
  const o: OperatorSetId = { domain: '', version: 0 };
  readFields(r, () => where, { 1: 'domain', 2: 'version' }, (f, w) => {
    if (f === 1) (len(w, f, r), (o.domain = r.string()));
    else if (f === 2) (varintWire(w, f, r), (o.version = toSafeNumber(r.int64(), 'opset version', r.pos)));
    else return false;
    return true;
  });
  return o;
}

function decodeAnnotation(r: WireReader, where: string): TensorAnnotation {
  const a: TensorAnnotation = { tensorName: '', quantParameterTensorNames: [] };
  readFields(r, () => where, { 1: 'tensor_name', 2: 'quant_parameter_tensor_names' }, (f, w) => {
    if (f === 1) (len(w, f, r), (a.tensorName = r.string()));
    else if (f === 2) (len(w, f, r), a.quantParameterTensorNames.push(decodeEntry(r.message(), `${where}.quant_parameter_tensor_names`)));
    else return false;
    return true;
  });
  return a;
}

// ---------------------------------------------------------------------------------------------
// Tensors

const TENSOR_FIELDS: Record<number, string> = {
  1: 'dims', 2: 'data_type', 3: 'segment', 4: 'float_data', 5: 'int32_data', 6: 'string_data', 7: 'int64_data',
  8: 'name', 9: 'raw_data', 10: 'double_data', 11: 'uint64_data', 12: 'doc_string', 13: 'external_data',
  14: 'data_location', 16: 'metadata_props',
};

/** Growable typed array for repeated numeric fields that may arrive packed, unpacked, or both. */
class Grow<T extends Float32Array | Float64Array | Int32Array | BigInt64Array | BigUint64Array> {
  private chunks: T[] = [];
  private n = 0;
  constructor(private readonly make: (n: number) => T) {}
  push(chunk: T): void {
    this.chunks.push(chunk);
    this.n += chunk.length;
  }
  finish(): T {
    if (this.chunks.length === 1) return this.chunks[0];
    const out = this.make(this.n);
    let o = 0;
    for (const c of this.chunks) {
      (out as unknown as { set(a: T, o: number): void }).set(c, o);
      o += c.length;
    }
    return out;
  }
  get length(): number {
    return this.n;
  }
}

/**
 * Copies a little-endian packed fixed-width payload (float_data, double_data) into its own (aligned) buffer:
 * the payload comes from protobufjs's Reader.bytes(), and its IEEE values are taken as one block rather
 * than through Reader.floats() (a number[] first), which measured about half as fast on 4 MiB of floats.
 */
function packedFixed<T>(bytes: Uint8Array, size: number, make: (b: ArrayBuffer) => T, field: number): T {
  if (bytes.length % size !== 0) throw new WireError(`packed field ${field} has ${bytes.length} bytes, not a multiple of ${size}`, 0);
  return make(bytes.slice().buffer);
}

function elementCount(dims: number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

export function decodeTensor(r: WireReader, path: string): OnnxTensor {
  let name = '';
  const where = (): string => (name ? `${path} "${name}"` : path);
  const dims: number[] = [];
  let code = 0;
  let raw: Uint8Array | undefined;
  let floats: Grow<Float32Array> | undefined;
  let int32s: Grow<Int32Array> | undefined;
  let int64s: Grow<BigInt64Array> | undefined;
  let doubles: Grow<Float64Array> | undefined;
  let uint64s: Grow<BigUint64Array> | undefined;
  let strings: Uint8Array[] | undefined;
  const external: StringStringEntry[] = [];
  let dataLocation = 0;
  let docString: string | undefined;
  let metadataProps: StringStringEntry[] | undefined;

  const unknownFields = readFields(r, where, TENSOR_FIELDS, (f, w) => {
    switch (f) {
      case 1: {
        const vals: (number | bigint)[] = [];
        r.repeatedInt64(w, vals);
        for (const v of vals) {
          if (typeof v !== 'number' || v < 0) throw new WireError(`dimension ${v} is not a valid tensor size`, r.pos);
          dims.push(v);
        }
        return true;
      }
      case 2:
        varintWire(w, f, r);
        code = toSafeNumber(r.int64(), 'data_type', r.pos);
        return true;
      case 4:
        floats ??= new Grow((n) => new Float32Array(n));
        if (w === WIRE_LEN) floats.push(packedFixed(r.bytes('float_data'), 4, (b) => new Float32Array(b), f));
        else (expectWire(w, WIRE_I32, f, r.pos), floats.push(Float32Array.of(r.float32())));
        return true;
      case 5: {
        int32s ??= new Grow((n) => new Int32Array(n));
        if (w === WIRE_LEN) {
          const sub = r.message();
          const out = new Int32Array(sub.end - sub.pos);
          let n = 0;
          while (!sub.done) out[n++] = Number(sub.int64()) | 0;
          if (sub.clamped) throw new WireError('the data ends inside int32_data (file truncated?)', sub.pos, true);
          int32s.push(out.subarray(0, n));
        } else {
          varintWire(w, f, r);
          int32s.push(Int32Array.of(Number(r.int64()) | 0));
        }
        return true;
      }
      case 6:
        len(w, f, r);
        (strings ??= []).push(r.bytes('string_data'));
        return true;
      case 7: {
        int64s ??= new Grow((n) => new BigInt64Array(n));
        if (w === WIRE_LEN) {
          const sub = r.message();
          const out = new BigInt64Array(sub.end - sub.pos);
          let n = 0;
          while (!sub.done) out[n++] = BigInt.asIntN(64, sub.varint64Bits());
          if (sub.clamped) throw new WireError('the data ends inside int64_data (file truncated?)', sub.pos, true);
          int64s.push(out.subarray(0, n));
        } else {
          varintWire(w, f, r);
          int64s.push(BigInt64Array.of(BigInt.asIntN(64, r.varint64Bits())));
        }
        return true;
      }
      case 8:
        len(w, f, r);
        name = r.string();
        return true;
      case 9:
        len(w, f, r);
        raw = r.bytes('raw_data');
        return true;
      case 10:
        doubles ??= new Grow((n) => new Float64Array(n));
        if (w === WIRE_LEN) doubles.push(packedFixed(r.bytes('double_data'), 8, (b) => new Float64Array(b), f));
        else (expectWire(w, WIRE_I64, f, r.pos), doubles.push(Float64Array.of(r.float64())));
        return true;
      case 11: {
        uint64s ??= new Grow((n) => new BigUint64Array(n));
        if (w === WIRE_LEN) {
          const sub = r.message();
          const out = new BigUint64Array(sub.end - sub.pos);
          let n = 0;
          while (!sub.done) out[n++] = sub.varint64Bits();
          if (sub.clamped) throw new WireError('the data ends inside uint64_data (file truncated?)', sub.pos, true);
          uint64s.push(out.subarray(0, n));
        } else {
          varintWire(w, f, r);
          uint64s.push(BigUint64Array.of(r.varint64Bits()));
        }
        return true;
      }
      case 12:
        len(w, f, r);
        docString = r.string();
        return true;
      case 13:
        len(w, f, r);
        external.push(decodeEntry(r.message(), `${where()}.external_data`));
        return true;
      case 14:
        varintWire(w, f, r);
        dataLocation = toSafeNumber(r.int64(), 'data_location', r.pos);
        return true;
      case 16:
        len(w, f, r);
        (metadataProps ??= []).push(decodeEntry(r.message(), `${where()}.metadata_props`));
        return true;
      default:
        return false;
    }
  });

  const dataType = dataTypeFromCode(code);
  let data: OnnxTensorData;
  if (dataLocation === 1 || (external.length > 0 && raw === undefined)) {
    data = externalReference(external, where());
  } else if (raw !== undefined) {
    data = { location: 'raw_data', bytes: raw };
  } else if (floats) {
    data = { location: 'float_data', values: floats.finish() };
  } else if (int32s) {
    data = { location: 'int32_data', values: int32s.finish() };
  } else if (int64s) {
    data = { location: 'int64_data', values: int64s.finish() };
  } else if (doubles) {
    data = { location: 'double_data', values: doubles.finish() };
  } else if (uint64s) {
    data = { location: 'uint64_data', values: uint64s.finish() };
  } else if (strings) {
    data = { location: 'string_data', values: strings };
  } else {
    data = { location: 'none' };
  }
  const tensor: OnnxTensor = { name, dims, dataType, data };
  if (docString !== undefined) tensor.docString = docString;
  if (metadataProps) tensor.metadataProps = metadataProps;
  if (unknownFields) tensor.unknownFields = unknownFields;
  checkTensorSize(tensor, where());
  return tensor;
}

function externalReference(entries: StringStringEntry[], where: string): OnnxTensorData {
  let file: string | undefined;
  let offset = 0;
  let length: number | undefined;
  for (const e of entries) {
    if (e.key === 'location') file = e.value;
    else if (e.key === 'offset' || e.key === 'length') {
      const v = Number(e.value);
      if (!/^\d+$/.test(e.value.trim()) || !Number.isSafeInteger(v)) {
        throw Object.assign(new WireError(`external_data ${e.key} "${e.value}" is not a byte count`, 0), { path: where });
      }
      if (e.key === 'offset') offset = v;
      else length = v;
    }
  }
  if (file === undefined || file === '') {
    throw Object.assign(new WireError('external data without a "location" entry', 0), { path: where });
  }
  const data: OnnxTensorData = { location: 'external', file, offset, entries };
  if (length !== undefined) data.length = length;
  return data;
}

/** A tensor whose element field disagrees with its dims is corrupt; onnxruntime would refuse it too. */
function checkTensorSize(t: OnnxTensor, where: string): void {
  const n = elementCount(t.dims);
  const bits = dataTypeBits(t.dataType);
  const fail = (field: string, got: number, need: number, unit: string): never => {
    throw Object.assign(
      new WireError(`${field} holds ${got} ${unit}, but dims [${t.dims.join(', ')}] of ${t.dataType} need ${need}`, 0),
      { path: where },
    );
  };
  const d = t.data;
  switch (d.location) {
    case 'raw_data':
      if (bits > 0 && d.bytes.length !== Math.ceil((n * bits) / 8)) fail('raw_data', d.bytes.length, Math.ceil((n * bits) / 8), 'bytes');
      return;
    case 'float_data': {
      const need = t.dataType === 'complex64' ? 2 * n : n;
      if (d.values.length !== need) fail('float_data', d.values.length, need, 'values');
      return;
    }
    case 'double_data': {
      const need = t.dataType === 'complex128' ? 2 * n : n;
      if (d.values.length !== need) fail('double_data', d.values.length, need, 'values');
      return;
    }
    case 'int64_data':
    case 'uint64_data':
    case 'string_data':
      if (d.values.length !== n) fail(d.location, d.values.length, n, 'values');
      return;
    case 'int32_data':
      // Sub-byte types hold one packed byte per int32_data entry.
      if (bits > 0 && bits <= 32 && d.values.length !== (bits < 8 ? Math.ceil((n * bits) / 8) : n)) {
        fail('int32_data', d.values.length, bits < 8 ? Math.ceil((n * bits) / 8) : n, 'values');
      }
      return;
    case 'external':
      if (d.length !== undefined && bits > 0 && d.length !== Math.ceil((n * bits) / 8)) fail('external data length', d.length, Math.ceil((n * bits) / 8), 'bytes');
      return;
    case 'none':
      return;
  }
}

// ---------------------------------------------------------------------------------------------
// Types and value infos

function decodeShape(r: WireReader, where: string): OnnxDim[] {
  const dims: OnnxDim[] = [];
  readFields(r, () => where, { 1: 'dim' }, (f, w) => {
    if (f !== 1) return false;
    len(w, f, r);
    let dim: OnnxDim = null;
    const sub = r.message();
    readFields(sub, () => `${where}.dim[${dims.length}]`, { 1: 'dim_value', 2: 'dim_param', 3: 'denotation' }, (g, v) => {
      if (g === 1) {
        varintWire(v, g, sub);
        const x = sub.int64();
        dim = typeof x === 'number' ? x : Number(x);
      } else if (g === 2) {
        len(v, g, sub);
        dim = sub.string();
      } else return false;
      return true;
    });
    dims.push(dim);
    return true;
  });
  return dims;
}

function decodeType(r: WireReader, where: string): OnnxType {
  const start = r.pos;
  let tensor: { elemType: number; shape?: OnnxDim[] } | undefined;
  let other = false;
  const unknownFields = readFields(r, () => where, { 1: 'tensor_type', 4: 'sequence_type', 5: 'map_type', 6: 'denotation', 7: 'opaque_type', 8: 'sparse_tensor_type', 9: 'optional_type' }, (f, w) => {
    if (f === 1) {
      len(w, f, r);
      const sub = r.message();
      const t: { elemType: number; shape?: OnnxDim[] } = { elemType: 0 };
      readFields(sub, () => `${where}.tensor_type`, { 1: 'elem_type', 2: 'shape' }, (g, v) => {
        if (g === 1) (varintWire(v, g, sub), (t.elemType = toSafeNumber(sub.int64(), 'elem_type', sub.pos)));
        else if (g === 2) (len(v, g, sub), (t.shape = decodeShape(sub.message(), `${where}.tensor_type.shape`)));
        else return false;
        return true;
      });
      tensor = t;
      return true;
    }
    if (f !== 6) other = true;
    return false;
  });
  if (!tensor || other) return { kind: 'other', bytes: r.buf.subarray(start, r.end) };
  const out: OnnxType = { kind: 'tensor', elemType: dataTypeFromCode(tensor.elemType) };
  if (tensor.shape) out.shape = tensor.shape;
  if (unknownFields) out.unknownFields = unknownFields;
  return out;
}

function decodeValueInfo(r: WireReader, path: string): OnnxValueInfo {
  const v: OnnxValueInfo = { name: '' };
  const where = (): string => (v.name ? `${path} "${v.name}"` : path);
  const unknownFields = readFields(r, where, { 1: 'name', 2: 'type', 3: 'doc_string', 4: 'metadata_props' }, (f, w) => {
    if (f === 1) (len(w, f, r), (v.name = r.string()));
    else if (f === 2) (len(w, f, r), (v.type = decodeType(r.message(), `${where()}.type`)));
    else if (f === 3) (len(w, f, r), (v.docString = r.string()));
    else if (f === 4) (len(w, f, r), (v.metadataProps ??= []).push(decodeEntry(r.message(), `${where()}.metadata_props`)));
    else return false;
    return true;
  });
  if (unknownFields) v.unknownFields = unknownFields;
  return v;
}

// ---------------------------------------------------------------------------------------------
// Attributes and nodes

const ATTRIBUTE_FIELDS: Record<number, string> = {
  1: 'name', 2: 'f', 3: 'i', 4: 's', 5: 't', 6: 'g', 7: 'floats', 8: 'ints', 9: 'strings', 10: 'tensors', 11: 'graphs',
  13: 'doc_string', 14: 'tp', 15: 'type_protos', 20: 'type', 21: 'ref_attr_name', 22: 'sparse_tensor', 23: 'sparse_tensors',
};

/** AttributeProto.AttributeType codes. */
const ATTR_FLOAT = 1, ATTR_INT = 2, ATTR_STRING = 3, ATTR_TENSOR = 4, ATTR_GRAPH = 5;
const ATTR_FLOATS = 6, ATTR_INTS = 7, ATTR_STRINGS = 8, ATTR_TENSORS = 9, ATTR_GRAPHS = 10;

function decodeAttribute(r: WireReader, path: string): OnnxAttribute {
  let name = '';
  const where = (): string => (name ? `${path} "${name}"` : path);
  let typeCode: number | undefined;
  let f: number | undefined;
  let i: number | bigint | undefined;
  let s: string | undefined;
  let t: OnnxTensor | undefined;
  let g: OnnxGraph | undefined;
  let floats: number[] | undefined;
  let ints: (number | bigint)[] | undefined;
  let strings: string[] | undefined;
  let tensors: OnnxTensor[] | undefined;
  let graphs: OnnxGraph[] | undefined;
  let refAttrName: string | undefined;
  let docString: string | undefined;

  const unknownFields = readFields(r, where, ATTRIBUTE_FIELDS, (field, w) => {
    switch (field) {
      case 1: len(w, field, r); name = r.string(); return true;
      case 2: expectWire(w, WIRE_I32, field, r.pos); f = r.float32(); return true;
      case 3: varintWire(w, field, r); i = r.int64(); return true;
      case 4: len(w, field, r); s = r.string(); return true;
      case 5: len(w, field, r); t = decodeTensor(r.message(), `${where()}.t`); return true;
      case 6: len(w, field, r); g = decodeGraph(r.message(), `${where()}.g`); return true;
      case 7: r.repeatedFloat32(w, (floats ??= [])); return true;
      case 8: r.repeatedInt64(w, (ints ??= [])); return true;
      case 9: len(w, field, r); (strings ??= []).push(r.string()); return true;
      case 10: len(w, field, r); (tensors ??= []).push(decodeTensor(r.message(), `${where()}.tensors[${tensors?.length ?? 0}]`)); return true;
      case 11: len(w, field, r); (graphs ??= []).push(decodeGraph(r.message(), `${where()}.graphs[${graphs?.length ?? 0}]`)); return true;
      case 13: len(w, field, r); docString = r.string(); return true;
      case 20: varintWire(w, field, r); typeCode = toSafeNumber(r.int64(), 'attribute type', r.pos); return true;
      case 21: len(w, field, r); refAttrName = r.string(); return true;
      default: return false;
    }
  });

  // IR version 1 had no type field: infer it from the value present.
  if (typeCode === undefined) {
    typeCode = f !== undefined ? ATTR_FLOAT : i !== undefined ? ATTR_INT : s !== undefined ? ATTR_STRING : t ? ATTR_TENSOR
      : g ? ATTR_GRAPH : floats ? ATTR_FLOATS : ints ? ATTR_INTS : strings ? ATTR_STRINGS : tensors ? ATTR_TENSORS
      : graphs ? ATTR_GRAPHS : 0;
  }
  let attr: OnnxAttribute;
  const other = (): OnnxAttribute => ({ name, type: 'other', typeCode: typeCode! });
  switch (typeCode) {
    case ATTR_FLOAT: attr = f === undefined && refAttrName ? other() : { name, type: 'float', value: f ?? 0 }; break;
    case ATTR_INT: attr = i === undefined && refAttrName ? other() : { name, type: 'int', value: i ?? 0 }; break;
    case ATTR_STRING: attr = s === undefined && refAttrName ? other() : { name, type: 'string', value: s ?? '' }; break;
    case ATTR_TENSOR: attr = t ? { name, type: 'tensor', value: t } : other(); break;
    case ATTR_GRAPH: attr = g ? { name, type: 'graph', value: g } : other(); break;
    case ATTR_FLOATS: attr = { name, type: 'floats', value: floats ?? [] }; break;
    case ATTR_INTS: attr = { name, type: 'ints', value: ints ?? [] }; break;
    case ATTR_STRINGS: attr = { name, type: 'strings', value: strings ?? [] }; break;
    case ATTR_TENSORS: attr = { name, type: 'tensors', value: tensors ?? [] }; break;
    case ATTR_GRAPHS: attr = { name, type: 'graphs', value: graphs ?? [] }; break;
    default: attr = other();
  }
  if (refAttrName !== undefined) attr.refAttrName = refAttrName;
  if (docString !== undefined) attr.docString = docString;
  if (unknownFields) attr.unknownFields = unknownFields;
  return attr;
}

const NODE_FIELDS: Record<number, string> = {
  1: 'input', 2: 'output', 3: 'name', 4: 'op_type', 5: 'attribute', 6: 'doc_string', 7: 'domain', 8: 'overload',
  9: 'metadata_props', 10: 'device_configurations',
};

function decodeNode(r: WireReader, path: string): OnnxNode {
  const n: OnnxNode = { name: '', opType: '', domain: '', inputs: [], outputs: [], attributes: [] };
  const where = (): string => (n.name ? `${path} "${n.name}"` : n.opType ? `${path} (${n.opType})` : path);
  const unknownFields = readFields(r, where, NODE_FIELDS, (f, w) => {
    switch (f) {
      case 1: len(w, f, r); n.inputs.push(r.string()); return true;
      case 2: len(w, f, r); n.outputs.push(r.string()); return true;
      case 3: len(w, f, r); n.name = r.string(); return true;
      case 4: len(w, f, r); n.opType = r.string(); return true;
      case 5: len(w, f, r); n.attributes.push(decodeAttribute(r.message(), `${where()}.attribute[${n.attributes.length}]`)); return true;
      case 6: len(w, f, r); n.docString = r.string(); return true;
      case 7: len(w, f, r); n.domain = r.string(); return true;
      case 8: len(w, f, r); n.overload = r.string(); return true;
      case 9: len(w, f, r); (n.metadataProps ??= []).push(decodeEntry(r.message(), `${where()}.metadata_props`)); return true;
      default: return false;
    }
  });
  if (unknownFields) n.unknownFields = unknownFields;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Graphs, functions, models

const GRAPH_FIELDS: Record<number, string> = {
  1: 'node', 2: 'name', 5: 'initializer', 10: 'doc_string', 11: 'input', 12: 'output', 13: 'value_info',
  14: 'quantization_annotation', 15: 'sparse_initializer', 16: 'metadata_props',
};

/** Subgraph nesting decodeGraph accepts; deeper is hostile or corrupt data, not a model. */
const MAX_GRAPH_DEPTH = 64;
let graphDepth = 0;

export function decodeGraph(r: WireReader, path: string): OnnxGraph {
  if (graphDepth >= MAX_GRAPH_DEPTH) throw Object.assign(new WireError(`subgraphs nested more than ${MAX_GRAPH_DEPTH} deep`, r.pos), { path });
  graphDepth++;
  try {
    return decodeGraphFields(r, path);
  } finally {
    graphDepth--;
  }
}

function decodeGraphFields(r: WireReader, path: string): OnnxGraph {
  const g: OnnxGraph = { name: '', nodes: [], initializers: [], inputs: [], outputs: [], valueInfo: [] };
  const where = (): string => path;
  const unknownFields = readFields(r, where, GRAPH_FIELDS, (f, w) => {
    switch (f) {
      case 1: len(w, f, r); g.nodes.push(decodeNode(r.message(), `${path}.node[${g.nodes.length}]`)); return true;
      case 2: len(w, f, r); g.name = r.string(); return true;
      case 5: len(w, f, r); g.initializers.push(decodeTensor(r.message(), `${path}.initializer[${g.initializers.length}]`)); return true;
      case 10: len(w, f, r); g.docString = r.string(); return true;
      case 11: len(w, f, r); g.inputs.push(decodeValueInfo(r.message(), `${path}.input[${g.inputs.length}]`)); return true;
      case 12: len(w, f, r); g.outputs.push(decodeValueInfo(r.message(), `${path}.output[${g.outputs.length}]`)); return true;
      case 13: len(w, f, r); g.valueInfo.push(decodeValueInfo(r.message(), `${path}.value_info[${g.valueInfo.length}]`)); return true;
      case 14: len(w, f, r); (g.quantizationAnnotation ??= []).push(decodeAnnotation(r.message(), `${path}.quantization_annotation`)); return true;
      case 16: len(w, f, r); (g.metadataProps ??= []).push(decodeEntry(r.message(), `${path}.metadata_props`)); return true;
      default: return false;
    }
  });
  if (unknownFields) g.unknownFields = unknownFields;
  return g;
}

const FUNCTION_FIELDS: Record<number, string> = {
  1: 'name', 4: 'input', 5: 'output', 6: 'attribute', 7: 'node', 8: 'doc_string', 9: 'opset_import', 10: 'domain',
  11: 'attribute_proto', 12: 'value_info', 13: 'overload', 14: 'metadata_props',
};

function decodeFunction(r: WireReader, path: string): OnnxFunction {
  const fn: OnnxFunction = { name: '', domain: '', inputs: [], outputs: [], attributes: [], attributeProtos: [], nodes: [], opsetImports: [], valueInfo: [] };
  const where = (): string => (fn.name ? `${path} "${fn.name}"` : path);
  const unknownFields = readFields(r, where, FUNCTION_FIELDS, (f, w) => {
    switch (f) {
      case 1: len(w, f, r); fn.name = r.string(); return true;
      case 4: len(w, f, r); fn.inputs.push(r.string()); return true;
      case 5: len(w, f, r); fn.outputs.push(r.string()); return true;
      case 6: len(w, f, r); fn.attributes.push(r.string()); return true;
      case 7: len(w, f, r); fn.nodes.push(decodeNode(r.message(), `${where()}.node[${fn.nodes.length}]`)); return true;
      case 8: len(w, f, r); fn.docString = r.string(); return true;
      case 9: len(w, f, r); fn.opsetImports.push(decodeOpset(r.message(), `${where()}.opset_import`)); return true;
      case 10: len(w, f, r); fn.domain = r.string(); return true;
      case 11: len(w, f, r); fn.attributeProtos.push(decodeAttribute(r.message(), `${where()}.attribute_proto`)); return true;
      case 12: len(w, f, r); fn.valueInfo.push(decodeValueInfo(r.message(), `${where()}.value_info`)); return true;
      case 13: len(w, f, r); fn.overload = r.string(); return true;
      case 14: len(w, f, r); (fn.metadataProps ??= []).push(decodeEntry(r.message(), `${where()}.metadata_props`)); return true;
      default: return false;
    }
  });
  if (unknownFields) fn.unknownFields = unknownFields;
  return fn;
}

const MODEL_FIELDS: Record<number, string> = {
  1: 'ir_version', 2: 'producer_name', 3: 'producer_version', 4: 'domain', 5: 'model_version', 6: 'doc_string',
  7: 'graph', 8: 'opset_import', 14: 'metadata_props', 20: 'training_info', 25: 'functions', 26: 'configuration',
};

/** What the first bytes look like when they are some other well-known format. */
function sniffOtherFormat(b: Uint8Array): string | undefined {
  if (b.length >= 4 && b[0] === 0x50 && b[1] === 0x4b && b[2] === 0x03 && b[3] === 0x04) return 'a ZIP archive (a PyTorch checkpoint or a zipped model?)';
  if (b.length >= 8 && String.fromCharCode(b[4], b[5], b[6], b[7]) === 'ORTM') return 'an ONNX Runtime .ort (flatbuffer) model; convert it back to .onnx';
  if (b.length >= 4 && b[0] === 0x89 && b[1] === 0x48 && b[2] === 0x44 && b[3] === 0x46) return 'an HDF5 file (Keras?)';
  if (b.length >= 4 && String.fromCharCode(b[0], b[1], b[2], b[3]) === 'GGUF') return 'a GGUF file';
  if (b.length >= 10 && b[8] === 0x7b && b[9] === 0x22) return 'a safetensors file';
  return undefined;
}

/** ModelProto bytes to OnnxModel. Throws OnnxFormatError ("not an ONNX model: ...") naming where decoding failed. */
export function decodeModel(bytes: Uint8Array): OnnxModel {
  if (bytes.length === 0) throw new OnnxFormatError('not an ONNX model: the data is empty');
  const other = sniffOtherFormat(bytes);
  if (other) throw new OnnxFormatError(`not an ONNX model: this looks like ${other}`);
  const r = new WireReader(bytes, 0, bytes.length);
  let graph: OnnxGraph | undefined;
  const m: Omit<OnnxModel, 'graph'> = {
    irVersion: 0, opsetImports: [], producerName: '', producerVersion: '', domain: '', modelVersion: 0, docString: '', metadataProps: [], functions: [],
  };
  try {
    const unknownFields = readFields(r, () => 'ModelProto', MODEL_FIELDS, (f, w) => {
      switch (f) {
        case 1: varintWire(w, f, r); m.irVersion = toSafeNumber(r.int64(), 'ir_version', r.pos); return true;
        case 2: len(w, f, r); m.producerName = r.string(); return true;
        case 3: len(w, f, r); m.producerVersion = r.string(); return true;
        case 4: len(w, f, r); m.domain = r.string(); return true;
        case 5: varintWire(w, f, r); m.modelVersion = toSafeNumber(r.int64(), 'model_version', r.pos); return true;
        case 6: len(w, f, r); m.docString = r.string(); return true;
        case 7: len(w, f, r); graph = decodeGraph(r.message(), 'graph'); return true;
        case 8: len(w, f, r); m.opsetImports.push(decodeOpset(r.message(), `opset_import[${m.opsetImports.length}]`)); return true;
        case 14: len(w, f, r); m.metadataProps.push(decodeEntry(r.message(), 'metadata_props')); return true;
        case 25: len(w, f, r); m.functions.push(decodeFunction(r.message(), `functions[${m.functions.length}]`)); return true;
        default: return false;
      }
    });
    if (unknownFields) m.unknownFields = unknownFields;
  } catch (e) {
    if (e instanceof WireError) throw new OnnxFormatError(`not an ONNX model: ${e.path ? `${e.path}: ` : ''}${e.message}`, { cause: e });
    throw e;
  }
  if (!graph) throw new OnnxFormatError('not an ONNX model: the bytes decode as protobuf but hold no graph (ModelProto field 7)');
  if (m.irVersion < 1) throw new OnnxFormatError('not an ONNX model: no ir_version (ModelProto field 1)');
  if (m.irVersion >= 3 && m.opsetImports.length === 0) {
    throw new OnnxFormatError('not an ONNX model: no opset_import (ModelProto field 8), which IR version 3 and later require (file truncated?)');
  }
  return { ...m, graph } as OnnxModel;
}
