// Quantize: x -> integer codes (or E4M3 bytes), four codes packed per u32, byte k = element 4i+k.
// Signed codes are stored in two's complement.
#include "quant-common.wgsl"

override WG: u32 = 256u;

struct Params {
  n: u32,
  row_len: u32,
  group_size: u32,
  groups_per_row: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> qp: array<QParams>;
@group(0) @binding(3) var<storage, read_write> codes: array<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let w = gid.x + gid.y * nwg.x * WG;
  let i0 = w * 4u;
  if (i0 >= p.n) { return; }
  var word = 0u;
  var row = i0 / p.row_len;
  var col = i0 - row * p.row_len;
  for (var k = 0u; k < 4u; k++) {
    let i = i0 + k;
    if (i < p.n) {
      let g = row * p.groups_per_row + col / p.group_size;
      let c = quantize_value(x[i], qp[g]);
      word = word | ((u32(c) & 0xffu) << (8u * k));
    }
    col += 1u;
    if (col == p.row_len) {
      col = 0u;
      row += 1u;
    }
  }
  codes[w] = word;
}
