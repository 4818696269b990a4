// Token embedding lookup: x[t, :] = table[token[t], :].
override WG: u32 = 256u;

struct Params {
  tokens: u32,
  dim: u32,
  vocab: u32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.tokens * p.dim) { return; }
  let t = i / p.dim;
  let d = i - t * p.dim;
  let id = min(ids[t], p.vocab - 1u);
  x[i] = table[id * p.dim + d];
}
