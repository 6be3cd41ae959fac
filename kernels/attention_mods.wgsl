// The programmable-attention hooks of the fused attention kernels, included by attention_common.wgsl: identities here.
// flexAttention (src/attention/codegen.ts) generates a replacement of this file from the traced scoreMod / maskMod and
// compiles it into the same forward and backward kernels (and kernels/attention_flex.wgsl's block-mask pass).
//   score_mod(s, b, h, i, j)       the score of query i, key j (batch b, query head h) after the mod
//   score_mod_grad(s, b, h, i, j)  d score_mod / d s
//   mask_mod(b, h, i, j)           whether key j may be attended by query i
//   flex_report()                  the generated file's device-side index check, at the end of each entry point
//   flex_capture_init / _block / _fold: the dq pass's captured-tensor gradients (no-ops here; see attention_common.wgsl's
//     cg_* params): init zeroes this workgroup's partial sums, block writes a score block's (index, value) pairs,
//     fold adds them into the partial sums in a fixed order (deterministic: no float atomics).
// The generated file may bind flex_c (binding 16: the mods' constants and capture descriptors, u32 words), captured
// tensors (bindings 17...) and kiln_errors (binding 15, device-side index checks).

fn score_mod(s: f32, b: u32, h: u32, i: u32, j: u32) -> f32 {
  return s;
}

fn score_mod_grad(s: f32, b: u32, h: u32, i: u32, j: u32) -> f32 {
  return 1.0;
}

fn mask_mod(b: u32, h: u32, i: u32, j: u32) -> bool {
  return true;
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
