// What the two matrix-unit attention kernels (attention_mma.wgsl, attention_mma_backward.wgsl) share beyond
// attention_common.wgsl: the scalar kernels' operand readers, which attention_common.wgsl's score_block and acc_step
// call and the matrix products never do, the rounding of an operand into an f16 tile, and admit() (one row's scores;
// the scalar kernels admit whole blocks, admit_block).

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

// Encoded scores (see the header) of query row i at keys jv (batch b, query head h), from raw dot products. The
// mods (mod_row, attention_mods.wgsl) see admissible entries only (a captured read indexed by a masked-out position
// is never made).
fn admit(raw: vec4<f32>, i: u32, jv: vec4<u32>, b: u32, h: u32) -> vec4<f32> {
  let r = admit_rules(raw, i, jv, b, h);
  let m = mod_row(ModRow(r.s, bool_bits(r.ok)), i, jv, b, h);
  return encode_scores(m.s, unpack_bits(m.ok));
}
