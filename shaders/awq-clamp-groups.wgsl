// AWQ clip application (llm-awq apply_clip): y = clamp(x, -max_val[g], max_val[g]) for every element of
// group g of the run layout (src/quant/layout.ts), before the final quantization.
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
@group(0) @binding(2) var<storage, read> max_val: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  let mv = max_val[group_of(i, p.row_len, p.group_size, p.groups_per_row)];
  y[i] = clamp(x[i], -mv, mv);
}
