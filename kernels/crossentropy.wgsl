// Cross-entropy over class logits, fused: log-softmax + negative log-likelihood (+ label smoothing).
//   Dimensions: N rows of C class logits; the rows are the `rank` dims of `shape` (row-major: [N] or [N, d1, ...]).
//   Every input is a strided view read in place: logit (row, c) at x_off + view_offset(row, x_strides) + c * x_sc,
//   target `row` (i32) at t_off + view_offset(row, t_strides), dy ('none': [rows]) at dy_off + view_offset(row,
//   dy_strides) (else dy_off). Outputs (row_loss, lse, total, dx [rows, C]) are contiguous.
//   forward:  reads logits, targets; writes row_loss [N] (0 for an ignored row, NaN for a target
//             outside [0, C)) and lse [N] (the row's log-sum-exp, saved for backward).
//             row loss = (1 - s) * (lse - x[t]) + s * (lse - mean_c x[c]),  s = label smoothing.
//   reduce:   reads losses_in [N], targets; writes total [2]: total[0] the reduced loss (sum, or
//             mean over the rows not ignored), total[1] the factor backward scales by (1 or 1/count).
//   backward: reads logits, targets, lse, dy ([N] for reduction 'none', else [1]) and scale (the
//             total buffer; only read when mode != 0); writes dx [N, C]:
//             dx = g * (softmax(x) - (1 - s) * onehot(t) - s / C), 0 on ignored rows.
//   forward_backward (a compiled step's fusion, src/compile/crossentropy.ts): forward, and in the same workgroup the
//             row's dx as backward computes it, for a reduced loss whose incoming gradient is the constant dy_value
//             (loss.backward()'s seed): the factor (1, or 1 over the rows not ignored, counted by each workgroup over
//             all N targets as reduce counts them) is the one reduce writes, so dx is bit-identical to backward's.
//   mode: MODE_NONE, MODE_SUM, MODE_MEAN (PyTorch's reductions).
//   Target checks: a target that is neither ignore_index nor in [0, C) is recorded in kiln_errors (the host raises an
//   IndexError at the next sync, index_check.wgsl); its row loss and gradient are NaN, and no logit is read for it.
//   NaN: a NaN logit makes its row's loss NaN (and the reduced loss); the row maximum keeps NaN (max_nan,
//   numerics.wgsl), since the compiler may fold a float max as if NaN did not exist.
//   Tiling: forward has one workgroup of WG threads per row (threads stride over C; max and sums
//   through a tree in workgroup memory); reduce is a single workgroup striding over N; backward
//   has one thread per element, on a 2-D grid past 65535 workgroups.

const MODE_NONE: u32 = 0u;
const MODE_SUM: u32 = 1u;
const MODE_MEAN: u32 = 2u;

struct Params {
  N: u32,
  C: u32,
  ignore_index: i32,
  mode: u32,
  smoothing: f32,
  check_id: u32,
  rank: u32,
  x_off: u32,
  x_sc: u32,
  t_off: u32,
  dy_off: u32,
  dy_value: f32,
  shape: array<vec4<u32>, 2>,
  x_strides: array<vec4<u32>, 2>,
  t_strides: array<vec4<u32>, 2>,
  dy_strides: array<vec4<u32>, 2>,
}

override WG: u32 = 64u;
const RWG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<storage, read> losses_in: array<f32>;
@group(0) @binding(6) var<storage, read_write> total: array<f32>;
@group(0) @binding(7) var<storage, read> lse_in: array<f32>;
@group(0) @binding(8) var<storage, read> dy: array<f32>;
@group(0) @binding(9) var<storage, read> scale: array<f32>;
@group(0) @binding(10) var<storage, read_write> dx: array<f32>;
@group(0) @binding(11) var<storage, read_write> kiln_errors: array<atomic<u32>, 8>;

//!include numerics.wgsl
//!include index_check.wgsl
//!include strides.wgsl

fn logit(row: u32, c: u32) -> f32 {
  return logits[params.x_off + view_offset(row, params.rank, params.shape, params.x_strides) + c * params.x_sc];
}

fn target_of(row: u32) -> i32 {
  return targets[params.t_off + view_offset(row, params.rank, params.shape, params.t_strides)];
}

var<workgroup> red: array<f32, WG>;
var<workgroup> red2: array<f32, RWG>;
var<workgroup> cnt: array<f32, RWG>;

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

// The row's forward (writes row_loss, lse); returns the row's log-sum-exp.
fn forward_row(row: u32, lid: u32) -> f32 {
  let C = params.C;
  let base = params.x_off + view_offset(row, params.rank, params.shape, params.x_strides);
  let xs = params.x_sc;
  var m = neg_inf_f32();
  for (var c = lid; c < C; c = c + WG) { m = max_nan(m, logits[base + c * xs]); }
  m = reduce_max(m, lid);
  var se = 0.0;
  var sx = 0.0;
  for (var c = lid; c < C; c = c + WG) {
    let v = logits[base + c * xs];
    se = se + exp(v - m);
    sx = sx + v;
  }
  se = reduce_sum(se, lid);
  sx = reduce_sum(sx, lid);
  let l = select(m + log(se), m, is_nan(m));
  if (lid == 0u) {
    lse[row] = l;
    let t = target_of(row);
    if (t == params.ignore_index) {
      row_loss[row] = 0.0;
    } else if (t < 0 || u32(t) >= C) {
      row_loss[row] = nan_f32();
      report_index_error(CHECK_CLASSES, params.check_id, row, t, C);
    } else {
      let s = params.smoothing;
      var loss = (1.0 - s) * (l - logits[base + u32(t) * xs]);
      // Without smoothing the term is left out, not multiplied by 0: a -inf logit makes it inf, and 0 * inf is NaN.
      if (s != 0.0) { loss += s * (l - sx / f32(C)); }
      row_loss[row] = loss;
    }
  }
  return l;
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  // Uniform control flow: every thread of a workgroup sees the same row, so this exit is uniform.
  if (row >= params.N) { return; }
  _ = forward_row(row, lid);
}

// dx element (row, c) as backward computes it, with g the incoming gradient times the reduction's factor.
fn dx_value(row: u32, c: u32, t: i32, g: f32, l: f32) -> f32 {
  let s = params.smoothing;
  let p = exp(logit(row, c) - l);
  var onehot = 0.0;
  if (i32(c) == t) { onehot = 1.0; }
  return g * (p - (1.0 - s) * onehot - s / f32(params.C));
}

@compute @workgroup_size(WG)
fn forward_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= params.N) { return; }
  let l = forward_row(row, lid);
  var factor = 1.0;
  if (params.mode == MODE_MEAN) {
    var n = 0.0;
    for (var i = lid; i < params.N; i = i + WG) {
      if (target_of(i) != params.ignore_index) { n = n + 1.0; }
    }
    factor = 1.0 / reduce_sum(n, lid);
  }
  let g = params.dy_value * factor;
  let C = params.C;
  let t = target_of(row);
  for (var c = lid; c < C; c = c + WG) {
    let e = row * C + c;
    if (t == params.ignore_index) {
      dx[e] = 0.0;
    } else if (t < 0 || u32(t) >= C) {
      dx[e] = nan_f32();
    } else {
      dx[e] = dx_value(row, c, t, g, l);
    }
  }
}

@compute @workgroup_size(RWG)
fn reduce(@builtin(local_invocation_index) lid: u32) {
  var acc = 0.0;
  var n = 0.0;
  for (var i = lid; i < params.N; i = i + RWG) {
    acc = acc + losses_in[i];
    if (target_of(i) != params.ignore_index) { n = n + 1.0; }
  }
  red2[lid] = acc;
  cnt[lid] = n;
  workgroupBarrier();
  for (var s = RWG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) {
      red2[lid] = red2[lid] + red2[lid + s];
      cnt[lid] = cnt[lid] + cnt[lid + s];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    if (params.mode == MODE_MEAN) {
      // 0 / 0 = NaN when every row is ignored, as PyTorch.
      total[0] = red2[0] / cnt[0];
      total[1] = 1.0 / cnt[0];
    } else {
      total[0] = red2[0];
      total[1] = 1.0;
    }
  }
}

@compute @workgroup_size(256)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = gid.x + gid.y * nwg.x * 256u;
  let C = params.C;
  if (e >= params.N * C) { return; }
  let row = e / C;
  let c = e % C;
  let t = target_of(row);
  if (t == params.ignore_index) {
    dx[e] = 0.0;
    return;
  }
  if (t < 0 || u32(t) >= C) {
    dx[e] = nan_f32();
    if (c == 0u) { report_index_error(CHECK_CLASSES, params.check_id, row, t, C); }
    return;
  }
  var g: f32;
  if (params.mode == MODE_NONE) {
    g = dy[params.dy_off + view_offset(row, params.rank, params.shape, params.dy_strides)];
  } else {
    g = dy[params.dy_off] * scale[1];
  }
  dx[e] = dx_value(row, c, t, g, lse_in[row]);
}
