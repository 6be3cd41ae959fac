// What the two matrix-unit attention kernels (attention_mma.wgsl, attention_mma_backward.wgsl) share beyond
// attention_common.wgsl: the scalar kernels' operand readers, which attention_common.wgsl's score_block and acc_step
// call and the matrix products never do, and the rounding of an operand into an f16 tile.

fn row_vec(pair: u32, idx: u32) -> vec4<f32> { return vec4<f32>(0.0); }
fn col_vec(pair: u32, idx: u32) -> vec4<f32> { return vec4<f32>(0.0); }
fn acc_vec(tile: u32, idx: u32) -> vec4<f32> { return vec4<f32>(0.0); }
fn extra_input_at(i: u32) -> f32 { return 0.0; }

// x rounded to f16 for a tile; with `note`, a non-finite result is recorded in nonfinite_seen (the products that
// multiply such a tile in then skip masked entries). Tested on the f16 bits: compilers may fold f32(f16(x)) back to x,
// which would miss an f32 value beyond f16's range.
fn to_tile(x: f32, note: bool) -> f16 {
  let h = f16(x);
  if (note && (bitcast<u32>(vec2<f16>(h, h)) & 0x7c00u) == 0x7c00u) {
    atomicOr(&nonfinite_seen, 1u);
  }
  return h;
}
