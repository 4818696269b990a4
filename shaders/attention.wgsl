// Causal grouped-query attention over the KV cache for T new tokens at positions pos0..pos0+T-1.
// One workgroup per (token, head): scores q.k / sqrt(head_dim) for every cached position up to the
// token's own, softmax, then the weighted sum of values. Query head h reads KV head h / (n_heads / n_kv).
// Scores live in a scratch buffer [T, n_heads, seq_len].
override WG: u32 = 64u;

struct Params {
  tokens: u32,
  n_heads: u32,
  n_kv_heads: u32,
  head_dim: u32,
  pos0: u32,
  seq_len: u32,
  cache_offset: u32, // element offset of this layer in the caches
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;        // [T, n_heads * head_dim]
@group(0) @binding(2) var<storage, read> kcache: array<f32>;   // [layers, seq_len, n_kv * head_dim]
@group(0) @binding(3) var<storage, read> vcache: array<f32>;
@group(0) @binding(4) var<storage, read_write> scores: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>; // [T, n_heads * head_dim]

var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = wid.x / p.n_heads;
  let h = wid.x % p.n_heads;
  let in_range = t < p.tokens;
  let kvh = h / (p.n_heads / p.n_kv_heads);
  let kv_dim = p.n_kv_heads * p.head_dim;
  let q_base = (t * p.n_heads + h) * p.head_dim;
  let s_base = (t * p.n_heads + h) * p.seq_len;
  let n_pos = p.pos0 + t + 1u;
  let scale = 1.0 / sqrt(f32(p.head_dim));

  var local_max = -3.0e38;
  if (in_range) {
    for (var s = lid; s < n_pos; s += WG) {
      let k_base = p.cache_offset + s * kv_dim + kvh * p.head_dim;
      var dot = 0.0;
      for (var d = 0u; d < p.head_dim; d++) {
        dot += q[q_base + d] * kcache[k_base + d];
      }
      let sc = dot * scale;
      scores[s_base + s] = sc;
      local_max = max(local_max, sc);
    }
  }
  red[lid] = local_max;
  for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
    workgroupBarrier();
    if (lid < stride) { red[lid] = max(red[lid], red[lid + stride]); }
  }
  workgroupBarrier();
  let mx = red[0];
  workgroupBarrier();

  var local_sum = 0.0;
  if (in_range) {
    for (var s = lid; s < n_pos; s += WG) {
      let e = exp(scores[s_base + s] - mx);
      scores[s_base + s] = e;
      local_sum += e;
    }
  }
  red[lid] = local_sum;
  for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
    workgroupBarrier();
    if (lid < stride) { red[lid] += red[lid + stride]; }
  }
  workgroupBarrier();
  let inv_sum = 1.0 / red[0];
  // The scores written by other threads must be visible before the weighted sum.
  storageBarrier();
  workgroupBarrier();

  if (in_range) {
    for (var d = lid; d < p.head_dim; d += WG) {
      var acc = 0.0;
      for (var s = 0u; s < n_pos; s++) {
        acc += scores[s_base + s] * vcache[p.cache_offset + s * kv_dim + kvh * p.head_dim + d];
      }
      out[q_base + d] = acc * inv_sum;
    }
  }
}
