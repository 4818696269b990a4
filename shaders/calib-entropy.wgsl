// The entropy calibrator's sweep (TensorRT EntropyCalibration2, pytorch-quantization _compute_amax_entropy):
// workgroup c handles stop bin i = start + c and writes KL(P || Q). The CPU reference, and the spec, is
// entropySweep in src/calib/calibrators.ts:
//   b = counts with b[0] = b[1]; T = sum of b[i..]; H = sum of b[0..i); SP = H + T;
//   P[j] = b[j] for j < i, plus T on P[i-1];
//   source bin j belongs to level floor(j * nq / i); level l's mass M_l (its bins' sum) is spread evenly over
//   its n_l nonzero bins, Q[j] = M_l / n_l where b[j] > 0; sum Q = H.
// With both normalised, KL = (1 / SP) * sum_j P[j] log(P[j] n_l / M_l) + log(H / SP). Threads own levels.
// Precision: counts reach ~1e9, so log P - log Q would cancel badly in f32; the ratio P[j] n_l / M_l is
// formed first (relative error ~1e-7, so each log has an absolute error ~1e-7), and log(H / SP) is taken as
// -log1p(T / H) with a series for small T / H. KL agrees with the f64 reference to about 1e-6.
// An empty last bin under a nonzero tail (P > 0 where Q = 0) gives KL = +Inf, reported as a flag.

override WG: u32 = 128u;

struct Params {
  bins: u32,
  // Quantized levels, 2^(bits - 1).
  nq: u32,
  start: u32,
  num_candidates: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> counts: array<u32>;
// Per candidate: (KL, 1.0 when KL is +Inf else 0.0).
@group(0) @binding(2) var<storage, read_write> out: array<vec2<f32>>;

var<workgroup> s_a: array<f32, WG>;
var<workgroup> s_b: array<f32, WG>;
var<workgroup> s_inf: array<u32, WG>;

fn bin(j: u32) -> f32 {
  // EntropyCalibration2's quirk: bin 0 (mostly exact zeros) is replaced by bin 1.
  if (j == 0u && p.bins > 1u) { return f32(counts[1]); }
  return f32(counts[j]);
}

fn log1p_f32(x: f32) -> f32 {
  if (x < 1e-4) { return x - x * x * 0.5 + x * x * x / 3.0; }
  return log(1.0 + x);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let c = wid.x + wid.y * nwg.x;
  if (c >= p.num_candidates) { return; }
  let i = p.start + c;

  // H and T: every workgroup reduces the histogram itself (2048 reads, cheaper than a second pass).
  var h = 0.0;
  var t = 0.0;
  for (var j = lid; j < p.bins; j += WG) {
    if (j < i) { h += bin(j); } else { t += bin(j); }
  }
  s_a[lid] = h;
  s_b[lid] = t;
  for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
    workgroupBarrier();
    if (lid < stride) {
      s_a[lid] += s_a[lid + stride];
      s_b[lid] += s_b[lid + stride];
    }
  }
  workgroupBarrier();
  let hsum = s_a[0];
  let tail = s_b[0];
  workgroupBarrier();

  var acc = 0.0;
  var inf = 0u;
  for (var l = lid; l < p.nq; l += WG) {
    // Source bins of level l: j with floor(j * nq / i) == l, i.e. ceil(l * i / nq) <= j < ceil((l + 1) * i / nq).
    let j0 = (l * i + p.nq - 1u) / p.nq;
    let j1 = ((l + 1u) * i + p.nq - 1u) / p.nq;
    var mass = 0.0;
    var nonzero = 0u;
    for (var j = j0; j < j1; j++) {
      let b = bin(j);
      if (b > 0.0) {
        mass += b;
        nonzero += 1u;
      }
    }
    for (var j = j0; j < j1; j++) {
      let b = bin(j);
      var pj = b;
      if (j == i - 1u) { pj += tail; }
      if (pj == 0.0) { continue; }
      if (b == 0.0) {
        inf = 1u;
        continue;
      }
      acc += pj * log(pj * f32(nonzero) / mass);
    }
  }
  s_a[lid] = acc;
  s_inf[lid] = inf;
  for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
    workgroupBarrier();
    if (lid < stride) {
      s_a[lid] += s_a[lid + stride];
      s_inf[lid] = max(s_inf[lid], s_inf[lid + stride]);
    }
  }
  workgroupBarrier();
  if (lid == 0u) {
    let sp = hsum + tail;
    var kl = 0.0;
    if (sp > 0.0 && s_inf[0] == 0u) {
      kl = s_a[0] / sp - log1p_f32(tail / hsum);
    }
    out[c] = vec2<f32>(kl, f32(s_inf[0]));
  }
}
