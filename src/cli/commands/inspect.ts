/**
 * `quantlab inspect MODEL`: what a model holds.
 *  - Llama-family checkpoint: its config, its tensors with shapes and storage types, the quantizable linear
 *    layers with parameter counts, the norm -> linear groups that SmoothQuant and AWQ act on, and the memory
 *    it needs on Jetson modules at FP16 / INT8 / INT4.
 *  - ONNX model: graph facts and op histogram, the quantizable layers (op, [out, in] shape, parameters,
 *    notes), layers that cannot be quantized and why, norm -> linear groups, unsupported ops, and memory.
 * Both come from the shared workspace description (model/workspace.ts), as the lab shows them.
 */
import { RUNTIME_RESERVE_GIB } from '../../model/memory-estimate.ts';
import { linearTensorNames, numel, type LlamaCheckpoint } from '../../model/llama/model.ts';
import { describeModel, llamaGroups, type ModelDescription } from '../../model/workspace.ts';
import type { CliIo, Command } from '../command.ts';
import { openModelFromArgs } from '../open-model.ts';
import type { ParsedOptions } from '../options.ts';
import { formatBytes } from '../quant-options.ts';

export function describeCheckpoint(ckpt: LlamaCheckpoint) {
  const c = ckpt.config;
  const linears = new Set(linearTensorNames(c));
  const layers = ckpt.tensors.filter((t) => linears.has(t.name)).map((t) => ({ name: t.name, shape: t.shape, params: numel(t.shape), dtype: t.dtype }));
  const linearParams = layers.reduce((a, l) => a + l.params, 0);
  // Totals and the Jetson estimate as the lab computes them.
  const { totalParams, memory } = describeModel({ kind: 'llama', name: ckpt.name, ckpt });
  return {
    name: ckpt.name,
    format: ckpt.format,
    sizeBytes: ckpt.sizeBytes,
    config: c,
    totalParams,
    linearParams,
    tokenizer: ckpt.tokenizer ? `${ckpt.tokenizer.vocabSize} tokens` : (ckpt.tokenizerNote ?? 'none'),
    tensors: ckpt.tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype, sourceName: t.sourceName })),
    layers,
    // The shared groups without their kind (always rmsnorm / linear here), as this JSON has always had them.
    groups: llamaGroups(c).map(({ prev, linears }) => ({ prev, linears })),
    memory,
  };
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

function formatCheckpoint(d: ReturnType<typeof describeCheckpoint>): string {
  const c = d.config;
  const lines = [
    `${d.name}: ${d.format}, ${mib(d.sizeBytes)}, ${d.totalParams.toLocaleString('en-US')} parameters (${d.linearParams.toLocaleString('en-US')} in ${d.layers.length} linear layers)`,
    `  ${c.arch}: dim ${c.dim}, hidden ${c.hiddenDim}, ${c.nLayers} layers, ${c.nHeads} heads, ${c.nKvHeads} KV heads, head dim ${c.headDim}, vocab ${c.vocabSize}, context ${c.seqLen}, rope theta ${c.ropeTheta}, tied embeddings ${c.tiedEmbeddings}`,
    `  tokenizer: ${d.tokenizer}`,
    '',
    'Linear layers (quantizable):',
    ...d.layers.map((l) => `  ${l.name.padEnd(18)} [${l.shape.join(', ')}]`.padEnd(40) + `${l.params.toLocaleString('en-US').padStart(12)}  ${l.dtype}`),
    '',
    `Norm -> linear groups (SmoothQuant / AWQ): ${d.groups.length}`,
    ...d.groups.slice(0, 4).map((g) => `  ${g.prev} -> ${g.linears.join(', ')}`),
    ...(d.groups.length > 4 ? [`  ... (${d.groups.length - 4} more)`] : []),
    '',
    `Memory on Jetson (weights + FP16 KV cache for ${c.seqLen} tokens, ${RUNTIME_RESERVE_GIB} GiB kept for the OS and runtime):`,
    ...d.memory.map((r) => `  ${r.weights.padEnd(5)} ${mib(r.totalBytes).padStart(12)}  ` + r.fits.map((f) => `${f.device}: ${f.fits ? 'fits' : 'no'}`).join(', ')),
    '',
  ];
  return lines.join('\n');
}

function table(rows: string[][], right: boolean[]): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => '  ' + r.map((c, i) => (right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd());
}

/** The ONNX description as text: everything the JSON holds, tensors aside. */
export function formatOnnx(d: ModelDescription): string {
  const o = d.onnx!;
  const s = o.summary;
  const n = (v: number) => v.toLocaleString('en-US');
  const histogram = Object.entries(s.opHistogram).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const lines = [
    `${d.name}: onnx, ${mib(d.sizeBytes)}, ${n(d.totalParams)} parameters (${n(d.quantizableParams)} in ${d.layers.length} quantizable layers)`,
    `  IR ${s.irVersion}, opset ${s.opset ?? 'none'}${s.producer ? `, producer ${s.producer}` : ''}: ${n(s.nodeCount)} nodes, ${s.initializerCount} initializers, ${s.constantNodeCount} Constant nodes` +
      (s.subgraphCount ? `, ${s.subgraphCount} subgraphs (not analysed)` : '') +
      (s.localFunctionCount ? `, ${s.localFunctionCount} local functions (not analysed)` : ''),
    `  inputs: ${o.inputs.map((i) => `${i.name} [${i.shape.join(', ')}]`).join(', ') || 'none'}; outputs: ${o.outputs.join(', ') || 'none'}`,
    `  ops: ${histogram.map(([op, c]) => `${op} ${c}`).join(', ')}`,
    '',
    `Quantizable layers (${Object.entries(s.layersByOp).map(([op, c]) => `${c} ${op}`).join(', ') || 'none'}):`,
    ...(d.layers.length
      ? table(
          [['layer', 'op', '[out, in]', 'params', 'dtype', 'note'], ...d.layers.map((l) => [l.name, l.op, `[${l.shape.join(', ')}]`, n(l.params), l.dtype, (l.excludedByDefault ? 'kept at 16 bits by default; ' : '') + (l.note ?? '')])],
          [false, false, false, true, false, false],
        )
      : []),
    '',
    `Not quantizable (${o.skipped.length}):`,
    ...o.skipped.map((k) => `  ${k.name} (${k.op}): ${k.reason}`),
    '',
    `Norm -> linear groups (SmoothQuant / AWQ): ${d.groups.length} (of ${s.normCount} norms found)`,
    ...d.groups.map((g) => `  ${g.prev} -> ${g.linears.join(', ')}  ${g.kind}`),
    '',
    `Unsupported ops (left as they are):${s.unsupported.length ? '' : ' none'}`,
    ...s.unsupported.map((u) => `  ${u.op} x${u.count}: ${u.reason}`),
    '',
    `Memory on Jetson (weights only, no KV cache; ${RUNTIME_RESERVE_GIB} GiB kept for the OS and runtime):`,
    ...d.memory.map((r) => `  ${r.weights.padEnd(5)} ${formatBytes(r.totalBytes).padStart(10)}  ` + r.fits.map((f) => `${f.device}: ${f.fits ? 'fits' : 'no'}`).join(', ')),
    '',
  ];
  return lines.join('\n');
}

async function run(opts: ParsedOptions, io: CliIo): Promise<number> {
  const h = await openModelFromArgs(opts.positionals);
  if (h.kind === 'llama') {
    const d = describeCheckpoint(h.ckpt);
    io.stdout(opts.flag('json') ? `${JSON.stringify(d)}\n` : formatCheckpoint(d));
    return 0;
  }
  const d = describeModel(h);
  io.stdout(opts.flag('json') ? `${JSON.stringify(d)}\n` : formatOnnx(d));
  return 0;
}

export const inspectCommand: Command = {
  name: 'inspect',
  summary: 'list a model\'s quantizable layers, norm -> linear groups and Jetson memory needs (Llama or ONNX)',
  synopsis: 'quantlab inspect MODEL [MODEL ...] [--json]',
  description: [
    'MODEL is a llama2.c .bin (with tokenizer.bin), a GGUF file, safetensors shards with config.json, or an',
    'ONNX model (.onnx; its external data files are read from beside it); stories15M names the bundled model.',
    'Llama: config, tensors, linear layers, norm -> linear groups, memory with the KV cache at full context.',
    'ONNX: graph facts and op histogram, quantizable Conv / ConvTranspose / MatMul / Gemm layers as [out, in]',
    'with notes (depthwise, shared, already quantized), layers that cannot be quantized and why, norm ->',
    'linear groups, ops left alone (e.g. BatchNormalization to fold first), and weight memory.',
  ].join('\n'),
  maxPositionals: 16,
  options: [{ name: 'json', help: 'print one JSON object on stdout' }],
  epilogue: 'Exit status: 0 done, 1 unreadable model, 2 bad command line.',
  run,
};
