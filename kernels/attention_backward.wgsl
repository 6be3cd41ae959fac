// Fused scaled dot-product attention, backward (FlashAttention-2 style). Entry points: delta_main, dkdv, dq_main
// (not `delta` / `dq`: WGSL puts functions and bindings in one namespace and the bindings own those names).
//
// Dimensions: B batch, Hq query heads, Hk kv heads (g = Hq / Hk; query head h reads kv head h / g), Nq queries,
//   Nk keys, D query/key head dim, Dv value head dim (D, Dv <= HEAD_DIM_MAX).
// Inputs (same meaning and params as attention_forward.wgsl): q, k, v (offset + strides from params), mask,
//   o and dout [B, Hq, Nq, Dv] contiguous, lse [B, Hq, Nq] contiguous (from the forward; -inf = fully masked row).
// Scores are recomputed exactly as in the forward: s_ij = scale * dot(q_i, k_j) (+ float mask),
//   p_ij = exp(s_ij - lse_i) (0 for an excluded key or a row with lse = -inf), z_ij = keep_ij / (1 - dropout_p)
//   (1 without dropout), dP_ij = z_ij * dot(dO_i, v_j), dS_ij = p_ij * (dP_ij - delta_i).
//
// Register blocking (dkdv and dq_main): a workgroup owns BLOCK_N keys (dkdv) or BLOCK_M query rows (dq_main) and
//   streams tiles of the other side; all four tiles (q, dO, k, v) are row-major in workgroup memory with row
//   stride HEAD_DIM_MAX / 4 + 1 vec4 (odd: neighbouring rows hit different banks), zero-filled past D / Dv / N.
//   Owned rows come in OG = owned / 4 groups, streamed rows in SG = streamed / 4 groups; group a holds the tile
//   rows a, a + OG, a + 2 OG, a + 3 OG (interleaved, so neighbouring threads read neighbouring rows).
//   1. scores: thread tid < OG * SG, (a, c) = (tid / SG, tid % SG) in dq_main, (tid % OG, tid / OG) in dkdv,
//      computes the 4 x 4 blocks of s and dP with vec4 dot products over HEAD_DIM_MAX (16 vec4 reads per 32
//      dot4), then p and dS, written to workgroup memory as vec4 over the 4 owned rows of the group.
//   2. accumulate: thread (a, e) = (tid / TD, tid % TD), TD = THREADS / OG, owns the 4 rows of owned group a and
//      the vec4 columns e + TD * n (n < DVN = ceil(HEAD_DIM_MAX / 4 / TD) <= 4) in named registers (no arrays).
//   3 barriers per streamed tile.
//   Split head dim (PARTS > 1, the 'subgroups' variant only): score block (a, c) is computed by the PARTS consecutive
//   invocations PARTS * block + part; lane `part` sums the head-dim vec4s d4 = part, part + PARTS, ... and
//   fold_parts (attention_parts_subgroups.wgsl: subgroupShuffleXor butterflies) adds the PARTS partial blocks, so
//   every lane holds the whole block and lane 0 writes it. Where tiles are small (D 128 on 48 KiB: 16 blocks per
//   workgroup of 128), this puts all threads on the scores instead of 16. With the plain attention_parts.wgsl,
//   PARTS must be 1.
//
// delta_main  delta[bh * Nq + i] = sum_d dout * o (row-wise; bh = b * Hq + h). One thread per row, DELTA_WG threads
//        per workgroup; dispatch x = ceil(B * Hq * Nq / DELTA_WG) (a 2-D grid (x, y) with x * y * DELTA_WG >= rows
//        is also accepted). Uses: params, o, dout, delta.
// dkdv   a workgroup owns BLOCK_N keys of one (b, hk): dispatch (ceil(Nk / BLOCK_N), Hk, B), THREADS threads.
//        K and V tiles stay in workgroup memory; it loops over the g query heads of the group and over query
//        tiles of BLOCK_M rows (under causal, starting at the first tile that can see the keys):
//          1. score threads compute p z and dS for their 4 keys x 4 rows -> pz_tile, dsk_tile [row][key group]
//          2. dV_c += (p z)_rc dO_r and dK_c += dS_rc q_r over the tile's rows, in registers.
//        Writes dk [B, Hk, Nk, D] = scale * dK and dv [B, Hk, Nk, Dv] (contiguous; per batch even when k/v
//        broadcast over the batch: the caller reduces). No atomics.
//        Uses: params, q, k, v, mask, dout, lse, delta, dk, dv.
// dq_main  a workgroup owns BLOCK_M queries of one (b, h): dispatch (ceil(Nq / BLOCK_M), Hq, B), THREADS threads;
//        streams key tiles of BLOCK_N (causal: only up to the tile's last row, unless dmask is written):
//          1. score threads compute dS for their 4 rows x 4 keys -> dsq_tile [key][row group] (and dmask)
//          2. dQ_r += dS_rc k_c over the tile's keys, in registers.
//        Writes dq [B, Hq, Nq, D] = scale * dQ; when write_dmask == 1 also dmask [B, Hq, Nq, Nk] = dS (the
//        gradient of the additive float mask; every element is written, 0 where excluded).
//        Uses: params, q, k, v, mask, dout, lse, delta, dq, dmask.
// Workgroup memory (bytes), RS = HEAD_DIM_MAX / 4 + 1, T = E * RS * (2 * BLOCK_M + 2 * BLOCK_N), E = 16 (f32 tiles) or 8
// (the f16 variant, tile_t = f16: on 48 KiB, HEAD_DIM_MAX 128 then gets dkdv 32 x 32 and dq 32 x 32 instead of 16 x 16):
//   dkdv: T + 32 * BLOCK_M * (BLOCK_N / 4 + 1) + 8 * BLOCK_M;   dq: T + 16 * BLOCK_N * (BLOCK_M / 4 + 1) + 8 * BLOCK_M
//   chooseTiles (src/attention/sdpa.ts) takes the first (owned, streamed) of 64x64, 64x32, 32x64, 32x32, 64x16,
//   32x16, 16x32, 16x16, 16x8, 8x8, 8x4, 4x4 that fits; THREADS = OG * SG, doubled while DVN > 4, or while
//   THREADS < 128 and DVN > 1 on a hardware adapter (on an H100, D 64: 128 threads with DVN 1 made the backward
//   ~1.5x faster than 64 with DVN 2; lavapipe, a CPU, only adds threads while DVN > 4):
//   48 KiB (H100 via Dawn): HEAD_DIM_MAX 32:  dkdv 64 keys x 32 rows, 45 312 B; dq 64 rows x 32 keys, 36 864 B
//                           HEAD_DIM_MAX 64:  dkdv 32 x 32, 44 288 B;  dq 32 x 32, 39 680 B
//                           HEAD_DIM_MAX 128: dkdv 16 x 16, 36 480 B;  dq 16 x 16, 35 200 B
//                           HEAD_DIM_MAX 256: dkdv 8 x 8, 34 112 B;    dq 8 x 8, 33 728 B      (all 128 threads)
//   32 KiB (lavapipe):      HEAD_DIM_MAX 32:  dkdv 32 x 32, 64 thr, 27 904 B; dq 32 x 32, 64 thr, 23 296 B
//                           HEAD_DIM_MAX 64:  dkdv 32 keys x 16 rows, 30 848 B; dq 32 rows x 16 keys, 28 672 B
//                           HEAD_DIM_MAX 128: dkdv 16 x 8, 26 688 B; dq 16 x 8, 26 112 B
//                           HEAD_DIM_MAX 256: dkdv 8 x 4, 25 376 B;  dq 8 x 4, 25 216 B
//                           (HEAD_DIM_MAX 64 / 128 / 256: 32 threads, DVN 4)
// Constraints: BLOCK_M % 4 == 0, BLOCK_N % 4 == 0, HEAD_DIM_MAX % 4 == 0, max(D, Dv) <= HEAD_DIM_MAX,
//   THREADS >= OG * SG and a multiple of OG, DVN <= 4, memory <= maxComputeWorkgroupStorageSize, THREADS <=
//   maxComputeInvocationsPerWorkgroup. Each pipeline (entry point) takes its own constants, so dkdv and dq may
//   use different BLOCK_M / BLOCK_N / THREADS.

//!include random.wgsl
//!include attention_parts.wgsl

// Storage element of q, k, v, o, dout, dq, dk and dv; f16 in the 'f16' variant (see attention_forward.wgsl):
// every product and sum is f32, and each gradient is rounded to f16 once, at its store. lse, delta and dmask stay f32.
alias io_t = f32;
// Element of the workgroup tiles of inputs (q_tile, do_tile, k_tile, v_tile): f16 in the f16 variant too, which holds the f16 inputs exactly
// in half the bytes (so larger tiles fit); every read widens to f32 before any arithmetic.
alias tile_t = f32;

struct Params {
  B: u32,
  Hq: u32,
  Hk: u32,
  Nq: u32,
  Nk: u32,
  D: u32,
  Dv: u32,
  scale: f32,
  causal: u32,
  mask_kind: u32,
  q_off: u32,
  q_sb: u32,
  q_sh: u32,
  q_sn: u32,
  k_off: u32,
  k_sb: u32,
  k_sh: u32,
  k_sn: u32,
  v_off: u32,
  v_sb: u32,
  v_sh: u32,
  v_sn: u32,
  m_off: u32,
  m_sb: u32,
  m_sh: u32,
  m_sq: u32,
  m_sk: u32,
  dropout_p: f32,
  seed0: u32,
  seed1: u32,
  write_dmask: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<io_t>;
@group(0) @binding(2) var<storage, read> k: array<io_t>;
@group(0) @binding(3) var<storage, read> v: array<io_t>;
@group(0) @binding(4) var<storage, read> mask: array<u32>;
@group(0) @binding(5) var<storage, read> o: array<io_t>;
@group(0) @binding(6) var<storage, read> dout: array<io_t>;
@group(0) @binding(7) var<storage, read> lse: array<f32>;
@group(0) @binding(8) var<storage, read_write> delta: array<f32>;   // written by delta_main, only read by dkdv / dq_main
@group(0) @binding(9) var<storage, read_write> dq: array<io_t>;
@group(0) @binding(10) var<storage, read_write> dk: array<io_t>;
@group(0) @binding(11) var<storage, read_write> dv: array<io_t>;
@group(0) @binding(12) var<storage, read_write> dmask: array<f32>;

override BLOCK_M: u32 = 16u;        // query rows per tile (dq: per workgroup); multiple of 4
override BLOCK_N: u32 = 16u;        // keys per tile (dkdv: per workgroup); multiple of 4
override THREADS: u32 = 16u;        // workgroup size of dkdv / dq_main
override HEAD_DIM_MAX: u32 = 64u;   // tile capacity: >= max(D, Dv), multiple of 4
override DELTA_WG: u32 = 64u;       // workgroup size of the delta entry
override PARTS: u32 = 1u;           // score lanes per 4 x 4 block, splitting the head dim (> 1: 'subgroups' variant only)
// Derived; leave them unset.
override HD4: u32 = HEAD_DIM_MAX / 4u;
override RS: u32 = HEAD_DIM_MAX / 4u + 1u;   // row stride (vec4) of the q / dO / k / v tiles
override RG: u32 = BLOCK_M / 4u;             // query-row groups
override CG: u32 = BLOCK_N / 4u;             // key groups
override TDK: u32 = THREADS / (BLOCK_N / 4u);                                      // dkdv: threads per key group
override DVNK: u32 = (HEAD_DIM_MAX / 4u + THREADS / (BLOCK_N / 4u) - 1u) / (THREADS / (BLOCK_N / 4u));
override TDQ: u32 = THREADS / (BLOCK_M / 4u);                                      // dq: threads per row group
override DVNQ: u32 = (HEAD_DIM_MAX / 4u + THREADS / (BLOCK_M / 4u) - 1u) / (THREADS / (BLOCK_M / 4u));

const MASKED: f32 = -0x1.fffffep+127f;
const VALID_FLOOR: f32 = -3.0e38;

var<workgroup> q_tile: array<vec4<tile_t>, BLOCK_M * (HEAD_DIM_MAX / 4u + 1u)>;
var<workgroup> do_tile: array<vec4<tile_t>, BLOCK_M * (HEAD_DIM_MAX / 4u + 1u)>;
var<workgroup> k_tile: array<vec4<tile_t>, BLOCK_N * (HEAD_DIM_MAX / 4u + 1u)>;
var<workgroup> v_tile: array<vec4<tile_t>, BLOCK_N * (HEAD_DIM_MAX / 4u + 1u)>;
var<workgroup> pz_tile: array<vec4<f32>, BLOCK_M * (BLOCK_N / 4u + 1u)>;    // dkdv: [row][key group]
var<workgroup> dsk_tile: array<vec4<f32>, BLOCK_M * (BLOCK_N / 4u + 1u)>;   // dkdv: [row][key group]
var<workgroup> dsq_tile: array<vec4<f32>, BLOCK_N * (BLOCK_M / 4u + 1u)>;   // dq: [key][row group]
var<workgroup> lse_tile: array<f32, BLOCK_M>;
var<workgroup> delta_tile: array<f32, BLOCK_M>;

fn load4_q(base: u32, n_left: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  if (n_left >= 4u) {
    r = vec4<f32>(vec4<io_t>(q[base], q[base + 1u], q[base + 2u], q[base + 3u]));
  } else {
    for (var c = 0u; c < n_left; c++) { r[c] = f32(q[base + c]); }
  }
  return r;
}

fn load4_k(base: u32, n_left: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  if (n_left >= 4u) {
    r = vec4<f32>(vec4<io_t>(k[base], k[base + 1u], k[base + 2u], k[base + 3u]));
  } else {
    for (var c = 0u; c < n_left; c++) { r[c] = f32(k[base + c]); }
  }
  return r;
}

fn load4_v(base: u32, n_left: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  if (n_left >= 4u) {
    r = vec4<f32>(vec4<io_t>(v[base], v[base + 1u], v[base + 2u], v[base + 3u]));
  } else {
    for (var c = 0u; c < n_left; c++) { r[c] = f32(v[base + c]); }
  }
  return r;
}

fn load4_dout(base: u32, n_left: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  if (n_left >= 4u) {
    r = vec4<f32>(vec4<io_t>(dout[base], dout[base + 1u], dout[base + 2u], dout[base + 3u]));
  } else {
    for (var c = 0u; c < n_left; c++) { r[c] = f32(dout[base + c]); }
  }
  return r;
}

// lse as stored by the forward, with -inf (fully masked row) mapped to MASKED so no inf is ever computed with.
fn lse_or_masked(x: f32) -> f32 {
  return select(x, MASKED, bitcast<u32>(x) == 0xff800000u);
}

// Loads query rows [row0, row0 + BLOCK_M) of head (b, h): q_tile, do_tile (zero-filled), lse_tile, delta_tile.
fn load_query_tile(tid: u32, b: u32, h: u32, row0: u32) {
  let Nq = params.Nq;
  let D4 = (params.D + 3u) / 4u;
  let DV4 = (params.Dv + 3u) / 4u;
  let bh = b * params.Hq + h;
  let q_base = params.q_off + b * params.q_sb + h * params.q_sh;
  for (var e = tid; e < BLOCK_M * HD4; e += THREADS) {
    let rr = e / HD4;
    let d4 = e % HD4;
    var qv = vec4<f32>(0.0);
    var dv = vec4<f32>(0.0);
    if (row0 + rr < Nq) {
      if (d4 < D4) {
        qv = load4_q(q_base + (row0 + rr) * params.q_sn + 4u * d4, params.D - 4u * d4);
      }
      if (d4 < DV4) {
        dv = load4_dout((bh * Nq + row0 + rr) * params.Dv + 4u * d4, params.Dv - 4u * d4);
      }
    }
    q_tile[rr * RS + d4] = vec4<tile_t>(qv);
    do_tile[rr * RS + d4] = vec4<tile_t>(dv);
  }
  for (var rr = tid; rr < BLOCK_M; rr += THREADS) {
    var l = MASKED;
    var dl = 0.0;
    if (row0 + rr < Nq) {
      l = lse_or_masked(lse[bh * Nq + row0 + rr]);
      dl = delta[bh * Nq + row0 + rr];
    }
    lse_tile[rr] = l;
    delta_tile[rr] = dl;
  }
}

// Loads keys [c0, c0 + BLOCK_N) of kv head (b, hk): k_tile, v_tile (zero-filled).
fn load_key_tile(tid: u32, b: u32, hk: u32, c0: u32) {
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
        kv = load4_k(k_base + (c0 + cc) * params.k_sn + 4u * d4, params.D - 4u * d4);
      }
      if (d4 < DV4) {
        vv = load4_v(v_base + (c0 + cc) * params.v_sn + 4u * d4, params.Dv - 4u * d4);
      }
    }
    k_tile[cc * RS + d4] = vec4<tile_t>(kv);
    v_tile[cc * RS + d4] = vec4<tile_t>(vv);
  }
}

// Admissible scores of query row i at keys jv (sv already scaled): float mask added, clamped to >= VALID_FLOOR;
// excluded / out-of-range entries -> MASKED.
fn admit(sv: vec4<f32>, i: u32, jv: vec4<u32>, b: u32, h: u32) -> vec4<f32> {
  var ok = (jv < vec4<u32>(params.Nk)) & vec4<bool>(i < params.Nq);
  if (params.causal != 0u) {
    ok = ok & (jv <= vec4<u32>(i));
  }
  var s = sv;
  let mask_kind = params.mask_kind;
  if (mask_kind != 0u && i < params.Nq) {
    let m_row = params.m_off + b * params.m_sb + h * params.m_sh + i * params.m_sq;
    for (var j = 0u; j < 4u; j++) {
      if (ok[j]) {
        let bits = mask[m_row + jv[j] * params.m_sk];
        if (mask_kind == 1u) {
          ok[j] = bits != 0u;
        } else if (bits == 0xff800000u) {
          ok[j] = false;
        } else {
          s[j] += bitcast<f32>(bits);
        }
      }
    }
  }
  return select(vec4<f32>(MASKED), max(s, vec4<f32>(VALID_FLOOR)), ok);
}

// Dropout multipliers z (0 or 1 / (1 - p)) of query row i at keys jv.
fn z4(bh: u32, i: u32, jv: vec4<u32>) -> vec4<f32> {
  let p = params.dropout_p;
  let inv = 1.0 / (1.0 - p);
  return vec4<f32>(
    select(0.0, inv, attn_dropout_keep(params.seed0, params.seed1, bh, i, jv.x, p)),
    select(0.0, inv, attn_dropout_keep(params.seed0, params.seed1, bh, i, jv.y, p)),
    select(0.0, inv, attn_dropout_keep(params.seed0, params.seed1, bh, i, jv.z, p)),
    select(0.0, inv, attn_dropout_keep(params.seed0, params.seed1, bh, i, jv.w, p)));
}

struct Grad4 {
  pz: vec4<f32>,   // p * z: the weight dV uses
  ds: vec4<f32>,   // dS
}

// p z and dS of query row i (tile-local rr) at keys jv, from the raw dot products s (q.k) and dp (dO.v).
fn grad4(s: vec4<f32>, dp: vec4<f32>, rr: u32, i: u32, jv: vec4<u32>, b: u32, h: u32) -> Grad4 {
  let lse_i = lse_tile[rr];
  let sa = admit(s * params.scale, i, jv, b, h);
  let ok = (sa > vec4<f32>(MASKED)) & vec4<bool>(lse_i > MASKED);
  let p = select(vec4<f32>(0.0), exp(sa - lse_i), ok);
  var z = vec4<f32>(1.0);
  if (params.dropout_p > 0.0) {
    z = z4(b * params.Hq + h, i, jv);
  }
  return Grad4(p * z, p * (z * dp - delta_tile[rr]));
}

@compute @workgroup_size(DELTA_WG)
fn delta_main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = (wg.y * nwg.x + wg.x) * DELTA_WG + lid;
  let rows = params.B * params.Hq * params.Nq;
  if (row >= rows) {
    return;
  }
  let Dv = params.Dv;
  let base = row * Dv;
  var acc = 0.0;
  for (var d = 0u; d < Dv; d++) {
    acc += f32(dout[base + d]) * f32(o[base + d]);
  }
  delta[row] = acc;
}

@compute @workgroup_size(THREADS)
fn dkdv(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let b = wg.z;
  let hk = wg.y;
  let c0 = wg.x * BLOCK_N;
  let g = params.Hq / params.Hk;
  let Nq = params.Nq;
  let D = params.D;
  let Dv = params.Dv;
  let D4 = (D + 3u) / 4u;
  let DV4 = (Dv + 3u) / 4u;
  let KS = CG + 1u;                 // row stride (vec4) of pz_tile / dsk_tile
  // score role: keys ka + CG * i (i < 4), rows qb + RG * j (j < 4)
  let s_on = tid < RG * CG * PARTS;
  let part = tid % PARTS;
  let ka = (tid / PARTS) % CG;
  let qb = (tid / PARTS) / CG;
  let jv = vec4<u32>(c0 + ka) + vec4<u32>(0u, CG, 2u * CG, 3u * CG);
  // accumulate role: keys oa + CG * i, vec4 columns oe + TDK * n
  let oa = tid / TDK;
  let oe = tid % TDK;

  load_key_tile(tid, b, hk, c0);

  var dk00 = vec4<f32>(0.0);
  var dv00 = vec4<f32>(0.0);
  var dk10 = vec4<f32>(0.0);
  var dv10 = vec4<f32>(0.0);
  var dk20 = vec4<f32>(0.0);
  var dv20 = vec4<f32>(0.0);
  var dk30 = vec4<f32>(0.0);
  var dv30 = vec4<f32>(0.0);
  var dk01 = vec4<f32>(0.0);
  var dv01 = vec4<f32>(0.0);
  var dk11 = vec4<f32>(0.0);
  var dv11 = vec4<f32>(0.0);
  var dk21 = vec4<f32>(0.0);
  var dv21 = vec4<f32>(0.0);
  var dk31 = vec4<f32>(0.0);
  var dv31 = vec4<f32>(0.0);
  var dk02 = vec4<f32>(0.0);
  var dv02 = vec4<f32>(0.0);
  var dk12 = vec4<f32>(0.0);
  var dv12 = vec4<f32>(0.0);
  var dk22 = vec4<f32>(0.0);
  var dv22 = vec4<f32>(0.0);
  var dk32 = vec4<f32>(0.0);
  var dv32 = vec4<f32>(0.0);
  var dk03 = vec4<f32>(0.0);
  var dv03 = vec4<f32>(0.0);
  var dk13 = vec4<f32>(0.0);
  var dv13 = vec4<f32>(0.0);
  var dk23 = vec4<f32>(0.0);
  var dv23 = vec4<f32>(0.0);
  var dk33 = vec4<f32>(0.0);
  var dv33 = vec4<f32>(0.0);

  // Under causal, query rows below c0 see none of these keys: start at the tile holding row c0.
  var row_start = 0u;
  if (params.causal != 0u) {
    row_start = (c0 / BLOCK_M) * BLOCK_M;
  }

  for (var h = hk * g; h < hk * g + g; h++) {
    for (var row0 = row_start; row0 < Nq; row0 += BLOCK_M) {
      workgroupBarrier();   // previous tile's readers are done (also orders the K/V tile load)
      load_query_tile(tid, b, h, row0);
      workgroupBarrier();

      if (s_on) {
        // S_j / DP_j: vec4 over the 4 keys, for row j of the block
        var s0 = vec4<f32>(0.0);
        var s1 = vec4<f32>(0.0);
        var s2 = vec4<f32>(0.0);
        var s3 = vec4<f32>(0.0);
        var p0 = vec4<f32>(0.0);
        var p1 = vec4<f32>(0.0);
        var p2 = vec4<f32>(0.0);
        var p3 = vec4<f32>(0.0);
        for (var d4 = part; d4 < HD4; d4 += PARTS) {
          let k0 = vec4<f32>(k_tile[(ka) * RS + d4]);
          let k1 = vec4<f32>(k_tile[(ka + CG) * RS + d4]);
          let k2 = vec4<f32>(k_tile[(ka + 2u * CG) * RS + d4]);
          let k3 = vec4<f32>(k_tile[(ka + 3u * CG) * RS + d4]);
          let q0 = vec4<f32>(q_tile[(qb) * RS + d4]);
          let q1 = vec4<f32>(q_tile[(qb + RG) * RS + d4]);
          let q2 = vec4<f32>(q_tile[(qb + 2u * RG) * RS + d4]);
          let q3 = vec4<f32>(q_tile[(qb + 3u * RG) * RS + d4]);
          s0 += vec4<f32>(dot(q0, k0), dot(q0, k1), dot(q0, k2), dot(q0, k3));
          s1 += vec4<f32>(dot(q1, k0), dot(q1, k1), dot(q1, k2), dot(q1, k3));
          s2 += vec4<f32>(dot(q2, k0), dot(q2, k1), dot(q2, k2), dot(q2, k3));
          s3 += vec4<f32>(dot(q3, k0), dot(q3, k1), dot(q3, k2), dot(q3, k3));
          let v0 = vec4<f32>(v_tile[(ka) * RS + d4]);
          let v1 = vec4<f32>(v_tile[(ka + CG) * RS + d4]);
          let v2 = vec4<f32>(v_tile[(ka + 2u * CG) * RS + d4]);
          let v3 = vec4<f32>(v_tile[(ka + 3u * CG) * RS + d4]);
          let o0 = vec4<f32>(do_tile[(qb) * RS + d4]);
          let o1 = vec4<f32>(do_tile[(qb + RG) * RS + d4]);
          let o2 = vec4<f32>(do_tile[(qb + 2u * RG) * RS + d4]);
          let o3 = vec4<f32>(do_tile[(qb + 3u * RG) * RS + d4]);
          p0 += vec4<f32>(dot(o0, v0), dot(o0, v1), dot(o0, v2), dot(o0, v3));
          p1 += vec4<f32>(dot(o1, v0), dot(o1, v1), dot(o1, v2), dot(o1, v3));
          p2 += vec4<f32>(dot(o2, v0), dot(o2, v1), dot(o2, v2), dot(o2, v3));
          p3 += vec4<f32>(dot(o3, v0), dot(o3, v1), dot(o3, v2), dot(o3, v3));
        }
        s0 = fold_parts(s0);
        s1 = fold_parts(s1);
        s2 = fold_parts(s2);
        s3 = fold_parts(s3);
        p0 = fold_parts(p0);
        p1 = fold_parts(p1);
        p2 = fold_parts(p2);
        p3 = fold_parts(p3);
        let g0 = grad4(s0, p0, qb, row0 + qb, jv, b, h);
        let g1 = grad4(s1, p1, qb + RG, row0 + qb + RG, jv, b, h);
        let g2 = grad4(s2, p2, qb + 2u * RG, row0 + qb + 2u * RG, jv, b, h);
        let g3 = grad4(s3, p3, qb + 3u * RG, row0 + qb + 3u * RG, jv, b, h);
        if (part == 0u) {
        pz_tile[(qb) * KS + ka] = g0.pz;
        pz_tile[(qb + RG) * KS + ka] = g1.pz;
        pz_tile[(qb + 2u * RG) * KS + ka] = g2.pz;
        pz_tile[(qb + 3u * RG) * KS + ka] = g3.pz;
        dsk_tile[(qb) * KS + ka] = g0.ds;
        dsk_tile[(qb + RG) * KS + ka] = g1.ds;
        dsk_tile[(qb + 2u * RG) * KS + ka] = g2.ds;
        dsk_tile[(qb + 3u * RG) * KS + ka] = g3.ds;
        }
      }
      workgroupBarrier();

      for (var rr = 0u; rr < BLOCK_M; rr++) {
        let w = pz_tile[rr * KS + oa];
        let gs = dsk_tile[rr * KS + oa];
        {
          let col = rr * RS + oe;
          let dov = vec4<f32>(do_tile[col]);
          let qv = vec4<f32>(q_tile[col]);
          dv00 += w.x * dov;
          dv10 += w.y * dov;
          dv20 += w.z * dov;
          dv30 += w.w * dov;
          dk00 += gs.x * qv;
          dk10 += gs.y * qv;
          dk20 += gs.z * qv;
          dk30 += gs.w * qv;
        }
        if (DVNK > 1u) {
          let col = rr * RS + min(oe + 1u * TDK, HD4 - 1u);
          let dov = vec4<f32>(do_tile[col]);
          let qv = vec4<f32>(q_tile[col]);
          dv01 += w.x * dov;
          dv11 += w.y * dov;
          dv21 += w.z * dov;
          dv31 += w.w * dov;
          dk01 += gs.x * qv;
          dk11 += gs.y * qv;
          dk21 += gs.z * qv;
          dk31 += gs.w * qv;
        }
        if (DVNK > 2u) {
          let col = rr * RS + min(oe + 2u * TDK, HD4 - 1u);
          let dov = vec4<f32>(do_tile[col]);
          let qv = vec4<f32>(q_tile[col]);
          dv02 += w.x * dov;
          dv12 += w.y * dov;
          dv22 += w.z * dov;
          dv32 += w.w * dov;
          dk02 += gs.x * qv;
          dk12 += gs.y * qv;
          dk22 += gs.z * qv;
          dk32 += gs.w * qv;
        }
        if (DVNK > 3u) {
          let col = rr * RS + min(oe + 3u * TDK, HD4 - 1u);
          let dov = vec4<f32>(do_tile[col]);
          let qv = vec4<f32>(q_tile[col]);
          dv03 += w.x * dov;
          dv13 += w.y * dov;
          dv23 += w.z * dov;
          dv33 += w.w * dov;
          dk03 += gs.x * qv;
          dk13 += gs.y * qv;
          dk23 += gs.z * qv;
          dk33 += gs.w * qv;
        }
      }
    }
  }

  store_kv_row(b, hk, c0 + oa + 0u * CG, oe, dk00, dk01, dk02, dk03, dv00, dv01, dv02, dv03);
  store_kv_row(b, hk, c0 + oa + 1u * CG, oe, dk10, dk11, dk12, dk13, dv10, dv11, dv12, dv13);
  store_kv_row(b, hk, c0 + oa + 2u * CG, oe, dk20, dk21, dk22, dk23, dv20, dv21, dv22, dv23);
  store_kv_row(b, hk, c0 + oa + 3u * CG, oe, dk30, dk31, dk32, dk33, dv30, dv31, dv32, dv33);
}

// Writes key j's dk (times scale) and dv vec4 columns oe + TDK * n (n < DVNK).
fn store_kv_row(b: u32, hk: u32, j: u32, oe: u32, k0: vec4<f32>, k1: vec4<f32>, k2: vec4<f32>, k3: vec4<f32>,
                v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>) {
  if (j >= params.Nk) {
    return;
  }
  let kv_row = (b * params.Hk + hk) * params.Nk + j;
  let sc = params.scale;
  store4_dk(kv_row * params.D, oe, k0 * sc);
  store4_dv(kv_row * params.Dv, oe, v0);
  if (DVNK > 1u) { store4_dk(kv_row * params.D, oe + TDK, k1 * sc); store4_dv(kv_row * params.Dv, oe + TDK, v1); }
  if (DVNK > 2u) { store4_dk(kv_row * params.D, oe + 2u * TDK, k2 * sc); store4_dv(kv_row * params.Dv, oe + 2u * TDK, v2); }
  if (DVNK > 3u) { store4_dk(kv_row * params.D, oe + 3u * TDK, k3 * sc); store4_dv(kv_row * params.Dv, oe + 3u * TDK, v3); }
}

fn store4_dk(base: u32, d4: u32, val: vec4<f32>) {
  if (4u * d4 >= params.D) {
    return;
  }
  for (var c = 0u; c < min(4u, params.D - 4u * d4); c++) {
    dk[base + 4u * d4 + c] = io_t(val[c]);
  }
}

fn store4_dv(base: u32, d4: u32, val: vec4<f32>) {
  if (4u * d4 >= params.Dv) {
    return;
  }
  for (var c = 0u; c < min(4u, params.Dv - 4u * d4); c++) {
    dv[base + 4u * d4 + c] = io_t(val[c]);
  }
}

fn store4_dq(base: u32, d4: u32, val: vec4<f32>) {
  if (4u * d4 >= params.D) {
    return;
  }
  for (var c = 0u; c < min(4u, params.D - 4u * d4); c++) {
    dq[base + 4u * d4 + c] = io_t(val[c]);
  }
}

@compute @workgroup_size(THREADS)
fn dq_main(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let b = wg.z;
  let h = wg.y;
  let row0 = wg.x * BLOCK_M;
  let hk = h / (params.Hq / params.Hk);
  let bh = b * params.Hq + h;
  let Nq = params.Nq;
  let Nk = params.Nk;
  let D = params.D;
  let D4 = (D + 3u) / 4u;
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

  load_query_tile(tid, b, h, row0);

  var dq00 = vec4<f32>(0.0);
  var dq10 = vec4<f32>(0.0);
  var dq20 = vec4<f32>(0.0);
  var dq30 = vec4<f32>(0.0);
  var dq01 = vec4<f32>(0.0);
  var dq11 = vec4<f32>(0.0);
  var dq21 = vec4<f32>(0.0);
  var dq31 = vec4<f32>(0.0);
  var dq02 = vec4<f32>(0.0);
  var dq12 = vec4<f32>(0.0);
  var dq22 = vec4<f32>(0.0);
  var dq32 = vec4<f32>(0.0);
  var dq03 = vec4<f32>(0.0);
  var dq13 = vec4<f32>(0.0);
  var dq23 = vec4<f32>(0.0);
  var dq33 = vec4<f32>(0.0);

  var key_end = Nk;
  if (params.causal != 0u && !write_dmask) {
    key_end = min(Nk, row0 + BLOCK_M);
  }

  for (var c0 = 0u; c0 < key_end; c0 += BLOCK_N) {
    workgroupBarrier();
    load_key_tile(tid, b, hk, c0);
    workgroupBarrier();

    if (s_on) {
      var s0 = vec4<f32>(0.0);
      var s1 = vec4<f32>(0.0);
      var s2 = vec4<f32>(0.0);
      var s3 = vec4<f32>(0.0);
      var p0 = vec4<f32>(0.0);
      var p1 = vec4<f32>(0.0);
      var p2 = vec4<f32>(0.0);
      var p3 = vec4<f32>(0.0);
      for (var d4 = part; d4 < HD4; d4 += PARTS) {
        let k0 = vec4<f32>(k_tile[(sc) * RS + d4]);
        let k1 = vec4<f32>(k_tile[(sc + CG) * RS + d4]);
        let k2 = vec4<f32>(k_tile[(sc + 2u * CG) * RS + d4]);
        let k3 = vec4<f32>(k_tile[(sc + 3u * CG) * RS + d4]);
        let q0 = vec4<f32>(q_tile[(sa) * RS + d4]);
        let q1 = vec4<f32>(q_tile[(sa + RG) * RS + d4]);
        let q2 = vec4<f32>(q_tile[(sa + 2u * RG) * RS + d4]);
        let q3 = vec4<f32>(q_tile[(sa + 3u * RG) * RS + d4]);
        s0 += vec4<f32>(dot(q0, k0), dot(q0, k1), dot(q0, k2), dot(q0, k3));
        s1 += vec4<f32>(dot(q1, k0), dot(q1, k1), dot(q1, k2), dot(q1, k3));
        s2 += vec4<f32>(dot(q2, k0), dot(q2, k1), dot(q2, k2), dot(q2, k3));
        s3 += vec4<f32>(dot(q3, k0), dot(q3, k1), dot(q3, k2), dot(q3, k3));
        let v0 = vec4<f32>(v_tile[(sc) * RS + d4]);
        let v1 = vec4<f32>(v_tile[(sc + CG) * RS + d4]);
        let v2 = vec4<f32>(v_tile[(sc + 2u * CG) * RS + d4]);
        let v3 = vec4<f32>(v_tile[(sc + 3u * CG) * RS + d4]);
        let o0 = vec4<f32>(do_tile[(sa) * RS + d4]);
        let o1 = vec4<f32>(do_tile[(sa + RG) * RS + d4]);
        let o2 = vec4<f32>(do_tile[(sa + 2u * RG) * RS + d4]);
        let o3 = vec4<f32>(do_tile[(sa + 3u * RG) * RS + d4]);
        p0 += vec4<f32>(dot(o0, v0), dot(o0, v1), dot(o0, v2), dot(o0, v3));
        p1 += vec4<f32>(dot(o1, v0), dot(o1, v1), dot(o1, v2), dot(o1, v3));
        p2 += vec4<f32>(dot(o2, v0), dot(o2, v1), dot(o2, v2), dot(o2, v3));
        p3 += vec4<f32>(dot(o3, v0), dot(o3, v1), dot(o3, v2), dot(o3, v3));
      }
      s0 = fold_parts(s0);
      s1 = fold_parts(s1);
      s2 = fold_parts(s2);
      s3 = fold_parts(s3);
      p0 = fold_parts(p0);
      p1 = fold_parts(p1);
      p2 = fold_parts(p2);
      p3 = fold_parts(p3);
      let jv = vec4<u32>(c0 + sc) + vec4<u32>(0u, CG, 2u * CG, 3u * CG);
      let g0 = grad4(s0, p0, sa, row0 + sa, jv, b, h).ds;
      let g1 = grad4(s1, p1, sa + RG, row0 + sa + RG, jv, b, h).ds;
      let g2 = grad4(s2, p2, sa + 2u * RG, row0 + sa + 2u * RG, jv, b, h).ds;
      let g3 = grad4(s3, p3, sa + 3u * RG, row0 + sa + 3u * RG, jv, b, h).ds;
      // column j of the block: key sc + CG * j, vec4 over the 4 rows
      if (part == 0u) {
      dsq_tile[(sc) * PS + sa] = vec4<f32>(g0.x, g1.x, g2.x, g3.x);
      dsq_tile[(sc + CG) * PS + sa] = vec4<f32>(g0.y, g1.y, g2.y, g3.y);
      dsq_tile[(sc + 2u * CG) * PS + sa] = vec4<f32>(g0.z, g1.z, g2.z, g3.z);
      dsq_tile[(sc + 3u * CG) * PS + sa] = vec4<f32>(g0.w, g1.w, g2.w, g3.w);
      if (write_dmask) {
        for (var i = 0u; i < 4u; i++) {
          let row = row0 + sa + RG * i;
          if (row >= Nq) {
            continue;
          }
          var gi: vec4<f32>;
          switch (i) {
            case 0u: { gi = g0; }
            case 1u: { gi = g1; }
            case 2u: { gi = g2; }
            default: { gi = g3; }
          }
          for (var jj = 0u; jj < 4u; jj++) {
            if (jv[jj] < Nk) {
              dmask[(bh * Nq + row) * Nk + jv[jj]] = gi[jj];
            }
          }
        }
      }
      }
    }
    workgroupBarrier();

    for (var cc = 0u; cc < BLOCK_N; cc++) {
      let gs = dsq_tile[cc * PS + oa];
      {
        let kv = vec4<f32>(k_tile[cc * RS + oe]);
        dq00 += gs.x * kv;
        dq10 += gs.y * kv;
        dq20 += gs.z * kv;
        dq30 += gs.w * kv;
      }
      if (DVNQ > 1u) {
        let kv = vec4<f32>(k_tile[cc * RS + min(oe + 1u * TDQ, HD4 - 1u)]);
        dq01 += gs.x * kv;
        dq11 += gs.y * kv;
        dq21 += gs.z * kv;
        dq31 += gs.w * kv;
      }
      if (DVNQ > 2u) {
        let kv = vec4<f32>(k_tile[cc * RS + min(oe + 2u * TDQ, HD4 - 1u)]);
        dq02 += gs.x * kv;
        dq12 += gs.y * kv;
        dq22 += gs.z * kv;
        dq32 += gs.w * kv;
      }
      if (DVNQ > 3u) {
        let kv = vec4<f32>(k_tile[cc * RS + min(oe + 3u * TDQ, HD4 - 1u)]);
        dq03 += gs.x * kv;
        dq13 += gs.y * kv;
        dq23 += gs.z * kv;
        dq33 += gs.w * kv;
      }
    }
  }

  store_q_row(bh, row0 + oa + 0u * RG, oe, dq00, dq01, dq02, dq03);
  store_q_row(bh, row0 + oa + 1u * RG, oe, dq10, dq11, dq12, dq13);
  store_q_row(bh, row0 + oa + 2u * RG, oe, dq20, dq21, dq22, dq23);
  store_q_row(bh, row0 + oa + 3u * RG, oe, dq30, dq31, dq32, dq33);
}

// Writes query row `row`'s dq vec4 columns oe + TDQ * n (n < DVNQ), times scale.
fn store_q_row(bh: u32, row: u32, oe: u32, a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32>) {
  if (row >= params.Nq) {
    return;
  }
  let base = (bh * params.Nq + row) * params.D;
  let sc = params.scale;
  store4_dq(base, oe, a0 * sc);
  if (DVNQ > 1u) { store4_dq(base, oe + TDQ, a1 * sc); }
  if (DVNQ > 2u) { store4_dq(base, oe + 2u * TDQ, a2 * sc); }
  if (DVNQ > 3u) { store4_dq(base, oe + 3u * TDQ, a3 * sc); }
}
