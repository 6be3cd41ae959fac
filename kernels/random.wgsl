// Counter-based random numbers shared by kiln's kernels (include with a line `//!include random.wgsl`).
//
// philox4x32_10: Philox4x32 with 10 rounds (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy
// as 1, 2, 3", SC 2011). Stateless: the same (counter, key) gives the same four words on every adapter,
// so a fused backward can replay the forward's dropout mask without storing it.
// WGSL has no u64, so the 32x32 -> 64-bit product is assembled from 16-bit halves; the low word is
// simply the wrapping u32 product.
//
// attn_dropout_keep(seed0, seed1, bh, i, j, p): keep decision for score (query i, key j) of the
// flattened (batch, query head) index bh = b * Hq + h. Counter = (j, i, bh, 0x5A17), key = (seed0, seed1);
// only the first output word is used. Kept when uniform >= p, i.e. with probability 1 - p.

const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;
const PHILOX_W1: u32 = 0xBB67AE85u;

// High 32 bits of the 64-bit product a * b.
fn philox_mulhi(a: u32, b: u32) -> u32 {
  let a_lo = a & 0xFFFFu;
  let a_hi = a >> 16u;
  let b_lo = b & 0xFFFFu;
  let b_hi = b >> 16u;
  let ll = a_lo * b_lo;
  let lh = a_lo * b_hi;
  let hl = a_hi * b_lo;
  let hh = a_hi * b_hi;
  let mid = (ll >> 16u) + (lh & 0xFFFFu) + (hl & 0xFFFFu);
  return hh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
}

fn philox_round(c: vec4<u32>, k: vec2<u32>) -> vec4<u32> {
  let hi0 = philox_mulhi(PHILOX_M0, c.x);
  let lo0 = PHILOX_M0 * c.x;
  let hi1 = philox_mulhi(PHILOX_M1, c.z);
  let lo1 = PHILOX_M1 * c.z;
  return vec4<u32>(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
}

fn philox4x32_10(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
  var c = counter;
  var k = key;
  for (var r = 0u; r < 10u; r++) {
    c = philox_round(c, k);
    k = k + vec2<u32>(PHILOX_W0, PHILOX_W1);
  }
  return c;
}

// The top 24 bits as a float in [0, 1); exact in f32.
fn uniform_from_u32(x: u32) -> f32 {
  return f32(x >> 8u) * (1.0 / 16777216.0);
}

fn attn_dropout_keep(seed0: u32, seed1: u32, bh: u32, i: u32, j: u32, p: f32) -> bool {
  let r = philox4x32_10(vec4<u32>(j, i, bh, 0x5A17u), vec2<u32>(seed0, seed1));
  return uniform_from_u32(r.x) >= p;
}
