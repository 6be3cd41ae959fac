// Batch normalisation over the channels of an NCHW tensor (H x W may be 1 x L or 1 x 1), fused per channel.
//   Dimensions: N, C, H, W; per channel the M = N H W elements x[n, c, h, w].
//   Reads: x (and dy) at x_off + n s.x + c s.y + h s.z + w s.w (strided views, in place); weight, bias, running_mean,
//   running_var [C] with unit stride at w_off, b_off, rm_off, rv_off (views into a larger storage, such as an
//   optimizer's parameter arena, read in place).
//   forward (TRAINING = 1): one workgroup of WG threads per channel computes the batch mean and the biased variance
//   (two passes over the channel, for accuracy), writes y [N, C, H, W] contiguous, saves mean and invstd
//   = 1 / sqrt(var + eps) [C] for backward, and (UPDATE_RUNNING = 1) updates running_mean and running_var in place
//   with the unbiased variance var M / (M - 1), as PyTorch: r = (1 - momentum) r + momentum batch_stat.
//   forward (TRAINING = 0): normalises with the running statistics, and saves them (mean, invstd) for backward.
//   backward: per channel sums of dy and dy xhat; writes dx [N, C, H, W] contiguous, dweight and dbias [C]. In
//   training the statistics depend on x (dx = w invstd (dy - mean(dy) - xhat mean(dy xhat))); in eval they are constants.
//   count: num_batches_tracked += 1 (one thread).
//   NaN: a NaN in a channel makes its statistics NaN, and so the channel's y, by plain arithmetic.
//   f16: x, y, dy and dx are io_t, f32 here and f16 in the file's 'f16' variant (src/gpu/kernels.ts kernelVariant;
//   needs shader-f16; HALF_IO = 1 there): elements widen exactly to f32, every statistic and product is f32 as in the
//   f32 kernel, and y and dx are rounded once (to_io). weight, bias, the running and saved statistics and dweight /
//   dbias stay f32, as PyTorch's batch norm keeps them for a half input.
//   Dispatch: C workgroups in any 2-D grid (x fastest).
//!include workgroup_reduce.wgsl
//!include half_io.wgsl

struct Params {
  N: u32,
  C: u32,
  H: u32,
  W: u32,
  eps: f32,
  momentum: f32,
  x_off: u32,
  dy_off: u32,
  w_off: u32,
  b_off: u32,
  rm_off: u32,
  rv_off: u32,
  x_strides: vec4<u32>,
  dy_strides: vec4<u32>,
}

override WG: u32 = 256u;
override TRAINING: u32 = 1u;
override UPDATE_RUNNING: u32 = 1u;
override HAS_WEIGHT: u32 = 1u;
override HALF_IO: u32 = 0u;
alias io_t = f32;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<io_t>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<io_t>;
@group(0) @binding(5) var<storage, read_write> save_mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> save_invstd: array<f32>;
@group(0) @binding(7) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(8) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(9) var<storage, read> dy: array<io_t>;
@group(0) @binding(10) var<storage, read> saved_mean: array<f32>;
@group(0) @binding(11) var<storage, read> saved_invstd: array<f32>;
@group(0) @binding(12) var<storage, read_write> dx: array<io_t>;
@group(0) @binding(13) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(14) var<storage, read_write> dbias: array<f32>;
@group(0) @binding(15) var<storage, read_write> counter: array<i32>;

// Offset of the e-th element (row-major over n, h, w) of channel c in a view.
fn at(off: u32, s: vec4<u32>, c: u32, e: u32) -> u32 {
  let hw = params.H * params.W;
  let n = e / hw;
  let q = e % hw;
  return off + n * s.x + c * s.y + (q / params.W) * s.z + (q % params.W) * s.w;
}

// A result as stored: rounded once to f16 in the f16 variant.
fn store(v: f32) -> io_t {
  if (HALF_IO != 0u) { return to_io(v); }
  return io_t(v);
}

// Contiguous output offset of the e-th element of channel c.
fn out_at(c: u32, e: u32) -> u32 {
  let hw = params.H * params.W;
  return ((e / hw) * params.C + c) * hw + e % hw;
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let c = wid.x + wid.y * nwg.x;
  if (c >= params.C) { return; }
  let M = params.N * params.H * params.W;
  var mu = 0.0;
  var invstd = 0.0;
  if (TRAINING != 0u) {
    var s = 0.0;
    for (var e = lid; e < M; e += WG) { s += f32(x[at(params.x_off, params.x_strides, c, e)]); }
    mu = reduce2(s, 0.0, lid).x / f32(M);
    var v = 0.0;
    for (var e = lid; e < M; e += WG) {
      let d = f32(x[at(params.x_off, params.x_strides, c, e)]) - mu;
      v += d * d;
    }
    let var_b = reduce2(v, 0.0, lid).x / f32(M);
    invstd = 1.0 / sqrt(var_b + params.eps);
    if (lid == 0u && UPDATE_RUNNING != 0u) {
      let m = params.momentum;
      running_mean[params.rm_off + c] = (1.0 - m) * running_mean[params.rm_off + c] + m * mu;
      running_var[params.rv_off + c] = (1.0 - m) * running_var[params.rv_off + c] + m * var_b * f32(M) / f32(max(M, 2u) - 1u);
    }
  } else {
    mu = running_mean[params.rm_off + c];
    invstd = 1.0 / sqrt(running_var[params.rv_off + c] + params.eps);
  }
  if (lid == 0u) {
    save_mean[c] = mu;
    save_invstd[c] = invstd;
  }
  var scale = invstd;
  var shift = -mu * invstd;
  if (HAS_WEIGHT != 0u) {
    scale = weight[params.w_off + c] * invstd;
    shift = bias[params.b_off + c] - mu * scale;
  }
  for (var e = lid; e < M; e += WG) { y[out_at(c, e)] = store(fma(f32(x[at(params.x_off, params.x_strides, c, e)]), scale, shift)); }
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let c = wid.x + wid.y * nwg.x;
  if (c >= params.C) { return; }
  let M = params.N * params.H * params.W;
  let mu = saved_mean[c];
  let invstd = saved_invstd[c];
  var s = 0.0;
  var sx = 0.0;
  for (var e = lid; e < M; e += WG) {
    let g = f32(dy[at(params.dy_off, params.dy_strides, c, e)]);
    let xhat = (f32(x[at(params.x_off, params.x_strides, c, e)]) - mu) * invstd;
    s += g;
    sx += g * xhat;
  }
  let sums = reduce2(s, sx, lid);
  if (lid == 0u) {
    dweight[c] = sums.y;
    dbias[c] = sums.x;
  }
  var w = 1.0;
  if (HAS_WEIGHT != 0u) { w = weight[params.w_off + c]; }
  let k = w * invstd;
  var mean_dy = 0.0;
  var mean_dyx = 0.0;
  if (TRAINING != 0u) {
    mean_dy = sums.x / f32(M);
    mean_dyx = sums.y / f32(M);
  }
  for (var e = lid; e < M; e += WG) {
    let g = f32(dy[at(params.dy_off, params.dy_strides, c, e)]);
    let xhat = (f32(x[at(params.x_off, params.x_strides, c, e)]) - mu) * invstd;
    dx[out_at(c, e)] = store(k * (g - mean_dy - xhat * mean_dyx));
  }
}

@compute @workgroup_size(1)
fn count() {
  counter[0] = counter[0] + 1;
}
