// AWQ Gram matrix: G[in, in] += X^T X for one batch of activation rows X[tokens, in], so the scale
// search can score every ratio with all calibration tokens at O(out * in^2) (REFERENCE.md section 4).
// Batches accumulate into G, so X never has to be on the GPU whole. G is symmetric: a workgroup owns
// the 64x64 tile (ty, tx) with ty <= tx and writes it and its mirror; 16x16 threads, 4x4 outputs each,
// tokens in steps of 16 through workgroup memory.

struct Params {
  tokens: u32,
  cols: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> g: array<f32>;

const T: u32 = 64u;
const TK: u32 = 16u;
var<workgroup> xa: array<f32, 1024>;
var<workgroup> xb: array<f32, 1024>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  // Lower tiles are written by their mirror.
  if (wid.y > wid.x) { return; }
  let i0 = wid.y * T;
  let j0 = wid.x * T;
  var acc: array<array<f32, 4>, 4>;
  for (var t0 = 0u; t0 < p.tokens; t0 += TK) {
    for (var e = 0u; e < 4u; e++) {
      // idx = token-in-step * 64 + column-in-tile: consecutive threads read consecutive columns.
      let idx = li + e * 256u;
      let tt = idx / T;
      let c = idx % T;
      let t = t0 + tt;
      var va = 0.0;
      var vb = 0.0;
      if (t < p.tokens) {
        if (i0 + c < p.cols) { va = x[t * p.cols + i0 + c]; }
        if (j0 + c < p.cols) { vb = x[t * p.cols + j0 + c]; }
      }
      xa[idx] = va;
      xb[idx] = vb;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      var a: array<f32, 4>;
      var b: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        a[i] = xa[kk * T + lid.y * 4u + i];
        b[i] = xb[kk * T + lid.x * 4u + i];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
          acc[i][j] += a[i] * b[j];
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let r = i0 + lid.y * 4u + i;
    if (r >= p.cols) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let c = j0 + lid.x * 4u + j;
      if (c >= p.cols) { continue; }
      g[r * p.cols + c] += acc[i][j];
      if (wid.x != wid.y) { g[c * p.cols + r] += acc[i][j]; }
    }
  }
}
