// Matmul with a row-normalisation epilogue, for compiled steps (src/compile/rownorm.ts folds a layerNorm, or the dx
// of its backward, into the matmul that makes its input): C[b] = alpha * A[b] @ B[b] as matmul.wgsl (same params,
// same bindings 1-7, same per-output fma order over k, then the bias and residual epilogues in its order), N <= 64.
//   Tiling: one thread per output row, WG rows of one batch entry a workgroup (so B's addresses are the same for
//   every thread of it), its NQ = ceil(N / 4) column quads accumulated in registers, so the row's statistics need no
//   workgroup memory and no barrier (on lavapipe each barrier splits the shader: matmul.wgsl's 16 x 64 tile reducing
//   its rows through workgroup memory took 3-10x as long as the matmul to compile). A's value is read once per k,
//   B's row k as quads. Columns past N are clamped (for reading, as matmul.wgsl, and for writing: a clamped column's
//   value is column N - 1's to the bit, so writing it there again changes nothing and needs no branch).
//   Entry points: main_ln, main_vec_ln (B with any strides, or as vec4 as matmul.wgsl's main_vec): out = the value
//     (the norm's input), out_act = layernorm.wgsl's forward y of the row, ln_mean[row], ln_rstd[row].
//     main_ln_grad, main_vec_ln_grad: out = the value g (the norm's incoming gradient), out_act = layernorm.wgsl's
//     backward dx from g, the norm's input ln_x (contiguous, as out), its weight and ln_saved_mean / ln_saved_rstd.
//   The norm's weight and bias are read at offsets a_bs[0] and b_bs[0] of the params: a matmul with batch_shape[0] = 1
//   (the only kind folded) multiplies them by coordinate 0, so they are free (the params struct has no room on the
//   pages that carry matmul.wgsl). eps is the override LN_EPS; LN_WEIGHT, LN_BIAS as layernorm.wgsl's HAS_*.
//   Row sums follow layernorm.wgsl's reduce2 tree over its 64 lanes (lane c = column c, zero past N) term for term,
//   and every expression is its own, so results are the unfused chain's bits.
//!include matmul_common.wgsl
//!include numerics.wgsl

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read> residual: array<f32>;
@group(0) @binding(7) var<storage, read_write> out_act: array<f32>;
@group(0) @binding(8) var<storage, read> ln_weight: array<f32>;
@group(0) @binding(9) var<storage, read> ln_bias: array<f32>;
@group(0) @binding(10) var<storage, read_write> ln_mean: array<f32>;
@group(0) @binding(11) var<storage, read_write> ln_rstd: array<f32>;
@group(0) @binding(12) var<storage, read> ln_x: array<f32>;
@group(0) @binding(13) var<storage, read> ln_saved_mean: array<f32>;
@group(0) @binding(14) var<storage, read> ln_saved_rstd: array<f32>;

override WG: u32 = 16u;
// Column quads the product accumulates: ceil(N / 4) (the pass sets it), so the k loop holds no clamped duplicates.
override NQ: u32 = 16u;
override HAS_BIAS: u32 = 0u;
override EPI_RESIDUAL: u32 = 0u;
override LN_WEIGHT: u32 = 1u;
override LN_BIAS: u32 = 1u;
override LN_EPS: f32 = 1e-5;

alias Row = array<vec4<f32>, 16>;

// The thread's batch entry and row: each workgroup takes WG rows of one batch entry (ceil(M / WG) workgroups per entry,
// any grid, x fastest), so the entry, and B's addresses with it, are the same for the whole workgroup. Past the last
// entry: none (uniform); rows past M: not the thread's to write.
struct Place {
  bidx: u32,
  m: u32,
}

fn blocks() -> u32 {
  return (params.M + WG - 1u) / WG;
}

fn place(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> Place {
  let lin = wid.x + nwg.x * (wid.y + nwg.y * wid.z);
  return Place(lin / blocks(), (lin % blocks()) * WG + lid);
}

// The row's column quads, ceil(N / 4), as a value the compiler cannot see: the epilogue's loops stay loops (unrolled,
// each per-row store and gather is a lane-by-lane sequence on lavapipe, and the backward took 5x a matmul to compile).
fn quads() -> u32 {
  return (params.N + 3u) / 4u;
}

// Columns 4q..4q+3, and clamped into the matrix for reading.
fn cols(q: u32) -> vec4<u32> {
  return vec4<u32>(4u * q) + vec4<u32>(0u, 1u, 2u, 3u);
}
fn clamped(q: u32) -> vec4<u32> {
  return min(cols(q), vec4<u32>(params.N - 1u));
}

fn product(p: Place) -> Row {
  let bases = batch_bases(p.bidx);
  let ra = bases.x + p.m * params.a_sm;
  var acc: Row;
  for (var k = 0u; k < params.K; k++) {
    let av = vec4<f32>(a[ra + k * params.a_sk]);
    let kb = bases.y + k * params.b_sk;
    for (var q = 0u; q < NQ; q++) {
      let c = vec4<u32>(kb) + params.b_sn * clamped(q);
      acc[q] = fma(av, vec4<f32>(b[c.x], b[c.y], b[c.z], b[c.w]), acc[q]);
    }
  }
  return acc;
}

// B as vec4 (N a multiple of 4; b_off, b_sk and b_bs in vec4 units, as matmul.wgsl's main_vec).
fn product_vec(p: Place) -> Row {
  let bases = batch_bases(p.bidx);
  let ra = bases.x + p.m * params.a_sm;
  let last = params.N / 4u - 1u;
  var acc: Row;
  for (var k = 0u; k < params.K; k++) {
    let av = vec4<f32>(a[ra + k * params.a_sk]);
    let kb = bases.y + k * params.b_sk;
    for (var q = 0u; q < NQ; q++) { acc[q] = fma(av, vec4<f32>(b4[kb + min(q, last)]), acc[q]); }
  }
  return acc;
}

// matmul.wgsl's store() for one row: alpha, the bias, the residual; written to out and returned.
fn store_row(row: u32, acc: Row) -> Row {
  let N = params.N;
  let base = row * N;
  var v: Row;
  for (var q = 0u; q < quads(); q++) {
    var x = params.alpha * acc[q];
    if (HAS_BIAS == 1u) {
      let cb = clamped(q) + vec4<u32>(params.bias_off);
      x += vec4<f32>(bias[cb.x], bias[cb.y], bias[cb.z], bias[cb.w]);
    }
    if (EPI_RESIDUAL == 1u) {
      let rb = vec4<u32>(params.res_off + base) + clamped(q);
      x = x + vec4<f32>(residual[rb.x], residual[rb.y], residual[rb.z], residual[rb.w]);
    }
    let o = vec4<u32>(base) + clamped(q);
    out[o.x] = x.x;
    out[o.y] = x.y;
    out[o.z] = x.z;
    out[o.w] = x.w;
    v[q] = x;
  }
  return v;
}

// The row's 64 lanes as reduce2 reads them: 0.0 + value (a thread's `s += x` from 0), zero past N.
fn lanes(v: Row) -> Row {
  var l: Row;
  for (var q = 0u; q < 16u; q++) { l[q] = select(vec4<f32>(0.0), vec4<f32>(0.0) + v[q], cols(q) < vec4<u32>(params.N)); }
  return l;
}

// The sum of 64 lanes in reduce2's order (strides 32, 16, 8, then 4, 2, 1): lanes l and l + 4 of the last three
// strides are the components of two quad sums.
fn tree64(l: Row) -> f32 {
  let lo = ((l[0] + l[8]) + (l[4] + l[12])) + ((l[2] + l[10]) + (l[6] + l[14]));
  let hi = ((l[1] + l[9]) + (l[5] + l[13])) + ((l[3] + l[11]) + (l[7] + l[15]));
  let s = lo + hi;
  return (s.x + s.z) + (s.y + s.w);
}

fn ln_forward(row: u32, x: Row) {
  let N = params.N;
  let mu = tree64(lanes(x)) / f32(N);
  var d: Row;
  var sq: Row;
  for (var q = 0u; q < quads(); q++) {
    d[q] = x[q] - mu;
    sq[q] = d[q] * d[q];
  }
  let var_eps = tree64(lanes(sq)) / f32(N) + LN_EPS;
  let r = select(inverseSqrt(var_eps), var_eps, is_nan(var_eps));
  let base = row * N;
  for (var q = 0u; q < quads(); q++) {
    var o = d[q] * r;
    if (LN_WEIGHT == 1u) { let w = clamped(q) + vec4<u32>(params.a_bs[0]); o = o * vec4<f32>(ln_weight[w.x], ln_weight[w.y], ln_weight[w.z], ln_weight[w.w]); }
    if (LN_BIAS == 1u) { let bb = clamped(q) + vec4<u32>(params.b_bs[0]); o = o + vec4<f32>(ln_bias[bb.x], ln_bias[bb.y], ln_bias[bb.z], ln_bias[bb.w]); }
    o = select(o, vec4<f32>(r), is_nan(r));
    let at = vec4<u32>(base) + clamped(q);
    out_act[at.x] = o.x;
    out_act[at.y] = o.y;
    out_act[at.z] = o.z;
    out_act[at.w] = o.w;
  }
  ln_mean[row] = mu;
  ln_rstd[row] = r;
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * weight (layernorm.wgsl's backward).
fn ln_backward(row: u32, dy: Row) {
  let N = params.N;
  let base = row * N;
  let mu = ln_saved_mean[row];
  let r = ln_saved_rstd[row];
  var g: Row;
  var xh: Row;
  var gx: Row;
  for (var q = 0u; q < quads(); q++) {
    let c = clamped(q);
    g[q] = dy[q];
    if (LN_WEIGHT == 1u) { let w = c + vec4<u32>(params.a_bs[0]); g[q] = g[q] * vec4<f32>(ln_weight[w.x], ln_weight[w.y], ln_weight[w.z], ln_weight[w.w]); }
    let xo = c + vec4<u32>(base);
    xh[q] = (vec4<f32>(ln_x[xo.x], ln_x[xo.y], ln_x[xo.z], ln_x[xo.w]) - mu) * r;
    gx[q] = g[q] * xh[q];
  }
  let sums = vec2<f32>(tree64(lanes(g)), tree64(lanes(gx))) / f32(N);
  for (var q = 0u; q < quads(); q++) {
    let dx = r * (g[q] - sums.x - xh[q] * sums.y);
    let at = vec4<u32>(base) + clamped(q);
    out_act[at.x] = dx.x;
    out_act[at.y] = dx.y;
    out_act[at.z] = dx.z;
    out_act[at.w] = dx.w;
  }
}

@compute @workgroup_size(WG)
fn main_ln(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let p = place(wid, nwg, lid);
  if (p.bidx >= batch_count() || p.m >= params.M) { return; }
  let row = p.bidx * params.M + p.m;
  ln_forward(row, store_row(row, product(p)));
}

@compute @workgroup_size(WG)
fn main_vec_ln(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let p = place(wid, nwg, lid);
  if (p.bidx >= batch_count() || p.m >= params.M) { return; }
  let row = p.bidx * params.M + p.m;
  ln_forward(row, store_row(row, product_vec(p)));
}

@compute @workgroup_size(WG)
fn main_ln_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let p = place(wid, nwg, lid);
  if (p.bidx >= batch_count() || p.m >= params.M) { return; }
  let row = p.bidx * params.M + p.m;
  ln_backward(row, store_row(row, product(p)));
}

@compute @workgroup_size(WG)
fn main_vec_ln_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let p = place(wid, nwg, lid);
  if (p.bidx >= batch_count() || p.m >= params.M) { return; }
  let row = p.bidx * params.M + p.m;
  ln_backward(row, store_row(row, product_vec(p)));
}
