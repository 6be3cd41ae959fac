// Layer normalisation over the last C elements of each row.
//   Dimensions: rows x C: rows = the product of the `rank` leading dims (`shape`, row-major), C the normalized
//   elements, which the caller merges into one strided run.
//   Reads (strided views, in place): x at x_off + view_offset(row, x_strides) + c * x_sc; weight and bias [C] at
//   w_off + c * w_sc, b_off + c * b_sc (when HAS_WEIGHT / HAS_BIAS); dy like x (dy_off, dy_strides, dy_sc).
//   forward writes y [rows, C], mean [rows] and rstd [rows] (saved for backward), contiguous.
//   backward reads x, weight, dy, mean, rstd and writes dx [rows, C] contiguous.
//   backward_affine reads x, dy, mean, rstd and writes the column sums dweight[c] = sum over rows of dy * xhat and
//   dbias[c] = sum over rows of dy ([C] each, contiguous; HAS_WEIGHT / HAS_BIAS say which are wanted).
//   Tiling: one workgroup of WG threads per row (forward, backward); one thread per column (backward_affine, the rows
//   summed in order); two passes (mean, then variance) for accuracy.
//   NaN: a NaN (or an infinity) in a row makes the row's variance NaN, and the whole row of y is then NaN, as
//   PyTorch; the NaN is chosen from the bits (numerics.wgsl), not left to arithmetic the compiler may fold.
//!include numerics.wgsl
//!include strides.wgsl
//!include workgroup_reduce.wgsl

struct Params {
  rows: u32,
  C: u32,
  eps: f32,
  rank: u32,
  x_off: u32,
  x_sc: u32,
  dy_off: u32,
  dy_sc: u32,
  w_off: u32,
  w_sc: u32,
  b_off: u32,
  b_sc: u32,
  shape: array<vec4<u32>, 2>,
  x_strides: array<vec4<u32>, 2>,
  dy_strides: array<vec4<u32>, 2>,
}

override HAS_WEIGHT: u32 = 1u;
override HAS_BIAS: u32 = 1u;
override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(7) var<storage, read> dy: array<f32>;
@group(0) @binding(8) var<storage, read> saved_mean: array<f32>;
@group(0) @binding(9) var<storage, read> saved_rstd: array<f32>;
@group(0) @binding(10) var<storage, read_write> dx: array<f32>;
@group(0) @binding(11) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(12) var<storage, read_write> dbias: array<f32>;

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= params.rows) { return; }
  let C = params.C;
  let xb = params.x_off + view_offset(row, params.rank, params.shape, params.x_strides);
  let xs = params.x_sc;
  let base = row * C;
  var s = 0.0;
  for (var c = lid; c < C; c += WG) { s += x[xb + c * xs]; }
  let mu = reduce2(s, 0.0, lid).x / f32(C);
  var v = 0.0;
  for (var c = lid; c < C; c += WG) {
    let d = x[xb + c * xs] - mu;
    v += d * d;
  }
  let var_eps = reduce2(v, 0.0, lid).x / f32(C) + params.eps;
  let r = select(inverseSqrt(var_eps), var_eps, is_nan(var_eps));
  for (var c = lid; c < C; c += WG) {
    var o = (x[xb + c * xs] - mu) * r;
    if (HAS_WEIGHT == 1u) { o = o * weight[params.w_off + c * params.w_sc]; }
    if (HAS_BIAS == 1u) { o = o + bias[params.b_off + c * params.b_sc]; }
    y[base + c] = select(o, r, is_nan(r));
  }
  if (lid == 0u) {
    mean[row] = mu;
    rstd[row] = r;
  }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * weight.
@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= params.rows) { return; }
  let C = params.C;
  let xb = params.x_off + view_offset(row, params.rank, params.shape, params.x_strides);
  let xs = params.x_sc;
  let gb = params.dy_off + view_offset(row, params.rank, params.shape, params.dy_strides);
  let gs = params.dy_sc;
  let base = row * C;
  let mu = saved_mean[row];
  let r = saved_rstd[row];
  var sg = 0.0;
  var sgx = 0.0;
  for (var c = lid; c < C; c += WG) {
    var g = dy[gb + c * gs];
    if (HAS_WEIGHT == 1u) { g = g * weight[params.w_off + c * params.w_sc]; }
    let xh = (x[xb + c * xs] - mu) * r;
    sg += g;
    sgx += g * xh;
  }
  let sums = reduce2(sg, sgx, lid) / f32(C);
  for (var c = lid; c < C; c += WG) {
    var g = dy[gb + c * gs];
    if (HAS_WEIGHT == 1u) { g = g * weight[params.w_off + c * params.w_sc]; }
    let xh = (x[xb + c * xs] - mu) * r;
    dx[base + c] = r * (g - sums.x - xh * sums.y);
  }
}

// dweight[c] = sum_rows dy * xhat, dbias[c] = sum_rows dy: one thread per column, summing the rows in order (no
// barriers: on lavapipe each one splits the shader; adjacent threads read adjacent columns).
@compute @workgroup_size(WG)
fn backward_affine(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = gid.x + gid.y * nwg.x * WG;
  if (c >= params.C) { return; }
  var sw = 0.0;
  var sb = 0.0;
  for (var row = 0u; row < params.rows; row++) {
    let g = dy[params.dy_off + view_offset(row, params.rank, params.shape, params.dy_strides) + c * params.dy_sc];
    if (HAS_WEIGHT == 1u) {
      let xh = (x[params.x_off + view_offset(row, params.rank, params.shape, params.x_strides) + c * params.x_sc] - saved_mean[row]) * saved_rstd[row];
      sw += g * xh;
    }
    sb += g;
  }
  if (HAS_WEIGHT == 1u) { dweight[c] = sw; }
  if (HAS_BIAS == 1u) { dbias[c] = sb; }
}
