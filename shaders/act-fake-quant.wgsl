// Activation fake-quantization in place, symmetric narrow range (W8A8's "A8"): x [rows, cols] ->
// clamp(round(x / s), -qmax, qmax) * s with qmax = 2^(BITS-1) - 1 and s = amax / qmax, where amax is the
// row's max |x| over its finite values (PER_TOKEN: dynamic per-token quantization, one workgroup per row)
// or the static per-tensor amax of the parameters. x / s is evaluated as x * (1 / s), both quotients
// correctly rounded (div_rne), round half to even; a zero range gives s = 1; NaN -> 0, +-Inf saturate.
// The CPU reference is src/eval/act-fake-quant.ts (actFakeQuantRef).
#include "quant-common.wgsl"

override WG: u32 = 64u;
override PER_TOKEN: bool = true;

struct Params {
  rows: u32,
  cols: u32,
  // Static amax (per-tensor); ignored per token.
  amax: f32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

var<workgroup> s_max: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  // Every invocation of the workgroup reaches the barriers (uniform control flow); rows past the end do no work.
  let valid = row < p.rows;
  let base = row * p.cols;
  var amax = p.amax;
  if (PER_TOKEN) {
    var m = 0.0;
    if (valid) {
      for (var c = lid; c < p.cols; c += WG) {
        let v = x[base + c];
        if (is_finite_f32(v)) { m = max(m, abs(v)); }
      }
    }
    s_max[lid] = m;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
      if (lid < stride) { s_max[lid] = max(s_max[lid], s_max[lid + stride]); }
      workgroupBarrier();
    }
    amax = s_max[0];
  }
  if (!valid) { return; }
  let qmax = f32((1u << (BITS - 1u)) - 1u);
  var scale = div_rne(amax, qmax);
  var inv = 1.0;
  if (scale < 1.17549435e-38) {
    scale = 1.0;
  } else {
    inv = div_rne(1.0, scale);
  }
  for (var c = lid; c < p.cols; c += WG) {
    let v = x[base + c];
    var q = 0.0;
    if (is_nan_f32(v)) {
      q = 0.0;
    } else if (!is_finite_f32(v)) {
      q = select(-qmax, qmax, v > 0.0);
    } else {
      q = clamp(round(v * inv), -qmax, qmax);
    }
    x[base + c] = q * scale;
  }
}
