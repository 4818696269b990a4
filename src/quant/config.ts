/**
 * Quantization configuration: what a user chooses (bits, granularity, scheme, clipping) and the
 * validation that turns a bad choice into a clear error before any work starts.
 */

/** Which elements share one scale: the whole tensor, one output channel (a row), or a block of a row. */
export type Granularity = 'tensor' | 'channel' | 'group';

/** `sym`: signed narrow range [-(2^(b-1)-1), 2^(b-1)-1], zero point 0. `asym`: unsigned [0, 2^b-1] with zero point. */
export type Scheme = 'sym' | 'asym';

/** Integer codes, or FP8 E4M3 simulation (values rounded to the E4M3 grid after scaling amax to 448). */
export type NumberFormat = 'int' | 'fp8-e4m3';

export interface QuantConfig {
  /** Integer bit width, 2 to 8. Ignored for FP8 (always 8). */
  bits: number;
  granularity: Granularity;
  /** Elements per group along a row; required for `group`. The last group of a row may be partial. */
  groupSize?: number;
  scheme: Scheme;
  format?: NumberFormat;
  /**
   * Clip threshold as a fraction of each group's absmax, in (0, 1]. Values with |x| > ratio * absmax
   * are clipped (AWQ auto_clip convention: clamp to [-t, t], then take the group range).
   */
  clipRatio?: number;
}

export class QuantConfigError extends Error {
  override name = 'QuantConfigError';
}

export const MIN_BITS = 2;
export const MAX_BITS = 8;

/** FP8 E4M3 (the "FN" variant used by TensorRT and ModelOpt): largest finite value. */
export const E4M3_MAX = 448;

/** Throws QuantConfigError naming the first problem; returns the config with defaults filled in. */
export function validateQuantConfig(cfg: QuantConfig): Required<QuantConfig> {
  const format = cfg.format ?? 'int';
  if (format !== 'int' && format !== 'fp8-e4m3') throw new QuantConfigError(`unknown number format "${String(format)}" (use int or fp8-e4m3)`);
  const bits = format === 'fp8-e4m3' ? 8 : cfg.bits;
  if (!Number.isInteger(bits) || bits < MIN_BITS || bits > MAX_BITS) {
    throw new QuantConfigError(`bits must be an integer from ${MIN_BITS} to ${MAX_BITS}, got ${String(cfg.bits)}`);
  }
  if (cfg.granularity !== 'tensor' && cfg.granularity !== 'channel' && cfg.granularity !== 'group') {
    throw new QuantConfigError(`granularity must be tensor, channel or group, got "${String(cfg.granularity)}"`);
  }
  if (cfg.scheme !== 'sym' && cfg.scheme !== 'asym') {
    throw new QuantConfigError(`scheme must be sym or asym, got "${String(cfg.scheme)}"`);
  }
  if (format === 'fp8-e4m3' && cfg.scheme !== 'sym') {
    throw new QuantConfigError('FP8 E4M3 simulation is symmetric only (scheme sym)');
  }
  let groupSize = cfg.groupSize ?? 0;
  if (cfg.granularity === 'group') {
    if (!Number.isInteger(groupSize) || groupSize < 1) {
      throw new QuantConfigError(`group size must be a positive integer for per-group quantization, got ${String(cfg.groupSize)}`);
    }
  } else {
    groupSize = 0;
  }
  const clipRatio = cfg.clipRatio ?? 1;
  if (!(clipRatio > 0 && clipRatio <= 1)) {
    throw new QuantConfigError(`clip ratio must be in (0, 1], got ${String(cfg.clipRatio)}`);
  }
  return { bits, granularity: cfg.granularity, groupSize, scheme: cfg.scheme, format, clipRatio };
}

/** Largest code magnitude: 2^(b-1)-1 (sym), 2^b-1 (asym), 448 (FP8). */
export function qmaxOf(cfg: Required<QuantConfig>): number {
  if (cfg.format === 'fp8-e4m3') return E4M3_MAX;
  return cfg.scheme === 'sym' ? 2 ** (cfg.bits - 1) - 1 : 2 ** cfg.bits - 1;
}
