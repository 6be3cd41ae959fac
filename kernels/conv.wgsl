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
//   Reads (strided views, in place): x, w, dy at their offsets and [n, c, h, w] strides; bias [O] at b_off, b_stride.
//   Writes: out contiguous ([N, O, Ho, Wo], [N, C, H, W] or [O, Cg, KH, KW]).
//   Tiling: a workgroup computes a 64 x 64 tile of the group's GEMM; 16 x 16 threads, each accumulating a block of
//   4 x 4 adjacent outputs in registers (vec4 rows); K advances 32 at a time through workgroup memory (16 KiB; 32
//   rather than 16 halves the barriers, which cost most on CPU adapters).
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
  b_off: u32,
  x_strides: vec4<u32>,
  w_strides: vec4<u32>,
  dy_strides: vec4<u32>,
  b_stride: u32,
}

const RB: u32 = 4u;
const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 32u;
const LOADS: u32 = TK / 4u; // elements of each operand tile a thread loads (TM * TK / 256)

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

// [TK][TM / 4] and [TK][TN / 4] vec4s: a thread owns 4 consecutive rows and 4 consecutive columns of the output tile, so
// each step of the inner product reads one vec4 of each (on CPU adapters, 2 loads per 16 FMAs instead of 8).
var<workgroup> tileA: array<vec4<f32>, 512>;
var<workgroup> tileB: array<vec4<f32>, 512>;

// The kernel taps of one reduction index, split into its three coordinates (row-major over sizes d1 x d2 x d3).
fn split3(k: u32, d2: u32, d3: u32) -> vec3<u32> {
  let r = k % (d2 * d3);
  return vec3<u32>(k / (d2 * d3), r / d3, r % d3);
}

// What a thread's fixed GEMM row (A) or column (B) contributes to every address, computed once before the K loop,
// so the loop itself only splits k: an offset and two signed positions; `ok` false outside the GEMM.
struct Fixed {
  off: u32,
  p: i32,
  q: i32,
  ok: bool,
}

fn row_info(g: u32, m: u32, M: u32) -> Fixed {
  let p = params;
  let Og = p.O / p.groups;
  var f = Fixed(0u, 0, 0, m < M);
  if (MODE == FORWARD) { f.off = p.w_off + (g * Og + m) * p.w_strides.x; }
  else if (MODE == GRAD_INPUT) { f.off = p.w_off + g * Og * p.w_strides.x + m * p.w_strides.y; }
  else { f.off = p.dy_off + (g * Og + m) * p.dy_strides.y; }
  return f;
}

fn col_info(g: u32, col: u32, NC: u32) -> Fixed {
  let p = params;
  let Cg = p.C / p.groups;
  let Og = p.O / p.groups;
  var f = Fixed(0u, 0, 0, col < NC);
  if (MODE == FORWARD) {
    let c = split3(col, p.Ho, p.Wo); // (n, oh, ow)
    f.off = p.x_off + c.x * p.x_strides.x + g * Cg * p.x_strides.y;
    f.p = i32(c.y * p.sh) - i32(p.ph);
    f.q = i32(c.z * p.sw) - i32(p.pw);
  } else if (MODE == GRAD_INPUT) {
    let c = split3(col, p.H, p.W); // (n, ih, iw)
    f.off = p.dy_off + c.x * p.dy_strides.x + g * Og * p.dy_strides.y;
    f.p = i32(c.y + p.ph);
    f.q = i32(c.z + p.pw);
  } else {
    let c = split3(col, p.KH, p.KW); // (ci, kh, kw)
    f.off = p.x_off + (g * Cg + c.x) * p.x_strides.y;
    f.p = i32(c.y * p.dh) - i32(p.ph);
    f.q = i32(c.z * p.dw) - i32(p.pw);
  }
  return f;
}

// The output position whose window puts a tap at distance t (= input position + padding - tap offset) on the input,
// or -1 where none does.
fn out_pos(t: i32, stride: u32, size: u32) -> i32 {
  if (t < 0) { return -1; }
  var o = u32(t);
  if (stride != 1u) {
    if (o % stride != 0u) { return -1; }
    o = o / stride;
  }
  if (o >= size) { return -1; }
  return i32(o);
}

// x at a base offset (batch and channel) and a possibly out-of-image position (zero padding).
fn read_x(off: u32, ih: i32, iw: i32) -> f32 {
  if (ih < 0 || iw < 0 || ih >= i32(params.H) || iw >= i32(params.W)) { return 0.0; }
  return x[off + u32(ih) * params.x_strides.z + u32(iw) * params.x_strides.w];
}

// The coordinates of reduction index k of A: (n, oh, ow) for the weight gradient, else the weight's (c, kh, kw).
fn split_a(k: u32) -> vec3<u32> {
  if (MODE == GRAD_WEIGHT) { return split3(k, params.Ho, params.Wo); }
  return split3(k, params.KH, params.KW);
}

// A[m, k] given its row's fixed part and k's coordinates (split_a).
fn load_a(f: Fixed, c: vec3<u32>) -> f32 {
  let p = params;
  if (MODE == GRAD_WEIGHT) { return dy[f.off + c.x * p.dy_strides.x + c.y * p.dy_strides.z + c.z * p.dy_strides.w]; }
  let s = p.w_strides;
  if (MODE == FORWARD) { return w[f.off + c.x * s.y + c.y * s.z + c.z * s.w]; }
  return w[f.off + c.x * s.x + c.y * s.z + c.z * s.w];
}

// B[k, col] given its column's fixed part.
fn load_b(f: Fixed, k: u32) -> f32 {
  let p = params;
  if (MODE == FORWARD) {
    let c = split3(k, p.KH, p.KW); // (ci, kh, kw)
    return read_x(f.off + c.x * p.x_strides.y, f.p + i32(c.y * p.dh), f.q + i32(c.z * p.dw));
  }
  if (MODE == GRAD_INPUT) {
    let c = split3(k, p.KH, p.KW); // (co, kh, kw)
    let oh = out_pos(f.p - i32(c.y * p.dh), p.sh, p.Ho);
    let ow = out_pos(f.q - i32(c.z * p.dw), p.sw, p.Wo);
    if (oh < 0 || ow < 0) { return 0.0; }
    return dy[f.off + c.x * p.dy_strides.y + u32(oh) * p.dy_strides.z + u32(ow) * p.dy_strides.w];
  }
  let c = split3(k, p.Ho, p.Wo); // (n, oh, ow)
  return read_x(f.off + c.x * p.x_strides.x, f.p + i32(c.y * p.sh), f.q + i32(c.z * p.sw));
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
    if (HAS_BIAS != 0u) { r += bias[p.b_off + o * p.b_stride]; }
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

fn gemm_dims() -> vec3<u32> {
  let p = params;
  let Cg = p.C / p.groups;
  let Og = p.O / p.groups;
  let KK = p.KH * p.KW;
  if (MODE == FORWARD) { return vec3<u32>(Og, p.N * p.Ho * p.Wo, Cg * KK); }
  if (MODE == GRAD_INPUT) { return vec3<u32>(Cg, p.N * p.H * p.W, Og * KK); }
  return vec3<u32>(Og, Cg * KK, p.N * p.Ho * p.Wo);
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
  var acc: array<vec4<f32>, RB>;
  for (var i = 0u; i < RB; i++) { acc[i] = vec4<f32>(0.0); }
  // Each thread loads the same A rows (m = tid / TK + (256 / TK) r) and the same B column (tid % TN) in every K tile;
  // the column's fixed part is computed once, the rows' (cheap, no division) in each tile.
  let col = col_info(g, col0 + tid % TN, NC);
  let tiles = (K + TK - 1u) / TK;
  for (var t = 0u; t < tiles; t++) {
    let k0 = t * TK;
    let ka = k0 + tid % TK;
    let ca = split_a(ka);
    for (var r = 0u; r < LOADS; r++) {
      var va = 0.0;
      let m = tid / TK + (256u / TK) * r;
      let row = row_info(g, row0 + m, M);
      if (row.ok && ka < K) { va = load_a(row, ca); }
      tileA[(tid % TK) * (TM / 4u) + m / 4u][m % 4u] = va;
      let kb = tid / TN + 4u * r;
      var vb = 0.0;
      if (col.ok && k0 + kb < K) { vb = load_b(col, k0 + kb); }
      tileB[kb * (TN / 4u) + (tid % TN) / 4u][tid % 4u] = vb;
    }
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      let av = tileA[k * (TM / 4u) + lid.y];
      let bv = tileB[k * (TN / 4u) + lid.x];
      acc[0] = fma(vec4<f32>(av.x), bv, acc[0]);
      acc[1] = fma(vec4<f32>(av.y), bv, acc[1]);
      acc[2] = fma(vec4<f32>(av.z), bv, acc[2]);
      acc[3] = fma(vec4<f32>(av.w), bv, acc[3]);
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < RB; i++) {
    let gm = row0 + 4u * lid.y + i;
    if (gm >= M) { continue; }
    for (var j = 0u; j < RB; j++) {
      let gn = col0 + 4u * lid.x + j;
      if (gn < NC) { store(g, gm, gn, acc[i][j]); }
    }
  }
}
