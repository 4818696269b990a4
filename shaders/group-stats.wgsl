// Per-group statistics (min, max, absmax, sum |x|, finite and non-finite counts) for the run layout:
// per-tensor, per-channel (rows) or per-group (runs inside rows, last one partial).
// A "segment" is one group, or one chunk of a long group (then group-stats-combine.wgsl merges chunks).
// TPS threads work on one segment (TPS a power of two <= WG), so short groups (g = 32) still read memory
// contiguously across the workgroup.
#include "quant-common.wgsl"

override WG: u32 = 256u;
override TPS: u32 = 256u;

struct Params {
  n: u32,
  row_len: u32,
  group_size: u32,
  groups_per_row: u32,
  num_groups: u32,
  chunk_len: u32,
  chunks_per_group: u32,
  finalize: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<GroupStats>;

var<workgroup> s_min: array<f32, WG>;
var<workgroup> s_max: array<f32, WG>;
var<workgroup> s_sum: array<f32, WG>;
var<workgroup> s_cnt: array<u32, WG>;
var<workgroup> s_bad: array<u32, WG>;

const BIG: f32 = 0x1.fffffep+127f;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let wg_index = wid.x + wid.y * nwg.x;
  let segs_per_wg = WG / TPS;
  let seg = wg_index * segs_per_wg + lid / TPS;
  let lane = lid % TPS;
  let num_segs = p.num_groups * p.chunks_per_group;

  var mn = BIG;
  var mx = -BIG;
  var sum = 0.0;
  var cnt = 0u;
  var bad = 0u;
  if (seg < num_segs) {
    let g = seg / p.chunks_per_group;
    let chunk = seg % p.chunks_per_group;
    let row = g / p.groups_per_row;
    let gi = g % p.groups_per_row;
    let gstart = row * p.row_len + gi * p.group_size;
    let glen = min(p.group_size, p.row_len - gi * p.group_size);
    let cstart = chunk * p.chunk_len;
    if (cstart < glen) {
      let clen = min(p.chunk_len, glen - cstart);
      let base = gstart + cstart;
      for (var i = lane; i < clen; i += TPS) {
        let v = x[base + i];
        if (is_finite_f32(v)) {
          mn = min(mn, v);
          mx = max(mx, v);
          sum += abs(v);
          cnt += 1u;
        } else {
          bad += 1u;
        }
      }
    }
  }
  s_min[lid] = mn;
  s_max[lid] = mx;
  s_sum[lid] = sum;
  s_cnt[lid] = cnt;
  s_bad[lid] = bad;
  for (var stride = TPS / 2u; stride > 0u; stride = stride / 2u) {
    workgroupBarrier();
    if (lane < stride) {
      let o = lid + stride;
      s_min[lid] = min(s_min[lid], s_min[o]);
      s_max[lid] = max(s_max[lid], s_max[o]);
      s_sum[lid] = s_sum[lid] + s_sum[o];
      s_cnt[lid] = s_cnt[lid] + s_cnt[o];
      s_bad[lid] = s_bad[lid] + s_bad[o];
    }
  }
  workgroupBarrier();
  if (lane == 0u && seg < num_segs) {
    var r = GroupStats(s_min[lid], s_max[lid], 0.0, s_sum[lid], s_cnt[lid], s_bad[lid], 0u, 0u);
    if (p.finalize != 0u) {
      if (r.count == 0u) {
        r.min_v = 0.0;
        r.max_v = 0.0;
      }
      r.absmax = max(-r.min_v, r.max_v);
    }
    out[seg] = r;
  }
}
