// Per-column statistics of a row-major matrix [rows, cols]: the per-input-channel view of an activation
// matrix [tokens, channels] (SmoothQuant's max |X_j|, AWQ's mean |X_j|). Each thread owns one column
// within a chunk of rows, so a warp reads consecutive addresses; partials [column][row chunk] are merged
// by group-stats-combine.wgsl.
#include "quant-common.wgsl"

override WG: u32 = 256u;

struct Params {
  rows: u32,
  cols: u32,
  rows_per_chunk: u32,
  num_chunks: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<GroupStats>;

const BIG: f32 = 0x1.fffffep+127f;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let col = gid.x;
  let chunk = gid.y;
  if (col >= p.cols || chunk >= p.num_chunks) { return; }
  let r0 = chunk * p.rows_per_chunk;
  let r1 = min(r0 + p.rows_per_chunk, p.rows);
  var r = GroupStats(BIG, -BIG, 0.0, 0.0, 0u, 0u, 0u, 0u);
  for (var row = r0; row < r1; row++) {
    let v = x[row * p.cols + col];
    if (is_finite_f32(v)) {
      r.min_v = min(r.min_v, v);
      r.max_v = max(r.max_v, v);
      r.sum_abs += abs(v);
      r.count += 1u;
    } else {
      r.non_finite += 1u;
    }
  }
  out[col * p.num_chunks + chunk] = r;
}
