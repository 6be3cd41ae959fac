// The mask hook of kernels/attention_flex.wgsl's block-mask pass: an identity here. createBlockMask
// (src/attention/codegen.ts) generates a replacement from the traced maskMod (the same mask_mod the fused kernels get).

fn mask_mod(b: u32, h: u32, i: u32, j: u32) -> bool {
  return true;
}

fn flex_report() {
}
