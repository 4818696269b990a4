// Grow a 2048-bin |x| histogram whose range doubles `doublings` times: bins merge by f = 2^doublings,
// dst[k] = src[k*f] + ... + src[k*f + f - 1] for k < bins / f, and 0 above (exact integer sums, the CPU
// reference is mergeBins in src/calib/histogram.ts). Out of place: src and dst are different buffers.
// Word `bins` of each buffer is the non-finite count, carried over unchanged.

override WG: u32 = 256u;

struct Params {
  bins: u32,
  // log2 of the merge factor, at most log2(bins).
  shift: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let k = gid.x;
  if (k > p.bins) { return; }
  if (k == p.bins) {
    dst[k] = src[k];
    return;
  }
  let f = 1u << p.shift;
  var s = 0u;
  if (k < (p.bins >> p.shift)) {
    let start = k * f;
    for (var t = 0u; t < f; t++) {
      s += src[start + t];
    }
  }
  dst[k] = s;
}
