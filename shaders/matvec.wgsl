// Linear layer for a few tokens (decode): Y[M, N] = X[M, K] . W[N, K]^T (+ bias) (+= when ACCUMULATE),
// M <= MAX_M. A workgroup computes ROWS output rows with LANES threads each: the lanes stride along K
// (coalesced reads of the weight row), then the partial dot products are reduced in workgroup memory.
override ROWS: u32 = 8u;
override LANES: u32 = 32u;
override MAX_M: u32 = 1u;
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

var<workgroup> red: array<f32, ROWS * LANES * MAX_M>;

@compute @workgroup_size(ROWS * LANES)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = lid / LANES;
  let lane = lid % LANES;
  let n = (wid.x + wid.y * nwg.x) * ROWS + row;
  for (var m = 0u; m < MAX_M; m++) {
    var acc = 0.0;
    if (n < p.n && m < p.m) {
      let wrow = n * p.k;
      let xrow = m * p.k;
      for (var k = lane; k < p.k; k += LANES) {
        acc += x[xrow + k] * w[wrow + k];
      }
    }
    red[(m * ROWS + row) * LANES + lane] = acc;
  }
  for (var stride = LANES / 2u; stride > 0u; stride = stride / 2u) {
    workgroupBarrier();
    if (lane < stride) {
      for (var m = 0u; m < MAX_M; m++) {
        let i = (m * ROWS + row) * LANES + lane;
        red[i] += red[i + stride];
      }
    }
  }
  workgroupBarrier();
  if (n < p.n && lane < p.m) {
    var v = red[(lane * ROWS + row) * LANES];
    if (HAS_BIAS) { v += bias[n]; }
    if (ACCUMULATE) { v += y[lane * p.n + n]; }
    y[lane * p.n + n] = v;
  }
}
