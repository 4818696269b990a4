// AWQ candidate weights: y = Q(ws) / s, where ws = W * s is a batch of scaled weights [ratios * out, in]
// and Q the group-wise fake quantizer (same formulas as fake-quantize.wgsl). The division is exact
// (div_rne), so y equals the CPU reference's float32 division bit for bit.
#include "quant-common.wgsl"

override WG: u32 = 256u;

struct Params {
  n: u32,
  row_len: u32,
  group_size: u32,
  groups_per_row: u32,
  per_ratio: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ws: array<f32>;
@group(0) @binding(2) var<storage, read> qp: array<QParams>;
@group(0) @binding(3) var<storage, read> s: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  let q = qp[group_of(i, p.row_len, p.group_size, p.groups_per_row)];
  let v = dequantize_value(quantize_value(ws[i], q), q);
  let r = i / p.per_ratio;
  let col = i % p.row_len;
  let a = div_rne(abs(v), s[r * p.row_len + col]);
  y[i] = select(a, -a, v < 0.0);
}
