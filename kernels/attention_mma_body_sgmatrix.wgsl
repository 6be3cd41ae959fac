// The subgroup-matrix body of the matrix-unit attention kernels' matrix steps (chromium_experimental_subgroup_matrix):
// the same three functions as kernels/attention_mma_body.wgsl, on the builtins. The launcher
// (src/launch/attention_mma.ts) includes it instead of the portable body, with the shim of src/gpu/subgroup_matrix.ts
// for the probed config (SM_M, SM_N, SM_K, the matrix types, and sm_load_left / sm_load_right / sm_store_result over
// tile_a, tile_b and tile_c, row-major). Every invocation of a subgroup calls each function together.

alias mm_acc_t = mm_result_t;

fn mm_zero() -> mm_acc_t {
  return mm_result_t();
}

fn mm_mac(acc: mm_acc_t, a_off: u32, a_stride: u32, b_off: u32, b_stride: u32, lane: u32) -> mm_acc_t {
  return subgroupMatrixMultiplyAccumulate(sm_load_left(a_off, a_stride), sm_load_right(b_off, b_stride), acc);
}

fn mm_store(acc: mm_acc_t, c_off: u32, c_stride: u32, lane: u32) {
  sm_store_result(c_off, acc, c_stride);
}
