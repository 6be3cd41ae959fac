// Softmax and log-softmax along one dim, numerically stable, in one kernel.
//   Dimensions: rows = the product of the `rank` other dims (row-major, `shape`), each row holding the R elements
//   along the softmax dim. In the contiguous output that is [outer, R, inner], row = o * inner + i.
//   Reads: x (forward) and y, dy (backward: x is then the forward's output y), each a strided view read in place:
//   element (row, r) of x is at x_off + view_offset(row, x_strides) + r * x_sr (dy likewise).
//   Writes: out, contiguous [outer, R, inner].
//   Tiling: one workgroup of WG threads per row (o, i); threads stride over R; max and sum go
//   through a tree in workgroup memory. Rows are the y-major part of a 2-D grid.
//   LOG = 1 gives log-softmax.
//   NaN and infinities: a row with any NaN gives NaN everywhere (as PyTorch), and so does a row with +inf (exp(inf -
//   inf) is NaN, as in PyTorch). One deliberate difference from PyTorch (which gives NaN): a row that is all -inf
//   gives zeros (softmax, whose gradient there is zero) or -inf (log-softmax, whose gradient there is dy, since
//   exp(-inf) = 0), so that fully masked attention rows stay finite; attention's reference path relies on it. The row maximum keeps NaN and the masked test reads the bits
//   (numerics.wgsl), since the compiler may fold float max and comparisons as if NaN did not exist.
//!include numerics.wgsl
//!include strides.wgsl

struct Params {
  rows: u32,
  R: u32,
  inner: u32,
  rank: u32,
  x_off: u32,
  x_sr: u32,
  dy_off: u32,
  dy_sr: u32,
  shape: array<vec4<u32>, 2>,
  x_strides: array<vec4<u32>, 2>,
  dy_strides: array<vec4<u32>, 2>,
}

override LOG: u32 = 0u;
override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> red: array<f32, WG>;

// Where row `row` starts in the contiguous output (its elements are `inner` apart).
fn out_base(row: u32) -> u32 {
  let o = row / params.inner;
  let i = row % params.inner;
  return o * params.R * params.inner + i;
}

fn x_base(row: u32) -> u32 {
  return params.x_off + view_offset(row, params.rank, params.shape, params.x_strides);
}

fn dy_base(row: u32) -> u32 {
  return params.dy_off + view_offset(row, params.rank, params.shape, params.dy_strides);
}

fn reduce_max(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) { red[lid] = max_nan(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

fn reduce_sum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}


@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= params.rows) { return; }
  let base = x_base(row);
  let st = params.x_sr;
  let obase = out_base(row);
  let ost = params.inner;
  var m = neg_inf_f32();
  for (var r = lid; r < params.R; r += WG) { m = max_nan(m, x[base + r * st]); }
  m = reduce_max(m, lid);
  // Uniform across the workgroup (m came through workgroup memory), so the barriers in reduce_sum stay uniform.
  let masked = is_neg_inf(m);
  let row_nan = is_nan(m);
  var s = 0.0;
  if (!masked) {
    for (var r = lid; r < params.R; r += WG) { s += exp(x[base + r * st] - m); }
  }
  s = reduce_sum(s, lid);
  let log_s = log(s);
  let inv_s = 1.0 / s;
  for (var r = lid; r < params.R; r += WG) {
    let v = x[base + r * st];
    var o: f32;
    if (LOG == 1u) {
      o = select(v - m - log_s, neg_inf_f32(), masked);
    } else {
      o = select(exp(v - m) * inv_s, 0.0, masked);
    }
    out[obase + r * ost] = select(o, m, row_nan);
  }
}

// dx from y (the forward's output) and dy. softmax: y * (dy - sum(dy * y)); log-softmax: dy - exp(y) * sum(dy).
@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= params.rows) { return; }
  let yb = x_base(row);
  let ys = params.x_sr;
  let gb = dy_base(row);
  let gs = params.dy_sr;
  let obase = out_base(row);
  let ost = params.inner;
  var s = 0.0;
  for (var r = lid; r < params.R; r += WG) {
    let g = dy[gb + r * gs];
    if (LOG == 1u) { s += g; } else { s += g * x[yb + r * ys]; }
  }
  s = reduce_sum(s, lid);
  for (var r = lid; r < params.R; r += WG) {
    let y = x[yb + r * ys];
    let g = dy[gb + r * gs];
    if (LOG == 1u) {
      let p = select(exp(y), 0.0, is_neg_inf(y));
      out[obase + r * ost] = g - p * s;
    } else {
      out[obase + r * ost] = y * (g - s);
    }
  }
}
