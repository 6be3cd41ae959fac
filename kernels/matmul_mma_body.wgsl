// The portable body of matmul_mma.wgsl's matrix steps: the same tile products as the subgroup-matrix builtins, in
// ordinary WGSL, so any adapter (CI's lavapipe) runs the matrix path. Blocks are SM_M x SM_N (x SM_K) = 16 x 16 (x 16);
// the LANES = 32 invocations of a workgroup each own PER_LANE = 8 entries of a result block (entry lane + 32 q, row-major),
// and sum their products in f32 from the f16 tiles, as the matrix units do.

const SM_M: u32 = 16u;
const SM_N: u32 = 16u;
const SM_K: u32 = 16u;
const PORTABLE_LANES: u32 = 32u;
const PER_LANE: u32 = SM_M * SM_N / PORTABLE_LANES;

alias mm_acc_t = array<f32, PER_LANE>;

fn mm_zero() -> mm_acc_t {
  return mm_acc_t();
}

// Loop bounds the compiler cannot prove constant (they always equal PER_LANE and SM_K): fully unrolled, the twelve calls
// of the 'high' kernel make a shader that lavapipe's LLVM takes minutes to compile.
fn per_lane() -> u32 { return min(PER_LANE, params.M + PER_LANE); }
fn sm_k() -> u32 { return min(SM_K, params.M + SM_K); }

fn mm_mac(acc: mm_acc_t, a_off: u32, b_off: u32, lane: u32) -> mm_acc_t {
  var r = acc;
  let n = per_lane();
  let kn = sm_k();
  for (var q = 0u; q < n; q++) {
    let e = lane + PORTABLE_LANES * q;
    let row = a_off + (e / SM_N) * TK;
    let col = b_off + e % SM_N;
    var s = r[q];
    for (var k = 0u; k < kn; k++) { s = fma(f32(tile_a[row + k]), f32(tile_b[col + k * TN]), s); }
    r[q] = s;
  }
  return r;
}

fn mm_store(acc: mm_acc_t, c_off: u32, lane: u32) {
  for (var q = 0u; q < PER_LANE; q++) {
    let e = lane + PORTABLE_LANES * q;
    tile_c[c_off + (e / SM_N) * TN + e % SM_N] = acc[q];
  }
}
