// 2-D convolution (NCHW, PyTorch's cross-correlation) as implicit GEMMs: the unfolded input is never written to memory;
// each thread reads its operands straight from the image, the weight and the output gradient.
//   Dimensions: batch N, input channels C (Cg = C / groups per group), input H x W, output channels O (Og = O / groups),
//   output Ho x Wo, kernel KH x KW (the taps), stride (sh, sw), top/left padding (ph, pw), dilation (dh, dw), groups G.
//   The input row ih of output row oh and kernel row kh is oh * sh - ph + kh * dh (outside the image: padding).
//   A padded tap (or, in the input gradient, a tap no output lands on) contributes nothing: it is skipped, never
//   multiplied as a zero, so an infinite weight meets no padding (as the float64 reference and direct convolutions).
//   Entry points (all three reduce in a fixed order per output element: deterministic, no atomics):
//     main, MODE = FORWARD
//                  out[n, g Og + m, oh, ow] = sum_(kh, kw, ci) w[g Og + m, ci, kh, kw] * x[n, g Cg + ci, ih, iw] + bias
//                  GEMM rows m < Og, columns (n, oh, ow) < N Ho Wo, reduction taps x Cg
//     main, MODE = GRAD_INPUT
//                  dx[n, g Cg + m, ih, iw] = sum over the (kh, kw, co) whose output (oh, ow) lands on (ih, iw) of
//                  w[g Og + co, m, kh, kw] * dy[n, g Og + co, oh, ow] (a transposed implicit GEMM, written without
//                  atomics); rows m < Cg, columns (n, ih, iw) < N H W, reduction taps x Og
//     grad_weight  dw[g Og + m, c, kh, kw] = sum_(n, oh, ow) dy[n, g Og + m, oh, ow] * x[n, g Cg + c, ih, iw]:
//                  rows m < Og, columns (kh, kw, c) < KH KW Cg (c fastest). A thread whose 8 columns share one tap
//                  (Cg >= 8) reduces over the rectangle of output positions whose tap lies inside the image, worked out
//                  once, so its inner loop has no bounds checks; one whose columns span taps (a first layer's Cg = 1:
//                  all 9 taps of a 3x3 in two threads, where one tap per GEMM would waste 63 of 64 columns) tests
//                  each column at each position
//   Reads (strided views, in place): x, w, dy at their offsets and [n, c, h, w] strides; bias [O] at b_off, b_stride.
//   Writes: out contiguous ([N, O, Ho, Wo], [N, C, H, W] or [O, Cg, KH, KW]).
//   Tiling: as kernels/matmul.wgsl, a workgroup of WX x WY = 8 x 4 threads computes a TM x TN = 16 x 64 tile of its
//   GEMM, each thread a register tile of RM x RN = 4 rows x 8 columns (two vec4 per row), with no workgroup memory and
//   no barriers (on CPU adapters such as lavapipe a barrier splits the shader and the caches do the tiling; the
//   workgroup-memory kernel this replaced ran 3-5x slower there). main loops over the taps outside and the reduction
//   channels inside: a column's position, padding test and address are worked out once per tap, and each channel
//   step is then 4 + 8 loads and 32 FMAs at fixed strides.
//   Edges: rows and columns past the GEMM are clamped for reading (every read is in bounds) and never written.
//   Dispatch: ceil(cols / TN) * ceil(rows / TM) * G workgroups in any grid (x fastest), the linear id picking the
//   column tile, then the row tile, then the group; ids past the last tile exit.

const FORWARD: u32 = 0u;
const GRAD_INPUT: u32 = 1u;

override MODE: u32 = 0u;
override HAS_BIAS: u32 = 0u;

struct Params {
  N: u32,
  C: u32,
  H: u32,
  W: u32,
  O: u32,
  Ho: u32,
  Wo: u32,
  KH: u32,
  KW: u32,
  groups: u32,
  sh: u32,
  sw: u32,
  ph: u32,
  pw: u32,
  dh: u32,
  dw: u32,
  x_off: u32,
  w_off: u32,
  dy_off: u32,
  b_off: u32,
  x_strides: vec4<u32>,
  w_strides: vec4<u32>,
  dy_strides: vec4<u32>,
  b_stride: u32,
  splits: u32,
  lanes: u32,
  lane_x: u32,
  lane_y: u32,
}

const WX: u32 = 8u;
const WY: u32 = 4u;
const RM: u32 = 4u;
const RN: u32 = 8u;
const TM: u32 = 16u; // WY * RM
const TN: u32 = 64u; // WX * RN

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

// The GEMM's B operand of main: the image in the forward pass, the output gradient in the input gradient.
fn load_b(i: u32) -> f32 {
  if (MODE == FORWARD) { return x[i]; }
  return dy[i];
}

// Where a workgroup's tile lies: its group and its first row and column.
struct Tile {
  inside: bool,
  g: u32,
  row0: u32,
  col0: u32,
}

fn tile_of(wid: vec3<u32>, nwg: vec3<u32>, M: u32, NC: u32) -> Tile {
  let tiles_x = (NC + TN - 1u) / TN;
  let per_group = tiles_x * ((M + TM - 1u) / TM);
  let lin = wid.x + nwg.x * (wid.y + nwg.y * wid.z);
  var t: Tile;
  t.g = lin / per_group;
  t.inside = t.g < params.groups;
  let tile = lin % per_group;
  t.row0 = (tile / tiles_x) * TM;
  t.col0 = (tile % tiles_x) * TN;
  return t;
}

// A thread's 4 rows (clamped) and its 8 columns (clamped, as two vec4).
fn rows_of(row0: u32, M: u32) -> vec4<u32> {
  return min(vec4<u32>(row0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(M - 1u));
}

fn cols_of(col0: u32, NC: u32, hi: u32) -> vec4<u32> {
  return min(vec4<u32>(col0 + 4u * hi) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(NC - 1u));
}

// acc[2 i + h] += a[i] * b_h (b_lo, b_hi: the thread's 8 columns), only in the columns where ok_h holds.
fn rank1_masked(acc: ptr<function, array<vec4<f32>, 8>>, a: vec4<f32>, lo: vec4<f32>, hi: vec4<f32>,
                ok_lo: vec4<bool>, ok_hi: vec4<bool>) {
  // Unrolled: constant indices keep the accumulators in registers.
  (*acc)[0] = select((*acc)[0], fma(vec4<f32>(a.x), lo, (*acc)[0]), ok_lo);
  (*acc)[1] = select((*acc)[1], fma(vec4<f32>(a.x), hi, (*acc)[1]), ok_hi);
  (*acc)[2] = select((*acc)[2], fma(vec4<f32>(a.y), lo, (*acc)[2]), ok_lo);
  (*acc)[3] = select((*acc)[3], fma(vec4<f32>(a.y), hi, (*acc)[3]), ok_hi);
  (*acc)[4] = select((*acc)[4], fma(vec4<f32>(a.z), lo, (*acc)[4]), ok_lo);
  (*acc)[5] = select((*acc)[5], fma(vec4<f32>(a.z), hi, (*acc)[5]), ok_hi);
  (*acc)[6] = select((*acc)[6], fma(vec4<f32>(a.w), lo, (*acc)[6]), ok_lo);
  (*acc)[7] = select((*acc)[7], fma(vec4<f32>(a.w), hi, (*acc)[7]), ok_hi);
}

fn rank1(acc: ptr<function, array<vec4<f32>, 8>>, a: vec4<f32>, lo: vec4<f32>, hi: vec4<f32>) {
  (*acc)[0] = fma(vec4<f32>(a.x), lo, (*acc)[0]);
  (*acc)[1] = fma(vec4<f32>(a.x), hi, (*acc)[1]);
  (*acc)[2] = fma(vec4<f32>(a.y), lo, (*acc)[2]);
  (*acc)[3] = fma(vec4<f32>(a.y), hi, (*acc)[3]);
  (*acc)[4] = fma(vec4<f32>(a.z), lo, (*acc)[4]);
  (*acc)[5] = fma(vec4<f32>(a.z), hi, (*acc)[5]);
  (*acc)[6] = fma(vec4<f32>(a.w), lo, (*acc)[6]);
  (*acc)[7] = fma(vec4<f32>(a.w), hi, (*acc)[7]);
}

// The fixed part of 4 of a thread's columns: the offset of (n, the group's first channel) in B, and the signed
// positions the taps are measured from (forward: the window's top-left corner; input gradient: ih + ph, iw + pw).
struct Cols {
  base: vec4<u32>,
  p: vec4<i32>,
  q: vec4<i32>,
}

fn cols_info(g: u32, c: vec4<u32>) -> Cols {
  let p = params;
  var r: Cols;
  if (MODE == FORWARD) {
    let hw = p.Ho * p.Wo;
    let n = c / hw;
    let s = c % hw;
    r.base = p.x_off + n * p.x_strides.x + g * (p.C / p.groups) * p.x_strides.y;
    r.p = vec4<i32>((s / p.Wo) * p.sh) - i32(p.ph);
    r.q = vec4<i32>((s % p.Wo) * p.sw) - i32(p.pw);
  } else {
    let hw = p.H * p.W;
    let n = c / hw;
    let s = c % hw;
    r.base = p.dy_off + n * p.dy_strides.x + g * (p.O / p.groups) * p.dy_strides.y;
    r.p = vec4<i32>(s / p.W) + i32(p.ph);
    r.q = vec4<i32>(s % p.W) + i32(p.pw);
  }
  return r;
}

// For tap (kh, kw): the offsets in B of 4 columns' tap (clamped in bounds) and whether the tap is real there.
struct TapCols {
  off: vec4<u32>,
  ok: vec4<bool>,
}

fn tap_cols(c: Cols, kh: u32, kw: u32) -> TapCols {
  let p = params;
  var r: TapCols;
  if (MODE == FORWARD) {
    let ih = c.p + vec4<i32>(i32(kh * p.dh));
    let iw = c.q + vec4<i32>(i32(kw * p.dw));
    r.ok = (ih >= vec4<i32>(0)) & (ih < vec4<i32>(i32(p.H))) & (iw >= vec4<i32>(0)) & (iw < vec4<i32>(i32(p.W)));
    let h = vec4<u32>(clamp(ih, vec4<i32>(0), vec4<i32>(i32(p.H) - 1)));
    let wv = vec4<u32>(clamp(iw, vec4<i32>(0), vec4<i32>(i32(p.W) - 1)));
    r.off = c.base + h * p.x_strides.z + wv * p.x_strides.w;
  } else {
    // The output position (oh, ow) whose tap (kh, kw) lands here: t = oh * stride exactly, inside the output.
    let th = c.p - vec4<i32>(i32(kh * p.dh));
    let tw = c.q - vec4<i32>(i32(kw * p.dw));
    let uh = vec4<u32>(max(th, vec4<i32>(0)));
    let uw = vec4<u32>(max(tw, vec4<i32>(0)));
    let oh = uh / p.sh;
    let ow = uw / p.sw;
    r.ok = (th >= vec4<i32>(0)) & (tw >= vec4<i32>(0)) & (uh % p.sh == vec4<u32>(0u)) & (uw % p.sw == vec4<u32>(0u)) &
           (oh < vec4<u32>(p.Ho)) & (ow < vec4<u32>(p.Wo));
    r.off = c.base + min(oh, vec4<u32>(p.Ho - 1u)) * p.dy_strides.z + min(ow, vec4<u32>(p.Wo - 1u)) * p.dy_strides.w;
  }
  return r;
}

fn load4(off: vec4<u32>) -> vec4<f32> {
  return vec4<f32>(load_b(off.x), load_b(off.y), load_b(off.z), load_b(off.w));
}

fn load_w4(off: vec4<u32>) -> vec4<f32> {
  return vec4<f32>(w[off.x], w[off.y], w[off.z], w[off.w]);
}

@compute @workgroup_size(WX, WY, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let p = params;
  let Cg = p.C / p.groups;
  let Og = p.O / p.groups;
  var M = Og;
  var NC = p.N * p.Ho * p.Wo;
  var KC = Cg; // reduction channels per tap
  if (MODE == GRAD_INPUT) {
    M = Cg;
    NC = p.N * p.H * p.W;
    KC = Og;
  }
  let t = tile_of(wid, nwg, M, NC);
  if (!t.inside) { return; }
  let row0 = t.row0 + lid.y * RM;
  let col0 = t.col0 + lid.x * RN;
  let rows = rows_of(row0, M);
  // Rows: the weight offsets of (row, reduction channel 0, tap 0) and the step per reduction channel.
  var a_row: vec4<u32>;
  var a_step: u32;
  var b_step: u32;
  if (MODE == FORWARD) {
    a_row = p.w_off + (t.g * Og + rows) * p.w_strides.x;
    a_step = p.w_strides.y;
    b_step = p.x_strides.y;
  } else {
    a_row = p.w_off + t.g * Og * p.w_strides.x + rows * p.w_strides.y;
    a_step = p.w_strides.x;
    b_step = p.dy_strides.y;
  }
  let c_lo = cols_info(t.g, cols_of(col0, NC, 0u));
  let c_hi = cols_info(t.g, cols_of(col0, NC, 1u));
  var acc: array<vec4<f32>, 8>;
  for (var kh = 0u; kh < p.KH; kh++) {
    for (var kw = 0u; kw < p.KW; kw++) {
      let lo = tap_cols(c_lo, kh, kw);
      let hi = tap_cols(c_hi, kh, kw);
      // Columns where this tap is padding everywhere skip the channel loop (uniform per thread).
      if (!any(lo.ok) && !any(hi.ok)) { continue; }
      let a_tap = a_row + vec4<u32>(kh * p.w_strides.z + kw * p.w_strides.w);
      for (var c = 0u; c < KC; c++) {
        let a = load_w4(a_tap + vec4<u32>(c * a_step));
        let bo = vec4<u32>(c * b_step);
        rank1_masked(&acc, a, load4(lo.off + bo), load4(hi.off + bo), lo.ok, hi.ok);
      }
    }
  }
  // Store the rows and columns inside the GEMM.
  for (var i = 0u; i < RM; i++) {
    let m = row0 + i;
    if (m >= M) { break; }
    var b = 0.0;
    if (MODE == FORWARD && HAS_BIAS != 0u) { b = bias[p.b_off + (t.g * Og + m) * p.b_stride]; }
    for (var j = 0u; j < RN; j++) {
      let col = col0 + j;
      if (col >= NC) { break; }
      let v = acc[2u * i + j / 4u][j % 4u];
      if (MODE == FORWARD) {
        let hw = p.Ho * p.Wo;
        out[((col / hw) * p.O + t.g * Og + m) * hw + col % hw] = v + b;
      } else {
        let hw = p.H * p.W;
        out[((col / hw) * p.C + t.g * Cg + m) * hw + col % hw] = v;
      }
    }
  }
}

// The range [lo, hi) of output positions o (< size) whose tap at offset `tap` (kh dh - ph) lands inside [0, extent):
// 0 <= o * stride + tap < extent.
fn valid_range(tap: i32, stride: u32, extent: u32, size: u32) -> vec2<u32> {
  let s = i32(stride);
  var lo = 0;
  if (tap < 0) { lo = (-tap + s - 1) / s; }
  let last = i32(extent) - 1 - tap; // o * stride <= last
  if (last < 0) { return vec2<u32>(0u, 0u); }
  let hi = min(u32(last / s) + 1u, size);
  return vec2<u32>(min(u32(lo), hi), hi);
}

@compute @workgroup_size(WX, WY, 1)
fn grad_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
  let p = params;
  let Cg = p.C / p.groups;
  let Og = p.O / p.groups;
  let KK = p.KH * p.KW;
  let NC = KK * Cg; // columns (tap, c), c fastest
  // Split-K over the batch: workgroup ids run over (tile, group) for split 0, then for split 1, ...; split s sums
  // images [s chunk, (s + 1) chunk) into its own slice of out ([splits, O, Cg, KH, KW]; the launcher sums the slices).
  let per_split = p.groups * ((NC + TN - 1u) / TN) * ((Og + TM - 1u) / TM);
  let lin = wid.x + nwg.x * (wid.y + nwg.y * wid.z);
  let split = lin / per_split;
  if (split >= p.splits) { return; }
  let chunk = (p.N + p.splits - 1u) / p.splits;
  let n0 = min(split * chunk, p.N);
  let n1 = min(n0 + chunk, p.N);
  let t = tile_of(vec3<u32>(lin % per_split, 0u, 0u), vec3<u32>(per_split, 1u, 1u), Og, NC);
  // Lanes: where one group's whole GEMM needs only lane_x x lane_y of the workgroup's threads (a first layer's
  // 8 x 9), the workgroup holds `lanes` copies of those threads and copy l sums the output rows oh = l (mod lanes), into
  // its own slice too (slice split lanes + l); otherwise lanes = 1 and the threads tile the GEMM as in main.
  var row0 = t.row0 + lid.y * RM;
  var col0 = t.col0 + lid.x * RN;
  var lane = 0u;
  if (p.lanes > 1u) {
    let tid = lid.y * WX + lid.x;
    let per_lane = p.lane_x * p.lane_y;
    lane = tid / per_lane;
    if (lane >= p.lanes) { return; }
    row0 = ((tid % per_lane) / p.lane_x) * RM;
    col0 = ((tid % per_lane) % p.lane_x) * RN;
  }
  let slice = (split * p.lanes + lane) * p.O * Cg * KK;
  // A: dy at (row, n = 0, oh = 0, ow = 0).
  let a_row = p.dy_off + (t.g * Og + rows_of(row0, Og)) * p.dy_strides.y;
  let cl = cols_of(col0, NC, 0u);
  let ch = cols_of(col0, NC, 1u);
  // B: x at (column's channel, n = 0, ih = 0, iw = 0).
  let b_lo = p.x_off + (t.g * Cg + cl % Cg) * p.x_strides.y;
  let b_hi = p.x_off + (t.g * Cg + ch % Cg) * p.x_strides.y;
  var acc: array<vec4<f32>, 8>;
  let tap = cl.x / Cg;
  if (tap == ch.w / Cg) {
    // All 8 columns share one tap (Cg >= 8, or the tile's last columns): reduce over the rectangle of output
    // positions whose tap lies inside the image, with no test in the loop.
    let tap_h = i32((tap / p.KW) * p.dh) - i32(p.ph);
    let tap_w = i32((tap % p.KW) * p.dw) - i32(p.pw);
    let rh = valid_range(tap_h, p.sh, p.H, p.Ho);
    let rw = valid_range(tap_w, p.sw, p.W, p.Wo);
    for (var n = n0; n < n1; n++) {
      for (var oh = rh.x + lane; oh < rh.y; oh += p.lanes) {
        let ih = u32(i32(oh * p.sh) + tap_h);
        let a_n = n * p.dy_strides.x + oh * p.dy_strides.z;
        let b_n = n * p.x_strides.x + ih * p.x_strides.z;
        for (var ow = rw.x; ow < rw.y; ow++) {
          let iw = u32(i32(ow * p.sw) + tap_w);
          let ao = a_row + vec4<u32>(a_n + ow * p.dy_strides.w);
          let bo = b_n + iw * p.x_strides.w;
          let a = vec4<f32>(dy[ao.x], dy[ao.y], dy[ao.z], dy[ao.w]);
          let lo = vec4<f32>(x[b_lo.x + bo], x[b_lo.y + bo], x[b_lo.z + bo], x[b_lo.w + bo]);
          let hi = vec4<f32>(x[b_hi.x + bo], x[b_hi.y + bo], x[b_hi.z + bo], x[b_hi.w + bo]);
          rank1(&acc, a, lo, hi);
        }
      }
    }
  } else {
    // Columns of several taps (few channels per group, as a first layer's): every output position, each column
    // testing its own tap.
    let tl = cl / Cg;
    let hh = vec4<i32>((tl / p.KW) * p.dh) - i32(p.ph);
    let ww = vec4<i32>((tl % p.KW) * p.dw) - i32(p.pw);
    let th_hi = ch / Cg;
    let hh_hi = vec4<i32>((th_hi / p.KW) * p.dh) - i32(p.ph);
    let ww_hi = vec4<i32>((th_hi % p.KW) * p.dw) - i32(p.pw);
    for (var n = n0; n < n1; n++) {
      for (var oh = lane; oh < p.Ho; oh += p.lanes) {
        let a_n = n * p.dy_strides.x + oh * p.dy_strides.z;
        let b_n = n * p.x_strides.x;
        let ih_lo = vec4<u32>(hh + i32(oh * p.sh));
        let ih_hi = vec4<u32>(hh_hi + i32(oh * p.sh));
        for (var ow = 0u; ow < p.Wo; ow++) {
          let ao = a_row + vec4<u32>(a_n + ow * p.dy_strides.w);
          let a = vec4<f32>(dy[ao.x], dy[ao.y], dy[ao.z], dy[ao.w]);
          // As u32, a negative position is past the end too: one comparison tests both sides.
          let iw_lo = vec4<u32>(ww + i32(ow * p.sw));
          let iw_hi = vec4<u32>(ww_hi + i32(ow * p.sw));
          let ok_lo = (ih_lo < vec4<u32>(p.H)) & (iw_lo < vec4<u32>(p.W));
          let ok_hi = (ih_hi < vec4<u32>(p.H)) & (iw_hi < vec4<u32>(p.W));
          let o_lo = select(vec4<u32>(p.x_off), b_lo + b_n + ih_lo * p.x_strides.z + iw_lo * p.x_strides.w, ok_lo);
          let o_hi = select(vec4<u32>(p.x_off), b_hi + b_n + ih_hi * p.x_strides.z + iw_hi * p.x_strides.w, ok_hi);
          let lo = vec4<f32>(x[o_lo.x], x[o_lo.y], x[o_lo.z], x[o_lo.w]);
          let hi = vec4<f32>(x[o_hi.x], x[o_hi.y], x[o_hi.z], x[o_hi.w]);
          rank1_masked(&acc, a, lo, hi, ok_lo, ok_hi);
        }
      }
    }
  }
  for (var i = 0u; i < RM; i++) {
    let m = row0 + i;
    if (m >= Og) { break; }
    for (var j = 0u; j < RN; j++) {
      let c = col0 + j;
      if (c >= NC) { break; }
      // Column (tap, ci) of row m is dw[g Og + m, ci, tap].
      out[slice + ((t.g * Og + m) * Cg + c % Cg) * KK + c / Cg] = acc[2u * i + j / 4u][j % 4u];
    }
  }
}
