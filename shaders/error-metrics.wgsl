// Partial sums for MSE / SQNR between x and its quantized version y: per workgroup
// (sum (x-y)^2, sum x^2, max |x-y|, finite count). The host adds the partials in double precision.
#include "quant-common.wgsl"

override WG: u32 = 256u;

struct Params {
  n: u32,
  elems_per_wg: u32,
  num_wg: u32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
struct Partial {
  sse: f32,
  ssx: f32,
  max_err: f32,
  count: u32,
}

@group(0) @binding(3) var<storage, read_write> partial: array<Partial>;

var<workgroup> s_sse: array<f32, WG>;
var<workgroup> s_ssx: array<f32, WG>;
var<workgroup> s_max: array<f32, WG>;
var<workgroup> s_cnt: array<u32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let wg_index = wid.x + wid.y * nwg.x;
  let start = wg_index * p.elems_per_wg;
  let end = min(start + p.elems_per_wg, p.n);
  var sse = 0.0;
  var ssx = 0.0;
  var mx = 0.0;
  var cnt = 0u;
  for (var i = start + lid; i < end; i += WG) {
    let a = x[i];
    let b = y[i];
    if (is_finite_f32(a) && is_finite_f32(b)) {
      let d = a - b;
      sse += d * d;
      ssx += a * a;
      mx = max(mx, abs(d));
      cnt += 1u;
    }
  }
  s_sse[lid] = sse;
  s_ssx[lid] = ssx;
  s_max[lid] = mx;
  s_cnt[lid] = cnt;
  for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
    workgroupBarrier();
    if (lid < stride) {
      s_sse[lid] += s_sse[lid + stride];
      s_ssx[lid] += s_ssx[lid + stride];
      s_max[lid] = max(s_max[lid], s_max[lid + stride]);
      s_cnt[lid] += s_cnt[lid + stride];
    }
  }
  workgroupBarrier();
  if (lid == 0u && wg_index < p.num_wg) {
    partial[wg_index] = Partial(s_sse[0], s_ssx[0], s_max[0], s_cnt[0]);
  }
}
