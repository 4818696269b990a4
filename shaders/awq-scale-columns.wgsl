// AWQ candidate scaling: y[r, o, j] = w[o, j] * s[r, j] for every ratio r of a batch of the scale
// search (the weight's input channels multiplied by the ratio's scales; llm-awq auto_scale.py).
override WG: u32 = 256u;

struct Params {
  // Elements of one weight (out * in), input channels, ratios in the batch.
  per_ratio: u32,
  cols: u32,
  ratios: u32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> s: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.per_ratio * p.ratios) { return; }
  let r = i / p.per_ratio;
  let e = i - r * p.per_ratio;
  y[i] = w[e] * s[r * p.cols + e % p.cols];
}
