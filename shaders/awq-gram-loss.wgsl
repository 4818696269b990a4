// AWQ scale-search loss in Gram form, for a batch of candidate weights at once:
//   partial[r, o, tile] = sum over the 64 columns j of the tile of (dW_r G)[o, j] * dW_r[o, j],
// dW_r = W - Wq_r, so that sum over o and tiles = sum_o dW_o G dW_o^T = ||X dW^T||^2 (REFERENCE.md
// section 4 note). P = dW G is never stored: each workgroup computes a 64x64 tile of it (16x16 threads,
// 4x4 outputs each, K in steps of 16 through workgroup memory, as linear.wgsl), multiplies by dW and
// reduces along the tile's columns. G is symmetric, so G[k, j] is read as G[j, k] (row-contiguous).

struct Params {
  out_rows: u32,
  cols: u32,
  col_tiles: u32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> wq: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> partial: array<f32>;

const T: u32 = 64u;
const TK: u32 = 16u;
var<workgroup> ds: array<f32, 1024>;
var<workgroup> gs: array<f32, 1024>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let m0 = wid.y * T;
  let n0 = wid.x * T;
  let base = wid.z * p.out_rows * p.cols;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < p.cols; k0 += TK) {
    for (var e = 0u; e < 4u; e++) {
      let idx = li + e * 256u;
      let r = idx / TK;
      let c = idx % TK;
      let kk = k0 + c;
      var dv = 0.0;
      if (m0 + r < p.out_rows && kk < p.cols) {
        let at = (m0 + r) * p.cols + kk;
        dv = w[at] - wq[base + at];
      }
      ds[idx] = dv;
      var gv = 0.0;
      if (n0 + r < p.cols && kk < p.cols) { gv = g[(n0 + r) * p.cols + kk]; }
      gs[idx] = gv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      var a: array<f32, 4>;
      var b: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        a[i] = ds[(lid.y * 4u + i) * TK + kk];
        b[i] = gs[(lid.x * 4u + i) * TK + kk];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
          acc[i][j] += a[i] * b[j];
        }
      }
    }
    workgroupBarrier();
  }
  // Row sums of P * dW over this thread's 4 columns, then over the 16 threads of a row (ds reused).
  for (var i = 0u; i < 4u; i++) {
    let o = m0 + lid.y * 4u + i;
    var rs = 0.0;
    if (o < p.out_rows) {
      for (var j = 0u; j < 4u; j++) {
        let c = n0 + lid.x * 4u + j;
        if (c < p.cols) {
          let at = o * p.cols + c;
          rs += acc[i][j] * (w[at] - wq[base + at]);
        }
      }
    }
    ds[(lid.y * 4u + i) * 16u + lid.x] = rs;
  }
  workgroupBarrier();
  if (li < T) {
    let o = m0 + li;
    if (o < p.out_rows) {
      var s = 0.0;
      for (var k = 0u; k < 16u; k++) { s += ds[li * 16u + k]; }
      partial[(wid.z * p.out_rows + o) * p.col_tiles + wid.x] = s;
    }
  }
}
