// Linear layer for a few tokens (decode): Y[M, N] = X[M, K] . W[N, K]^T (+ bias) (+= when ACCUMULATE),
// M <= MAX_M. One workgroup per output row n: threads stride along K (coalesced reads of W's row)
// and the M partial dot products are reduced in workgroup memory.
override WG: u32 = 64u;
override MAX_M: u32 = 8u;
override ACCUMULATE: bool = false;
override HAS_BIAS: bool = false;

struct Params {
  m: u32,
  n: u32,
  k: u32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

var<workgroup> red: array<f32, 512>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let n = wid.x + wid.y * nwg.x;
  var acc: array<f32, 8>;
  if (n < p.n) {
    let wrow = n * p.k;
    for (var k = lid; k < p.k; k += WG) {
      let wv = w[wrow + k];
      for (var m = 0u; m < MAX_M; m++) {
        if (m < p.m) { acc[m] += x[m * p.k + k] * wv; }
      }
    }
  }
  for (var m = 0u; m < MAX_M; m++) {
    red[m * WG + lid] = acc[m];
  }
  for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
    workgroupBarrier();
    if (lid < stride) {
      for (var m = 0u; m < MAX_M; m++) {
        red[m * WG + lid] += red[m * WG + lid + stride];
      }
    }
  }
  workgroupBarrier();
  if (n < p.n && lid < p.m) {
    var v = red[lid * WG];
    if (HAS_BIAS) { v += bias[n]; }
    if (ACCUMULATE) { v += y[lid * p.n + n]; }
    y[lid * p.n + n] = v;
  }
}
