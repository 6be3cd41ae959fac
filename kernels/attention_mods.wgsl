// The programmable-attention hooks of the fused attention kernels, included by attention_common.wgsl: identities here.
// flexAttention (src/attention/codegen.ts) generates a replacement of this file from the traced scoreMod / maskMod and
// compiles it into the same forward and backward kernels (and kernels/attention_flex.wgsl's block-mask pass).
//   mod_block(x, i0, jv, b, h)     a 4 x 4 score block after the mods: rows i0 + RG * r, keys jv (batch b, query head
//                                  h); x.s the scores, x.ok the entries admissible so far (bit 4 r + t). Entries
//                                  maskMod refuses lose their bit; scoreMod replaces the admissible scores.
//   mod_row(x, i, jv, b, h)        the same for one row (bit t for key jv[t]), for kernels that admit rows.
//   mod_grad_block(raw, ok, i0, jv, b, h)  d score_mod / d s at the admissible entries of a block (1 elsewhere).
//   flex_report()                  the generated file's device-side index check, at the end of each entry point
//   flex_capture_init / _block / _fold: the dq pass's captured-tensor gradients (no-ops here; see attention_common.wgsl's
//     cg_* params): init zeroes this workgroup's partial sums, block writes a score block's (index, value) pairs,
//     fold adds them into the partial sums in a fixed order (deterministic: no float atomics).
// The generated file calls each mod at one site of a loop over the block's entries: inlined at each of the 16
// entries instead, a mod made the software adapter's compile of the backward take minutes.
// The generated file may bind flex_c (binding 16: the mods' constants and capture descriptors, u32 words), captured
// tensors (bindings 17...) and kiln_errors (binding 15, device-side index checks).

fn mod_block(x: ModBlock, i0: u32, jv: vec4<u32>, b: u32, h: u32) -> ModBlock {
  return x;
}

fn mod_row(x: ModRow, i: u32, jv: vec4<u32>, b: u32, h: u32) -> ModRow {
  return x;
}

fn mod_grad_block(raw: Block4, ok: u32, i0: u32, jv: vec4<u32>, b: u32, h: u32) -> Block4 {
  let one = vec4<f32>(1.0);
  return Block4(one, one, one, one);
}

fn flex_capture_init(tid: u32, w: u32) {
}

// Reports a captured read's bad index (noted where it happened) to kiln_errors; called once at the end of each entry.
fn flex_report() {
}

fn flex_capture_block(slot: u32, w: u32, i0: u32, j0: u32, b: u32, h: u32, s: Block4, raw: Block4, dsp: Block4) {
}

fn flex_capture_fold(tid: u32, w: u32) {
}
