// Fused scaled dot-product attention, backward (FlashAttention-2 style). Entry points: delta_main, dkdv, dq_main
// (not `delta` / `dq`: WGSL puts functions and bindings in one namespace and the bindings own those names).
//
// Dimensions: B batch, Hq query heads, Hk kv heads (g = Hq / Hk; query head h reads kv head h / g), Nq queries,
//   Nk keys, D query/key head dim, Dv value head dim (D, Dv <= HEAD_DIM_MAX).
// Inputs (same meaning and params as attention_forward.wgsl): q, k, v (offset + strides from params), mask,
//   o and dout [B, Hq, Nq, Dv] at params.o_l (both), lse [B, Hq, Nq] contiguous (from the forward; -inf = fully masked row,
//   NaN = a NaN row).
// Scores are recomputed exactly as in the forward (score_block and admit, attention_common.wgsl):
//   s_ij = scale * dot(q_i, k_j) (+ float mask), p_ij = exp(s_ij - lse_i) (0 for an inadmissible key or a -inf score),
//   z_ij = keep_ij / (1 - dropout_p) (1 without dropout), dP_ij = z_ij * dot(dO_i, v_j), dS_ij = p_ij * (dP_ij -
//   delta_i) for admissible entries and exactly 0 for the others. In a NaN row (lse NaN) p and dS are NaN at every
//   admissible entry, so dq of the row, and dk, dv (and dmask) of the keys it may see, are NaN.
//
// Register blocking (dkdv and dq_main): a workgroup owns BLOCK_N keys (dkdv) or BLOCK_M query rows (dq_main) and
//   streams tiles of the other side; all four tiles (q, dO, k, v) are row-major in workgroup memory with row
//   stride HEAD_DIM_MAX / 4 + 1 vec4 (odd: neighbouring rows hit different banks), zero-filled past D / Dv / N.
//   Query rows come in RG = BLOCK_M / 4 groups, keys in CG = BLOCK_N / 4 groups; group a holds the tile rows a,
//   a + G, a + 2 G, a + 3 G (interleaved, so neighbouring threads read neighbouring rows).
//   1. scores: thread tid < RG * CG * PARTS, block (a, c) = ((tid / PARTS) / CG, (tid / PARTS) % CG), computes the
//      4 x 4 blocks of s and dP with score_block (operand pairs 0: q . k and 1: dO . v), then p and dS (grad_block),
//      written to workgroup memory as vec4 over the 4 rows (dq_main) or the 4 keys (dkdv) of the group.
//   2. accumulate (acc_step): thread (a, e) = (tid / TD, tid % TD), TD = THREADS / owned groups, owns the 4 rows of
//      owned group a and the vec4 columns e + TD * n (n < DVN = ceil(HEAD_DIM_MAX / 4 / TD) <= 4) in named
//      registers (Acc, no arrays).
//   3 barriers per streamed tile.
//   Split head dim (PARTS > 1, the 'subgroups' variant only): score block (a, c) is computed by the PARTS consecutive
//   invocations PARTS * block + part; lane `part` sums the head-dim vec4s d4 = part, part + PARTS, ... and
//   fold_parts (attention_parts_subgroups.wgsl: subgroupShuffleXor butterflies) adds the PARTS partial blocks, so
//   every lane holds the whole block and lane 0 writes it. Where tiles are small (D 128 on 48 KiB: 16 blocks per
//   workgroup of 128), this puts all threads on the scores instead of 16. With the plain attention_parts.wgsl,
//   PARTS must be 1.
//
// delta_main  delta[bh * Nq + i] = sum_d dout * o (row-wise, in order of d: row_delta; bh = b * Hq + h). One thread per row, DELTA_WG threads
//        per workgroup; dispatch x = ceil(B * Hq * Nq / DELTA_WG) (a 2-D grid (x, y) with x * y * DELTA_WG >= rows
//        is also accepted). Uses: params, o, dout, delta.
// dkdv   a workgroup owns BLOCK_N keys of one (b, hk): ceil(Nk / BLOCK_N) * B * Hk workgroups over a folded grid,
//        THREADS threads. K and V tiles stay in workgroup memory; it loops over the g query heads of the group and
//        over query tiles of BLOCK_M rows (under causal, starting at the first tile that can see the keys):
//          1. score threads compute p z and dS for their 4 keys x 4 rows -> pz_tile, dsk_tile [row][key group]
//          2. dV_c += (p z)_rc dO_r and dK_c += dS_rc q_r over the tile's rows, in registers.
//        Writes dk [B, Hk, Nk, D] = scale * dK and dv [B, Hk, Nk, Dv] (at the dk_l / dv_l layouts; per batch even when k/v
//        broadcast over the batch: the caller reduces). No atomics.
//        Uses: params, q, k, v, mask, o (DELTA_SELF), dout, lse, delta, dk, dv.
// dq_main  a workgroup owns BLOCK_M queries of one (b, h): ceil(Nq / BLOCK_M) * B * Hq workgroups over a folded grid,
//        THREADS threads; streams key tiles of BLOCK_N (causal: only up to the tile's last visible key, unless dmask
//        is written):
//          1. score threads compute dS for their 4 rows x 4 keys -> dsq_tile [key][row group] (and dmask)
//          2. dQ_r += dS_rc k_c over the tile's keys, in registers.
//        Writes dq [B, Hq, Nq, D] = scale * dQ (at the dq_l layout); when write_dmask == 1 also dmask [B, Hq, Nq, Nk] = dS (the
//        gradient of the additive float mask; every element is written, 0 where excluded).
//        Uses: params, q, k, v, mask, o (DELTA_SELF), dout, lse, delta, dq, dmask.
// Workgroup memory (bytes), RS = HEAD_DIM_MAX / 4 + 1, T = E * RS * (2 * BLOCK_M + 2 * BLOCK_N), E = 16 (f32 tiles) or 8
// (the f16 variant, tile_t = f16: on 48 KiB, HEAD_DIM_MAX 128 then gets dkdv 32 x 32 and dq 32 x 32 instead of 16 x 16);
// src/attention/tiles.ts (tileBytes) computes the same:
//   dkdv: T + 36 * BLOCK_M * (BLOCK_N / 4 + 1) + 8 * BLOCK_M + 16;   dq: T + 20 * BLOCK_N * (BLOCK_M / 4 + 1) + 8 * BLOCK_M + 16
//   (pz_tile, dsk_tile and adm_k, or dsq_tile and adm_q; lse_tile, delta_tile; the last 16: nonfinite_seen)
//   src/attention/tiles.ts (chooseTiles) takes the first (owned, streamed) of 64x64, 64x32, 32x64, 32x32, 64x16,
//   32x16, 16x32, 16x16, 16x8, 8x8, 8x4, 4x4 that fits; THREADS = OG * SG, doubled while DVN > 4, or while
//   THREADS < 128 and DVN > 1 on a hardware adapter (on an H100, D 64: 128 threads with DVN 1 made the backward
//   ~1.5x faster than 64 with DVN 2; lavapipe, a CPU, only adds threads while DVN > 4):
//   48 KiB (H100 via Dawn): HEAD_DIM_MAX 32:  dkdv 64 keys x 32 rows, 47 504 B; dq 64 rows x 32 keys, 39 056 B
//                           HEAD_DIM_MAX 64:  dkdv 32 x 32, 45 456 B;  dq 32 x 32, 40 848 B
//                           HEAD_DIM_MAX 128: dkdv 16 x 16, 36 816 B;  dq 16 x 16, 35 536 B
//                           HEAD_DIM_MAX 256: dkdv 8 x 8, 34 224 B;    dq 8 x 8, 33 840 B      (all 128 threads)
//   32 KiB (lavapipe):      HEAD_DIM_MAX 32:  dkdv 32 x 32, 64 thr, 29 072 B; dq 32 x 32, 64 thr, 24 464 B
//                           HEAD_DIM_MAX 64:  dkdv 32 keys x 16 rows, 31 440 B; dq 32 rows x 16 keys, 29 264 B
//                           HEAD_DIM_MAX 128: dkdv 16 x 8, 26 864 B; dq 16 x 8, 26 288 B
//                           HEAD_DIM_MAX 256: dkdv 8 x 4, 25 440 B;  dq 8 x 4, 25 280 B
//                           (HEAD_DIM_MAX 64 / 128 / 256: 32 threads, DVN 4)
// Constraints: BLOCK_M % 4 == 0, BLOCK_N % 4 == 0, HEAD_DIM_MAX % 4 == 0, max(D, Dv) <= HEAD_DIM_MAX,
//   THREADS >= RG * CG * PARTS and a multiple of the owned groups (dkdv: CG, dq_main: RG), DVN <= 4, memory <=
//   maxComputeWorkgroupStorageSize, THREADS <= maxComputeInvocationsPerWorkgroup (src/attention/tiles.ts checks them
//   all before a launch). Each pipeline (entry point) takes its own constants, so dkdv and dq may use different
//   BLOCK_M / BLOCK_N / THREADS.

//!include attention_common.wgsl
//!include attention_parts.wgsl

// Storage element of q, k, v, o, dout, dq, dk and dv; f16 in the 'f16' variant (see attention_forward.wgsl):
// every product and sum is f32, and each gradient is rounded to f16 once, at its store. lse, delta and dmask stay f32.
alias io_t = f32;
// Element of the workgroup tiles of inputs (q_tile, do_tile, k_tile, v_tile): f16 in the f16 variant too, which holds the f16 inputs exactly
// in half the bytes (so larger tiles fit); every read widens to f32 before any arithmetic.
alias tile_t = f32;

@group(0) @binding(5) var<storage, read> o: array<io_t>;
@group(0) @binding(6) var<storage, read> dout: array<io_t>;
@group(0) @binding(7) var<storage, read> lse: array<f32>;
@group(0) @binding(8) var<storage, read_write> delta: array<f32>;   // written by delta_main, only read by dkdv / dq_main
@group(0) @binding(9) var<storage, read_write> dq: array<io_t>;
@group(0) @binding(10) var<storage, read_write> dk: array<io_t>;
@group(0) @binding(11) var<storage, read_write> dv: array<io_t>;
@group(0) @binding(12) var<storage, read_write> dmask: array<f32>;

override DELTA_WG: u32 = 64u;       // workgroup size of the delta entry
// dkdv and dq_main compute each loaded row's delta themselves (row_delta, as delta_main does) instead of reading it:
// a compiled step sets it and drops the delta pass.
override DELTA_SELF: bool = false;
// dkdv writes dv into the dk binding (at dv_l): a compiled step that puts both into one buffer sets it.
override KV_ONE: bool = false;
// Derived; leave them unset.
override TDK: u32 = THREADS / (BLOCK_N / 4u);                                      // dkdv: threads per key group
override DVNK: u32 = (HEAD_DIM_MAX / 4u + THREADS / (BLOCK_N / 4u) - 1u) / (THREADS / (BLOCK_N / 4u));
override TDQ: u32 = THREADS / (BLOCK_M / 4u);                                      // dq: threads per row group
override DVNQ: u32 = (HEAD_DIM_MAX / 4u + THREADS / (BLOCK_M / 4u) - 1u) / (THREADS / (BLOCK_M / 4u));

var<workgroup> q_tile: array<vec4<tile_t>, BLOCK_M * (HEAD_DIM_MAX / 4u + 1u)>;
var<workgroup> do_tile: array<vec4<tile_t>, BLOCK_M * (HEAD_DIM_MAX / 4u + 1u)>;
var<workgroup> k_tile: array<vec4<tile_t>, BLOCK_N * (HEAD_DIM_MAX / 4u + 1u)>;
var<workgroup> v_tile: array<vec4<tile_t>, BLOCK_N * (HEAD_DIM_MAX / 4u + 1u)>;
var<workgroup> pz_tile: array<vec4<f32>, BLOCK_M * (BLOCK_N / 4u + 1u)>;    // dkdv: [row][key group]
var<workgroup> dsk_tile: array<vec4<f32>, BLOCK_M * (BLOCK_N / 4u + 1u)>;   // dkdv: [row][key group]
var<workgroup> dsq_tile: array<vec4<f32>, BLOCK_N * (BLOCK_M / 4u + 1u)>;   // dq: [key][row group]
var<workgroup> adm_k: array<u32, BLOCK_M * (BLOCK_N / 4u + 1u)>;   // dkdv: [row][key group], adm_bits of the 4 keys
var<workgroup> adm_q: array<u32, BLOCK_N * (BLOCK_M / 4u + 1u)>;   // dq: [key][row group], adm_bits of the 4 rows
var<workgroup> lse_tile: array<f32, BLOCK_M>;     // encoded: MASKED (no admissible key), POISON (NaN row) or lse
var<workgroup> delta_tile: array<f32, BLOCK_M>;

const TILE_Q: u32 = 0u;
const TILE_DO: u32 = 1u;
const TILE_K: u32 = 2u;

// Operand pairs of score_block: 0 = q rows . k rows (scores), 1 = dO rows . v rows (dP).
fn row_vec(pair: u32, idx: u32) -> vec4<f32> {
  if (pair == 0u) {
    return vec4<f32>(q_tile[idx]);
  }
  return vec4<f32>(do_tile[idx]);
}

fn col_vec(pair: u32, idx: u32) -> vec4<f32> {
  if (pair == 0u) {
    return vec4<f32>(k_tile[idx]);
  }
  return vec4<f32>(v_tile[idx]);
}

fn extra_input_at(i: u32) -> f32 {
  return f32(dout[i]);
}

// The tiles acc_step multiplies in: dK += dS q, dV += p dO (dkdv), dQ += dS k (dq_main).
fn acc_vec(tile: u32, idx: u32) -> vec4<f32> {
  switch tile {
    case TILE_Q: { return vec4<f32>(q_tile[idx]); }
    case TILE_DO: { return vec4<f32>(do_tile[idx]); }
    default: { return vec4<f32>(k_tile[idx]); }
  }
}

// Loads query rows [row0, row0 + BLOCK_M) of head (b, h): q_tile, do_tile (zero-filled), lse_tile, delta_tile.
// `streamed`: dkdv multiplies these tiles in, so a non-finite value is noted.
fn load_query_tile(tid: u32, b: u32, h: u32, row0: u32, streamed: bool) {
  let Nq = params.Nq;
  let D4 = (params.D + 3u) / 4u;
  let DV4 = (params.Dv + 3u) / 4u;
  let bh = b * params.Hq + h;
  let q_base = params.q_off + b * params.q_sb + h * params.q_sh;
  for (var e = tid; e < BLOCK_M * HD4; e += THREADS) {
    let rr = e / HD4;
    let d4 = e % HD4;
    var qv = vec4<f32>(0.0);
    var gv = vec4<f32>(0.0);
    if (row0 + rr < Nq) {
      if (d4 < D4) {
        qv = load4(SRC_Q, q_base + (row0 + rr) * params.q_sn + 4u * d4, params.D - 4u * d4);
      }
      if (d4 < DV4) {
        gv = load4(SRC_EXTRA, at(params.o_l, b, h, row0 + rr) + 4u * d4, params.Dv - 4u * d4);
      }
      if (streamed) {
        note_tile(qv);
        note_tile(gv);
      }
    }
    q_tile[rr * RS + d4] = vec4<tile_t>(qv);
    do_tile[rr * RS + d4] = vec4<tile_t>(gv);
  }
  for (var rr = tid; rr < BLOCK_M; rr += THREADS) {
    var l = MASKED;
    var dl = 0.0;
    if (row0 + rr < Nq) {
      let x = lse[bh * Nq + row0 + rr];
      l = select(select(x, MASKED, is_neg_inf(x)), POISON, is_nan(x));
      if (DELTA_SELF) {
        dl = row_delta(b, h, row0 + rr);
      } else {
        dl = delta[bh * Nq + row0 + rr];
      }
    }
    lse_tile[rr] = l;
    delta_tile[rr] = dl;
  }
}

// Loads keys [c0, c0 + BLOCK_N) of kv head (b, hk): k_tile, v_tile (zero-filled). `streamed`: dq_main multiplies k in.
fn load_key_tile(tid: u32, b: u32, hk: u32, c0: u32, streamed: bool) {
  let Nk = params.Nk;
  let D4 = (params.D + 3u) / 4u;
  let DV4 = (params.Dv + 3u) / 4u;
  let k_base = params.k_off + b * params.k_sb + hk * params.k_sh;
  let v_base = params.v_off + b * params.v_sb + hk * params.v_sh;
  for (var e = tid; e < BLOCK_N * HD4; e += THREADS) {
    let cc = e / HD4;
    let d4 = e % HD4;
    var kv = vec4<f32>(0.0);
    var vv = vec4<f32>(0.0);
    if (c0 + cc < Nk) {
      if (d4 < D4) {
        kv = load4(SRC_K, k_base + (c0 + cc) * params.k_sn + 4u * d4, params.D - 4u * d4);
      }
      if (d4 < DV4) {
        vv = load4(SRC_V, v_base + (c0 + cc) * params.v_sn + 4u * d4, params.Dv - 4u * d4);
      }
      if (streamed) {
        note_tile(kv);
      }
    }
    k_tile[cc * RS + d4] = vec4<tile_t>(kv);
    v_tile[cc * RS + d4] = vec4<tile_t>(vv);
  }
}

struct Grad4 {
  pz: vec4<f32>,   // p * z: the weight dV uses
  ds: vec4<f32>,   // dS
  dsp: vec4<f32>,  // dS of the modded score (what captured tensors' gradients take)
}

// p z and dS of query row i (tile-local rr) at keys jv, from encoded scores s, d score_mod / d s at them (dmod) and
// the raw dO . v products dp.
fn grad4(s: vec4<f32>, dmod: vec4<f32>, dp: vec4<f32>, rr: u32, i: u32, jv: vec4<u32>, b: u32, h: u32) -> Grad4 {
  let lse_i = lse_tile[rr];
  let adm = s > vec4<f32>(MASKED);
  let p = select(vec4<f32>(0.0), exp(s - lse_i), s > vec4<f32>(NEG_INF_SCORE));
  var z = vec4<f32>(1.0);
  if (params.dropout_p > 0.0) {
    // 0 or 1 / (1 - p) (dropped or kept)
    let bh = b * params.Hq + h;
    z = 1.0 / (1.0 - params.dropout_p) * vec4<f32>(dropout_keep(bh, i, jv.x), dropout_keep(bh, i, jv.y), dropout_keep(bh, i, jv.z), dropout_keep(bh, i, jv.w));
  }
  // dsp: the gradient of the modded score; ds: of the score before the mod (the chain rule through score_mod).
  let dsp = select(vec4<f32>(0.0), p * (z * dp - delta_tile[rr]), adm);
  let nan_at = adm & vec4<bool>((lse_i >= POISON));
  let nan4 = vec4<f32>(nan_f32());
  let dsp_out = select(dsp, nan4, nan_at);
  return Grad4(select(p * z, nan4, nan_at), select(dsp * dmod, nan4, nan_at), dsp_out);
}

struct GradBlock {
  pz: Block4,   // row r: query row row0 + a + RG * r, vec4 over the keys c0 + c + CG * j
  ds: Block4,
  s: Block4,    // the encoded scores (admissible where > MASKED)
  raw: Block4,  // the scores before the score mod (scale * q . k)
  dsp: Block4,  // dS of the modded scores
}

// p z and dS of score block (a, c): query rows row0 + a + RG * r, keys c0 + c + CG * j.
fn grad_block(a: u32, c: u32, part: u32, row0: u32, c0: u32, b: u32, h: u32) -> GradBlock {
  let jv = vec4<u32>(c0 + c) + vec4<u32>(0u, CG, 2u * CG, 3u * CG);
  let dots = score_block(0u, a, c, part);
  let s = admit_block(dots, row0, a, jv, b, h);
  let sc = params.scale;
  let raw = Block4(dots.r0 * sc, dots.r1 * sc, dots.r2 * sc, dots.r3 * sc);
  let dp = score_block(1u, a, c, part);
  let dm = mod_grad_block(raw, block_bits(s), row0 + a, jv, b, h);
  let g0 = grad4(s.r0, dm.r0, dp.r0, a, row0 + a, jv, b, h);
  let g1 = grad4(s.r1, dm.r1, dp.r1, a + RG, row0 + a + RG, jv, b, h);
  let g2 = grad4(s.r2, dm.r2, dp.r2, a + 2u * RG, row0 + a + 2u * RG, jv, b, h);
  let g3 = grad4(s.r3, dm.r3, dp.r3, a + 3u * RG, row0 + a + 3u * RG, jv, b, h);
  return GradBlock(Block4(g0.pz, g1.pz, g2.pz, g3.pz), Block4(g0.ds, g1.ds, g2.ds, g3.ds), s, raw,
                   Block4(g0.dsp, g1.dsp, g2.dsp, g3.dsp));
}

@compute @workgroup_size(DELTA_WG)
fn delta_main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = (wg.y * nwg.x + wg.x) * DELTA_WG + lid;
  let rows = params.B * params.Hq * params.Nq;
  if (row >= rows) {
    return;
  }
  let bh = row / params.Nq;
  delta[row] = row_delta(bh / params.Hq, bh % params.Hq, row % params.Nq);
}

// sum_d dout * o of row i of head (b, h), in order of d.
fn row_delta(b: u32, h: u32, i: u32) -> f32 {
  let base = at(params.o_l, b, h, i);
  var acc = 0.0;
  for (var d = 0u; d < params.Dv; d++) {
    acc += f32(dout[base + d]) * f32(o[base + d]);
  }
  return acc;
}

@compute @workgroup_size(THREADS)
fn dkdv(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let Nq = params.Nq;
  let th = tile_and_head(wg, nwg, (params.Nk + BLOCK_N - 1u) / BLOCK_N);
  if (th.y >= params.B * params.Hk) {
    return;
  }
  let b = th.y / params.Hk;
  let hk = th.y % params.Hk;
  let c0 = th.x * BLOCK_N;
  let g = params.Hq / params.Hk;
  let KS = CG + 1u;                 // row stride (vec4) of pz_tile / dsk_tile
  // score role: rows qb + RG * i (i < 4), keys ka + CG * j (j < 4)
  let s_on = tid < RG * CG * PARTS;
  let part = tid % PARTS;
  let ka = (tid / PARTS) % CG;
  let qb = (tid / PARTS) / CG;
  // accumulate role: keys oa + CG * i, vec4 columns oe + TDK * n
  let oa = tid / TDK;
  let oe = tid % TDK;
  let keys = vec4<u32>(c0 + oa) + vec4<u32>(0u, CG, 2u * CG, 3u * CG);

  load_key_tile(tid, b, hk, c0, false);

  var dk_acc = zero_acc();
  var dv_acc = zero_acc();

  // Under causal, query rows before causal_row_start(c0) see none of these keys: start at the tile holding it.
  let row_start = (causal_row_start(c0) / BLOCK_M) * BLOCK_M;

  for (var h = hk * g; h < hk * g + g; h++) {
    let n_tiles = query_tile_count(b, h, c0, row_start);
    for (var n = 0u; n < n_tiles; n++) {
      let row0 = query_tile_start(b, h, c0, row_start, n);
      workgroupBarrier();   // previous tile's readers are done (also orders the K/V tile load)
      load_query_tile(tid, b, h, row0, true);
      workgroupBarrier();

      if (s_on) {
        let gb = grad_block(qb, ka, part, row0, c0, b, h);
        if (part == 0u) {
          for (var r = 0u; r < 4u; r++) {
            let at = (qb + r * RG) * KS + ka;
            pz_tile[at] = mat4x4<f32>(gb.pz.r0, gb.pz.r1, gb.pz.r2, gb.pz.r3)[r];
            dsk_tile[at] = mat4x4<f32>(gb.ds.r0, gb.ds.r1, gb.ds.r2, gb.ds.r3)[r];
            adm_k[at] = adm_bits(mat4x4<f32>(gb.s.r0, gb.s.r1, gb.s.r2, gb.s.r3)[r]);
          }
        }
      }
      workgroupBarrier();

      if (atomicLoad(&nonfinite_seen) == 0u) {
        for (var rr = 0u; rr < BLOCK_M; rr++) {
          dv_acc = acc_step(dv_acc, pz_tile[rr * KS + oa], TILE_DO, rr, oe, TDK, DVNK, vec4<bool>(true));
          dk_acc = acc_step(dk_acc, dsk_tile[rr * KS + oa], TILE_Q, rr, oe, TDK, DVNK, vec4<bool>(true));
        }
      } else {
        for (var rr = 0u; rr < BLOCK_M; rr++) {
          let keep = unpack_bits(adm_k[rr * KS + oa]);
          dv_acc = acc_step(dv_acc, pz_tile[rr * KS + oa], TILE_DO, rr, oe, TDK, DVNK, keep);
          dk_acc = acc_step(dk_acc, dsk_tile[rr * KS + oa], TILE_Q, rr, oe, TDK, DVNK, keep);
        }
      }
    }
  }

  store_kv_row(b, hk, keys.x, oe, dk_acc.c0.r0, dk_acc.c1.r0, dk_acc.c2.r0, dk_acc.c3.r0, dv_acc.c0.r0, dv_acc.c1.r0, dv_acc.c2.r0, dv_acc.c3.r0);
  store_kv_row(b, hk, keys.y, oe, dk_acc.c0.r1, dk_acc.c1.r1, dk_acc.c2.r1, dk_acc.c3.r1, dv_acc.c0.r1, dv_acc.c1.r1, dv_acc.c2.r1, dv_acc.c3.r1);
  store_kv_row(b, hk, keys.z, oe, dk_acc.c0.r2, dk_acc.c1.r2, dk_acc.c2.r2, dk_acc.c3.r2, dv_acc.c0.r2, dv_acc.c1.r2, dv_acc.c2.r2, dv_acc.c3.r2);
  store_kv_row(b, hk, keys.w, oe, dk_acc.c0.r3, dk_acc.c1.r3, dk_acc.c2.r3, dk_acc.c3.r3, dv_acc.c0.r3, dv_acc.c1.r3, dv_acc.c2.r3, dv_acc.c3.r3);
  flex_report();
}

// Writes key j's dk (times scale) and dv vec4 columns oe + TDK * n (n < DVNK).
fn store_kv_row(b: u32, hk: u32, j: u32, oe: u32, k0: vec4<f32>, k1: vec4<f32>, k2: vec4<f32>, k3: vec4<f32>,
                v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>) {
  if (j >= params.Nk) {
    return;
  }
  let kb = at(params.dk_l, b, hk, j);
  let vb = at(params.dv_l, b, hk, j);
  let sc = params.scale;
  store4_dk(kb, oe, k0 * sc);
  store4_dv(vb, oe, v0);
  if (DVNK > 1u) { store4_dk(kb, oe + TDK, k1 * sc); store4_dv(vb, oe + TDK, v1); }
  if (DVNK > 2u) { store4_dk(kb, oe + 2u * TDK, k2 * sc); store4_dv(vb, oe + 2u * TDK, v2); }
  if (DVNK > 3u) { store4_dk(kb, oe + 3u * TDK, k3 * sc); store4_dv(vb, oe + 3u * TDK, v3); }
}

fn store4_dk(base: u32, d4: u32, val: vec4<f32>) {
  for (var c = 0u; c < 4u && 4u * d4 + c < params.D; c++) {
    dk[base + 4u * d4 + c] = io_t(val[c]);
  }
}

// (into dk where KV_ONE says dk and dv are one buffer: WebGPU binds a buffer writable once per dispatch)
fn store4_dv(base: u32, d4: u32, val: vec4<f32>) {
  for (var c = 0u; c < 4u && 4u * d4 + c < params.Dv; c++) {
    if (KV_ONE) {
      dk[base + 4u * d4 + c] = io_t(val[c]);
    } else {
      dv[base + 4u * d4 + c] = io_t(val[c]);
    }
  }
}

fn store4_dq(base: u32, d4: u32, val: vec4<f32>) {
  for (var c = 0u; c < 4u && 4u * d4 + c < params.D; c++) {
    dq[base + 4u * d4 + c] = io_t(val[c]);
  }
}

@compute @workgroup_size(THREADS)
fn dq_main(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wg: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
  let qt = query_tile(wg, nwg);
  if (!qt.valid) {
    return;
  }
  let Nq = params.Nq;
  let Nk = params.Nk;
  let PS = RG + 1u;                 // row stride (vec4) of dsq_tile
  let write_dmask = params.write_dmask != 0u;
  // score role: rows sa + RG * i (i < 4), keys sc + CG * j (j < 4)
  let s_on = tid < RG * CG * PARTS;
  let part = tid % PARTS;
  let sa = (tid / PARTS) / CG;
  let sc = (tid / PARTS) % CG;
  // accumulate role: rows oa + RG * i, vec4 columns oe + TDQ * n
  let oa = tid / TDQ;
  let oe = tid % TDQ;
  let rows = vec4<u32>(qt.row0 + oa) + vec4<u32>(0u, RG, 2u * RG, 3u * RG);

  load_query_tile(tid, qt.b, qt.h, qt.row0, false);

  var dq_acc = zero_acc();
  var key_end = Nk;
  if (!write_dmask) {
    key_end = causal_key_end(qt.row0, BLOCK_M);
  }

  // This workgroup's slot of the captured-tensor gradient buffers (flex variants).
  let w = th_linear(wg, nwg);
  flex_capture_init(tid, w);
  let n_tiles = key_tile_count(qt.b, qt.h, qt.row0, key_end);
  for (var n = 0u; n < n_tiles; n++) {
    let c0 = key_tile_start(qt.b, qt.h, qt.row0, n);
    workgroupBarrier();
    load_key_tile(tid, qt.b, qt.hk, c0, true);
    workgroupBarrier();

    if (s_on) {
      let gb = grad_block(sa, sc, part, qt.row0, c0, qt.b, qt.h);
      let ds = gb.ds;
      // column j of the block: key sc + CG * j, vec4 over the 4 rows
      if (part == 0u) {
        for (var j = 0u; j < 4u; j++) {
          dsq_tile[(sc + j * CG) * PS + sa] = block_column(ds, j);
          adm_q[(sc + j * CG) * PS + sa] = adm_bits(block_column(gb.s, j));
        }
        if (write_dmask) {
          write_dmask_block(qt.bh, qt.row0 + sa, c0 + sc, ds);
        }
        flex_capture_block((tid / PARTS) * 16u, w, qt.row0 + sa, c0 + sc, qt.b, qt.h, gb.s, gb.raw, gb.dsp);
      }
    }
    workgroupBarrier();

    if (atomicLoad(&nonfinite_seen) == 0u) {
      for (var cc = 0u; cc < BLOCK_N; cc++) {
        dq_acc = acc_step(dq_acc, dsq_tile[cc * PS + oa], TILE_K, cc, oe, TDQ, DVNQ, vec4<bool>(true));
      }
    } else {
      for (var cc = 0u; cc < BLOCK_N; cc++) {
        dq_acc = acc_step(dq_acc, dsq_tile[cc * PS + oa], TILE_K, cc, oe, TDQ, DVNQ, unpack_bits(adm_q[cc * PS + oa]));
      }
    }
    flex_capture_fold(tid, w);
  }

  store_q_row(qt, rows.x, oe, dq_acc.c0.r0, dq_acc.c1.r0, dq_acc.c2.r0, dq_acc.c3.r0);
  store_q_row(qt, rows.y, oe, dq_acc.c0.r1, dq_acc.c1.r1, dq_acc.c2.r1, dq_acc.c3.r1);
  store_q_row(qt, rows.z, oe, dq_acc.c0.r2, dq_acc.c1.r2, dq_acc.c2.r2, dq_acc.c3.r2);
  store_q_row(qt, rows.w, oe, dq_acc.c0.r3, dq_acc.c1.r3, dq_acc.c2.r3, dq_acc.c3.r3);
  flex_report();
}

// dmask[bh, i, j] = dS for rows i0 + RG * r and keys j0 + CG * c of a block (inside [Nq, Nk]); 0 where inadmissible.
fn write_dmask_block(bh: u32, i0: u32, j0: u32, ds: Block4) {
  for (var c = 0u; c < 4u; c++) {
    let j = j0 + CG * c;
    let col = block_column(ds, c);
    for (var r = 0u; r < 4u; r++) {
      let row = i0 + RG * r;
      if (row < params.Nq && j < params.Nk) {
        dmask[(bh * params.Nq + row) * params.Nk + j] = col[r];
      }
    }
  }
}

// Writes query row `row`'s dq vec4 columns oe + TDQ * n (n < DVNQ), times scale.
fn store_q_row(qt: QueryTile, row: u32, oe: u32, a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32>) {
  if (row >= params.Nq) {
    return;
  }
  let base = at(params.dq_l, qt.b, qt.h, row);
  let sc = params.scale;
  store4_dq(base, oe, a0 * sc);
  if (DVNQ > 1u) { store4_dq(base, oe + TDQ, a1 * sc); }
  if (DVNQ > 2u) { store4_dq(base, oe + 2u * TDQ, a2 * sc); }
  if (DVNQ > 3u) { store4_dq(base, oe + 3u * TDQ, a3 * sc); }
}
