/**
 * `quantlab inspect MODEL`: what a Llama-family checkpoint holds: its config, its tensors with shapes and
 * storage types, the quantizable linear layers with parameter counts, the norm -> linear groups that
 * SmoothQuant and AWQ act on, and the memory it needs on Jetson modules at FP16 / INT8 / INT4.
 */
import { estimateMemory } from '../../model/memory-estimate.ts';
import { linearTensorNames, numel, type LlamaCheckpoint } from '../../model/llama/model.ts';
import type { CliIo, Command } from '../command.ts';
import { openLlamaFromArgs } from '../open-model.ts';
import type { ParsedOptions } from '../options.ts';

/** Llama norm -> linear groups (REFERENCE.md section 4): input norm -> q,k,v; v -> o when shapes match; post-attention norm -> gate, up; up -> down. */
export function llamaGroups(ckpt: LlamaCheckpoint): { prev: string; linears: string[] }[] {
  const c = ckpt.config;
  const out: { prev: string; linears: string[] }[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    const p = `layers.${l}.`;
    out.push({ prev: p + 'attention_norm', linears: [p + 'wq', p + 'wk', p + 'wv'] });
    if (c.nKvHeads === c.nHeads) out.push({ prev: p + 'wv', linears: [p + 'wo'] });
    out.push({ prev: p + 'ffn_norm', linears: [p + 'w1', p + 'w3'] });
    out.push({ prev: p + 'w3', linears: [p + 'w2'] });
  }
  return out;
}

export function describeCheckpoint(ckpt: LlamaCheckpoint) {
  const c = ckpt.config;
  const linears = new Set(linearTensorNames(c));
  const layers = ckpt.tensors.filter((t) => linears.has(t.name)).map((t) => ({ name: t.name, shape: t.shape, params: numel(t.shape), dtype: t.dtype }));
  const linearParams = layers.reduce((a, l) => a + l.params, 0);
  const totalParams = ckpt.tensors.reduce((a, t) => a + numel(t.shape), 0);
  const memory = estimateMemory({
    linearParams,
    linearRows: layers.reduce((a, l) => a + l.shape[0], 0),
    otherParams: totalParams - linearParams,
    nLayers: c.nLayers,
    kvDim: c.nKvHeads * c.headDim,
    contextLength: c.seqLen,
  });
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
    groups: llamaGroups(ckpt),
    memory,
  };
}

async function run(opts: ParsedOptions, io: CliIo): Promise<number> {
  const ckpt = await openLlamaFromArgs(opts.positionals);
  const d = describeCheckpoint(ckpt);
  if (opts.flag('json')) {
    io.stdout(`${JSON.stringify(d)}\n`);
    return 0;
  }
  const c = d.config;
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
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
    `Memory on Jetson (weights + FP16 KV cache for ${c.seqLen} tokens, ${2} GiB kept for the OS and runtime):`,
    ...d.memory.map((r) => `  ${r.weights.padEnd(5)} ${mib(r.totalBytes).padStart(12)}  ` + r.fits.map((f) => `${f.device}: ${f.fits ? 'fits' : 'no'}`).join(', ')),
    '',
  ];
  io.stdout(lines.join('\n'));
  return 0;
}

export const inspectCommand: Command = {
  name: 'inspect',
  summary: 'list a checkpoint\'s config, linear layers, norm -> linear groups and Jetson memory needs',
  synopsis: 'quantlab inspect MODEL [MODEL ...] [--json]',
  description: [
    'MODEL is a llama2.c .bin (with tokenizer.bin), a GGUF file, or safetensors shards with config.json;',
    'stories15M names the bundled model.',
  ].join('\n'),
  maxPositionals: 16,
  options: [{ name: 'json', help: 'print one JSON object on stdout' }],
  epilogue: 'Exit status: 0 done, 1 unreadable model, 2 bad command line.',
  run,
};
