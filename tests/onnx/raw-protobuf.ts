/**
 * A deliberately tiny protobuf field walker, independent of src/model/onnx, so tests can count what a
 * model holds without trusting the loader under test.
 */

export interface RawField {
  field: number;
  wire: number;
  /** Varint and fixed values as bigint; length-delimited payloads as bytes. */
  value: bigint | Uint8Array;
}

function readVarint(b: Uint8Array, pos: number): [bigint, number] {
  let v = 0n;
  let shift = 0n;
  for (;;) {
    const byte = b[pos++];
    if (byte === undefined) throw new Error('varint runs past the end');
    v |= BigInt(byte & 0x7f) << shift;
    if (byte < 0x80) return [v, pos];
    shift += 7n;
  }
}

export function rawFields(b: Uint8Array): RawField[] {
  const out: RawField[] = [];
  let pos = 0;
  while (pos < b.length) {
    const [tag, p1] = readVarint(b, pos);
    const field = Number(tag >> 3n);
    const wire = Number(tag & 7n);
    pos = p1;
    if (wire === 0) {
      const [v, p2] = readVarint(b, pos);
      out.push({ field, wire, value: v });
      pos = p2;
    } else if (wire === 2) {
      const [len, p2] = readVarint(b, pos);
      const end = p2 + Number(len);
      if (end > b.length) throw new Error('length runs past the end');
      out.push({ field, wire, value: b.subarray(p2, end) });
      pos = end;
    } else if (wire === 5 || wire === 1) {
      const n = wire === 5 ? 4 : 8;
      let v = 0n;
      for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[pos + i]);
      out.push({ field, wire, value: v });
      pos += n;
    } else {
      throw new Error(`wire type ${wire}`);
    }
  }
  return out;
}

export function bytesOf(f: RawField[], field: number): Uint8Array[] {
  return f.filter((x) => x.field === field).map((x) => x.value as Uint8Array);
}

export function text(f: RawField[], field: number): string {
  const b = bytesOf(f, field)[0];
  return b ? new TextDecoder().decode(b) : '';
}

export function texts(f: RawField[], field: number): string[] {
  return bytesOf(f, field).map((b) => new TextDecoder().decode(b));
}

export function ints(f: RawField[], field: number): number[] {
  return f.filter((x) => x.field === field && x.wire === 0).map((x) => Number(BigInt.asIntN(64, x.value as bigint)));
}

/** What a ModelProto holds, counted from the wire: ModelProto.graph = 7; GraphProto.node = 1, initializer = 5; NodeProto input 1, output 2, op_type 4, attribute 5; AttributeProto t = 5; TensorProto dims 1, data_type 2, raw_data 9. */
export interface RawTensorFacts {
  name: string;
  dims: number[];
  dataType: number;
  rawBytes: number;
}

export interface RawNodeFacts {
  opType: string;
  inputs: string[];
  outputs: string[];
  /** Tensor of a Constant node's `value` attribute. */
  constant?: RawTensorFacts;
}

export interface RawModelFacts {
  nodes: RawNodeFacts[];
  initializers: RawTensorFacts[];
  graphInputs: string[];
}

function tensorFacts(b: Uint8Array): RawTensorFacts {
  const f = rawFields(b);
  return { name: text(f, 8), dims: ints(f, 1), dataType: ints(f, 2)[0] ?? 0, rawBytes: bytesOf(f, 9)[0]?.length ?? -1 };
}

export function rawModelFacts(model: Uint8Array): RawModelFacts {
  const graph = rawFields(bytesOf(rawFields(model), 7)[0]);
  const nodes = bytesOf(graph, 1).map((nb): RawNodeFacts => {
    const n = rawFields(nb);
    const facts: RawNodeFacts = { opType: text(n, 4), inputs: texts(n, 1), outputs: texts(n, 2) };
    if (facts.opType === 'Constant') {
      for (const ab of bytesOf(n, 5)) {
        const a = rawFields(ab);
        if (text(a, 1) === 'value') facts.constant = { ...tensorFacts(bytesOf(a, 5)[0]), name: facts.outputs[0] };
      }
    }
    return facts;
  });
  const graphInputs = bytesOf(graph, 11).map((vb) => text(rawFields(vb), 1));
  return { nodes, initializers: bytesOf(graph, 5).map(tensorFacts), graphInputs };
}
