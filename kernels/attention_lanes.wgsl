// The subgroup operations of attention_forward_rows.wgsl, which runs in the 'subgroups' variant only (src/attention/
// plan.ts): that variant includes attention_lanes_subgroups.wgsl instead. These stand-ins (each invocation alone) keep
// the plain text compilable.

fn lane_vec(x: vec4<f32>, lane: u32) -> vec4<f32> {
  return x;
}

fn any_lane(b: bool) -> bool {
  return b;
}
