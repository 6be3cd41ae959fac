// Matmul with a row-normalisation epilogue (compiled steps only: src/compile/rownorm.ts folds a layerNorm, or the dx
// of its backward, into the matmul that makes its input). N <= 64, so a 16 x 64 tile holds whole rows and the 8
// threads sharing a row reduce it through workgroup memory; everything else is matmul.wgsl's (included: its tiling,
// params, bindings 1-7 and store()). Entry points:
//   main_ln, main_vec_ln (B read as in main, main_vec): out = the matmul's value (bias, residual as matmul.wgsl), the
//     norm's input; then per row (b = bidx * M + m) y = layernorm.wgsl's forward of that row, written to out_act, and
//     ln_mean[b], ln_rstd[b].
//   main_ln_grad, main_vec_ln_grad: out = the matmul's value g (residual as matmul.wgsl), the incoming gradient of
//     the norm; out_act = layernorm.wgsl's backward dx of each row from g, the norm's input ln_x (contiguous, as out),
//     its weight and the saved ln_saved_mean, ln_saved_rstd.
//   The norm's weight and bias are read at offsets a_bs[0] and b_bs[0] of the params: a matmul with batch_shape[0] = 1
//   (the only kind folded) multiplies them by coordinate 0, so they are free (the params struct has no room on the
//   pages that carry matmul.wgsl). eps is the override LN_EPS; LN_WEIGHT, LN_BIAS as layernorm.wgsl's HAS_*.
//   The row sums follow layernorm.wgsl's reduce2 tree over 64 lanes (lane c = column c, zero past N) term for term,
//   and the per-element expressions are its own, so the results are the unfused chain's bits.
//   Barriers: the early return depends on the workgroup id only, so every barrier is reached uniformly.
//!include matmul.wgsl

@group(0) @binding(8) var<storage, read> ln_weight: array<f32>;
@group(0) @binding(9) var<storage, read> ln_bias: array<f32>;
@group(0) @binding(10) var<storage, read_write> ln_mean: array<f32>;
@group(0) @binding(11) var<storage, read_write> ln_rstd: array<f32>;
@group(0) @binding(12) var<storage, read> ln_x: array<f32>;
@group(0) @binding(13) var<storage, read> ln_saved_mean: array<f32>;
@group(0) @binding(14) var<storage, read> ln_saved_rstd: array<f32>;

override LN_WEIGHT: u32 = 1u;
override LN_BIAS: u32 = 1u;
override LN_EPS: f32 = 1e-5;

// Two [TM][64] planes of lane values: row r's lane c at r * 64 + c (plane 1 at + TM * 64).
const PLANE: u32 = 1024u; // TM * 64
var<workgroup> lanes: array<f32, 2048>;

// Whether the workgroup has a tile (place()'s `inside`, from the workgroup id alone, so uniform).
fn has_tile(wid: vec3<u32>, nwg: vec3<u32>) -> bool {
  let per_batch = ((params.N + TN - 1u) / TN) * ((params.M + TM - 1u) / TM);
  return (wid.x + nwg.x * (wid.y + nwg.y * wid.z)) / per_batch < batch_count();
}

// The sum of the 64 lanes from `at`, in reduce2's order (strides 32, 16, 8, then 4, 2, 1).
fn tree64(at: u32) -> f32 {
  var z: array<f32, 8>;
  for (var l = 0u; l < 8u; l++) {
    let x = at + l;
    z[l] = ((lanes[x] + lanes[x + 32u]) + (lanes[x + 16u] + lanes[x + 48u])) + ((lanes[x + 8u] + lanes[x + 40u]) + (lanes[x + 24u] + lanes[x + 56u]));
  }
  return ((z[0] + z[4]) + (z[2] + z[6])) + ((z[1] + z[5]) + (z[3] + z[7]));
}

// The thread's values as store() wrote them (each thread reads back only its own writes); 0 past M or N.
fn stored(p: Place) -> array<vec4<f32>, 8> {
  var v: array<vec4<f32>, 8>;
  for (var i = 0u; i < RM; i++) {
    let gm = p.row0 + i;
    for (var j = 0u; j < 8u; j++) {
      let c = p.col0 + j;
      if (gm < params.M && c < params.N) { v[2u * i + j / 4u][j % 4u] = out[(p.bidx * params.M + gm) * params.N + c]; }
    }
  }
  return v;
}

// The thread's lanes (row lid.y * RM + i, columns lid.x * 8 + j) in plane `plane`: 0.0 + value as reduce2's inputs
// (a thread's `s += x` from 0), zero past N.
fn put_lanes(plane: u32, lid: vec3<u32>, v: array<vec4<f32>, 8>) {
  for (var i = 0u; i < RM; i++) {
    for (var j = 0u; j < 8u; j++) {
      let c = lid.x * 8u + j;
      lanes[plane * PLANE + (lid.y * RM + i) * 64u + c] = select(0.0, 0.0 + v[2u * i + j / 4u][j % 4u], c < params.N);
    }
  }
}

fn ln_forward(p: Place, lid: vec3<u32>) {
  let N = params.N;
  let x = stored(p);
  put_lanes(0u, lid, x);
  workgroupBarrier();
  var mu: vec4<f32>;
  var d: array<vec4<f32>, 8>;
  var sq: array<vec4<f32>, 8>;
  for (var i = 0u; i < RM; i++) {
    mu[i] = tree64((lid.y * RM + i) * 64u) / f32(N);
    for (var h = 0u; h < 2u; h++) {
      d[2u * i + h] = x[2u * i + h] - mu[i];
      sq[2u * i + h] = d[2u * i + h] * d[2u * i + h];
    }
  }
  put_lanes(1u, lid, sq);
  workgroupBarrier();
  for (var i = 0u; i < RM; i++) {
    let gm = p.row0 + i;
    let var_eps = tree64(PLANE + (lid.y * RM + i) * 64u) / f32(N) + LN_EPS;
    let r = select(inverseSqrt(var_eps), var_eps, is_nan(var_eps));
    if (gm >= params.M) { continue; }
    let row = p.bidx * params.M + gm;
    for (var j = 0u; j < 8u; j++) {
      let c = p.col0 + j;
      if (c >= N) { continue; }
      var o = d[2u * i + j / 4u][j % 4u] * r;
      if (LN_WEIGHT == 1u) { o = o * ln_weight[params.a_bs[0] + c]; }
      if (LN_BIAS == 1u) { o = o + ln_bias[params.b_bs[0] + c]; }
      out_act[row * N + c] = select(o, r, is_nan(r));
    }
    if (lid.x == 0u) {
      ln_mean[row] = mu[i];
      ln_rstd[row] = r;
    }
  }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * weight (layernorm.wgsl's backward).
fn ln_backward(p: Place, lid: vec3<u32>) {
  let N = params.N;
  let dy = stored(p);
  var g: array<vec4<f32>, 8>;
  var gx: array<vec4<f32>, 8>;
  var xh: array<vec4<f32>, 8>;
  var r: vec4<f32>;
  for (var i = 0u; i < RM; i++) {
    let row = p.bidx * params.M + min(p.row0 + i, params.M - 1u);
    let mu = ln_saved_mean[row];
    r[i] = ln_saved_rstd[row];
    for (var j = 0u; j < 8u; j++) {
      let c = min(p.col0 + j, N - 1u);
      let k = 2u * i + j / 4u;
      var gj = dy[k][j % 4u];
      if (LN_WEIGHT == 1u) { gj = gj * ln_weight[params.a_bs[0] + c]; }
      let xj = (ln_x[row * N + c] - mu) * r[i];
      g[k][j % 4u] = gj;
      xh[k][j % 4u] = xj;
      gx[k][j % 4u] = gj * xj;
    }
  }
  put_lanes(0u, lid, g);
  put_lanes(1u, lid, gx);
  workgroupBarrier();
  for (var i = 0u; i < RM; i++) {
    let gm = p.row0 + i;
    let at = (lid.y * RM + i) * 64u;
    let sums = vec2<f32>(tree64(at), tree64(PLANE + at)) / f32(N);
    if (gm >= params.M) { continue; }
    let row = p.bidx * params.M + gm;
    for (var j = 0u; j < 8u; j++) {
      let c = p.col0 + j;
      if (c >= N) { continue; }
      let k = 2u * i + j / 4u;
      out_act[row * N + c] = r[i] * (g[k][j % 4u] - sums.x - xh[k][j % 4u] * sums.y);
    }
  }
}

// matmul.wgsl's main and main_vec loops: repeated here, not shared through a function, because matmul.wgsl's text is
// on the attention page, whose gzipped budget has no room for the wrappers.
fn product(p: Place) -> array<vec4<f32>, 8> {
  let ra = row_offsets(p.a_base, p.row0);
  let last = params.N - 1u;
  let c_lo = p.b_base + params.b_sn * min(vec4<u32>(p.col0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last));
  let c_hi = p.b_base + params.b_sn * min(vec4<u32>(p.col0) + vec4<u32>(4u, 5u, 6u, 7u), vec4<u32>(last));
  var acc: array<vec4<f32>, 8>;
  for (var k = 0u; k < params.K; k++) {
    let kb = k * params.b_sk;
    let lo = vec4<f32>(f32(b[c_lo.x + kb]), f32(b[c_lo.y + kb]), f32(b[c_lo.z + kb]), f32(b[c_lo.w + kb]));
    let hi = vec4<f32>(f32(b[c_hi.x + kb]), f32(b[c_hi.y + kb]), f32(b[c_hi.z + kb]), f32(b[c_hi.w + kb]));
    rank1_update(&acc, ra + vec4<u32>(k * params.a_sk), lo, hi);
  }
  return acc;
}

fn product_vec(p: Place) -> array<vec4<f32>, 8> {
  let ra = row_offsets(p.a_base, p.row0);
  let last = params.N / 4u - 1u;
  let q_lo = p.b_base + min(p.col0 / 4u, last);
  let q_hi = p.b_base + min(p.col0 / 4u + 1u, last);
  var acc: array<vec4<f32>, 8>;
  for (var k = 0u; k < params.K; k++) {
    let kb = k * params.b_sk;
    rank1_update(&acc, ra + vec4<u32>(k * params.a_sk), vec4<f32>(b4[q_lo + kb]), vec4<f32>(b4[q_hi + kb]));
  }
  return acc;
}

@compute @workgroup_size(WX, WY, 1)
fn main_ln(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
  if (!has_tile(wid, nwg)) { return; }
  let p = place(wid, nwg, lid);
  store(p.bidx, p.row0, p.col0, product(p));
  ln_forward(p, lid);
}

@compute @workgroup_size(WX, WY, 1)
fn main_vec_ln(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
  if (!has_tile(wid, nwg)) { return; }
  let p = place(wid, nwg, lid);
  store(p.bidx, p.row0, p.col0, product_vec(p));
  ln_forward(p, lid);
}

@compute @workgroup_size(WX, WY, 1)
fn main_ln_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
  if (!has_tile(wid, nwg)) { return; }
  let p = place(wid, nwg, lid);
  store(p.bidx, p.row0, p.col0, product(p));
  ln_backward(p, lid);
}

@compute @workgroup_size(WX, WY, 1)
fn main_vec_ln_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
  if (!has_tile(wid, nwg)) { return; }
  let p = place(wid, nwg, lid);
  store(p.bidx, p.row0, p.col0, product_vec(p));
  ln_backward(p, lid);
}
