// Merge per-chunk partial statistics [group][chunk] into one GroupStats per group. With ACCUMULATE the
// result is also merged into what `out` already holds (running statistics over batches, e.g. an
// activation's per-channel statistics), except when `first` is set (the first batch overwrites).
#include "quant-common.wgsl"

override WG: u32 = 256u;
override ACCUMULATE: bool = false;

struct Params {
  num_groups: u32,
  chunks_per_group: u32,
  first: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> partial: array<GroupStats>;
@group(0) @binding(2) var<storage, read_write> out: array<GroupStats>;

fn merge(a: GroupStats, b: GroupStats) -> GroupStats {
  var r = a;
  r.min_v = min(a.min_v, b.min_v);
  r.max_v = max(a.max_v, b.max_v);
  r.sum_abs = a.sum_abs + b.sum_abs;
  r.count = a.count + b.count;
  r.non_finite = a.non_finite + b.non_finite;
  return r;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let g = gid.x + gid.y * nwg.x * WG;
  if (g >= p.num_groups) { return; }
  var r = partial[g * p.chunks_per_group];
  for (var c = 1u; c < p.chunks_per_group; c++) {
    r = merge(r, partial[g * p.chunks_per_group + c]);
  }
  if (ACCUMULATE && p.first == 0u) {
    // The running state keeps the +-BIG sentinels of an empty group, so merging is a plain min/max.
    r = merge(r, out[g]);
  }
  if (ACCUMULATE) {
    // Running state: keep the sentinels (the host reads absmax 0 for a group with no finite value).
    r.absmax = select(0.0, max(-r.min_v, r.max_v), r.count > 0u);
  } else {
    if (r.count == 0u) {
      r.min_v = 0.0;
      r.max_v = 0.0;
    }
    r.absmax = max(-r.min_v, r.max_v);
  }
  out[g] = r;
}
