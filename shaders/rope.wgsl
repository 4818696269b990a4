// Rotary position embedding in the interleaved-pair layout of llama2.c and GGUF: within each head,
// elements (2i, 2i+1) are rotated by angle pos * theta^(-2i/head_dim). cos/sin come from a table
// computed on the CPU in double precision (WGSL sin/cos are only accurate on [-pi, pi]).
override WG: u32 = 256u;

struct Params {
  tokens: u32,
  width: u32,      // n_heads * head_dim of this tensor (q or k)
  head_dim: u32,
  pos0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> table: array<vec2<f32>>; // [pos][head_dim / 2] = (cos, sin)
@group(0) @binding(2) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let pair = gid.x + gid.y * nwg.x * WG;
  let half_width = p.width / 2u;
  if (pair >= p.tokens * half_width) { return; }
  let t = pair / half_width;
  let j = pair - t * half_width;            // pair index within the row
  let i = (j * 2u) % p.head_dim;             // even index within the head
  let cs = table[(p.pos0 + t) * (p.head_dim / 2u) + i / 2u];
  let base = t * p.width + j * 2u;
  let a = v[base];
  let b = v[base + 1u];
  v[base] = a * cs.x - b * cs.y;
  v[base + 1u] = a * cs.y + b * cs.x;
}
