// The head-dim split of the attention backward's score blocks with subgroups: a block's PARTS lanes are PARTS
// consecutive invocations, an aligned block of lanes when invocations fill subgroups in index order and PARTS <= the
// subgroup size (kiln checks both); XOR butterflies over lane bits < PARTS add their partial sums, so each of the PARTS
// lanes ends with the whole sum.

fn fold_parts(x: vec4<f32>) -> vec4<f32> {
  var y = x;
  for (var s = 1u; s < PARTS; s = s << 1u) {
    y += subgroupShuffleXor(y, s);
  }
  return y;
}
