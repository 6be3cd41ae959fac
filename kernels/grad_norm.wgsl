// Global 2-norm of a set of gradients and their clipping to a maximum norm (torch.nn.utils.clip_grad_norm_), in two
// dispatches per buffer the gradients live in: one per buffer for sum_squares, then one per buffer for scale.
//   Dimensions: S segments (gradients) of one buffer; segment i is grads[start_i, start_i + n_i), and the segments
//   together hold params.count = sum n_i elements, numbered in segment order (element k of segment i is number
//   before_i + k). K = the workgroups of a sum_squares dispatch; P = params.num_partials, the partial sums of every
//   buffer's sum_squares (the gradients of one optimizer arena are one buffer: P = K, two dispatches in all).
//   Reads: table [2 * S] u32: (start_i, before_i), before_i = n_0 + ... + n_(i-1); grads [>= max start_i + n_i].
//   sum_squares writes partials[params.partial_base + w] = the sum of g * g over the numbers w * 256 + l, stepping by
//     K * 256 (l the thread), for each workgroup w of K.
//   scale: every workgroup sums partials[params.partial_base + p], p in [0, P), in one fixed order, so all of them
//     find the same norm; coef = min(max_norm / (norm + 1e-6), 1), except that a NaN stays NaN (a NaN or infinite
//     gradient then shows in every gradient, as PyTorch); it multiplies its share of the numbers by coef
//     (grid-stride), and workgroup 0 writes the norm to norm_out[params.norm_offset].
//   clamp_value (clip_grad_value_): every number g becomes clamp(g, -max_norm, max_norm), a NaN staying NaN
//     (grid-stride, one dispatch; binds table and grads only).
//   unscale_check (GradScaler.unscale): every number g becomes g * inv_scale (params.max_norm holds inv_scale), and
//     partials[params.partial_base + w] = 1.0 when workgroup w met a NaN or infinite g (before scaling), else 0.0.
//   found_inf: one workgroup: norm_out[params.norm_offset] = 1.0 when any of the first P partials is nonzero, else
//     0.0 (the optimizer's found-inf flag, as torch.amp's found_inf; two dispatches in all for one arena).
//   NaN: the sums are plain additions, which keep NaN and infinities; only the clamp needs care, and it tests NaN by
//   its bits (numerics.wgsl), since WGSL compilers may fold min(NaN, 1) to 1.
//   Tiling: 256 threads a workgroup, a tree reduction in workgroup memory; numbers are found from the table by binary
//   search over before_i (log2 S steps).

//!include numerics.wgsl

struct Params {
  count: u32,
  num_segments: u32,
  partial_base: u32,
  num_partials: u32,
  max_norm: f32,
  norm_offset: u32,
  pad0: u32,
  pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> table: array<u32>;
@group(0) @binding(2) var<storage, read_write> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;
@group(0) @binding(4) var<storage, read_write> norm_out: array<f32>;

var<workgroup> red: array<f32, 256>;

// The buffer index of number k (k < params.count).
fn element(k: u32) -> u32 {
  var lo = 0u;
  var hi = params.num_segments - 1u;
  while (lo < hi) {
    let mid = (lo + hi + 1u) / 2u;
    if (table[2u * mid + 1u] <= k) { lo = mid; } else { hi = mid - 1u; }
  }
  return table[2u * lo] + (k - table[2u * lo + 1u]);
}

// The sum of red[0..256) into red[0], in a fixed order.
fn reduce_workgroup(l: u32) {
  for (var s = 128u; s > 0u; s = s >> 1u) {
    workgroupBarrier();
    if (l < s) { red[l] = red[l] + red[l + s]; }
  }
  workgroupBarrier();
}

@compute @workgroup_size(256)
fn sum_squares(@builtin(local_invocation_index) l: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let stride = nwg.x * 256u;
  var acc = 0.0;
  for (var k = wid.x * 256u + l; k < params.count; k = k + stride) {
    let g = grads[element(k)];
    acc = acc + g * g;
  }
  red[l] = acc;
  reduce_workgroup(l);
  if (l == 0u) { partials[params.partial_base + wid.x] = red[0]; }
}

@compute @workgroup_size(256)
fn scale(@builtin(local_invocation_index) l: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  var acc = 0.0;
  for (var p = l; p < params.num_partials; p = p + 256u) { acc = acc + partials[params.partial_base + p]; }
  red[l] = acc;
  reduce_workgroup(l);
  let norm = sqrt(red[0]);
  let ratio = params.max_norm / (norm + 1e-6);
  let coef = select(min(ratio, 1.0), ratio, is_nan(ratio));
  if (wid.x == 0u && l == 0u) { norm_out[params.norm_offset] = norm; }
  let stride = nwg.x * 256u;
  for (var k = wid.x * 256u + l; k < params.count; k = k + stride) {
    let e = element(k);
    grads[e] = grads[e] * coef;
  }
}

@compute @workgroup_size(256)
fn unscale_check(@builtin(local_invocation_index) l: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let inv_scale = params.max_norm;
  let stride = nwg.x * 256u;
  var bad = 0.0;
  for (var k = wid.x * 256u + l; k < params.count; k = k + stride) {
    let e = element(k);
    let g = grads[e];
    if (is_nan(g) || is_inf(g)) { bad = 1.0; }
    grads[e] = g * inv_scale;
  }
  red[l] = bad;
  reduce_workgroup(l);
  if (l == 0u) { partials[params.partial_base + wid.x] = select(0.0, 1.0, red[0] > 0.0); }
}

@compute @workgroup_size(256)
fn found_inf(@builtin(local_invocation_index) l: u32) {
  var acc = 0.0;
  for (var p = l; p < params.num_partials; p = p + 256u) { acc = acc + partials[params.partial_base + p]; }
  red[l] = acc;
  reduce_workgroup(l);
  if (l == 0u) { norm_out[params.norm_offset] = select(0.0, 1.0, red[0] > 0.0); }
}

@compute @workgroup_size(256)
fn clamp_value(@builtin(local_invocation_index) l: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let v = params.max_norm;
  let stride = nwg.x * 256u;
  for (var k = wid.x * 256u + l; k < params.count; k = k + stride) {
    let e = element(k);
    grads[e] = clamp_nan(grads[e], -v, v);
  }
}
