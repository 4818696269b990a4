// Clipping-versus-rounding error for a whole sweep of clip ratios in one dispatch. Workgroup (block, k)
// fake-quantizes its block of elements with ratio k (per group: t = ratio * absmax, parameters as in
// qparams.wgsl) and sums the squared error of clipped elements (|x| > t) and of the others apart.
// Each thread walks EPT consecutive elements so the group's parameters are recomputed only when the
// group changes. The host adds the partials [k][block] in double precision.
#include "quant-common.wgsl"

override WG: u32 = 256u;
override EPT: u32 = 8u;

struct Params {
  n: u32,
  row_len: u32,
  group_size: u32,
  groups_per_row: u32,
  num_blocks: u32,
  num_ratios: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> stats: array<GroupStats>;
@group(0) @binding(3) var<storage, read> ratios: array<f32>;
@group(0) @binding(4) var<storage, read_write> partial: array<vec2<f32>>;

var<workgroup> s_clip: array<f32, WG>;
var<workgroup> s_round: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let block = wid.x + wid.y * nwg.x;
  let k = wid.z;
  let ratio = ratios[k];
  var clip_sse = 0.0;
  var round_sse = 0.0;
  if (block < p.num_blocks) {
    let start = (block * WG + lid) * EPT;
    let end = min(start + EPT, p.n);
    var cached = 0xffffffffu;
    var q = QParams(1.0, 1.0, 0.0, 0.0);
    var t = 0.0;
    for (var i = start; i < end; i++) {
      let v = x[i];
      if (!is_finite_f32(v)) { continue; }
      let g = group_of(i, p.row_len, p.group_size, p.groups_per_row);
      if (g != cached) {
        cached = g;
        let s = stats[g];
        q = qparams_of(s.min_v, s.max_v, s.absmax, ratio);
        t = ratio * s.absmax;
      }
      let d = v - dequantize_value(quantize_value(v, q), q);
      if (abs(v) > t) {
        clip_sse += d * d;
      } else {
        round_sse += d * d;
      }
    }
  }
  s_clip[lid] = clip_sse;
  s_round[lid] = round_sse;
  for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
    workgroupBarrier();
    if (lid < stride) {
      s_clip[lid] += s_clip[lid + stride];
      s_round[lid] += s_round[lid + stride];
    }
  }
  workgroupBarrier();
  if (lid == 0u && block < p.num_blocks) {
    partial[k * p.num_blocks + block] = vec2<f32>(s_clip[0], s_round[0]);
  }
}
