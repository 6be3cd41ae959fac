// Cross-thread row reductions of attention_forward.wgsl with subgroup shuffles: the 'subgroups' variant includes this
// file in place of attention_rows.wgsl (same functions, same contract; see there).
// Score lane (a, c, part) is invocation (a * CG + c) * PARTS + part, so the CG * PARTS lanes of row group a are
// consecutive invocations; with invocations filling subgroups in index order and CG * PARTS <= the subgroup size (kiln
// checks both before choosing this variant), they are one aligned block of lanes. The PARTS lanes of a block hold the
// same values (after fold_parts), so XOR butterflies over offsets PARTS, 2 PARTS, ... < CG * PARTS fold exactly the CG
// key groups. Lane (c, part) = (0, 0) then writes the fold once, and a reader reads one vec4 instead of CG.

fn fold_max(m: vec4<f32>) -> vec4<f32> {
  var x = m;
  for (var s = PARTS; s < CG * PARTS; s = s << 1u) {
    x = max(x, subgroupShuffleXor(x, s));
  }
  return x;
}

fn fold_sum(l: vec4<f32>) -> vec4<f32> {
  var x = l;
  for (var s = PARTS; s < CG * PARTS; s = s << 1u) {
    x += subgroupShuffleXor(x, s);
  }
  return x;
}

fn publish_max(m: vec4<f32>, a: u32, c: u32, part: u32) {
  let x = fold_max(m);
  if (c == 0u && part == 0u) {
    red[a] = x;
  }
}

fn publish_sum(l: vec4<f32>, a: u32, c: u32, part: u32) {
  let x = fold_sum(l);
  if (c == 0u && part == 0u) {
    red[a] = x;
  }
}

fn tile_max(a: u32) -> vec4<f32> {
  return red[a];
}

fn tile_sum(a: u32) -> vec4<f32> {
  return red[a];
}
