// The portable body of the matrix-unit attention kernels' matrix steps (kernels/attention_mma.wgsl): the tile products
// the subgroup-matrix builtins compute, in ordinary WGSL, so any adapter with shader-f16 (CI's lavapipe) runs the
// matrix path. Blocks are SM_M x SM_N (x SM_K) = 16 x 16 (x 16). Each group of PORTABLE_LANES = 32 invocations (one
// "subgroup" of the kernel) owns a result block: invocation `lane` holds its entries lane + 32 q (q < 8, row-major) and
// sums their products in f32 from the f16 tiles, as the matrix units do (an f16 x f16 product is exact in f32).
//   mm_zero()                                          a zero result block
//   mm_mac(acc, a_off, a_stride, b_off, b_stride, lane) acc += the SM_M x SM_K block of the left operand array at
//                                                      a_off (row stride a_stride) times the SM_K x SM_N block of the
//                                                      right operand array at b_off (row stride b_stride)
//   mm_store(acc, c_off, c_stride, lane)               the block into tile_c (f32) at c_off, row stride c_stride
// The including kernel declares tile_c (f32) in workgroup memory and reads its f16 operand arrays (workgroup memory)
// through mm_left(i) and mm_right(i) (the builtins' body names the same arrays in the launcher's shim).

const SM_M: u32 = 16u;
const SM_N: u32 = 16u;
const SM_K: u32 = 16u;
const PORTABLE_LANES: u32 = 32u;
const PER_LANE: u32 = SM_M * SM_N / PORTABLE_LANES;

alias mm_acc_t = array<f32, PER_LANE>;

fn mm_zero() -> mm_acc_t {
  return mm_acc_t();
}

// Loop bounds the compiler cannot prove constant (they always equal PER_LANE and SM_K): fully unrolled, the products
// take lavapipe's LLVM minutes to compile. Not from params: lavapipe recompiles a shader at dispatch with the uniform
// values it branches on inlined (and then unrolls); the invocation index is never a constant.
fn mm_per_lane(lane: u32) -> u32 { return min(PER_LANE, lane + PER_LANE); }
fn mm_sm_k(lane: u32) -> u32 { return min(SM_K, lane + SM_K); }

fn mm_mac(acc: mm_acc_t, a_off: u32, a_stride: u32, b_off: u32, b_stride: u32, lane: u32) -> mm_acc_t {
  var r = acc;
  let n = mm_per_lane(lane);
  let kn = mm_sm_k(lane);
  for (var q = 0u; q < n; q++) {
    let e = lane + PORTABLE_LANES * q;
    let row = a_off + (e / SM_N) * a_stride;
    let col = b_off + e % SM_N;
    var s = r[q];
    for (var k = 0u; k < kn; k++) { s = fma(mm_left(row + k), mm_right(col + k * b_stride), s); }
    r[q] = s;
  }
  return r;
}

fn mm_store(acc: mm_acc_t, c_off: u32, c_stride: u32, lane: u32) {
  for (var q = 0u; q < PER_LANE; q++) {
    let e = lane + PORTABLE_LANES * q;
    tile_c[c_off + (e / SM_N) * c_stride + e % SM_N] = acc[q];
  }
}
