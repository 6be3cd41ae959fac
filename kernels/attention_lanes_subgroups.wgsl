// The subgroup operations of attention_forward_rows.wgsl: lane `lane`'s x, and whether b holds in any lane (a value the
// whole subgroup shares, so the kernel's recompute loop stays uniform).

fn lane_vec(x: vec4<f32>, lane: u32) -> vec4<f32> {
  return subgroupShuffle(x, lane);
}

fn any_lane(b: bool) -> bool {
  return subgroupAny(b);
}
