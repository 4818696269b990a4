// 2048-bin histogram of |x| over [0, range]: bin = min(floor(|x| * inv_bin_width), 2047), so values at
// or beyond the range land in the last bin; NaN/Inf are counted apart. Each workgroup accumulates a
// private histogram in workgroup memory, then adds its non-empty bins to the global one.
#include "quant-common.wgsl"

override WG: u32 = 256u;
const BINS: u32 = 2048u;

struct Params {
  n: u32,
  inv_bin_width: f32,
  elems_per_wg: u32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
// counts[0..2048) are the bins, counts[2048] the non-finite count.
@group(0) @binding(2) var<storage, read_write> counts: array<atomic<u32>>;

var<workgroup> local_bins: array<atomic<u32>, BINS>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  for (var b = lid; b < BINS; b += WG) {
    atomicStore(&local_bins[b], 0u);
  }
  workgroupBarrier();
  let wg_index = wid.x + wid.y * nwg.x;
  let start = wg_index * p.elems_per_wg;
  let end = min(start + p.elems_per_wg, p.n);
  var bad = 0u;
  for (var i = start + lid; i < end; i += WG) {
    let v = x[i];
    if (is_finite_f32(v)) {
      let b = min(u32(floor(abs(v) * p.inv_bin_width)), BINS - 1u);
      atomicAdd(&local_bins[b], 1u);
    } else {
      bad += 1u;
    }
  }
  if (bad > 0u) {
    atomicAdd(&counts[BINS], bad);
  }
  workgroupBarrier();
  for (var b = lid; b < BINS; b += WG) {
    let c = atomicLoad(&local_bins[b]);
    if (c > 0u) {
      atomicAdd(&counts[b], c);
    }
  }
}
