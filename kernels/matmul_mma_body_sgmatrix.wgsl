// The subgroup-matrix body of matmul_mma.wgsl's matrix steps (chromium_experimental_subgroup_matrix). The launcher
// includes it instead of matmul_mma_body.wgsl, with the shim (src/gpu/subgroup_matrix.ts) that defines SM_M, SM_N, SM_K
// from the probed config, the matrix types, and sm_load_left / sm_load_right / sm_store_result over
// tile_a, tile_b and tile_c in the builtins' spelling for this Dawn. The whole subgroup (the workgroup) calls each function together.

alias mm_acc_t = mm_result_t;

fn mm_zero() -> mm_acc_t {
  return mm_result_t();
}

fn mm_mac(acc: mm_acc_t, a_off: u32, b_off: u32, lane: u32) -> mm_acc_t {
  return subgroupMatrixMultiplyAccumulate(sm_load_left(a_off, TK), sm_load_right(b_off, TN), acc);
}

fn mm_store(acc: mm_acc_t, c_off: u32, lane: u32) {
  sm_store_result(c_off, acc, TN);
}
