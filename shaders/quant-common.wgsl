// Shared helpers for the quantization kernels (included with #include "quant-common.wgsl").
// The formulas are specified by the CPU reference in src/quant/reference/quantize.ts.

// Quantizer variant, set per pipeline.
override SYMMETRIC: bool = true;
override BITS: u32 = 8u;
override FP8: bool = false;

struct QParams {
  scale: f32,
  inv_scale: f32,
  zero: f32,
  _pad: f32,
}

struct GroupStats {
  min_v: f32,
  max_v: f32,
  absmax: f32,
  sum_abs: f32,
  count: u32,
  non_finite: u32,
  _pad0: u32,
  _pad1: u32,
}

// NaN and Inf by their bits: the exponent field all ones. (x != x may be optimised away.)
fn is_finite_f32(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

fn is_nan_f32(x: f32) -> bool {
  let b = bitcast<u32>(x);
  return (b & 0x7f800000u) == 0x7f800000u && (b & 0x007fffffu) != 0u;
}

// Correctly rounded (to nearest even) a / b for finite a >= 0 and normal b > 0, in exact integer
// arithmetic: WGSL's f32 division is only accurate to 2.5 ULP, and scales must match the CPU bit for bit.
// Subnormal a counts as 0; a result below the normal range returns 0, above it returns the largest f32.
fn div_rne(a: f32, b: f32) -> f32 {
  let ab = bitcast<u32>(a);
  let bb = bitcast<u32>(b);
  let ea = i32((ab >> 23u) & 0xffu);
  let eb = i32((bb >> 23u) & 0xffu);
  if (ea == 0) { return 0.0; }
  var ma = (ab & 0x7fffffu) | 0x800000u;
  let mb = (bb & 0x7fffffu) | 0x800000u;
  var e = ea - eb;
  if (ma < mb) {
    ma = ma << 1u;
    e = e - 1;
  }
  // Long division of ma * 2^23 by mb, 8 + 8 + 7 bits at a time; every intermediate fits in u32.
  var q = ma / mb;
  var r = ma % mb;
  r = r << 8u; q = (q << 8u) | (r / mb); r = r % mb;
  r = r << 8u; q = (q << 8u) | (r / mb); r = r % mb;
  r = r << 7u; q = (q << 7u) | (r / mb); r = r % mb;
  // q in [2^23, 2^24): round to nearest, ties to even, using the remainder.
  let twice = r << 1u;
  if (twice > mb || (twice == mb && (q & 1u) == 1u)) {
    q = q + 1u;
    if (q == 0x1000000u) {
      q = 0x800000u;
      e = e + 1;
    }
  }
  let biased = e + 127;
  if (biased <= 0) { return 0.0; }
  if (biased >= 255) { return 0x1.fffffep+127f; }
  return bitcast<f32>((u32(biased) << 23u) | (q & 0x7fffffu));
}

fn qmax_f() -> f32 {
  if (FP8) { return 448.0; }
  if (SYMMETRIC) { return f32((1u << (BITS - 1u)) - 1u); }
  return f32((1u << BITS) - 1u);
}

// Scale, inverse scale and zero point of one group, clipping at t = clip_ratio * absmax.
fn qparams_of(min_v: f32, max_v: f32, absmax: f32, clip_ratio: f32) -> QParams {
  let qmax = qmax_f();
  let t = clip_ratio * absmax;
  var range: f32;
  var lo = 0.0;
  if (SYMMETRIC || FP8) {
    range = t;
  } else {
    lo = min(max(min_v, -t), 0.0);
    let hi = max(min(max_v, t), 0.0);
    range = hi - lo;
  }
  let s = div_rne(range, qmax);
  if (s < 1.17549435e-38) {
    return QParams(1.0, 1.0, 0.0, 0.0);
  }
  let inv = div_rne(1.0, s);
  var z = 0.0;
  if (!(SYMMETRIC || FP8)) {
    z = clamp(round(-lo * inv), 0.0, qmax);
  }
  return QParams(s, inv, z, 0.0);
}

// FP8 E4M3FN encoding of a finite y: round to nearest even, saturate at 448 (0x7e).
fn e4m3_encode(y: f32) -> u32 {
  let bits = bitcast<u32>(y);
  let sign = (bits >> 24u) & 0x80u;
  let a = abs(y);
  if (a >= 448.0) { return sign | 0x7eu; }
  if (a < 0.015625) {
    // Subnormals: value m * 2^-9 (m = 8 is the first normal, code 0x08).
    return sign | u32(round(a * 512.0));
  }
  let ab = bits & 0x7fffffffu;
  let exp = i32(ab >> 23u) - 127;
  let mant = ab & 0x7fffffu;
  // Round the 23-bit mantissa to 3 bits, ties to even; a carry bumps the exponent.
  let rounded = mant + 0x7ffffu + ((mant >> 20u) & 1u);
  var m3 = rounded >> 20u;
  var e = exp + 7;
  if (m3 >= 8u) {
    m3 = 0u;
    e = e + 1;
  }
  return sign | min((u32(e) << 3u) | m3, 0x7eu);
}

fn e4m3_decode(code: u32) -> f32 {
  let e = (code >> 3u) & 0xfu;
  let m = f32(code & 7u);
  var v: f32;
  if (e == 0u) {
    v = m * 0.001953125;
  } else {
    v = (1.0 + m * 0.125) * exp2(f32(i32(e) - 7));
  }
  if ((code & 0x80u) != 0u) { v = -v; }
  return v;
}

// Code of one value: signed integer (sym), unsigned integer (asym), or the E4M3 byte (FP8).
// NaN maps to the zero point (FP8: +0); +-Inf saturate.
fn quantize_value(x: f32, p: QParams) -> i32 {
  let qmax = qmax_f();
  if (FP8) {
    if (is_nan_f32(x)) { return 0; }
    if (!is_finite_f32(x)) {
      if (x > 0.0) { return 0x7e; }
      return 0xfe;
    }
    return i32(e4m3_encode(x * p.inv_scale));
  }
  var lo = 0.0;
  if (SYMMETRIC) { lo = -qmax; }
  if (is_nan_f32(x)) { return i32(p.zero); }
  if (!is_finite_f32(x)) {
    if (x > 0.0) { return i32(qmax); }
    return i32(lo);
  }
  return i32(clamp(round(x * p.inv_scale) + p.zero, lo, qmax));
}

fn dequantize_value(code: i32, p: QParams) -> f32 {
  if (FP8) { return e4m3_decode(u32(code)) * p.scale; }
  return (f32(code) - p.zero) * p.scale;
}

// Group of flat element i for the run layout (see src/quant/layout.ts).
fn group_of(i: u32, row_len: u32, group_size: u32, groups_per_row: u32) -> u32 {
  let row = i / row_len;
  let col = i - row * row_len;
  return row * groups_per_row + col / group_size;
}
