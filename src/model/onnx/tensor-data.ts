/**
 * Element access for OnnxTensor: counts, byte sizes, dense little-endian bytes, and conversion to float32,
 * whichever of raw_data, the typed repeated fields, or (resolved) external data holds the elements.
 * Encodings follow onnx.proto's TensorProto comments: float16 and bfloat16 in int32_data are the bit
 * patterns; int8/uint8/int16/uint16/bool in int32_data are the values; 4-bit types pack two elements per
 * byte, the first in the low nibble, in raw_data and in each int32_data entry alike.
 */
import { OnnxExternalDataError, OnnxFormatError, dataTypeBits, type OnnxDataType, type OnnxTensor } from './model.ts';

export function tensorElementCount(t: Pick<OnnxTensor, 'dims'>): number {
  let n = 1;
  for (const d of t.dims) n *= d;
  return n;
}

/** Bytes of the dense little-endian encoding (raw_data / external data); 0 for strings and unknown types. */
export function tensorByteLength(t: Pick<OnnxTensor, 'dims' | 'dataType'>): number {
  return Math.ceil((tensorElementCount(t) * dataTypeBits(t.dataType)) / 8);
}

/** Types tensorToFloat32 converts. */
export const FLOAT_CONVERTIBLE: ReadonlySet<OnnxDataType> = new Set<OnnxDataType>([
  'float32', 'float16', 'bfloat16', 'float64', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64',
  'bool', 'int4', 'uint4',
]);

function notLoaded(t: OnnxTensor, file: string): OnnxExternalDataError {
  return new OnnxExternalDataError(
    `tensor "${t.name}" keeps its data in the external file "${file}", which is not loaded: load the model with ` +
      'loadModel(bytes, { readExternalData }), or read it with loadExternalTensor',
  );
}

/** Copy of bytes into a fresh, aligned buffer. */
function aligned(bytes: Uint8Array): ArrayBuffer {
  return bytes.slice().buffer;
}

/**
 * The tensor's elements as dense little-endian bytes, the raw_data encoding. raw_data and external data
 * are returned as they are (a view, not a copy: do not write to it); typed fields are encoded.
 */
export function tensorBytes(t: OnnxTensor): Uint8Array {
  const d = t.data;
  const n = tensorElementCount(t);
  switch (d.location) {
    case 'raw_data':
      return d.bytes;
    case 'external':
      if (!d.bytes) throw notLoaded(t, d.file);
      return d.bytes;
    case 'none':
      if (n === 0) return new Uint8Array(0);
      throw new OnnxFormatError(`tensor "${t.name}" has ${n} elements but no data`);
    case 'float_data':
    case 'double_data':
    case 'int64_data':
    case 'uint64_data':
      return new Uint8Array(d.values.slice().buffer);
    case 'string_data':
      throw new OnnxFormatError(`tensor "${t.name}" holds strings, which have no fixed-width encoding`);
    case 'int32_data': {
      const v = d.values;
      switch (t.dataType) {
        case 'int32':
          return new Uint8Array(v.slice().buffer);
        case 'float16': case 'bfloat16': case 'int16': case 'uint16':
          return new Uint8Array(Uint16Array.from(v, (x) => x & 0xffff).buffer);
        case 'int8': case 'uint8': case 'bool':
        case 'float8e4m3fn': case 'float8e4m3fnuz': case 'float8e5m2': case 'float8e5m2fnuz': case 'float8e8m0':
          return Uint8Array.from(v, (x) => x & 0xff);
        case 'int4': case 'uint4': case 'float4e2m1': case 'int2': case 'uint2':
          // Sub-byte types: each int32_data entry holds one packed byte (onnx.proto: "packed to 4bitx2").
          return Uint8Array.from(v, (x) => x & 0xff);
        default:
          throw new OnnxFormatError(`tensor "${t.name}": int32_data cannot hold ${t.dataType}`);
      }
    }
  }
}

let f16Table: Float32Array | undefined;

/** float32 value of every binary16 bit pattern (65536 entries, built on first use). */
function float16Table(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    t[h] = exp === 0 ? sign * mant * 2 ** -24 : exp === 0x1f ? (mant ? NaN : sign * Infinity) : sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  f16Table = t;
  return t;
}

/**
 * The elements as a new Float32Array (the caller owns it). Quantized integer tensors give their integer
 * codes: no scale or zero point is applied here. Throws for strings, complex, FP8/FP4 and external data
 * that has not been loaded.
 */
export function tensorToFloat32(t: OnnxTensor): Float32Array {
  const n = tensorElementCount(t);
  const d = t.data;
  if (!FLOAT_CONVERTIBLE.has(t.dataType)) {
    throw new OnnxFormatError(`tensor "${t.name}" is ${t.dataType}, which cannot be converted to float32`);
  }
  // Typed fields that hold the values directly.
  if (d.location === 'float_data') return d.values.slice();
  if (d.location === 'double_data') return Float32Array.from(d.values);
  if (d.location === 'int64_data' || d.location === 'uint64_data') return Float32Array.from(d.values, (x) => Number(x));
  if (d.location === 'int32_data') {
    const v = d.values;
    if (t.dataType === 'float16') {
      const table = float16Table();
      return Float32Array.from(v, (x) => table[x & 0xffff]);
    }
    if (t.dataType === 'bfloat16') {
      const out = new Float32Array(v.length);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < v.length; i++) bits[i] = (v[i] & 0xffff) << 16;
      return out;
    }
    if (t.dataType === 'uint32') return Float32Array.from(v, (x) => x >>> 0);
    if (t.dataType !== 'int4' && t.dataType !== 'uint4') return Float32Array.from(v);
  }
  const bytes = tensorBytes(t);
  const need = tensorByteLength(t);
  if (bytes.length < need) throw new OnnxFormatError(`tensor "${t.name}" has ${bytes.length} data bytes, dims need ${need}`);
  switch (t.dataType) {
    case 'float32': {
      const out = new Float32Array(n);
      new Uint8Array(out.buffer).set(bytes.subarray(0, need));
      return out;
    }
    case 'float16': {
      const table = float16Table();
      const h = new Uint16Array(aligned(bytes.subarray(0, need)));
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = table[h[i]];
      return out;
    }
    case 'bfloat16': {
      const h = new Uint16Array(aligned(bytes.subarray(0, need)));
      const out = new Float32Array(n);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = h[i] << 16;
      return out;
    }
    case 'float64': return Float32Array.from(new Float64Array(aligned(bytes.subarray(0, need))));
    case 'int8': return Float32Array.from(new Int8Array(bytes.buffer, bytes.byteOffset, n));
    case 'uint8': case 'bool': return Float32Array.from(bytes.subarray(0, n));
    case 'int16': return Float32Array.from(new Int16Array(aligned(bytes.subarray(0, need))));
    case 'uint16': return Float32Array.from(new Uint16Array(aligned(bytes.subarray(0, need))));
    case 'int32': return Float32Array.from(new Int32Array(aligned(bytes.subarray(0, need))));
    case 'uint32': return Float32Array.from(new Uint32Array(aligned(bytes.subarray(0, need))));
    case 'int64': return Float32Array.from(new BigInt64Array(aligned(bytes.subarray(0, need))), (x) => Number(x));
    case 'uint64': return Float32Array.from(new BigUint64Array(aligned(bytes.subarray(0, need))), (x) => Number(x));
    case 'int4': case 'uint4': {
      const out = new Float32Array(n);
      const signed = t.dataType === 'int4';
      for (let i = 0; i < n; i++) {
        const q = (bytes[i >> 1] >> ((i & 1) * 4)) & 0xf;
        out[i] = signed && q >= 8 ? q - 16 : q;
      }
      return out;
    }
    default:
      throw new OnnxFormatError(`tensor "${t.name}" is ${t.dataType}, which cannot be converted to float32`);
  }
}

/** int64 tensor values as numbers (shapes, axes, Reshape targets); throws when one is not a safe integer. */
export function tensorToIntegers(t: OnnxTensor): number[] {
  const d = t.data;
  let values: ArrayLike<number | bigint>;
  if (d.location === 'int64_data' || d.location === 'uint64_data' || d.location === 'int32_data') values = d.values;
  else if (t.dataType === 'int64') values = new BigInt64Array(aligned(tensorBytes(t)));
  else if (t.dataType === 'int32') values = new Int32Array(aligned(tensorBytes(t)));
  else return Array.from(tensorToFloat32(t));
  return Array.from(values, (v) => {
    const x = Number(v);
    if (!Number.isSafeInteger(x)) throw new OnnxFormatError(`tensor "${t.name}" holds ${v}, not a safe integer`);
    return x;
  });
}

/** Typed arrays makeTensor accepts, with the ONNX type each one means by default. */
export type TensorValues = Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;

function defaultType(values: TensorValues): OnnxDataType {
  if (values instanceof Float32Array) return 'float32';
  if (values instanceof Float64Array) return 'float64';
  if (values instanceof Int8Array) return 'int8';
  if (values instanceof Uint8Array) return 'uint8';
  if (values instanceof Int16Array) return 'int16';
  if (values instanceof Uint16Array) return 'uint16';
  if (values instanceof Int32Array) return 'int32';
  if (values instanceof Uint32Array) return 'uint32';
  if (values instanceof BigInt64Array) return 'int64';
  return 'uint64';
}

/**
 * A raw_data tensor over `values` (no copy: the tensor views the array's memory). Pass `dataType` for
 * encodings a typed array cannot name: 'float16'/'bfloat16' bit patterns in a Uint16Array, packed
 * 'int4'/'uint4' bytes in a Uint8Array, 'bool' bytes.
 */
export function makeTensor(name: string, dims: number[], values: TensorValues, dataType: OnnxDataType = defaultType(values)): OnnxTensor {
  const t: OnnxTensor = { name, dims: [...dims], dataType, data: { location: 'raw_data', bytes: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) } };
  const need = tensorByteLength(t);
  if (values.byteLength !== need) {
    throw new OnnxFormatError(`makeTensor "${name}": ${values.byteLength} bytes of data, but dims [${dims.join(', ')}] of ${dataType} need ${need}`);
  }
  return t;
}
