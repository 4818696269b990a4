// Quantization parameters (scale, 1/scale, zero point) of every group from its statistics, for the
// quantizer chosen by the SYMMETRIC / BITS / FP8 overrides and the clip ratio.
#include "quant-common.wgsl"

override WG: u32 = 256u;

struct Params {
  num_groups: u32,
  clip_ratio: f32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> stats: array<GroupStats>;
@group(0) @binding(2) var<storage, read_write> qp: array<QParams>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let g = gid.x + gid.y * nwg.x * WG;
  if (g >= p.num_groups) { return; }
  let s = stats[g];
  qp[g] = qparams_of(s.min_v, s.max_v, s.absmax, p.clip_ratio);
}
