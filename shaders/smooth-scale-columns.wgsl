// SmoothQuant column scaling: y[r, j] = x[r, j] * f[j] for a row-major [rows, cols] matrix. With f = s it
// gives the smoothed weight W * s; with f = 1/s (reciprocals computed on the CPU) the smoothed activation
// X / s. Multiplication only, so the result matches the CPU reference (src/smooth/smoothquant.ts) bit for bit.
override WG: u32 = 256u;

struct Params {
  n: u32,
  cols: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> f: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  y[i] = x[i] * f[i % p.cols];
}
