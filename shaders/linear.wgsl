// Linear layer Y[M, N] = X[M, K] . W[N, K]^T (+ bias) (+= into Y when ACCUMULATE, for residual adds).
// W is a PyTorch-layout weight [out, in]. 64x64 output tile per workgroup of 16x16 threads, 4x4 outputs
// per thread, K in steps of 16 through workgroup memory.
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

const T: u32 = 64u;
const TK: u32 = 16u;
var<workgroup> xs: array<f32, 1024>;
var<workgroup> ws: array<f32, 1024>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let m0 = wid.y * T;
  let n0 = wid.x * T;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < p.k; k0 += TK) {
    for (var e = 0u; e < 4u; e++) {
      let idx = li + e * 256u;
      let r = idx / TK;
      let c = idx % TK;
      let kk = k0 + c;
      var xv = 0.0;
      if (m0 + r < p.m && kk < p.k) { xv = x[(m0 + r) * p.k + kk]; }
      xs[idx] = xv;
      var wv = 0.0;
      if (n0 + r < p.n && kk < p.k) { wv = w[(n0 + r) * p.k + kk]; }
      ws[idx] = wv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      var a: array<f32, 4>;
      var b: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        a[i] = xs[(lid.y * 4u + i) * TK + kk];
        b[i] = ws[(lid.x * 4u + i) * TK + kk];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
          acc[i][j] += a[i] * b[j];
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + lid.y * 4u + i;
    if (m >= p.m) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x * 4u + j;
      if (n >= p.n) { continue; }
      var v = acc[i][j];
      if (HAS_BIAS) { v += bias[n]; }
      if (ACCUMULATE) { v += y[m * p.n + n]; }
      y[m * p.n + n] = v;
    }
  }
}
