// What the matmul kernels (matmul.wgsl, matmul_mma.wgsl) share: their params and the batch walk.
//   Params: M, N, K; operand offsets and strides (a_sm, a_sk within a matrix of A, b_sk, b_sn of B, a_bs / b_bs per
//   batch dim, 0 = broadcast); batch_shape[0..batch_rank) right-aligned in 4 dims; alpha scales the product; passes is
//   the matrix kernel's product count (1: f16 inputs; 3: f32 inputs split into f16 hi + lo; the scalar kernel ignores it);
//   bias_off is where the scalar kernel's bias epilogue reads bias[N] (HAS_BIAS), res_off where its residual epilogue
//   reads residual (EPI_RESIDUAL); the matrix kernel ignores both.

struct Params {
  M: u32,
  N: u32,
  K: u32,
  batch_rank: u32,
  a_off: u32,
  b_off: u32,
  a_sm: u32,
  a_sk: u32,
  b_sk: u32,
  b_sn: u32,
  alpha: f32,
  passes: u32,
  bias_off: u32,
  res_off: u32,
  batch_shape: vec4<u32>,
  a_bs: vec4<u32>,
  b_bs: vec4<u32>,
}

@group(0) @binding(0) var<uniform> params: Params;

fn batch_count() -> u32 {
  var n = 1u;
  for (var d = 0u; d < params.batch_rank; d++) { n *= params.batch_shape[d]; }
  return n;
}

// Offsets of batch entry `bidx` in a (x) and b (y), from the operands' offsets and batch strides.
fn batch_bases(bidx: u32) -> vec2<u32> {
  var rem = bidx;
  var bases = vec2<u32>(params.a_off, params.b_off);
  for (var d = i32(params.batch_rank) - 1; d >= 0; d--) {
    let size = params.batch_shape[d];
    let coord = rem % size;
    rem = rem / size;
    bases += coord * vec2<u32>(params.a_bs[d], params.b_bs[d]);
  }
  return bases;
}
