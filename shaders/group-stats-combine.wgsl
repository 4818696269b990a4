// Merge per-chunk partial statistics [group][chunk] into one GroupStats per group.
#include "quant-common.wgsl"

override WG: u32 = 256u;

struct Params {
  num_groups: u32,
  chunks_per_group: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> partial: array<GroupStats>;
@group(0) @binding(2) var<storage, read_write> out: array<GroupStats>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let g = gid.x + gid.y * nwg.x * WG;
  if (g >= p.num_groups) { return; }
  var r = partial[g * p.chunks_per_group];
  for (var c = 1u; c < p.chunks_per_group; c++) {
    let q = partial[g * p.chunks_per_group + c];
    r.min_v = min(r.min_v, q.min_v);
    r.max_v = max(r.max_v, q.max_v);
    r.sum_abs = r.sum_abs + q.sum_abs;
    r.count = r.count + q.count;
    r.non_finite = r.non_finite + q.non_finite;
  }
  if (r.count == 0u) {
    r.min_v = 0.0;
    r.max_v = 0.0;
  }
  r.absmax = max(-r.min_v, r.max_v);
  out[g] = r;
}
