// Cross-thread row reductions of attention_forward.wgsl with subgroup shuffles: the 'subgroups' variant includes this
// file in place of attention_rows.wgsl (same functions, same contract; see there).
// Score thread (a, c) is invocation a * CG + c, so the CG threads of row group a are CG consecutive invocations; with
// invocations filling subgroups in index order and CG <= the subgroup size (kiln checks both before choosing this
// variant), they are the lanes of one aligned block of CG, and XOR butterflies over lane bits < CG fold exactly them.
// Thread c = 0 then writes the fold once, and a reader reads one vec4 instead of CG.

fn fold_max(m: vec4<f32>) -> vec4<f32> {
  var x = m;
  for (var s = 1u; s < CG; s = s << 1u) {
    x = max(x, subgroupShuffleXor(x, s));
  }
  return x;
}

fn fold_sum(l: vec4<f32>) -> vec4<f32> {
  var x = l;
  for (var s = 1u; s < CG; s = s << 1u) {
    x += subgroupShuffleXor(x, s);
  }
  return x;
}

fn publish_max(m: vec4<f32>, a: u32, c: u32) {
  let x = fold_max(m);
  if (c == 0u) {
    red[a] = x;
  }
}

fn publish_sum(l: vec4<f32>, a: u32, c: u32) {
  let x = fold_sum(l);
  if (c == 0u) {
    red[a] = x;
  }
}

fn tile_max(a: u32) -> vec4<f32> {
  return red[a];
}

fn tile_sum(a: u32) -> vec4<f32> {
  return red[a];
}
