// 2-D pooling over NCHW planes: max (with argmax indices), average (fixed windows, PyTorch's count_include_pad) and
// adaptive average; forward and backward.
//   Dimensions: planes P = N C (the plane index p = n C + c), input H x W, output Ho x Wo, window KH x KW, stride
//   (sh, sw), top/left padding (ph, pw), dilation (dh, dw; max only).
//   Window of output row oh: fixed rows oh sh - ph + kh dh, kh < KH (outside the image: -inf for max, zero for
//   average); adaptive rows floor(oh H / Ho) .. ceil((oh + 1) H / Ho) - 1, as PyTorch's adaptive_avg_pool2d.
//   Reads: x at x_off + n x_strides.x + c x_strides.y + ih x_strides.z + iw x_strides.w (a view, in place); dy likewise
//   (dy_off, dy_strides); idx [P, Ho, Wo] contiguous i32 (the plane-flat index ih W + iw of each max).
//   Writes: out [P, Ho, Wo] (and idx for max_forward), or dx [P, H, W], contiguous.
//   Max: NaN wins and the last NaN of the window is the index; ties keep the first maximum in row-major window order
//   (PyTorch's `val > max || isnan(val)`); an all -inf window points at its first position inside the image.
//   Backward runs one thread per input element and gathers the dy of every output whose window covers it (no atomics,
//   a fixed summation order: deterministic).
//   Dispatch: one thread per output (forward) or input (backward) element, WG threads a workgroup, any 2-D grid.
//!include numerics.wgsl

struct Params {
  P: u32,
  C: u32,
  H: u32,
  W: u32,
  Ho: u32,
  Wo: u32,
  KH: u32,
  KW: u32,
  sh: u32,
  sw: u32,
  ph: u32,
  pw: u32,
  dh: u32,
  dw: u32,
  x_off: u32,
  dy_off: u32,
  x_strides: vec4<u32>,
  dy_strides: vec4<u32>,
}

override WG: u32 = 256u;
override ADAPTIVE: u32 = 0u;           // average: adaptive windows
override COUNT_INCLUDE_PAD: u32 = 1u;  // average over fixed windows: divide by the padded window size

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> idx: array<i32>;
@group(0) @binding(5) var<storage, read> idx_in: array<i32>;

fn x_base(p: u32) -> u32 {
  return params.x_off + (p / params.C) * params.x_strides.x + (p % params.C) * params.x_strides.y;
}

fn dy_at(p: u32, oh: u32, ow: u32) -> f32 {
  let s = params.dy_strides;
  return dy[params.dy_off + (p / params.C) * s.x + (p % params.C) * s.y + oh * s.z + ow * s.w];
}

fn thread_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn max_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i = thread_id(wid, nwg, lid);
  let hw = params.Ho * params.Wo;
  if (i >= params.P * hw) { return; }
  let p = i / hw;
  let oh = (i % hw) / params.Wo;
  let ow = i % params.Wo;
  let xb = x_base(p);
  let h0 = i32(oh * params.sh) - i32(params.ph);
  let w0 = i32(ow * params.sw) - i32(params.pw);
  // PyTorch's initial index: the first window position inside the image.
  var h_first = h0;
  while (h_first < 0) { h_first += i32(params.dh); }
  var w_first = w0;
  while (w_first < 0) { w_first += i32(params.dw); }
  var best = neg_inf_f32();
  var best_i = h_first * i32(params.W) + w_first;
  for (var kh = 0u; kh < params.KH; kh++) {
    let ih = h0 + i32(kh * params.dh);
    if (ih < 0 || ih >= i32(params.H)) { continue; }
    for (var kw = 0u; kw < params.KW; kw++) {
      let iw = w0 + i32(kw * params.dw);
      if (iw < 0 || iw >= i32(params.W)) { continue; }
      let v = x[xb + u32(ih) * params.x_strides.z + u32(iw) * params.x_strides.w];
      if (is_nan(v) || (!is_nan(best) && f_lt(best, v))) {
        best = v;
        best_i = ih * i32(params.W) + iw;
      }
    }
  }
  out[i] = best;
  idx[i] = best_i;
}

// The first and one-past-last output index whose fixed window (taps at o s - pad + k dil) may cover input position i.
fn fixed_range(i: u32, K: u32, s: u32, pad: u32, dil: u32, size: u32) -> vec2<u32> {
  let hi_t = i32(i + pad);
  let lo_t = hi_t - i32((K - 1u) * dil);
  var lo = 0u;
  if (lo_t > 0) { lo = (u32(lo_t) + s - 1u) / s; }
  let hi = min(u32(hi_t) / s + 1u, size);
  return vec2<u32>(lo, max(lo, hi));
}

@compute @workgroup_size(WG)
fn max_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let i = thread_id(wid, nwg, lid);
  let hw = params.H * params.W;
  if (i >= params.P * hw) { return; }
  let p = i / hw;
  let q = i32(i % hw);
  let ih = (i % hw) / params.W;
  let iw = i % params.W;
  let rh = fixed_range(ih, params.KH, params.sh, params.ph, params.dh, params.Ho);
  let rw = fixed_range(iw, params.KW, params.sw, params.pw, params.dw, params.Wo);
  var acc = 0.0;
  for (var oh = rh.x; oh < rh.y; oh++) {
    for (var ow = rw.x; ow < rw.y; ow++) {
      if (idx_in[(p * params.Ho + oh) * params.Wo + ow] == q) { acc += dy_at(p, oh, ow); }
    }
  }
  out[i] = acc;
}

// Average window of output o along one axis: (first, one past last) inside the image, and the divisor's factor.
fn avg_window(o: u32, K: u32, s: u32, pad: u32, size_in: u32, size_out: u32) -> vec3<u32> {
  if (ADAPTIVE != 0u) {
    let a = (o * size_in) / size_out;
    let b = ((o + 1u) * size_in + size_out - 1u) / size_out;
    return vec3<u32>(a, b, b - a);
  }
  let start = i32(o * s) - i32(pad);
  let end = min(start + i32(K), i32(size_in + pad));
  let lo = u32(max(start, 0));
  let hi = u32(min(end, i32(size_in)));
  if (COUNT_INCLUDE_PAD != 0u) { return vec3<u32>(lo, hi, u32(end - start)); }
  return vec3<u32>(lo, hi, hi - lo);
}

@compute @workgroup_size(WG)
fn avg_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i = thread_id(wid, nwg, lid);
  let hw = params.Ho * params.Wo;
  if (i >= params.P * hw) { return; }
  let p = i / hw;
  let oh = (i % hw) / params.Wo;
  let ow = i % params.Wo;
  let xb = x_base(p);
  let wh = avg_window(oh, params.KH, params.sh, params.ph, params.H, params.Ho);
  let ww = avg_window(ow, params.KW, params.sw, params.pw, params.W, params.Wo);
  var acc = 0.0;
  for (var ih = wh.x; ih < wh.y; ih++) {
    for (var iw = ww.x; iw < ww.y; iw++) { acc += x[xb + ih * params.x_strides.z + iw * params.x_strides.w]; }
  }
  out[i] = acc / f32(wh.z * ww.z);
}

// Output indices whose average window may cover input position i (checked exactly by the caller).
fn avg_range(i: u32, K: u32, s: u32, pad: u32, size_in: u32, size_out: u32) -> vec2<u32> {
  if (ADAPTIVE != 0u) {
    let c = (i * size_out) / size_in;
    let lo = select(0u, c - 1u, c > 0u);
    return vec2<u32>(lo, min(((i + 1u) * size_out) / size_in + 2u, size_out));
  }
  return fixed_range(i, K, s, pad, 1u, size_out);
}

@compute @workgroup_size(WG)
fn avg_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let i = thread_id(wid, nwg, lid);
  let hw = params.H * params.W;
  if (i >= params.P * hw) { return; }
  let p = i / hw;
  let ih = (i % hw) / params.W;
  let iw = i % params.W;
  let rh = avg_range(ih, params.KH, params.sh, params.ph, params.H, params.Ho);
  let rw = avg_range(iw, params.KW, params.sw, params.pw, params.W, params.Wo);
  var acc = 0.0;
  for (var oh = rh.x; oh < rh.y; oh++) {
    let wh = avg_window(oh, params.KH, params.sh, params.ph, params.H, params.Ho);
    if (ih < wh.x || ih >= wh.y) { continue; }
    for (var ow = rw.x; ow < rw.y; ow++) {
      let ww = avg_window(ow, params.KW, params.sw, params.pw, params.W, params.Wo);
      if (iw < ww.x || iw >= ww.y) { continue; }
      acc += dy_at(p, oh, ow) / f32(wh.z * ww.z);
    }
  }
  out[i] = acc;
}
