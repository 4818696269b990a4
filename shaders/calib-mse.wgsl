// Clipping and rounding error of a |x| histogram for many clip thresholds at once: workgroup c takes
// threshold a = amax_units[c] (in bin widths) and reduces over all bins, each bin represented by its
// centre k + 0.5 and weighted by its count (pytorch-quantization _compute_amax_mse). Centres beyond a are
// clipped; the others are rounded to the symmetric grid of step a / qmax. The CPU reference is
// clipRoundError in src/calib/calibrators.ts; the same kernel gives the MSE calibrator's sweep
// (a = i + 0.5, i = 128..bins-1) and the clipping-versus-rounding curve.
//
// Everything is in doubled bin units so the MSE candidates are computed exactly: with c2 = 2k + 1 and
// a2 = 2a, the clip error is (c2 - a2)^2 and the rounding error (c2 * qmax - level * a2)^2, whose bases
// are exact integers in f32 for half-integer a. The host scales the sums by (w/2)^2 and (w/(2 qmax))^2.
#include "quant-common.wgsl"

override WG: u32 = 256u;

struct Params {
  bins: u32,
  num_candidates: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> counts: array<u32>;
@group(0) @binding(2) var<storage, read> amax_units: array<f32>;
// Per candidate: (sum n * (c2 - a2)^2 over clipped bins, sum n * (c2 * qmax - level * a2)^2 over the others).
@group(0) @binding(3) var<storage, read_write> out: array<vec2<f32>>;

var<workgroup> s_clip: array<f32, WG>;
var<workgroup> s_round: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let c = wid.x + wid.y * nwg.x;
  let qmax = qmax_f();
  var clip_sse = 0.0;
  var round_sse = 0.0;
  if (c < p.num_candidates) {
    let a2 = 2.0 * amax_units[c];
    for (var k = lid; k < p.bins; k += WG) {
      let n = f32(counts[k]);
      if (n == 0.0) { continue; }
      let c2 = f32(2u * k + 1u);
      if (c2 > a2 || a2 <= 0.0) {
        let d = c2 - max(a2, 0.0);
        clip_sse += n * d * d;
      } else {
        // Plain f32 division (2.5 ULP) is safe: for the MSE candidates c2 * qmax / a2 = (2k+1) qmax / (2i+1)
        // is at least 1 / (2 a2) > 1e-4 away from any half-integer, far beyond its error.
        let level = min(round(c2 * qmax / a2), qmax);
        let d = c2 * qmax - level * a2;
        round_sse += n * d * d;
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
  if (lid == 0u && c < p.num_candidates) {
    out[c] = vec2<f32>(s_clip[0], s_round[0]);
  }
}
