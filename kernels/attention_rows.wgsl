// Cross-thread row reductions of attention_forward.wgsl, with workgroup memory only (the fallback of
// attention_rows_subgroups.wgsl; same functions, same contract). Included by attention_forward.wgsl, whose
// red [CG][RG + 1] (vec4 over the 4 rows of a row group), RG, CG and MASKED these use.
//   publish_max / publish_sum: score thread (a, c) offers the partial max / sum of the 4 rows of row group a over its
//   keys; a barrier later, tile_max(a) / tile_sum(a) return the fold over the CG key groups. Here PARTS is 1 (part 0).

fn publish_max(m: vec4<f32>, a: u32, c: u32, part: u32) {
  red[c * (RG + 1u) + a] = m;
}

fn publish_sum(l: vec4<f32>, a: u32, c: u32, part: u32) {
  red[c * (RG + 1u) + a] = l;
}

fn tile_max(a: u32) -> vec4<f32> {
  var m = vec4<f32>(MASKED);
  for (var c = 0u; c < CG; c++) {
    m = max(m, red[c * (RG + 1u) + a]);
  }
  return m;
}

fn tile_sum(a: u32) -> vec4<f32> {
  var l = vec4<f32>(0.0);
  for (var c = 0u; c < CG; c++) {
    l += red[c * (RG + 1u) + a];
  }
  return l;
}
