// RMSNorm per row: y = x / sqrt(mean(x^2) + eps) * w (llama2.c run.c rmsnorm). One workgroup per row.
override WG: u32 = 256u;

struct Params {
  rows: u32,
  dim: u32,
  eps: f32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x;
  let base = row * p.dim;
  var ss = 0.0;
  if (row < p.rows) {
    for (var i = lid; i < p.dim; i += WG) {
      let v = x[base + i];
      ss += v * v;
    }
  }
  partial[lid] = ss;
  for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
    workgroupBarrier();
    if (lid < stride) {
      partial[lid] += partial[lid + stride];
    }
  }
  workgroupBarrier();
  if (row >= p.rows) { return; }
  let inv = 1.0 / sqrt(partial[0] / f32(p.dim) + p.eps);
  for (var i = lid; i < p.dim; i += WG) {
    y[base + i] = x[base + i] * inv * w[i];
  }
}
