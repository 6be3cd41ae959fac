// Fused scaled dot-product attention, forward (FlashAttention-style online softmax). Entry point: main.
//
// Dimensions
//   B batch, Hq query heads, Hk key/value heads (Hq = g * Hk; query head h reads kv head h / g),
//   Nq queries, Nk keys, D query/key head dim, Dv value head dim (D, Dv <= HEAD_DIM_MAX).
// Reads
//   q [B, Hq, Nq, D], k [B, Hk, Nk, D], v [B, Hk, Nk, Dv]: any element offset and strides over (batch, head,
//     row) from params (x_off, x_sb, x_sh, x_sn); the last dim is contiguous; a stride of 0 broadcasts.
//   mask: params.mask_kind 0 none (a dummy is bound), 1 bool (u32 0/1 per element, 1 = may attend),
//     2 float (f32 bits, added to the scaled score; -inf excludes the key). Element (b, h, i, j) is at
//     m_off + b*m_sb + h*m_sh + i*m_sq + j*m_sk (0 strides broadcast).
// Writes
//   o [B, Hq, Nq, Dv] at params.o_l (dense unless a compiled step writes it where a layout copy put it);
//   lse [B, Hq, Nq] contiguous (natural log of the undropped softmax
//   denominator, max-shifted: lse = m + log(l)). A row with no admissible key gets o = 0 and lse = -inf; a row
//   whose admissible scores hold a NaN or +inf, or are all -inf, gets o = NaN and lse = NaN.
// Semantics (attention_common.wgsl says which keys are admissible and how non-finite values behave)
//   s_ij = scale * dot(q_i, k_j) (+ float mask), p = softmax_j over the admissible keys. With dropout_p > 0:
//   o_i = sum_j p_ij * keep_ij / (1 - dropout_p) * v_j, keep_ij = attn_dropout_keep(seed0, seed1, b*Hq + h, i, j, p).
// Tiling (register-blocked: every thread computes a 4 x 4 block of scores and a 4-row block of o)
//   One workgroup = BLOCK_M query rows of one (b, h); ceil(Nq / BLOCK_M) * B * Hq workgroups over a folded grid
//   (tile_and_head); THREADS threads.
//   RG = BLOCK_M / 4 row groups: row group a holds the tile rows a, a + RG, a + 2 RG, a + 3 RG (interleaved, so
//   neighbouring threads read neighbouring rows: conflict-free workgroup-memory reads with the odd row stride).
//   CG = BLOCK_N / 4 key groups, likewise interleaved. The query tile stays in workgroup memory; key tiles of
//   BLOCK_N rows are streamed, K and then V through the same buffer. Per key tile (4 barriers):
//     1. K -> kv_tile. Thread tid < RG * CG, (a, c) = (tid / CG, tid % CG), computes its 4 x 4 scores with
//        score_block (vec4 dot products over HEAD_DIM_MAX, 8 vec4 reads per 16 dot4), admits them (scale, mask,
//        causal, encoding) and writes the 4 row maxima of its block -> red[c][a].
//     2. Each thread folds red[.][a] into the tile max of its rows (redundantly: no extra barrier), rescales.
//        Score threads write p = exp(s - m) -> p_tile[key][a] (vec4 over the 4 rows; 0 where dropped) and keep
//        a partial row sum l over their own keys (one cross-thread sum at the very end). V -> kv_tile.
//     3. o: thread (a, e) = (tid / TD, tid % TD), TD = THREADS / RG, owns rows of group a and the vec4 columns
//        e + TD * n (n < DVN = ceil(HEAD_DIM_MAX / 4 / TD) <= 4) in named registers (Acc; with register arrays
//        instead, the D 128 forward ran 1.5x slower on an H100): o += p v with one p_tile read (4 rows) and DVN v
//        reads per key.
//   Causal: key tiles starting after the tile's last query row (shifted by causal_diag) are never visited. With a
//   block mask (params.bm_on), only the key tiles of the blocks it lists for the tile's query block are.
//   Row maxima and sums cross threads through red, behind barriers the tile needs anyway. attention_rows.wgsl does
//   it with workgroup memory only: each of the CG key groups writes its partial, each reader folds CG of them. The
//   'subgroups' variant includes attention_rows_subgroups.wgsl instead: the CG threads of a row group (consecutive
//   invocations) fold their partials with subgroupShuffleXor butterflies, one thread writes the result, each reader
//   reads one. kiln uses it where the adapter has subgroups, its invocations fill subgroups in index order (probed
//   at init), CG <= the smallest subgroup size and RG * CG is a multiple of the largest (so the score role is
//   uniform per subgroup); elsewhere, and with the flag attention.subgroups = false, the plain file.
//   Split head dim (PARTS > 1, 'subgroups' variant only), as in attention_backward.wgsl: score block (a, c) is
//   computed by the PARTS consecutive invocations PARTS * (a * CG + c) + part, each over the head-dim vec4s d4 = part,
//   part + PARTS, ..., and fold_parts adds them; the row folds then step over lanes PARTS apart, and lane 0 of a block
//   writes p. kiln uses it on hardware adapters where RG * CG < THREADS (H100, D 128: 64 score blocks for 128
//   threads), with CG * PARTS <= the smallest subgroup.
//   Rows / keys / dims past Nq / Nk / D are zero-filled in the tiles.
// Workgroup memory (bytes), HD4 = HEAD_DIM_MAX / 4, RG = BLOCK_M / 4, CG = BLOCK_N / 4, E = 16 (f32 tiles) or 8 (the f16
// variant's tile_t = f16); src/attention/tiles.ts (tileBytes) computes the same:
//   E * (BLOCK_M + BLOCK_N) * (HD4 + 1) + 16 * (BLOCK_N * (RG + 1) + CG * (RG + 1)) + 4 * BLOCK_N * (RG + 1) + 16
//   (q_tile, kv_tile, p_tile, red, adm_tile, nonfinite_seen; +1 paddings keep the strided reads / writes
//   bank-conflict-free)
//   src/attention/tiles.ts (chooseTiles) takes the first (BLOCK_M, BLOCK_N) of 64x64, 64x32, 32x64, 32x32, 64x16,
//   32x16, 16x32, 16x16, 16x8, ... that fits; THREADS = RG * CG, doubled while DVN > 4, or while THREADS < 128 and
//   DVN > 1 on a hardware adapter (on an H100, 128-thread workgroups beat 64-thread ones: D 128 forward 6.8 vs
//   4.2 TFLOP/s; on lavapipe, a CPU, idle score-phase threads only cost, so there only DVN > 4 adds threads):
//   48 KiB (H100 via Dawn): HEAD_DIM_MAX 32: 64x64, 256 thr, 44 560 B; 64: 64x32, 128 thr, 39 184 B;
//                           128: 32x32, 128 thr, 40 720 B; 256: 16x16, 128 thr, 35 216 B
//   48 KiB, f16 variant:    HEAD_DIM_MAX 128: 64x32 (f32 tiles: 32x32), the same tiles as f32 at HEAD_DIM_MAX 64
//   32 KiB (lavapipe):      32: 64x32, 128 thr, 26 896 B; 64: 32x32, 64 thr, 24 336 B;
//                           128: 32x16, 64 thr, 28 816 B; 256: 16x8, 64 thr, 25 936 B
// On software adapters the plan runs attention_forward_rows.wgsl instead where it can (register-tiled, no workgroup
// memory or barriers; same bindings, params and semantics); it includes this file for what both share (store_row, weights...).
// Constraints: BLOCK_M % 4 == 0, BLOCK_N % 4 == 0, HEAD_DIM_MAX % 4 == 0, max(D, Dv) <= HEAD_DIM_MAX,
//   THREADS >= RG * CG * PARTS, THREADS % RG == 0, DVN <= 4, THREADS <= maxComputeInvocationsPerWorkgroup,
//   memory above <= maxComputeWorkgroupStorageSize (src/attention/tiles.ts checks them all before a launch).

//!include attention_common.wgsl
//!include attention_rows.wgsl
//!include attention_parts.wgsl

// Storage element of q, k, v and o. The f16 variant (kiln's kernel loader, variant 'f16', on adapters with
// shader-f16) puts `enable f16;` on line 1 and makes this f16: loads widen to f32, every score, exponent, running
// max / sum and o accumulator stays f32, and o is rounded to f16 once, at the store.
alias io_t = f32;
// Element of the workgroup tiles of inputs (q_tile, kv_tile): f16 in the f16 variant too, which holds the f16 inputs exactly
// in half the bytes (so larger tiles fit); every read widens to f32 before any arithmetic.
alias tile_t = f32;

@group(0) @binding(5) var<storage, read_write> o: array<io_t>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;

// Derived; leave them unset.
override TD: u32 = THREADS / (BLOCK_M / 4u);       // threads per row group in the p v product
override DVN: u32 = (HEAD_DIM_MAX / 4u + THREADS / (BLOCK_M / 4u) - 1u) / (THREADS / (BLOCK_M / 4u));

var<workgroup> q_tile: array<vec4<tile_t>, BLOCK_M * (HEAD_DIM_MAX / 4u + 1u)>;
var<workgroup> kv_tile: array<vec4<tile_t>, BLOCK_N * (HEAD_DIM_MAX / 4u + 1u)>;
var<workgroup> p_tile: array<vec4<f32>, BLOCK_N * (BLOCK_M / 4u + 1u)>;
var<workgroup> red: array<vec4<f32>, (BLOCK_N / 4u) * (BLOCK_M / 4u + 1u)>;
var<workgroup> adm_tile: array<u32, BLOCK_N * (BLOCK_M / 4u + 1u)>;   // [key][row group]: adm_bits of the 4 rows

// Operand pair 0 of score_block: query rows (q_tile) against key rows (kv_tile holding K).
fn row_vec(pair: u32, idx: u32) -> vec4<f32> {
  return vec4<f32>(q_tile[idx]);
}

fn col_vec(pair: u32, idx: u32) -> vec4<f32> {
  return vec4<f32>(kv_tile[idx]);
}

fn extra_input_at(i: u32) -> f32 {
  return 0.0;
}

fn hmax(x: vec4<f32>) -> f32 {
  return max(max(x.x, x.y), max(x.z, x.w));
}

fn hsum(x: vec4<f32>) -> f32 {
  return (x.x + x.y) + (x.z + x.w);
}

// exp(m_old - m_new), 1 where no weight has been accumulated yet (m_old MASKED or NEG_INF_SCORE: the accumulators are 0).
fn rescale(m_old: vec4<f32>, m_new: vec4<f32>) -> vec4<f32> {
  return select(exp(m_old - m_new), vec4<f32>(1.0), m_old <= vec4<f32>(NEG_INF_SCORE));
}

// Unnormalised softmax weights of encoded scores s against the row max m (0 for inadmissible and -inf scores).
fn weights(s: vec4<f32>, m: f32) -> vec4<f32> {
  return select(vec4<f32>(0.0), exp(s - m), s > vec4<f32>(NEG_INF_SCORE));
}

fn acc_vec(tile: u32, idx: u32) -> vec4<f32> {
  return vec4<f32>(kv_tile[idx]);
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
  let D4 = (D + 3u) / 4u;
  let DV4 = (Dv + 3u) / 4u;
  let use_dropout = params.dropout_p > 0.0;

  // score role: rows sa + RG * i, keys sc + CG * j
  let s_on = tid < RG * CG * PARTS;
  let part = tid % PARTS;
  let sa = (tid / PARTS) / CG;
  let sc = (tid / PARTS) % CG;
  let s_rows = vec4<u32>(qt.row0 + sa) + vec4<u32>(0u, RG, 2u * RG, 3u * RG);
  // p v role: rows oa + RG * i, vec4 columns oe + TD * n
  let oa = tid / TD;
  let oe = tid % TD;
  let o_rows = vec4<u32>(qt.row0 + oa) + vec4<u32>(0u, RG, 2u * RG, 3u * RG);   // o rows of this thread

  let q_base = params.q_off + qt.b * params.q_sb + qt.h * params.q_sh;
  for (var e = tid; e < BLOCK_M * HD4; e += THREADS) {
    let rr = e / HD4;
    let d4 = e % HD4;
    var val = vec4<f32>(0.0);
    if (qt.row0 + rr < Nq && d4 < D4) {
      val = load4(SRC_Q, q_base + (qt.row0 + rr) * params.q_sn + 4u * d4, D - 4u * d4);
    }
    q_tile[rr * RS + d4] = vec4<tile_t>(val);
  }

  let k_base = params.k_off + qt.b * params.k_sb + qt.hk * params.k_sh;
  let v_base = params.v_off + qt.b * params.v_sb + qt.hk * params.v_sh;
  let key_end = causal_key_end(qt.row0, BLOCK_M);

  var ms_run = vec4<f32>(MASKED);   // running max of the score rows
  var l_part = vec4<f32>(0.0);      // partial row sums over this thread's keys
  var mo_run = vec4<f32>(MASKED);   // running max of the o rows (same values, other rows)
  var acc = zero_acc();

  let n_tiles = key_tile_count(qt.b, qt.h, qt.row0, key_end);
  for (var n = 0u; n < n_tiles; n++) {
    let c0 = key_tile_start(qt.b, qt.h, qt.row0, n);
    workgroupBarrier();   // the previous tile's readers are done with kv_tile / p_tile / red
    for (var e = tid; e < BLOCK_N * HD4; e += THREADS) {
      let cc = e / HD4;
      let d4 = e % HD4;
      var val = vec4<f32>(0.0);
      if (c0 + cc < Nk && d4 < D4) {
        val = load4(SRC_K, k_base + (c0 + cc) * params.k_sn + 4u * d4, D - 4u * d4);
      }
      kv_tile[cc * RS + d4] = vec4<tile_t>(val);
    }
    workgroupBarrier();

    // 1. 4 x 4 scores: rows sa + RG * i, keys sc + CG * j
    let jv = vec4<u32>(c0 + sc) + vec4<u32>(0u, CG, 2u * CG, 3u * CG);
    var s = Block4(vec4<f32>(MASKED), vec4<f32>(MASKED), vec4<f32>(MASKED), vec4<f32>(MASKED));
    if (s_on) {
      s = admit_block(score_block(0u, sa, sc, part), qt.row0, sa, jv, qt.b, qt.h);
      publish_max(vec4<f32>(hmax(s.r0), hmax(s.r1), hmax(s.r2), hmax(s.r3)), sa, sc, part);
    }
    workgroupBarrier();

    // 2. online softmax: tile max of the rows (from the partial maxima), p for this thread's keys
    if (s_on) {
      let m_new = max(ms_run, tile_max(sa));
      let alpha = rescale(ms_run, m_new);
      ms_run = m_new;
      let p0 = weights(s.r0, m_new.x);
      let p1 = weights(s.r1, m_new.y);
      let p2 = weights(s.r2, m_new.z);
      let p3 = weights(s.r3, m_new.w);
      l_part = l_part * alpha + vec4<f32>(hsum(p0), hsum(p1), hsum(p2), hsum(p3));
      // column j of the block: key sc + CG * j, vec4 over the 4 rows
      let pb = Block4(p0, p1, p2, p3);
      var w0 = block_column(pb, 0u);
      var w1 = block_column(pb, 1u);
      var w2 = block_column(pb, 2u);
      var w3 = block_column(pb, 3u);
      if (use_dropout) {
        w0 *= keep4(qt.bh, s_rows, jv.x);
        w1 *= keep4(qt.bh, s_rows, jv.y);
        w2 *= keep4(qt.bh, s_rows, jv.z);
        w3 *= keep4(qt.bh, s_rows, jv.w);
      }
      if (part == 0u) {
        for (var j = 0u; j < 4u; j++) {
          let at = (sc + j * CG) * (RG + 1u) + sa;
          p_tile[at] = mat4x4<f32>(w0, w1, w2, w3)[j];
          adm_tile[at] = adm_bits(block_column(s, j));
        }
      }
    }
    for (var e = tid; e < BLOCK_N * HD4; e += THREADS) {
      let cc = e / HD4;
      let d4 = e % HD4;
      var val = vec4<f32>(0.0);
      if (c0 + cc < Nk && d4 < DV4) {
        val = load4(SRC_V, v_base + (c0 + cc) * params.v_sn + 4u * d4, Dv - 4u * d4);
        note_tile(val);
      }
      kv_tile[cc * RS + d4] = vec4<tile_t>(val);
    }
    workgroupBarrier();

    // 3. o += p v (rows oa + RG * i, vec4 columns oe + TD * n)
    let mo_new = max(mo_run, tile_max(oa));
    acc = scale_acc(acc, rescale(mo_run, mo_new), DVN);
    mo_run = mo_new;
    if (atomicLoad(&nonfinite_seen) == 0u) {
      for (var cc = 0u; cc < BLOCK_N; cc++) {
        acc = acc_step(acc, p_tile[cc * (RG + 1u) + oa], 0u, cc, oe, TD, DVN, vec4<bool>(true));
      }
    } else {
      for (var cc = 0u; cc < BLOCK_N; cc++) {
        let at = cc * (RG + 1u) + oa;
        acc = acc_step(acc, p_tile[at], 0u, cc, oe, TD, DVN, unpack_bits(adm_tile[at]));
      }
    }
  }

  // row sums: fold the partial sums of the CG key groups
  workgroupBarrier();
  if (s_on) {
    publish_sum(l_part, sa, sc, part);
  }
  workgroupBarrier();
  let l = tile_sum(oa);
  var inv = select(vec4<f32>(0.0), 1.0 / l, l > vec4<f32>(0.0));
  if (use_dropout) {
    inv *= 1.0 / (1.0 - params.dropout_p);
  }
  store_row(qt, o_rows.x, oe, TD, DVN, inv.x, mo_run.x, l.x, acc.c0.r0, acc.c1.r0, acc.c2.r0, acc.c3.r0);
  store_row(qt, o_rows.y, oe, TD, DVN, inv.y, mo_run.y, l.y, acc.c0.r1, acc.c1.r1, acc.c2.r1, acc.c3.r1);
  store_row(qt, o_rows.z, oe, TD, DVN, inv.z, mo_run.z, l.z, acc.c0.r2, acc.c1.r2, acc.c2.r2, acc.c3.r2);
  store_row(qt, o_rows.w, oe, TD, DVN, inv.w, mo_run.w, l.w, acc.c0.r3, acc.c1.r3, acc.c2.r3, acc.c3.r3);
  flex_report();
}

// Writes one o row's vec4 columns c0 + step * n (n < count <= 4: a0..a3) times inv, and its lse (with c0 == 0). m is the
// row's max encoded score: MASKED (no admissible key: o = 0, lse = -inf), NEG_INF_SCORE or POISON (o and lse NaN).
fn store_row(qt: QueryTile, row: u32, c0: u32, step: u32, count: u32, inv: f32, m: f32, l: f32, a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32>) {
  if (row >= params.Nq) {
    return;
  }
  let nan_row = m == NEG_INF_SCORE || m >= POISON;
  let nan4 = vec4<f32>(nan_f32());
  let o_base = at(params.o_l, qt.b, qt.h, row);
  store4_o(o_base, c0, select(a0 * inv, nan4, nan_row));
  if (count > 1u) { store4_o(o_base, c0 + step, select(a1 * inv, nan4, nan_row)); }
  if (count > 2u) { store4_o(o_base, c0 + 2u * step, select(a2 * inv, nan4, nan_row)); }
  if (count > 3u) { store4_o(o_base, c0 + 3u * step, select(a3 * inv, nan4, nan_row)); }
  if (c0 == 0u) {
    lse[qt.bh * params.Nq + row] = select(select(m + log(l), neg_inf_f32(), m <= MASKED), nan_f32(), nan_row);
  }
}

// o[o_base + 4 d4 ..] = val, clipped to the row's Dv elements.
fn store4_o(o_base: u32, d4: u32, val: vec4<f32>) {
  for (var c = 0u; c < 4u && 4u * d4 + c < params.Dv; c++) {
    o[o_base + 4u * d4 + c] = io_t(val[c]);
  }
}

// Dropout keep multipliers (1 kept, 0 dropped) of rows `rows` at key j.
fn keep4(bh: u32, rows: vec4<u32>, j: u32) -> vec4<f32> {
  return vec4<f32>(dropout_keep(bh, rows.x, j), dropout_keep(bh, rows.y, j), dropout_keep(bh, rows.z, j), dropout_keep(bh, rows.w, j));
}
