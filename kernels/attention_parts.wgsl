// The head-dim split of the attention backward's score blocks, without subgroups: one lane per block (PARTS = 1),
// so there is nothing to fold. attention_parts_subgroups.wgsl is the 'subgroups' variant (see attention_backward.wgsl).

fn fold_parts(x: vec4<f32>) -> vec4<f32> {
  return x;
}
