// Include-only: reduce2(a, b, lid) sums two f32 values over a workgroup of WG threads (a power of two, declared by the
// including file as `override WG`) in a fixed tree order, so results are deterministic; every thread gets both sums.
// Used by the per-row (layernorm.wgsl) and per-channel (batchnorm.wgsl) normalisation kernels.
var<workgroup> red: array<f32, WG>;
var<workgroup> red2: array<f32, WG>;

fn reduce2(a: f32, b: f32, lid: u32) -> vec2<f32> {
  red[lid] = a;
  red2[lid] = b;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) {
      red[lid] += red[lid + s];
      red2[lid] += red2[lid + s];
    }
    workgroupBarrier();
  }
  let r = vec2<f32>(red[0], red2[0]);
  workgroupBarrier();
  return r;
}
