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
//   o [B, Hq, Nq, Dv] contiguous; lse [B, Hq, Nq] contiguous (natural log of the undropped softmax
//   denominator, max-shifted: lse = m + log(l)); a row with no admissible key gets o = 0 and lse = -inf.
// Semantics
//   s_ij = scale * dot(q_i, k_j) (+ float mask). Key j is excluded when causal and j > i (top-left aligned),
//   the bool mask is 0, or the float mask is -inf. p = softmax_j(s). With dropout_p > 0:
//   o_i = sum_j p_ij * keep_ij / (1 - dropout_p) * v_j, keep_ij = attn_dropout_keep(seed0, seed1, b*Hq + h, i, j, p).
// Tiling (register-blocked: every thread computes a 4 x 4 block of scores and a 4-row block of o)
//   One workgroup = BLOCK_M query rows of one (b, h); dispatch (ceil(Nq / BLOCK_M), Hq, B); THREADS threads.
//   RG = BLOCK_M / 4 row groups: row group a holds the tile rows a, a + RG, a + 2 RG, a + 3 RG (interleaved, so
//   neighbouring threads read neighbouring rows: conflict-free workgroup-memory reads with the odd row stride).
//   CG = BLOCK_N / 4 key groups, likewise interleaved. The query tile stays in workgroup memory; key tiles of
//   BLOCK_N rows are streamed, K and then V through the same buffer. Per key tile (4 barriers):
//     1. K -> kv_tile. Thread tid < RG * CG, (a, c) = (tid / CG, tid % CG), computes its 4 x 4 scores with
//        vec4 dot products over HEAD_DIM_MAX (8 vec4 reads per 16 dot4), applies scale / mask / causal, and
//        writes the 4 row maxima of its block -> red[c][a].
//     2. Each thread folds red[.][a] into the tile max of its rows (redundantly: no extra barrier), rescales.
//        Score threads write p = exp(s - m) -> p_tile[key][a] (vec4 over the 4 rows; 0 where dropped) and keep
//        a partial row sum l over their own keys (one cross-thread sum at the very end). V -> kv_tile.
//     3. o: thread (a, e) = (tid / TD, tid % TD), TD = THREADS / RG, owns rows of group a and the vec4 columns
//        e + TD * n (n < DVN = ceil(HEAD_DIM_MAX / 4 / TD) <= 4) in named registers (with register arrays
//        instead, the D 128 forward ran 1.5x slower on an H100): o += p v with one p_tile read (4 rows) and DVN v reads per key.
//   Causal: key tiles starting after the tile's last query row are never visited (about half the work).
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
//   Masked / out-of-range scores are MASKED (f32 lowest); admissible scores are clamped to >= VALID_FLOOR, so
//   "admissible" is "s > MASKED". Rows / keys / dims past Nq / Nk / D are zero-filled in the tiles.
// Workgroup memory (bytes), HD4 = HEAD_DIM_MAX / 4, RG = BLOCK_M / 4, CG = BLOCK_N / 4, E = 16 (f32 tiles) or 8 (the f16
// variant's tile_t = f16):
//   E * (BLOCK_M + BLOCK_N) * (HD4 + 1) + 16 * (BLOCK_N * (RG + 1) + CG * (RG + 1))
//   (q_tile, kv_tile, p_tile, red; +1 paddings keep the strided reads / writes bank-conflict-free)
//   chooseTiles (src/attention/sdpa.ts) takes the first (BLOCK_M, BLOCK_N) of 64x64, 64x32, 32x64, 32x32, 64x16,
//   32x16, 16x32, 16x16, 16x8, ... that fits; THREADS = RG * CG, doubled while DVN > 4, or while THREADS < 128 and
//   DVN > 1 on a hardware adapter (on an H100, 128-thread workgroups beat 64-thread ones: D 128 forward 6.8 vs
//   4.2 TFLOP/s; on lavapipe, a CPU, idle score-phase threads only cost, so there only DVN > 4 adds threads):
//   48 KiB (H100 via Dawn): HEAD_DIM_MAX 32: 64x64, 256 thr, 40 192 B; 64: 64x32, 128 thr, 36 992 B;
//                           128: 32x32, 128 thr, 39 552 B; 256: 16x16, 128 thr, 34 880 B
//   48 KiB, f16 variant:    HEAD_DIM_MAX 128: 64x32 (f32 tiles: 32x32), the same tiles as f32 at HEAD_DIM_MAX 64
//   32 KiB (lavapipe):      32: 64x32, 128 thr, 24 704 B; 64: 32x32, 64 thr, 23 168 B;
//                           128: 32x16, 64 thr, 28 224 B; 256: 16x8, 64 thr, 25 760 B
// Constraints: BLOCK_M % 4 == 0, BLOCK_N % 4 == 0, HEAD_DIM_MAX % 4 == 0, max(D, Dv) <= HEAD_DIM_MAX,
//   THREADS >= RG * CG, THREADS % RG == 0, DVN <= 4, THREADS <= maxComputeInvocationsPerWorkgroup,
//   memory above <= maxComputeWorkgroupStorageSize.

//!include random.wgsl
//!include attention_rows.wgsl
//!include attention_parts.wgsl

// Storage element of q, k, v and o. The f16 variant (kiln's kernel loader, variant 'f16', on adapters with
// shader-f16) puts `enable f16;` on line 1 and makes this f16: loads widen to f32, every score, exponent, running
// max / sum and o accumulator stays f32, and o is rounded to f16 once, at the store.
alias io_t = f32;
// Element of the workgroup tiles of inputs (q_tile, kv_tile): f16 in the f16 variant too, which holds the f16 inputs exactly
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
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<io_t>;
@group(0) @binding(2) var<storage, read> k: array<io_t>;
@group(0) @binding(3) var<storage, read> v: array<io_t>;
@group(0) @binding(4) var<storage, read> mask: array<u32>;
@group(0) @binding(5) var<storage, read_write> o: array<io_t>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;

override BLOCK_M: u32 = 32u;          // query rows per workgroup (multiple of 4)
override BLOCK_N: u32 = 32u;          // keys per streamed tile (multiple of 4)
override THREADS: u32 = 64u;          // workgroup size: >= (BLOCK_M / 4) * (BLOCK_N / 4), multiple of BLOCK_M / 4
override HEAD_DIM_MAX: u32 = 64u;     // capacity of the tiles: >= max(D, Dv), multiple of 4
override PARTS: u32 = 1u;             // score lanes per 4 x 4 block, splitting the head dim (> 1: 'subgroups' variant only)
// Derived; leave them unset.
override RG: u32 = BLOCK_M / 4u;                   // row groups
override CG: u32 = BLOCK_N / 4u;                   // key groups
override HD4: u32 = HEAD_DIM_MAX / 4u;
override RS: u32 = HEAD_DIM_MAX / 4u + 1u;         // row stride (vec4) of q_tile / kv_tile
override TD: u32 = THREADS / (BLOCK_M / 4u);       // threads per row group in the p v product
override DVN: u32 = (HEAD_DIM_MAX / 4u + THREADS / (BLOCK_M / 4u) - 1u) / (THREADS / (BLOCK_M / 4u));

const MASKED: f32 = -0x1.fffffep+127f;   // f32 lowest: "no admissible score"
const VALID_FLOOR: f32 = -3.0e38;        // admissible scores are clamped to >= this (> MASKED)

var<workgroup> q_tile: array<vec4<tile_t>, BLOCK_M * (HEAD_DIM_MAX / 4u + 1u)>;
var<workgroup> kv_tile: array<vec4<tile_t>, BLOCK_N * (HEAD_DIM_MAX / 4u + 1u)>;
var<workgroup> p_tile: array<vec4<f32>, BLOCK_N * (BLOCK_M / 4u + 1u)>;
var<workgroup> red: array<vec4<f32>, (BLOCK_N / 4u) * (BLOCK_M / 4u + 1u)>;

// Reads 4 consecutive elements starting at base, zero past the row's last element n_left.
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

fn hmax(x: vec4<f32>) -> f32 {
  return max(max(x.x, x.y), max(x.z, x.w));
}

fn hsum(x: vec4<f32>) -> f32 {
  return (x.x + x.y) + (x.z + x.w);
}


// exp(m_old - m_new), 1 where there was no admissible score yet (its accumulators are 0 anyway).
fn rescale(m_old: vec4<f32>, m_new: vec4<f32>) -> vec4<f32> {
  return select(exp(m_old - m_new), vec4<f32>(1.0), m_old <= vec4<f32>(MASKED));
}

@compute @workgroup_size(THREADS)
fn main(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let b = wg.z;
  let h = wg.y;
  let row0 = wg.x * BLOCK_M;
  let Nq = params.Nq;
  let Nk = params.Nk;
  let D = params.D;
  let Dv = params.Dv;
  let hk = h / (params.Hq / params.Hk);
  let bh = b * params.Hq + h;
  let D4 = (D + 3u) / 4u;
  let DV4 = (Dv + 3u) / 4u;
  let mask_kind = params.mask_kind;
  let causal = params.causal != 0u;
  let use_dropout = params.dropout_p > 0.0;
  let scale = params.scale;

  // score role
  let s_on = tid < RG * CG * PARTS;
  let part = tid % PARTS;
  let sa = (tid / PARTS) / CG;
  let sc = (tid / PARTS) % CG;
  let s_rows = vec4<u32>(row0 + sa) + vec4<u32>(0u, RG, 2u * RG, 3u * RG);
  // p v role
  let oa = tid / TD;
  let oe = tid % TD;

  let q_base = params.q_off + b * params.q_sb + h * params.q_sh;
  for (var e = tid; e < BLOCK_M * HD4; e += THREADS) {
    let rr = e / HD4;
    let d4 = e % HD4;
    var val = vec4<f32>(0.0);
    if (row0 + rr < Nq && d4 < D4) {
      val = load4_q(q_base + (row0 + rr) * params.q_sn + 4u * d4, D - 4u * d4);
    }
    q_tile[rr * RS + d4] = vec4<tile_t>(val);
  }

  let k_base = params.k_off + b * params.k_sb + hk * params.k_sh;
  let v_base = params.v_off + b * params.v_sb + hk * params.v_sh;

  var key_end = Nk;
  if (causal) {
    key_end = min(Nk, row0 + BLOCK_M);
  }

  var ms_run = vec4<f32>(MASKED);   // running max of the score rows
  var l_part = vec4<f32>(0.0);      // partial row sums over this thread's keys
  var mo_run = vec4<f32>(MASKED);   // running max of the o rows (same values, other rows)
  var o00 = vec4<f32>(0.0);
  var o10 = vec4<f32>(0.0);
  var o20 = vec4<f32>(0.0);
  var o30 = vec4<f32>(0.0);
  var o01 = vec4<f32>(0.0);
  var o11 = vec4<f32>(0.0);
  var o21 = vec4<f32>(0.0);
  var o31 = vec4<f32>(0.0);
  var o02 = vec4<f32>(0.0);
  var o12 = vec4<f32>(0.0);
  var o22 = vec4<f32>(0.0);
  var o32 = vec4<f32>(0.0);
  var o03 = vec4<f32>(0.0);
  var o13 = vec4<f32>(0.0);
  var o23 = vec4<f32>(0.0);
  var o33 = vec4<f32>(0.0);

  for (var c0 = 0u; c0 < key_end; c0 += BLOCK_N) {
    workgroupBarrier();   // the previous tile's readers are done with kv_tile / p_tile / red
    for (var e = tid; e < BLOCK_N * HD4; e += THREADS) {
      let cc = e / HD4;
      let d4 = e % HD4;
      var val = vec4<f32>(0.0);
      if (c0 + cc < Nk && d4 < D4) {
        val = load4_k(k_base + (c0 + cc) * params.k_sn + 4u * d4, D - 4u * d4);
      }
      kv_tile[cc * RS + d4] = vec4<tile_t>(val);
    }
    workgroupBarrier();

    // 1. 4 x 4 scores: rows sa + RG * i, keys sc + CG * j
    var s0 = vec4<f32>(0.0);
    var s1 = vec4<f32>(0.0);
    var s2 = vec4<f32>(0.0);
    var s3 = vec4<f32>(0.0);
    if (s_on) {
      for (var d4 = part; d4 < HD4; d4 += PARTS) {
        let a0 = vec4<f32>(q_tile[(sa) * RS + d4]);
        let a1 = vec4<f32>(q_tile[(sa + RG) * RS + d4]);
        let a2 = vec4<f32>(q_tile[(sa + 2u * RG) * RS + d4]);
        let a3 = vec4<f32>(q_tile[(sa + 3u * RG) * RS + d4]);
        let k0 = vec4<f32>(kv_tile[(sc) * RS + d4]);
        let k1 = vec4<f32>(kv_tile[(sc + CG) * RS + d4]);
        let k2 = vec4<f32>(kv_tile[(sc + 2u * CG) * RS + d4]);
        let k3 = vec4<f32>(kv_tile[(sc + 3u * CG) * RS + d4]);
        s0 += vec4<f32>(dot(a0, k0), dot(a0, k1), dot(a0, k2), dot(a0, k3));
        s1 += vec4<f32>(dot(a1, k0), dot(a1, k1), dot(a1, k2), dot(a1, k3));
        s2 += vec4<f32>(dot(a2, k0), dot(a2, k1), dot(a2, k2), dot(a2, k3));
        s3 += vec4<f32>(dot(a3, k0), dot(a3, k1), dot(a3, k2), dot(a3, k3));
      }
      s0 = fold_parts(s0);
      s1 = fold_parts(s1);
      s2 = fold_parts(s2);
      s3 = fold_parts(s3);
      let jv = vec4<u32>(c0 + sc) + vec4<u32>(0u, CG, 2u * CG, 3u * CG);
      s0 = admit(s0 * scale, s_rows.x, jv, b, h);
      s1 = admit(s1 * scale, s_rows.y, jv, b, h);
      s2 = admit(s2 * scale, s_rows.z, jv, b, h);
      s3 = admit(s3 * scale, s_rows.w, jv, b, h);
      publish_max(vec4<f32>(hmax(s0), hmax(s1), hmax(s2), hmax(s3)), sa, sc, part);
    }
    workgroupBarrier();

    // 2. online softmax: tile max of the rows (from the partial maxima), p for this thread's keys
    if (s_on) {
      let m_new = max(ms_run, tile_max(sa));
      let alpha = rescale(ms_run, m_new);
      ms_run = m_new;
      let p0 = select(vec4<f32>(0.0), exp(s0 - m_new.x), s0 > vec4<f32>(MASKED));
      let p1 = select(vec4<f32>(0.0), exp(s1 - m_new.y), s1 > vec4<f32>(MASKED));
      let p2 = select(vec4<f32>(0.0), exp(s2 - m_new.z), s2 > vec4<f32>(MASKED));
      let p3 = select(vec4<f32>(0.0), exp(s3 - m_new.w), s3 > vec4<f32>(MASKED));
      l_part = l_part * alpha + vec4<f32>(hsum(p0), hsum(p1), hsum(p2), hsum(p3));
      // column j of the block: key sc + CG * j, vec4 over the 4 rows
      var w0 = vec4<f32>(p0.x, p1.x, p2.x, p3.x);
      var w1 = vec4<f32>(p0.y, p1.y, p2.y, p3.y);
      var w2 = vec4<f32>(p0.z, p1.z, p2.z, p3.z);
      var w3 = vec4<f32>(p0.w, p1.w, p2.w, p3.w);
      if (use_dropout) {
        let jv = vec4<u32>(c0 + sc) + vec4<u32>(0u, CG, 2u * CG, 3u * CG);
        w0 = w0 * keep4(bh, s_rows, jv.x);
        w1 = w1 * keep4(bh, s_rows, jv.y);
        w2 = w2 * keep4(bh, s_rows, jv.z);
        w3 = w3 * keep4(bh, s_rows, jv.w);
      }
      if (part == 0u) {
        p_tile[(sc) * (RG + 1u) + sa] = w0;
        p_tile[(sc + CG) * (RG + 1u) + sa] = w1;
        p_tile[(sc + 2u * CG) * (RG + 1u) + sa] = w2;
        p_tile[(sc + 3u * CG) * (RG + 1u) + sa] = w3;
      }
    }
    for (var e = tid; e < BLOCK_N * HD4; e += THREADS) {
      let cc = e / HD4;
      let d4 = e % HD4;
      var val = vec4<f32>(0.0);
      if (c0 + cc < Nk && d4 < DV4) {
        val = load4_v(v_base + (c0 + cc) * params.v_sn + 4u * d4, Dv - 4u * d4);
      }
      kv_tile[cc * RS + d4] = vec4<tile_t>(val);
    }
    workgroupBarrier();

    // 3. o += p v (rows oa + RG * i, vec4 columns oe + TD * n)
    let mo_new = max(mo_run, tile_max(oa));
    let beta = rescale(mo_run, mo_new);
    mo_run = mo_new;
    {
      o00 *= beta.x;
      o10 *= beta.y;
      o20 *= beta.z;
      o30 *= beta.w;
    }
    if (DVN > 1u) {
      o01 *= beta.x;
      o11 *= beta.y;
      o21 *= beta.z;
      o31 *= beta.w;
    }
    if (DVN > 2u) {
      o02 *= beta.x;
      o12 *= beta.y;
      o22 *= beta.z;
      o32 *= beta.w;
    }
    if (DVN > 3u) {
      o03 *= beta.x;
      o13 *= beta.y;
      o23 *= beta.z;
      o33 *= beta.w;
    }
    for (var cc = 0u; cc < BLOCK_N; cc++) {
      let w = p_tile[cc * (RG + 1u) + oa];
      let vb = cc * RS;
      {
        let vv = vec4<f32>(kv_tile[vb + oe]);
        o00 += w.x * vv;
        o10 += w.y * vv;
        o20 += w.z * vv;
        o30 += w.w * vv;
      }
      if (DVN > 1u) {
        let vv = vec4<f32>(kv_tile[vb + min(oe + 1u * TD, HD4 - 1u)]);
        o01 += w.x * vv;
        o11 += w.y * vv;
        o21 += w.z * vv;
        o31 += w.w * vv;
      }
      if (DVN > 2u) {
        let vv = vec4<f32>(kv_tile[vb + min(oe + 2u * TD, HD4 - 1u)]);
        o02 += w.x * vv;
        o12 += w.y * vv;
        o22 += w.z * vv;
        o32 += w.w * vv;
      }
      if (DVN > 3u) {
        let vv = vec4<f32>(kv_tile[vb + min(oe + 3u * TD, HD4 - 1u)]);
        o03 += w.x * vv;
        o13 += w.y * vv;
        o23 += w.z * vv;
        o33 += w.w * vv;
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
  store_row(bh, row0 + oa + 0u * RG, oe, inv.x, mo_run.x, l.x, o00, o01, o02, o03);
  store_row(bh, row0 + oa + 1u * RG, oe, inv.y, mo_run.y, l.y, o10, o11, o12, o13);
  store_row(bh, row0 + oa + 2u * RG, oe, inv.z, mo_run.z, l.z, o20, o21, o22, o23);
  store_row(bh, row0 + oa + 3u * RG, oe, inv.w, mo_run.w, l.w, o30, o31, o32, o33);
}

// Writes one o row's vec4 columns oe + TD * n (n < DVN) times inv, and its lse (thread oe == 0).
fn store_row(bh: u32, row: u32, oe: u32, inv: f32, m: f32, l: f32, a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32>) {
  if (row >= params.Nq) {
    return;
  }
  let Dv = params.Dv;
  let o_base = (bh * params.Nq + row) * Dv;
  store4_o(o_base, oe, a0 * inv);
  if (DVN > 1u) { store4_o(o_base, oe + TD, a1 * inv); }
  if (DVN > 2u) { store4_o(o_base, oe + 2u * TD, a2 * inv); }
  if (DVN > 3u) { store4_o(o_base, oe + 3u * TD, a3 * inv); }
  if (oe == 0u) {
    let lse_val = m + log(l);
    lse[bh * params.Nq + row] = bitcast<f32>(select(0xff800000u, bitcast<u32>(lse_val), l > 0.0));
  }
}

// o[o_base + 4 d4 ..] = val, clipped to the row's Dv elements.
fn store4_o(o_base: u32, d4: u32, val: vec4<f32>) {
  let Dv = params.Dv;
  if (4u * d4 >= Dv) {
    return;
  }
  let left = Dv - 4u * d4;
  if (left >= 4u) {
    o[o_base + 4u * d4] = io_t(val.x);
    o[o_base + 4u * d4 + 1u] = io_t(val.y);
    o[o_base + 4u * d4 + 2u] = io_t(val.z);
    o[o_base + 4u * d4 + 3u] = io_t(val.w);
  } else {
    for (var c = 0u; c < left; c++) {
      o[o_base + 4u * d4 + c] = io_t(val[c]);
    }
  }
}

// Scores of row i for keys jv (already scaled): float mask added, excluded / out-of-range -> MASKED,
// admissible clamped to >= VALID_FLOOR.
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

// Dropout keep multipliers (1 kept, 0 dropped) of rows `rows` at key j.
fn keep4(bh: u32, rows: vec4<u32>, j: u32) -> vec4<f32> {
  let p = params.dropout_p;
  return vec4<f32>(
    select(0.0, 1.0, attn_dropout_keep(params.seed0, params.seed1, bh, rows.x, j, p)),
    select(0.0, 1.0, attn_dropout_keep(params.seed0, params.seed1, bh, rows.y, j, p)),
    select(0.0, 1.0, attn_dropout_keep(params.seed0, params.seed1, bh, rows.z, j, p)),
    select(0.0, 1.0, attn_dropout_keep(params.seed0, params.seed1, bh, rows.w, j, p)));
}
