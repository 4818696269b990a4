// AWQ clip search (llm-awq auto_clip.py): one workgroup per (output row, group) of the scaled weight
// W*s. For each candidate max_val = absmax * factor[c] (factor = 1 - c/20, c < 10) the group is clamped
// to [-max_val, max_val] and fake-quantized with the range of the clamped group (clamping is monotone,
// so that range is the clamped min / max); the error sum is
//   sum over sampled tokens t of (sum_k xs[t, k] * (ws[k] - Q(clamp(ws[k]))))^2
// over the group's columns k. Threads own tokens (up to MAXM each); the weight differences go through
// workgroup memory WG at a time. The mean over tokens and the choice of the best candidate are done by
// the caller (src/awq/gpu-awq.ts), as the CPU reference does them.
#include "quant-common.wgsl"

override WG: u32 = 64u;
const MAXM: u32 = 16u;
const NC: u32 = 10u;

struct Params {
  cols: u32,
  group_size: u32,
  groups_per_row: u32,
  num_groups: u32,
  tokens: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ws: array<f32>;
@group(0) @binding(2) var<storage, read> stats: array<GroupStats>;
@group(0) @binding(3) var<storage, read> factors: array<f32>;
@group(0) @binding(4) var<storage, read> xs: array<f32>;
@group(0) @binding(5) var<storage, read_write> errs: array<f32>;

var<workgroup> d: array<f32, WG>;
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let grp = wid.x + wid.y * nwg.x;
  if (grp >= p.num_groups) { return; }
  let row = grp / p.groups_per_row;
  let col0 = (grp % p.groups_per_row) * p.group_size;
  let glen = min(p.group_size, p.cols - col0);
  let base = row * p.cols + col0;
  let st = stats[grp];
  for (var c = 0u; c < NC; c++) {
    let mv = st.absmax * factors[c];
    let q = qparams_of(clamp(st.min_v, -mv, mv), clamp(st.max_v, -mv, mv), min(st.absmax, mv), 1.0);
    // Zeroed explicitly: a declaration inside a loop is not re-initialised on every iteration by every backend.
    var acc: array<f32, MAXM>;
    for (var m = 0u; m < MAXM; m++) { acc[m] = 0.0; }
    for (var k0 = 0u; k0 < glen; k0 += WG) {
      let k = k0 + li;
      var dv = 0.0;
      if (k < glen) {
        let v = ws[base + k];
        dv = v - dequantize_value(quantize_value(clamp(v, -mv, mv), q), q);
      }
      d[li] = dv;
      workgroupBarrier();
      let kn = min(WG, glen - k0);
      for (var m = 0u; m < MAXM; m++) {
        let t = li + m * WG;
        if (t < p.tokens) {
          let xo = t * p.cols + col0 + k0;
          var s = 0.0;
          for (var kk = 0u; kk < kn; kk++) { s += xs[xo + kk] * d[kk]; }
          acc[m] += s;
        }
      }
      workgroupBarrier();
    }
    var e = 0.0;
    for (var m = 0u; m < MAXM; m++) { e += acc[m] * acc[m]; }
    red[li] = e;
    workgroupBarrier();
    for (var h = WG / 2u; h > 0u; h = h / 2u) {
      if (li < h) { red[li] += red[li + h]; }
      workgroupBarrier();
    }
    if (li == 0u) { errs[grp * NC + c] = red[0]; }
    workgroupBarrier();
  }
}
