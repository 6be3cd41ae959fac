// 2-D convolution (NCHW, PyTorch's cross-correlation) as implicit GEMMs: the unfolded input is never written to memory;
// each tile of the GEMM operands is gathered from the image straight into workgroup memory.
//   Dimensions: batch N, input channels C (Cg = C / groups per group), input H x W, output channels O (Og = O / groups),
//   output Ho x Wo, kernel KH x KW, stride (sh, sw), top/left padding (ph, pw), dilation (dh, dw), groups G.
//   The input row ih of output row oh and kernel row kh is oh * sh - ph + kh * dh (out of range: zero padding).
//   MODE (override) picks which GEMM a launch computes; per group g (the workgroup's group index):
//     FORWARD      out[n, g Og + m, oh, ow] = sum_k w[g Og + m, (ci, kh, kw) = k] * x[n, g Cg + ci, ih, iw] + bias
//                  M = Og, cols = N Ho Wo (n, oh, ow), K = Cg KH KW
//     GRAD_INPUT   dx[n, g Cg + m, ih, iw] = sum_k w[g Og + co, m, kh, kw] * dy[n, g Og + co, oh, ow] over the (co, kh, kw)
//                  = k whose (oh, ow) lands on (ih, iw): a transposed implicit GEMM, written without atomics
//                  M = Cg, cols = N H W (n, ih, iw), K = Og KH KW
//     GRAD_WEIGHT  dw[g Og + m, (ci, kh, kw) = col] = sum_k dy[n, g Og + m, oh, ow] * x[n, g Cg + ci, ih, iw], k = (n, oh, ow)
//                  M = Og, cols = Cg KH KW, K = N Ho Wo: each output element is summed by one thread in a fixed order
//                  (deterministic)
//   Reads (strided views, in place): x, w, dy at their offsets and [n, c, h, w] strides; bias [O] contiguous.
//   Writes: out contiguous ([N, O, Ho, Wo], [N, C, H, W] or [O, Cg, KH, KW]).
//   Tiling: as kernels/matmul.wgsl: a workgroup computes a 64 x 64 tile of the group's GEMM; 16 x 16 threads, each
//   accumulating 4 x 4 outputs in registers; K advances 16 at a time through workgroup memory (8 KiB).
//   Dispatch: ceil(cols / 64) * ceil(M / 64) * G workgroups in any grid (x fastest), the linear id picking the column
//   tile, then the row tile, then the group; ids past the last tile exit.

const FORWARD: u32 = 0u;
const GRAD_INPUT: u32 = 1u;
const GRAD_WEIGHT: u32 = 2u;

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
  pad0: u32,
  x_strides: vec4<u32>,
  w_strides: vec4<u32>,
  dy_strides: vec4<u32>,
}

const RB: u32 = 4u;
const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

var<workgroup> tileA: array<f32, 1024>; // [TK][TM]
var<workgroup> tileB: array<f32, 1024>; // [TK][TN]

// x[n, c, ih, iw] with ih, iw possibly outside the image (zero padding); ih, iw as i32.
fn read_x(n: u32, c: u32, ih: i32, iw: i32) -> f32 {
  if (ih < 0 || iw < 0 || ih >= i32(params.H) || iw >= i32(params.W)) { return 0.0; }
  let s = params.x_strides;
  return x[params.x_off + n * s.x + c * s.y + u32(ih) * s.z + u32(iw) * s.w];
}

fn read_w(o: u32, c: u32, kh: u32, kw: u32) -> f32 {
  let s = params.w_strides;
  return w[params.w_off + o * s.x + c * s.y + kh * s.z + kw * s.w];
}

fn read_dy(n: u32, o: u32, oh: u32, ow: u32) -> f32 {
  let s = params.dy_strides;
  return dy[params.dy_off + n * s.x + o * s.y + oh * s.z + ow * s.w];
}

// The output position (oh or ow) whose window puts kernel tap k on input position i, or -1 where none does.
fn out_pos(i: u32, k: u32, stride: u32, pad: u32, dil: u32, size: u32) -> i32 {
  let t = i32(i + pad) - i32(k * dil);
  if (t < 0) { return -1; }
  let tu = u32(t);
  if (tu % stride != 0u) { return -1; }
  let o = tu / stride;
  if (o >= size) { return -1; }
  return i32(o);
}

fn gemm_dims() -> vec3<u32> {
  let p = params;
  let Cg = p.C / p.groups;
  let Og = p.O / p.groups;
  let KK = p.KH * p.KW;
  if (MODE == FORWARD) { return vec3<u32>(Og, p.N * p.Ho * p.Wo, Cg * KK); }
  if (MODE == GRAD_INPUT) { return vec3<u32>(Cg, p.N * p.H * p.W, Og * KK); }
  return vec3<u32>(Og, Cg * KK, p.N * p.Ho * p.Wo);
}

// A[m, k] of group g.
fn load_a(g: u32, m: u32, k: u32) -> f32 {
  let p = params;
  let Cg = p.C / p.groups;
  let Og = p.O / p.groups;
  let KK = p.KH * p.KW;
  if (MODE == FORWARD) {
    let ci = k / KK;
    let r = k % KK;
    return read_w(g * Og + m, ci, r / p.KW, r % p.KW);
  }
  if (MODE == GRAD_INPUT) {
    let co = k / KK;
    let r = k % KK;
    return read_w(g * Og + co, m, r / p.KW, r % p.KW);
  }
  let hw = p.Ho * p.Wo;
  let n = k / hw;
  let r = k % hw;
  return read_dy(n, g * Og + m, r / p.Wo, r % p.Wo);
}

// B[k, col] of group g.
fn load_b(g: u32, k: u32, col: u32) -> f32 {
  let p = params;
  let Cg = p.C / p.groups;
  let Og = p.O / p.groups;
  let KK = p.KH * p.KW;
  if (MODE == FORWARD) {
    let ci = k / KK;
    let r = k % KK;
    let hw = p.Ho * p.Wo;
    let n = col / hw;
    let q = col % hw;
    let ih = i32((q / p.Wo) * p.sh + (r / p.KW) * p.dh) - i32(p.ph);
    let iw = i32((q % p.Wo) * p.sw + (r % p.KW) * p.dw) - i32(p.pw);
    return read_x(n, g * Cg + ci, ih, iw);
  }
  if (MODE == GRAD_INPUT) {
    let co = k / KK;
    let r = k % KK;
    let hw = p.H * p.W;
    let n = col / hw;
    let q = col % hw;
    let oh = out_pos(q / p.W, r / p.KW, p.sh, p.ph, p.dh, p.Ho);
    let ow = out_pos(q % p.W, r % p.KW, p.sw, p.pw, p.dw, p.Wo);
    if (oh < 0 || ow < 0) { return 0.0; }
    return read_dy(n, g * Og + co, u32(oh), u32(ow));
  }
  let hw = p.Ho * p.Wo;
  let n = k / hw;
  let q = k % hw;
  let ci = col / KK;
  let r = col % KK;
  let ih = i32((q / p.Wo) * p.sh + (r / p.KW) * p.dh) - i32(p.ph);
  let iw = i32((q % p.Wo) * p.sw + (r % p.KW) * p.dw) - i32(p.pw);
  return read_x(n, g * Cg + ci, ih, iw);
}

fn store(g: u32, m: u32, col: u32, v: f32) {
  let p = params;
  let Cg = p.C / p.groups;
  let Og = p.O / p.groups;
  if (MODE == FORWARD) {
    let hw = p.Ho * p.Wo;
    let n = col / hw;
    let o = g * Og + m;
    var r = v;
    if (HAS_BIAS != 0u) { r += bias[o]; }
    out[(n * p.O + o) * hw + col % hw] = r;
    return;
  }
  if (MODE == GRAD_INPUT) {
    let hw = p.H * p.W;
    let n = col / hw;
    out[(n * p.C + g * Cg + m) * hw + col % hw] = v;
    return;
  }
  out[(g * Og + m) * (Cg * p.KH * p.KW) + col] = v;
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let dims = gemm_dims();
  let M = dims.x;
  let NC = dims.y;
  let K = dims.z;
  let tiles_x = (NC + TN - 1u) / TN;
  let tiles_y = (M + TM - 1u) / TM;
  let per_group = tiles_x * tiles_y;
  let lin = wid.x + nwg.x * (wid.y + nwg.y * wid.z);
  let g = lin / per_group;
  if (g >= params.groups) { return; }
  let tile = lin % per_group;
  let row0 = (tile / tiles_x) * TM;
  let col0 = (tile % tiles_x) * TN;
  var acc: array<array<f32, RB>, RB>;
  for (var i = 0u; i < RB; i++) {
    for (var j = 0u; j < RB; j++) { acc[i][j] = 0.0; }
  }
  let tiles = (K + TK - 1u) / TK;
  for (var t = 0u; t < tiles; t++) {
    let k0 = t * TK;
    for (var r = 0u; r < 4u; r++) {
      let e = tid + 256u * r;
      let m = e / TK;
      let k = e % TK;
      let gm = row0 + m;
      let gk = k0 + k;
      var va = 0.0;
      if (gm < M && gk < K) { va = load_a(g, gm, gk); }
      tileA[k * TM + m] = va;
      let kb = e / TN;
      let n = e % TN;
      let gkb = k0 + kb;
      let gn = col0 + n;
      var vb = 0.0;
      if (gkb < K && gn < NC) { vb = load_b(g, gkb, gn); }
      tileB[kb * TN + n] = vb;
    }
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      var av: array<f32, RB>;
      var bv: array<f32, RB>;
      for (var i = 0u; i < RB; i++) { av[i] = tileA[k * TM + lid.y + 16u * i]; }
      for (var j = 0u; j < RB; j++) { bv[j] = tileB[k * TN + lid.x + 16u * j]; }
      for (var i = 0u; i < RB; i++) {
        for (var j = 0u; j < RB; j++) { acc[i][j] = fma(av[i], bv[j], acc[i][j]); }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < RB; i++) {
    let gm = row0 + lid.y + 16u * i;
    if (gm >= M) { continue; }
    for (var j = 0u; j < RB; j++) {
      let gn = col0 + lid.x + 16u * j;
      if (gn < NC) { store(g, gm, gn, acc[i][j]); }
    }
  }
}
