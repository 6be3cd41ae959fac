// Fused scaled dot-product attention backward on matrix units. Entry points: dkdv, dq_main (delta = rowsum(dO o) is
// attention_backward.wgsl's delta_main, dispatched first). The semantics are attention_backward.wgsl's, to the letter:
//   s_ij = scale q_i . k_j (+ float mask), admitted as attention_common.wgsl says; p_ij = exp(s_ij - lse_i) (0 for an
//   inadmissible key or a -inf score); z_ij = keep_ij / (1 - dropout_p); dP_ij = dO_i . v_j; dS_ij = p_ij (z_ij dP_ij -
//   delta_i) at admissible entries, exactly 0 elsewhere; a NaN row (lse NaN) has NaN p and dS at its admissible
//   entries. dV = (P z)^T dO, dK = scale dS^T Q, dQ = scale dS K; dmask = dS (f32, every element, when write_dmask).
// Dimensions: B, Hq, Hk (query head h reads kv head h / (Hq / Hk)), Nq, Nk, D, Dv <= HEAD_DIM_MAX (a multiple of 16).
// Reads: q, k, v, mask (strided, as params say), dout [B, Hq, Nq, Dv] contiguous, lse and delta [B, Hq, Nq].
// Writes: dkdv: dk [B, Hk, Nk, D], dv [B, Hk, Nk, Dv] (per batch; the caller reduces broadcast dims); dq_main: dq
//   [B, Hq, Nq, D] and, when write_dmask, dmask [B, Hq, Nq, Nk].
// Precision: q, k, v, dO rounded to f16 into workgroup memory (exact for f16 inputs), S = Q K^T and dP = dO V^T are
//   f16 products summed in f32; p, dS and delta are f32; P z and dS are rounded to f16 for dV, dK and dQ (as
//   FlashAttention's f16 backward), summed in f32. Deterministic: every sum is in a fixed order, no atomics.
// Tiling: BLOCK_M query rows x BLOCK_N keys per tile; THREADS = WARPS * LANES; the result blocks (SM_M x SM_N) of each
//   product are dealt to the warps in turn (product()). All f16 operands live in one array, tile_h (both operand
//   sides read it), with row-major regions:
//   dkdv (owns BLOCK_N keys of one (b, hk), ceil(Nk / BLOCK_N) * B * Hk workgroups; loops over the g query heads and
//     the query tiles that can see the keys): K^T, V^T [H][N] once; per query tile Q, dO [M][H], then P^T z and dS^T
//     [N][M]. Per tile: S = Q K^T, dP = dO V^T -> tile_c [2][M][N]; the element pass (invocations over rows and 32-key
//     words) -> P^T z, dS^T, adm_w; dV += (P z)^T dO and dK += dS^T Q, CW = min(H, 2 M) columns at a time through
//     tile_c into acc_v, acc_k [N][H] (f32).
//   dq_main (owns BLOCK_M rows of one (b, h), ceil(Nq / BLOCK_M) * B * Hq workgroups; visits the key tiles as the
//     scalar dq pass): Q, dO [M][H] once; per key tile K^T, V^T [H][N], K [N][H], then dS [M][N]. dQ += dS K, CW =
//     min(H, 2 N) columns at a time into acc_q [M][H].
//   Once a tile the accumulations multiply in (dkdv: Q, dO; dq: K) held a non-finite value, those products skip the
//   inadmissible entries (as the scalar kernels' keep masks): the invocations compute them from the same f16 tiles
//   and the admissibility bits adm_w [M][ceil(N / 32)].
// Workgroup memory (bytes), M, N, H as above: 2 (2 M H + 3 H N + 2 M N) + 4 * 2 M N + 4 M ceil(N / 32) + 2 * 4 M + 16,
//   plus dkdv 8 N H (acc_k, acc_v) or dq 4 M H (acc_q); each variable rounded up to 16 (src/attention/matrix.ts).

enable f16;

//!include attention_common.wgsl
//!include attention_parts.wgsl
//!include attention_mma_body.wgsl
//!include attention_mma_shared.wgsl

alias io_t = f32;

@group(0) @binding(6) var<storage, read> dout: array<io_t>;
@group(0) @binding(7) var<storage, read> lse: array<f32>;
@group(0) @binding(8) var<storage, read> delta: array<f32>;
@group(0) @binding(9) var<storage, read_write> dq: array<io_t>;
@group(0) @binding(10) var<storage, read_write> dk: array<io_t>;
@group(0) @binding(11) var<storage, read_write> dv: array<io_t>;
@group(0) @binding(12) var<storage, read_write> dmask: array<f32>;

override LANES: u32 = 32u;
override AWN: u32 = (BLOCK_N + 31u) / 32u;                       // admissibility words per query row

var<workgroup> tile_h: array<f16, 2u * BLOCK_M * HEAD_DIM_MAX + 3u * HEAD_DIM_MAX * BLOCK_N + 2u * BLOCK_M * BLOCK_N>;
var<workgroup> tile_c: array<f32, 2u * BLOCK_M * BLOCK_N>;      // S, dP [M][N]; then product chunks
var<workgroup> acc_k: array<f32, BLOCK_N * HEAD_DIM_MAX>;       // dkdv
var<workgroup> acc_v: array<f32, BLOCK_N * HEAD_DIM_MAX>;       // dkdv
var<workgroup> acc_q: array<f32, BLOCK_M * HEAD_DIM_MAX>;       // dq_main
var<workgroup> adm_w: array<u32, BLOCK_M * ((BLOCK_N + 31u) / 32u)>;
var<workgroup> lse_t: array<f32, BLOCK_M>;     // encoded: MASKED (no admissible key), POISON (NaN row) or lse
var<workgroup> delta_t: array<f32, BLOCK_M>;

fn mm_left(i: u32) -> f32 { return f32(tile_h[i]); }
fn mm_right(i: u32) -> f32 { return f32(tile_h[i]); }


// C [R][C] (at c_off, row stride c_stride) = L [R][kdim] (a_off, a_stride) x R [kdim][C] (b_off, b_stride), f32 sums,
// into tile_c; the SM_M x SM_N blocks dealt to the warps in turn. R, C multiples of SM_M, SM_N; kdim of SM_K.
fn product(a_off: u32, a_stride: u32, b_off: u32, b_stride: u32, c_off: u32, c_stride: u32, R: u32, C: u32, kdim: u32, warp: u32, lane: u32) {
  let per_row = C / SM_N;
  for (var blk = warp; blk < (R / SM_M) * per_row; blk += THREADS / LANES) {
    let br = (blk / per_row) * SM_M;
    let bc = (blk % per_row) * SM_N;
    var acc = mm_zero();
    for (var kk = 0u; kk < kdim; kk += SM_K) {
      acc = mm_mac(acc, a_off + br * a_stride + kk, a_stride, b_off + kk * b_stride + bc, b_stride, lane);
    }
    mm_store(acc, c_off + br * c_stride + bc, c_stride, lane);
  }
}

// S = Q K^T -> tile_c [0][M][N] and dP = dO V^T -> tile_c [1][M][N] (one call site of product: lavapipe's compile
// time grows with every inlined copy of the matrix steps).
fn score_products(q_at: u32, do_at: u32, kt_at: u32, vt_at: u32, d_end: u32, dv_end: u32, warp: u32, lane: u32) {
  for (var job = 0u; job < 2u; job++) {
    let second = job == 1u;
    product(select(q_at, do_at, second), HEAD_DIM_MAX, select(kt_at, vt_at, second), BLOCK_N, job * BLOCK_M * BLOCK_N, BLOCK_N,
            BLOCK_M, BLOCK_N, select(d_end, dv_end, second), warp, lane);
  }
}

// The fallback products' loops run to min(X, tid + X) = X: a bound LLVM cannot fold, so lavapipe does not unroll them
// (its compile time grows with every unrolled copy).
fn adm_at(r: u32, c: u32) -> bool {
  return (adm_w[r * AWN + c / 32u] & (1u << (c % 32u))) != 0u;
}

fn round_up(x: u32, m: u32) -> u32 {
  return (x + m - 1u) / m * m;
}

// Rows [row0, row0 + BLOCK_M) of head (b, h): Q and dO (f16, zero-filled) at q_off / do_off (row stride H), lse_t,
// delta_t. `note`: the accumulations multiply Q and dO in (dkdv).
fn load_rows(tid: u32, b: u32, h: u32, row0: u32, q_at: u32, do_at: u32, note: bool) {
  let Nq = params.Nq;
  let bh = b * params.Hq + h;
  let q_base = params.q_off + b * params.q_sb + h * params.q_sh;
  for (var e = tid; e < BLOCK_M * HEAD_DIM_MAX; e += THREADS) {
    let r = e / HEAD_DIM_MAX;
    let d = e % HEAD_DIM_MAX;
    var xq = 0.0;
    var xo = 0.0;
    if (row0 + r < Nq) {
      if (d < params.D) { xq = f32(q[q_base + (row0 + r) * params.q_sn + d]); }
      if (d < params.Dv) { xo = f32(dout[(bh * Nq + row0 + r) * params.Dv + d]); }
    }
    tile_h[q_at + e] = to_tile(xq, note);
    tile_h[do_at + e] = to_tile(xo, note);
  }
  for (var r = tid; r < BLOCK_M; r += THREADS) {
    var l = MASKED;
    var dl = 0.0;
    if (row0 + r < Nq) {
      let x = lse[bh * Nq + row0 + r];
      l = select(select(x, MASKED, is_neg_inf(x)), POISON, is_nan(x));
      dl = delta[bh * Nq + row0 + r];
    }
    lse_t[r] = l;
    delta_t[r] = dl;
  }
}

// Keys [c0, c0 + BLOCK_N) of kv head (b, hk): K^T and V^T [H][N] at kt_at / vt_at, and K [N][H] at k_at unless it is
// 0xffffffff. `note`: the accumulations multiply K in (dq).
fn load_keys(tid: u32, b: u32, hk: u32, c0: u32, kt_at: u32, vt_at: u32, k_at: u32, note: bool) {
  let k_base = params.k_off + b * params.k_sb + hk * params.k_sh;
  let v_base = params.v_off + b * params.v_sb + hk * params.v_sh;
  for (var e = tid; e < BLOCK_N * HEAD_DIM_MAX; e += THREADS) {
    let c = e / HEAD_DIM_MAX;
    let d = e % HEAD_DIM_MAX;
    var xk = 0.0;
    var xv = 0.0;
    if (c0 + c < params.Nk) {
      if (d < params.D) { xk = f32(k[k_base + (c0 + c) * params.k_sn + d]); }
      if (d < params.Dv) { xv = f32(v[v_base + (c0 + c) * params.v_sn + d]); }
    }
    let hk16 = to_tile(xk, note);
    tile_h[kt_at + d * BLOCK_N + c] = hk16;
    tile_h[vt_at + d * BLOCK_N + c] = f16(xv);
    if (k_at != 0xffffffffu) {
      tile_h[k_at + e] = hk16;
    }
  }
}

// The element pass of one tile (rows row0.., keys c0..; S and dP in tile_c): p z and dS of every entry, written as f16
// to pz_at / ds_at ([N][M] when transposed, else [M][N]; pz_at 0xffffffff: not written), the admissibility bits, and
// (dq, write_dmask) dmask. Invocation unit (r, w) owns row r's keys 32 w .. 32 w + 31.
fn element_pass(tid: u32, b: u32, h: u32, row0: u32, c0: u32, pz_at: u32, ds_at: u32, transposed: bool, write_dm: bool) {
  let MN = BLOCK_M * BLOCK_N;
  let bh = b * params.Hq + h;
  let use_dropout = params.dropout_p > 0.0;
  let inv_keep = 1.0 / (1.0 - params.dropout_p);
  for (var u = tid; u < BLOCK_M * AWN; u += THREADS) {
    let r = u / AWN;
    let w = u % AWN;
    let i = row0 + r;
    let lse_i = lse_t[r];
    let delta_i = delta_t[r];
    var word = 0u;
    for (var c = 32u * w; c < min(BLOCK_N, 32u * w + 32u); c += 4u) {
      let jv = vec4<u32>(c0 + c) + vec4<u32>(0u, 1u, 2u, 3u);
      let at = r * BLOCK_N + c;
      let s = admit(vec4<f32>(tile_c[at], tile_c[at + 1u], tile_c[at + 2u], tile_c[at + 3u]), i, jv, b, h);
      let dp = vec4<f32>(tile_c[MN + at], tile_c[MN + at + 1u], tile_c[MN + at + 2u], tile_c[MN + at + 3u]);
      let adm = s > vec4<f32>(MASKED);
      let p = select(vec4<f32>(0.0), exp(s - lse_i), s > vec4<f32>(NEG_INF_SCORE));
      var z = vec4<f32>(1.0);
      if (use_dropout) {
        z = inv_keep * vec4<f32>(dropout_keep(bh, i, jv.x), dropout_keep(bh, i, jv.y), dropout_keep(bh, i, jv.z), dropout_keep(bh, i, jv.w));
      }
      let nan_at = adm & vec4<bool>((lse_i >= POISON));
      let nan4 = vec4<f32>(nan_f32());
      let ds = select(select(vec4<f32>(0.0), p * (z * dp - delta_i), adm), nan4, nan_at);
      let pz = select(p * z, nan4, nan_at);
      for (var t = 0u; t < 4u; t++) {
        let cc = c + t;
        let slot = select(r * BLOCK_N + cc, cc * BLOCK_M + r, transposed);
        if (pz_at != 0xffffffffu) {
          tile_h[pz_at + slot] = f16(pz[t]);
        }
        tile_h[ds_at + slot] = f16(ds[t]);
        if (write_dm && i < params.Nq && c0 + cc < params.Nk) {
          dmask[(bh * params.Nq + i) * params.Nk + c0 + cc] = ds[t];
        }
      }
      word |= adm_bits(s) << (c % 32u);
    }
    adm_w[r * AWN + w] = word;
  }
}

@compute @workgroup_size(THREADS)
fn dkdv(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let th = tile_and_head(wg, nwg, (params.Nk + BLOCK_N - 1u) / BLOCK_N);
  if (th.y >= params.B * params.Hk) {
    return;
  }
  let b = th.y / params.Hk;
  let hk = th.y % params.Hk;
  let c0 = th.x * BLOCK_N;
  let g = params.Hq / params.Hk;
  let warp = tid / LANES;
  let lane = tid % LANES;
  let H = HEAD_DIM_MAX;
  let M = BLOCK_M;
  let N = BLOCK_N;
  // tile_h regions
  let KT = 0u;
  let VT = H * N;
  let Q = 2u * H * N;
  let DO = Q + M * H;
  let PT = DO + M * H;
  let DST = PT + N * M;
  let CW = min(H, 2u * M);
  let d_end = round_up(params.D, SM_K);
  let dv_end = round_up(params.Dv, SM_K);

  load_keys(tid, b, hk, c0, KT, VT, 0xffffffffu, false);
  for (var e = tid; e < N * H; e += THREADS) {
    acc_k[e] = 0.0;
    acc_v[e] = 0.0;
  }
  // Under causal, query rows before causal_row_start(c0) see none of these keys: start at the tile holding it.
  let row_start = (causal_row_start(c0) / BLOCK_M) * BLOCK_M;
  for (var h = hk * g; h < hk * g + g; h++) {
    let n_tiles = query_tile_count(b, h, c0, row_start);
    for (var n = 0u; n < n_tiles; n++) {
      let row0 = query_tile_start(b, h, c0, row_start, n);
      workgroupBarrier();   // the previous tile's readers are done (also orders the K / V load)
      load_rows(tid, b, h, row0, Q, DO, true);
      workgroupBarrier();
      score_products(Q, DO, KT, VT, d_end, dv_end, warp, lane);
      workgroupBarrier();
      element_pass(tid, b, h, row0, c0, PT, DST, true, false);
      workgroupBarrier();
      let skip_masked = atomicLoad(&nonfinite_seen) != 0u;
      // dV += (P z)^T dO, then dK += dS^T Q, CW columns at a time
      for (var which = 0u; which < 2u; which++) {
        let left = select(PT, DST, which == 1u);
        let right = select(DO, Q, which == 1u);
        let cols = select(dv_end, d_end, which == 1u);
        for (var cb = 0u; cb < cols; cb += CW) {
          let width = min(CW, cols - cb);
          if (!skip_masked) {
            product(left, M, right + cb, H, 0u, CW, N, width, M, warp, lane);
          } else {
            for (var e = tid; e < N * width; e += THREADS) {
              let c = e / width;
              let d = e % width;
              var s = 0.0;
              for (var r = 0u; r < min(M, tid + M); r++) {   // (an opaque bound: not unrolled, see below)
                if (adm_at(r, c)) {
                  s = fma(f32(tile_h[left + c * M + r]), f32(tile_h[right + r * H + cb + d]), s);
                }
              }
              tile_c[c * CW + d] = s;
            }
          }
          workgroupBarrier();
          for (var e = tid; e < N * width; e += THREADS) {
            let c = e / width;
            let at = c * H + cb + e % width;
            if (which == 0u) {
              acc_v[at] += tile_c[c * CW + e % width];
            } else {
              acc_k[at] += tile_c[c * CW + e % width];
            }
          }
          workgroupBarrier();
        }
      }
    }
  }
  workgroupBarrier();
  let sc = params.scale;
  for (var e = tid; e < N * H; e += THREADS) {
    let c = e / H;
    let d = e % H;
    let j = c0 + c;
    if (j < params.Nk) {
      let row = (b * params.Hk + hk) * params.Nk + j;
      if (d < params.D) { dk[row * params.D + d] = io_t(acc_k[e] * sc); }
      if (d < params.Dv) { dv[row * params.Dv + d] = io_t(acc_v[e]); }
    }
  }
  flex_report();
}

@compute @workgroup_size(THREADS)
fn dq_main(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wg: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
  let qt = query_tile(wg, nwg);
  if (!qt.valid) {
    return;
  }
  let warp = tid / LANES;
  let lane = tid % LANES;
  let H = HEAD_DIM_MAX;
  let M = BLOCK_M;
  let N = BLOCK_N;
  let Q = 0u;
  let DO = M * H;
  let KT = 2u * M * H;
  let VT = KT + H * N;
  let K = VT + H * N;
  let DS = K + N * H;
  let CW = min(H, 2u * N);
  let d_end = round_up(params.D, SM_K);
  let dv_end = round_up(params.Dv, SM_K);
  let write_dm = params.write_dmask != 0u;

  load_rows(tid, qt.b, qt.h, qt.row0, Q, DO, false);
  for (var e = tid; e < M * H; e += THREADS) {
    acc_q[e] = 0.0;
  }
  var key_end = params.Nk;
  if (!write_dm) {
    key_end = causal_key_end(qt.row0, BLOCK_M);
  }
  let n_tiles = key_tile_count(qt.b, qt.h, qt.row0, key_end);
  for (var n = 0u; n < n_tiles; n++) {
    let c0 = key_tile_start(qt.b, qt.h, qt.row0, n);
    workgroupBarrier();
    load_keys(tid, qt.b, qt.hk, c0, KT, VT, K, true);
    workgroupBarrier();
    score_products(Q, DO, KT, VT, d_end, dv_end, warp, lane);
    workgroupBarrier();
    element_pass(tid, qt.b, qt.h, qt.row0, c0, 0xffffffffu, DS, false, write_dm);
    workgroupBarrier();
    let skip_masked = atomicLoad(&nonfinite_seen) != 0u;
    // dQ += dS K, CW columns at a time
    for (var cb = 0u; cb < d_end; cb += CW) {
      let width = min(CW, d_end - cb);
      if (!skip_masked) {
        product(DS, N, K + cb, H, 0u, CW, M, width, N, warp, lane);
      } else {
        for (var e = tid; e < M * width; e += THREADS) {
          let r = e / width;
          let d = e % width;
          var s = 0.0;
          for (var c = 0u; c < min(N, tid + N); c++) {
            if (adm_at(r, c)) {
              s = fma(f32(tile_h[DS + r * N + c]), f32(tile_h[K + c * H + cb + d]), s);
            }
          }
          tile_c[r * CW + d] = s;
        }
      }
      workgroupBarrier();
      for (var e = tid; e < M * width; e += THREADS) {
        let r = e / width;
        acc_q[r * H + cb + e % width] += tile_c[r * CW + e % width];
      }
      workgroupBarrier();
    }
  }
  workgroupBarrier();
  let sc = params.scale;
  for (var e = tid; e < M * params.D; e += THREADS) {
    let r = e / params.D;
    let d = e % params.D;
    let i = qt.row0 + r;
    if (i < params.Nq) {
      dq[(qt.bh * params.Nq + i) * params.D + d] = io_t(acc_q[r * H + d] * sc);
    }
  }
  flex_report();
}
