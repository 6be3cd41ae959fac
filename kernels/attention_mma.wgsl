// Fused scaled dot-product attention forward on matrix units (FlashAttention-style online softmax). Entry point: main.
// The semantics are attention_forward.wgsl's, to the letter (attention_common.wgsl: admissibility, score encoding,
// masks, causal alignment, GQA, dropout stream, NaN rows, fully masked rows); only where the products run differs.
//
// Dimensions: B batch, Hq query heads, Hk key/value heads (query head h reads kv head h / (Hq / Hk)), Nq queries,
//   Nk keys, D query/key head dim, Dv value head dim (D, Dv <= HEAD_DIM_MAX, a multiple of 16).
// Reads: q [B, Hq, Nq, D], k [B, Hk, Nk, D], v [B, Hk, Nk, Dv] (io_t: f32, or f16 where the launcher swaps the alias),
//   strided as params say; the mask as attention_forward.wgsl.
// Writes: o [B, Hq, Nq, Dv] contiguous (io_t), lse [B, Hq, Nq] (f32; -inf for a row with no admissible key, NaN for a
//   NaN row), as attention_forward.wgsl.
// Precision: q, k, v are rounded once to f16 into workgroup memory (exact for f16 inputs; f32 inputs only reach this
//   kernel under setMatmulPrecision('medium'), with f16's range). S = Q K^T and P V are f16 x f16 products summed in
//   f32; the softmax (max, exp, sums, rescaling, o accumulators) is f32; p is rounded to f16 for P V, as FlashAttention's
//   f16 kernels do, while the row sums add the f32 p.
// Tiling: one workgroup = BLOCK_M = WARPS * SM_M query rows of one (b, h), THREADS = WARPS * LANES invocations: warp w
//   (invocations w LANES ...; one subgroup where the body is the builtins') owns rows w SM_M .. of every product.
//   ceil(Nq / BLOCK_M) * B * Hq workgroups over a folded grid (attention_common.wgsl's query_tile). Per key tile of
//   BLOCK_N keys (visited as the scalar kernel: causal tiles past the query tile's last row are never visited):
//     1. K^T -> tile_b [HEAD_DIM_MAX][BLOCK_N] (f16).
//     2. S = Q K^T: each warp, BLOCK_N / SM_N result blocks over ceil(D / SM_K) steps -> tile_c [BLOCK_M][BLOCK_N] f32.
//     3. Invocation r < BLOCK_M owns row r's softmax: admit (scale, masks, causal, encoding), tile max, rescale factor
//        -> row_alpha, p = exp(s - m) (times the dropout keep) -> the P tile (f16, in tile_a after Q), its row sum, and
//        the row's admissibility bits -> adm_w. Meanwhile V -> tile_b [BLOCK_N][HEAD_DIM_MAX] (f16), noting a
//        non-finite value in nonfinite_seen.
//     4. o_acc = o_acc * alpha + P V, CW = min(BLOCK_N, HEAD_DIM_MAX) columns at a time: each warp's SM_M x CW product
//        -> tile_c, barrier, every invocation updates its share of o_acc [BLOCK_M][HEAD_DIM_MAX] (f32). Once a V tile
//        held a non-finite value, the products skip inadmissible entries (0 x inf would be NaN where the scalar kernels
//        give a finite row): the invocations then compute P V themselves from the same f16 tiles, reading adm_w.
//   Finally o = o_acc / l (zero for a row with no admissible key, NaN for a NaN row) and lse = m + log l.
//   The matrix steps go through three functions of the body (an //!include; see attention_mma_body.wgsl): mm_zero,
//   mm_mac(acc, a_off, a_stride, b_off, b_stride, lane) over tile_a x tile_b, and mm_store(acc, c_off, c_stride, lane)
//   into tile_c. attention_mma_body.wgsl is portable WGSL (CI runs it); attention_mma_body_sgmatrix.wgsl uses the
//   subgroup-matrix builtins (the launcher swaps it in with the probed config's shim).
// Workgroup memory (bytes; src/attention/tiles.ts mmaTileBytes computes the same), M = BLOCK_M, N = BLOCK_N,
//   H = HEAD_DIM_MAX: 2 (M H + M N) + 2 N H + 4 M N + 4 M H + 3 * 4 M + 4 M ceil(N / 32) + 16, each variable rounded up
//   to 16 bytes (tile_a, tile_b, tile_c, o_acc, row_alpha / row_m / row_l, adm_w, nonfinite_seen).
// Constraints: BLOCK_M = WARPS * SM_M; BLOCK_N a multiple of SM_N, SM_K and 4; HEAD_DIM_MAX a multiple of SM_K and
//   SM_N; THREADS = WARPS * LANES >= BLOCK_M.

enable f16;

//!include attention_common.wgsl
//!include attention_parts.wgsl
//!include attention_mma_body.wgsl
//!include attention_mma_shared.wgsl

// Storage element of q, k, v and o: the launcher makes it f16 for f16 inputs.
alias io_t = f32;

@group(0) @binding(5) var<storage, read_write> o: array<io_t>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;

override LANES: u32 = 32u;                                   // invocations per warp
override CW: u32 = min(BLOCK_N, HEAD_DIM_MAX);               // o columns per P V chunk
override AW: u32 = (BLOCK_N + 31u) / 32u;                    // admissibility words per row
override P_OFF: u32 = BLOCK_M * HEAD_DIM_MAX;                // the P tile's offset in tile_a

var<workgroup> tile_a: array<f16, BLOCK_M * HEAD_DIM_MAX + BLOCK_M * BLOCK_N>;   // Q [M][H], then P [M][N]
var<workgroup> tile_b: array<f16, BLOCK_N * HEAD_DIM_MAX>;                       // K^T [H][N] or V [N][H]
var<workgroup> tile_c: array<f32, BLOCK_M * BLOCK_N>;                            // S [M][N], then P V chunks
var<workgroup> o_acc: array<f32, BLOCK_M * HEAD_DIM_MAX>;
var<workgroup> row_alpha: array<f32, BLOCK_M>;
var<workgroup> row_m: array<f32, BLOCK_M>;
var<workgroup> row_l: array<f32, BLOCK_M>;
var<workgroup> adm_w: array<u32, BLOCK_M * ((BLOCK_N + 31u) / 32u)>;

// The operand arrays of the matrix steps (the builtins' shim names the same: tile_a left, tile_b right).
fn mm_left(i: u32) -> f32 { return f32(tile_a[i]); }
fn mm_right(i: u32) -> f32 { return f32(tile_b[i]); }

fn tile_row(at: u32) -> vec4<f32> {
  return vec4<f32>(tile_c[at], tile_c[at + 1u], tile_c[at + 2u], tile_c[at + 3u]);
}

@compute @workgroup_size(THREADS)
fn main(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let qt = query_tile(wg, nwg);
  if (!qt.valid) {
    return;
  }
  let Nq = params.Nq;
  let Nk = params.Nk;
  let D = params.D;
  let Dv = params.Dv;
  let warp = tid / LANES;
  let lane = tid % LANES;
  let use_dropout = params.dropout_p > 0.0;
  let d_end = (D + SM_K - 1u) / SM_K * SM_K;        // head-dim steps of Q K^T
  let dv_end = (Dv + CW - 1u) / CW * CW;            // o columns the P V chunks cover

  let q_base = params.q_off + qt.b * params.q_sb + qt.h * params.q_sh;
  for (var e = tid; e < BLOCK_M * HEAD_DIM_MAX; e += THREADS) {
    let r = e / HEAD_DIM_MAX;
    let d = e % HEAD_DIM_MAX;
    var x = 0.0;
    if (qt.row0 + r < Nq && d < D) {
      x = f32(q[q_base + (qt.row0 + r) * params.q_sn + d]);
    }
    tile_a[e] = to_tile(x, false);
    o_acc[e] = 0.0;
  }

  let k_base = params.k_off + qt.b * params.k_sb + qt.hk * params.k_sh;
  let v_base = params.v_off + qt.b * params.v_sb + qt.hk * params.v_sh;
  let key_end = causal_key_end(qt.row0, BLOCK_M);
  let row_on = tid < BLOCK_M;
  let i = qt.row0 + tid;            // the query row a row invocation owns
  var m_run = MASKED;
  var l_run = 0.0;

  let n_tiles = key_tile_count(qt.b, qt.h, qt.row0, key_end);
  for (var n = 0u; n < n_tiles; n++) {
    let c0 = key_tile_start(qt.b, qt.h, qt.row0, n);
    // 1. K^T (the previous tile's last P V chunk ended with a barrier: tile_b and tile_c are free)
    for (var e = tid; e < BLOCK_N * HEAD_DIM_MAX; e += THREADS) {
      let c = e / HEAD_DIM_MAX;
      let d = e % HEAD_DIM_MAX;
      var x = 0.0;
      if (c0 + c < Nk && d < D) {
        x = f32(k[k_base + (c0 + c) * params.k_sn + d]);
      }
      tile_b[d * BLOCK_N + c] = to_tile(x, false);
    }
    workgroupBarrier();

    // 2. S = Q K^T, this warp's rows
    for (var j = 0u; j < BLOCK_N; j += SM_N) {
      var acc = mm_zero();
      for (var kk = 0u; kk < d_end; kk += SM_K) {
        acc = mm_mac(acc, warp * SM_M * HEAD_DIM_MAX + kk, HEAD_DIM_MAX, kk * BLOCK_N + j, BLOCK_N, lane);
      }
      mm_store(acc, warp * SM_M * BLOCK_N + j, BLOCK_N, lane);
    }
    workgroupBarrier();

    // 3. the online softmax of row i, and V
    if (row_on) {
      let at0 = tid * BLOCK_N;
      var m_tile = MASKED;
      for (var c = 0u; c < BLOCK_N; c += 4u) {
        let s = admit(tile_row(at0 + c), i, vec4<u32>(c0 + c) + vec4<u32>(0u, 1u, 2u, 3u), qt.b, qt.h);
        tile_c[at0 + c] = s.x;
        tile_c[at0 + c + 1u] = s.y;
        tile_c[at0 + c + 2u] = s.z;
        tile_c[at0 + c + 3u] = s.w;
        m_tile = max(m_tile, max(max(s.x, s.y), max(s.z, s.w)));
      }
      let m_new = max(m_run, m_tile);
      // exp(m_old - m_new), 1 while nothing has been accumulated (m_old MASKED or NEG_INF_SCORE)
      let alpha = select(exp(m_run - m_new), 1.0, m_run <= NEG_INF_SCORE);
      m_run = m_new;
      var l_tile = 0.0;
      var word = 0u;
      for (var c = 0u; c < BLOCK_N; c += 4u) {
        let s = tile_row(at0 + c);
        var p = select(vec4<f32>(0.0), exp(s - m_new), s > vec4<f32>(NEG_INF_SCORE));
        l_tile += (p.x + p.y) + (p.z + p.w);
        if (use_dropout) {
          let j = c0 + c;
          p *= vec4<f32>(dropout_keep(qt.bh, i, j), dropout_keep(qt.bh, i, j + 1u), dropout_keep(qt.bh, i, j + 2u), dropout_keep(qt.bh, i, j + 3u));
        }
        let pa = P_OFF + at0 + c;
        tile_a[pa] = f16(p.x);
        tile_a[pa + 1u] = f16(p.y);
        tile_a[pa + 2u] = f16(p.z);
        tile_a[pa + 3u] = f16(p.w);
        if (c % 32u == 0u) {
          word = 0u;
        }
        word |= adm_bits(s) << (c % 32u);
        adm_w[tid * AW + c / 32u] = word;
      }
      l_run = l_run * alpha + l_tile;
      row_alpha[tid] = alpha;
    }
    for (var e = tid; e < BLOCK_N * HEAD_DIM_MAX; e += THREADS) {
      let c = e / HEAD_DIM_MAX;
      let d = e % HEAD_DIM_MAX;
      var x = 0.0;
      if (c0 + c < Nk && d < Dv) {
        x = f32(v[v_base + (c0 + c) * params.v_sn + d]);
      }
      tile_b[e] = to_tile(x, true);
    }
    workgroupBarrier();

    // 4. o_acc = o_acc * alpha + P V, CW columns at a time. The flag is read after a barrier: the same for every
    // invocation, so the products stay in uniform control flow in fact.
    let skip_masked = atomicLoad(&nonfinite_seen) != 0u;
    for (var cb = 0u; cb < dv_end; cb += CW) {
      if (!skip_masked) {
        for (var j = 0u; j < CW; j += SM_N) {
          var acc = mm_zero();
          for (var kk = 0u; kk < BLOCK_N; kk += SM_K) {
            acc = mm_mac(acc, P_OFF + warp * SM_M * BLOCK_N + kk, BLOCK_N, kk * HEAD_DIM_MAX + cb + j, HEAD_DIM_MAX, lane);
          }
          mm_store(acc, warp * SM_M * BLOCK_N + j, BLOCK_N, lane);
        }
      } else {
        for (var e = tid; e < BLOCK_M * CW; e += THREADS) {
          let r = e / CW;
          let col = cb + e % CW;
          var s = 0.0;
          for (var kc = 0u; kc < min(BLOCK_N, tid + BLOCK_N); kc++) {   // an opaque bound: lavapipe does not unroll it
            if ((adm_w[r * AW + kc / 32u] & (1u << (kc % 32u))) != 0u) {
              s = fma(f32(tile_a[P_OFF + r * BLOCK_N + kc]), f32(tile_b[kc * HEAD_DIM_MAX + col]), s);
            }
          }
          tile_c[r * BLOCK_N + e % CW] = s;
        }
      }
      workgroupBarrier();
      for (var e = tid; e < BLOCK_M * CW; e += THREADS) {
        let r = e / CW;
        let at = r * HEAD_DIM_MAX + cb + e % CW;
        o_acc[at] = o_acc[at] * row_alpha[r] + tile_c[r * BLOCK_N + e % CW];
      }
      workgroupBarrier();
    }
  }

  // o = o_acc / l; a row's max encoded score says what the row is (attention_common.wgsl)
  if (row_on) {
    row_m[tid] = m_run;
    row_l[tid] = l_run;
    if (i < Nq) {
      let nan_row = m_run == NEG_INF_SCORE || m_run >= POISON;
      lse[qt.bh * Nq + i] = select(select(m_run + log(l_run), neg_inf_f32(), m_run <= MASKED), nan_f32(), nan_row);
    }
  }
  workgroupBarrier();
  let keep_scale = select(1.0, 1.0 / (1.0 - params.dropout_p), use_dropout);
  for (var e = tid; e < BLOCK_M * Dv; e += THREADS) {
    let r = e / Dv;
    let d = e % Dv;
    let row = qt.row0 + r;
    if (row < Nq) {
      let m = row_m[r];
      let l = row_l[r];
      let inv = select(0.0, 1.0 / l, l > 0.0) * keep_scale;
      let nan_row = m == NEG_INF_SCORE || m >= POISON;
      o[(qt.bh * Nq + row) * Dv + d] = io_t(select(o_acc[r * HEAD_DIM_MAX + d] * inv, nan_f32(), nan_row));
    }
  }
  flex_report();
}
