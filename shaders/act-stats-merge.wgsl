// Running per-channel statistics of an activation matrix [tokens, channels]: merge this batch's
// per-column partials [column][row chunk] (from column-stats.wgsl) into the running state, one
// GroupStats per channel (min, max, max |x|, sum |x|, count, non-finite count). With `first` set
// the state is overwritten (the first batch), so the state buffer needs no initialisation.
#include "quant-common.wgsl"

override WG: u32 = 256u;

struct Params {
  cols: u32,
  num_chunks: u32,
  first: u32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> partial: array<GroupStats>;
@group(0) @binding(2) var<storage, read_write> state: array<GroupStats>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let col = gid.x + gid.y * nwg.x * WG;
  if (col >= p.cols) { return; }
  var r = partial[col * p.num_chunks];
  for (var c = 1u; c < p.num_chunks; c++) {
    let q = partial[col * p.num_chunks + c];
    r.min_v = min(r.min_v, q.min_v);
    r.max_v = max(r.max_v, q.max_v);
    r.sum_abs = r.sum_abs + q.sum_abs;
    r.count = r.count + q.count;
    r.non_finite = r.non_finite + q.non_finite;
  }
  if (p.first == 0u) {
    let s = state[col];
    r.min_v = min(r.min_v, s.min_v);
    r.max_v = max(r.max_v, s.max_v);
    r.sum_abs = r.sum_abs + s.sum_abs;
    r.count = r.count + s.count;
    r.non_finite = r.non_finite + s.non_finite;
  }
  // Channels with no finite value yet keep the +-BIG sentinels of column-stats.wgsl in min/max;
  // absmax is only meaningful with count > 0 (the host reads 0 then).
  r.absmax = select(0.0, max(-r.min_v, r.max_v), r.count > 0u);
  state[col] = r;
}
