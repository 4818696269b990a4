// Fused fake-quantize: x -> dequantize(quantize(x)) in one pass, no codes written.
#include "quant-common.wgsl"

override WG: u32 = 256u;

struct Params {
  n: u32,
  row_len: u32,
  group_size: u32,
  groups_per_row: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> qp: array<QParams>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  let q = qp[group_of(i, p.row_len, p.group_size, p.groups_per_row)];
  y[i] = dequantize_value(quantize_value(x[i], q), q);
}
