// Per-token statistics of an activation matrix [rows, cols]: min, max, max |x| of the finite values of
// each row and its count of NaN/Inf, one workgroup per row (a tree reduction in workgroup memory).
// The host reads these back per batch: the batch range for the growing histogram, the batch min/max
// for the moving-average calibrator, and the per-token max |x| for the outlier view.
#include "quant-common.wgsl"

override WG: u32 = 64u;

struct Params {
  rows: u32,
  cols: u32,
  _pad0: u32,
  _pad1: u32,
}

struct RowStats {
  min_v: f32,
  max_v: f32,
  absmax: f32,
  non_finite: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<RowStats>;

const BIG: f32 = 0x1.fffffep+127f;

var<workgroup> s_min: array<f32, WG>;
var<workgroup> s_max: array<f32, WG>;
var<workgroup> s_bad: array<u32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  var lo = BIG;
  var hi = -BIG;
  var bad = 0u;
  let base = row * p.cols;
  for (var c = lid; c < p.cols; c += WG) {
    let v = x[base + c];
    if (is_finite_f32(v)) {
      lo = min(lo, v);
      hi = max(hi, v);
    } else {
      bad += 1u;
    }
  }
  s_min[lid] = lo;
  s_max[lid] = hi;
  s_bad[lid] = bad;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (lid < stride) {
      s_min[lid] = min(s_min[lid], s_min[lid + stride]);
      s_max[lid] = max(s_max[lid], s_max[lid + stride]);
      s_bad[lid] = s_bad[lid] + s_bad[lid + stride];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let mn = s_min[0];
    let mx = s_max[0];
    let any = mn <= mx;
    out[row] = RowStats(select(0.0, mn, any), select(0.0, mx, any), select(0.0, max(-mn, mx), any), s_bad[0]);
  }
}
