// Fused scaled dot-product attention, forward (FlashAttention-style online softmax). Entry point: main.
//
// Dimensions
//   B batch, Hq query heads, Hk key/value heads (Hq = g * Hk; query head h reads kv head h / g),
//   Nq queries, Nk keys, D query/key head dim, Dv value head dim (D, Dv <= HEAD_DIM_MAX <= 16 * THREADS_PER_ROW).
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
// Tiling
//   One workgroup = BLOCK_M query rows of one (b, h); dispatch (ceil(Nq / BLOCK_M), Hq, B).
//   BLOCK_M * THREADS_PER_ROW threads; thread (r, t) = (tid / THREADS_PER_ROW, tid % THREADS_PER_ROW) works
//   for query row r. Key tiles of BLOCK_N rows of K and V are streamed through workgroup memory:
//     1. scores: thread (r, t) computes s[r][c] for c = t, t + THREADS_PER_ROW, ...  -> s_tile
//     2. each thread reads its row of s_tile for the tile max, rescales its running state, and writes
//        p = exp(s - m) for its own columns -> p_tile (dropped entries stored negated, so the row sum l of
//        undropped p and the dropped weights come from one array)
//     3. o_acc[r][dv] += p[r][c] * v[c][dv]; thread t owns the vec4 columns t + THREADS_PER_ROW * n (n < 4)
//        in registers. The running max and sum are kept redundantly by every thread of a row (no reductions).
//   Causal: key tiles starting after the tile's last query row are never visited (about half the work).
//   Masked / out-of-range scores are stored as f32 lowest (MASKED); admissible scores are clamped to
//   >= VALID_FLOOR, so "admissible" is "s > MASKED" without any inf arithmetic.
// Workgroup memory (bytes), HD4 = HEAD_DIM_MAX / 4:
//   16 * (BLOCK_M * (HD4 + 1) + BLOCK_N * (HD4 + 1) + BLOCK_N * HD4) + 8 * BLOCK_M * (BLOCK_N + 1)
//   32 KiB adapters: HEAD_DIM_MAX 64:  BLOCK_M 64, BLOCK_N 8,  THREADS_PER_ROW 4  (256 threads) 26 240 B
//                    HEAD_DIM_MAX 128: BLOCK_M 32, BLOCK_N 8,  THREADS_PER_ROW 8  (256 threads) 27 520 B
//                    HEAD_DIM_MAX 256: BLOCK_M 8,  BLOCK_N 8,  THREADS_PER_ROW 16 (128 threads) 25 408 B
//   48 KiB adapters: HEAD_DIM_MAX 64:  BLOCK_M 64, BLOCK_N 16, THREADS_PER_ROW 4  34 560 B;
//                    128: BLOCK_M 32, BLOCK_N 16, THREADS_PER_ROW 8  37 888 B; 256: BLOCK_M 16, BLOCK_N 8, 16  34 304 B
//   (more query rows per workgroup = more reuse of each K/V tile; THREADS_PER_ROW = max(4, HEAD_DIM_MAX / 16).)
// Constraints: HEAD_DIM_MAX % 4 == 0, max(D, Dv) <= HEAD_DIM_MAX, ceil(max(D, Dv) / 4) <= 4 * THREADS_PER_ROW,
//   BLOCK_N <= 8 * THREADS_PER_ROW,
//   BLOCK_M * THREADS_PER_ROW <= maxComputeInvocationsPerWorkgroup, memory above <= maxComputeWorkgroupStorageSize.

//!include random.wgsl

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
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<u32>;
@group(0) @binding(5) var<storage, read_write> o: array<f32>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;

override BLOCK_M: u32 = 16u;          // query rows per workgroup
override BLOCK_N: u32 = 16u;          // keys per streamed tile
override THREADS_PER_ROW: u32 = 8u;   // threads cooperating on one query row
override HEAD_DIM_MAX: u32 = 64u;     // capacity of the tiles: >= max(D, Dv), multiple of 4
// Derived; leave it unset (it exists because reflection cannot read an expression inside @workgroup_size).
override WORKGROUP_SIZE: u32 = BLOCK_M * THREADS_PER_ROW;

// vec4 output accumulators per thread (register array; WGSL needs a const size here).
const ACC4: u32 = 4u;
// score columns per thread per key tile (register array): BLOCK_N <= SCOLS * THREADS_PER_ROW.
const SCOLS: u32 = 8u;
const MASKED: f32 = -0x1.fffffep+127f;   // f32 lowest: "no admissible score"
const VALID_FLOOR: f32 = -3.0e38;        // admissible scores are clamped to >= this (> MASKED)

var<workgroup> q_tile: array<vec4<f32>, BLOCK_M * (HEAD_DIM_MAX / 4u + 1u)>;
var<workgroup> k_tile: array<vec4<f32>, BLOCK_N * (HEAD_DIM_MAX / 4u + 1u)>;
var<workgroup> v_tile: array<vec4<f32>, BLOCK_N * (HEAD_DIM_MAX / 4u)>;
var<workgroup> s_tile: array<f32, BLOCK_M * (BLOCK_N + 1u)>;
var<workgroup> p_tile: array<f32, BLOCK_M * (BLOCK_N + 1u)>;

// Reads 4 consecutive elements starting at base, zero past the row's last element n_left.
fn load4_q(base: u32, n_left: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  if (n_left >= 4u) {
    r = vec4<f32>(q[base], q[base + 1u], q[base + 2u], q[base + 3u]);
  } else {
    for (var c = 0u; c < n_left; c++) { r[c] = q[base + c]; }
  }
  return r;
}

fn load4_k(base: u32, n_left: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  if (n_left >= 4u) {
    r = vec4<f32>(k[base], k[base + 1u], k[base + 2u], k[base + 3u]);
  } else {
    for (var c = 0u; c < n_left; c++) { r[c] = k[base + c]; }
  }
  return r;
}

fn load4_v(base: u32, n_left: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  if (n_left >= 4u) {
    r = vec4<f32>(v[base], v[base + 1u], v[base + 2u], v[base + 3u]);
  } else {
    for (var c = 0u; c < n_left; c++) { r[c] = v[base + c]; }
  }
  return r;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let nthreads = BLOCK_M * THREADS_PER_ROW;
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
  let QS = D4 | 1u;              // odd row stride (in vec4) of q_tile / k_tile: conflict-free column reads
  let SS = BLOCK_N + 1u;         // row stride of s_tile / p_tile
  let r = tid / THREADS_PER_ROW;
  let t = tid % THREADS_PER_ROW;
  let i = row0 + r;
  let row_ok = i < Nq;
  let mask_kind = params.mask_kind;
  let use_dropout = params.dropout_p > 0.0;
  let m_row = params.m_off + b * params.m_sb + h * params.m_sh + i * params.m_sq;

  let q_base = params.q_off + b * params.q_sb + h * params.q_sh;
  for (var e = tid; e < BLOCK_M * D4; e += nthreads) {
    let rr = e / D4;
    let d4 = e % D4;
    var val = vec4<f32>(0.0);
    if (row0 + rr < Nq) {
      val = load4_q(q_base + (row0 + rr) * params.q_sn + 4u * d4, D - 4u * d4);
    }
    q_tile[rr * QS + d4] = val;
  }

  let k_base = params.k_off + b * params.k_sb + hk * params.k_sh;
  let v_base = params.v_off + b * params.v_sb + hk * params.v_sh;

  var key_end = Nk;
  if (params.causal != 0u) {
    key_end = min(Nk, row0 + BLOCK_M);
  }

  var m_run = MASKED;
  var l_run = 0.0;
  var acc: array<vec4<f32>, ACC4>;
  for (var n = 0u; n < ACC4; n++) { acc[n] = vec4<f32>(0.0); }

  for (var c0 = 0u; c0 < key_end; c0 += BLOCK_N) {
    workgroupBarrier();   // the previous tile's readers are done with k_tile / v_tile / p_tile
    for (var e = tid; e < BLOCK_N * D4; e += nthreads) {
      let cc = e / D4;
      let d4 = e % D4;
      var val = vec4<f32>(0.0);
      if (c0 + cc < Nk) {
        val = load4_k(k_base + (c0 + cc) * params.k_sn + 4u * d4, D - 4u * d4);
      }
      k_tile[cc * QS + d4] = val;
    }
    for (var e = tid; e < BLOCK_N * DV4; e += nthreads) {
      let cc = e / DV4;
      let d4 = e % DV4;
      var val = vec4<f32>(0.0);
      if (c0 + cc < Nk) {
        val = load4_v(v_base + (c0 + cc) * params.v_sn + 4u * d4, Dv - 4u * d4);
      }
      v_tile[cc * DV4 + d4] = val;
    }
    workgroupBarrier();

    // 1. scores for this thread's columns t + THREADS_PER_ROW * n (q is read once per vec4 for all of them)
    var dots: array<vec4<f32>, SCOLS>;
    for (var n = 0u; n < SCOLS; n++) { dots[n] = vec4<f32>(0.0); }
    if (row_ok) {
      for (var d4 = 0u; d4 < D4; d4++) {
        let qv = q_tile[r * QS + d4];
        for (var n = 0u; n < SCOLS; n++) {
          let cc = t + THREADS_PER_ROW * n;
          if (cc < BLOCK_N) {
            dots[n] += qv * k_tile[cc * QS + d4];
          }
        }
      }
    }
    for (var n = 0u; n < SCOLS; n++) {
      let cc = t + THREADS_PER_ROW * n;
      if (cc >= BLOCK_N) {
        break;
      }
      let j = c0 + cc;
      var s = MASKED;
      if (row_ok && j < Nk && !(params.causal != 0u && j > i)) {
        let dot4 = dots[n];
        var sc = params.scale * ((dot4.x + dot4.y) + (dot4.z + dot4.w));
        var admissible = true;
        if (mask_kind == 1u) {
          admissible = mask[m_row + j * params.m_sk] != 0u;
        } else if (mask_kind == 2u) {
          let bits = mask[m_row + j * params.m_sk];
          if (bits == 0xff800000u) {
            admissible = false;
          } else {
            sc += bitcast<f32>(bits);
          }
        }
        if (admissible) {
          s = max(sc, VALID_FLOOR);
        }
      }
      s_tile[r * SS + cc] = s;
    }
    workgroupBarrier();

    // 2. online softmax: tile max over the row, rescale, probabilities for this thread's columns
    var m_tile = MASKED;
    for (var cc = 0u; cc < BLOCK_N; cc++) {
      m_tile = max(m_tile, s_tile[r * SS + cc]);
    }
    let m_new = max(m_run, m_tile);
    var alpha = 1.0;
    if (m_run > MASKED) {
      alpha = exp(m_run - m_new);
    }
    for (var cc = t; cc < BLOCK_N; cc += THREADS_PER_ROW) {
      let s = s_tile[r * SS + cc];
      var p = 0.0;
      if (s > MASKED) {
        p = exp(s - m_new);
        if (use_dropout && !attn_dropout_keep(params.seed0, params.seed1, bh, i, c0 + cc, params.dropout_p)) {
          p = -p;
        }
      }
      p_tile[r * SS + cc] = p;
    }
    m_run = m_new;
    workgroupBarrier();

    // 3. o += p v (dropped entries count in l but not in o)
    l_run *= alpha;
    for (var n = 0u; n < ACC4; n++) { acc[n] *= alpha; }
    let c_end = min(BLOCK_N, key_end - c0);
    for (var cc = 0u; cc < c_end; cc++) {
      let pv = p_tile[r * SS + cc];
      l_run += abs(pv);
      let w = max(pv, 0.0);
      for (var n = 0u; n < ACC4; n++) {
        let d4 = t + THREADS_PER_ROW * n;
        if (d4 < DV4) {
          acc[n] += w * v_tile[cc * DV4 + d4];
        }
      }
    }
  }

  if (row_ok) {
    var inv = 0.0;
    if (l_run > 0.0) {
      inv = 1.0 / l_run;
      if (use_dropout) {
        inv *= 1.0 / (1.0 - params.dropout_p);
      }
    }
    let o_base = (bh * Nq + i) * Dv;
    for (var n = 0u; n < ACC4; n++) {
      let d4 = t + THREADS_PER_ROW * n;
      if (d4 < DV4) {
        let val = acc[n] * inv;
        let left = Dv - 4u * d4;
        for (var c = 0u; c < min(4u, left); c++) {
          o[o_base + 4u * d4 + c] = val[c];
        }
      }
    }
    if (t == 0u) {
      let lse_val = m_run + log(l_run);
      lse[bh * Nq + i] = bitcast<f32>(select(0xff800000u, bitcast<u32>(lse_val), l_run > 0.0));
    }
  }
}
