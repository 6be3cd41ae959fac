// Fused scaled dot-product attention, backward (FlashAttention-2 style). Entry points: delta_main, dkdv, dq_main
// (not `delta` / `dq`: WGSL puts functions and bindings in one namespace and the bindings own those names).
//
// Dimensions: B batch, Hq query heads, Hk kv heads (g = Hq / Hk; query head h reads kv head h / g), Nq queries,
//   Nk keys, D query/key head dim, Dv value head dim (D, Dv <= HEAD_DIM_MAX <= 16 * THREADS).
// Inputs (same meaning and params as attention_forward.wgsl): q, k, v (offset + strides from params), mask,
//   o and dout [B, Hq, Nq, Dv] contiguous, lse [B, Hq, Nq] contiguous (from the forward; -inf = fully masked row).
// Scores are recomputed exactly as in the forward: s_ij = scale * dot(q_i, k_j) (+ float mask),
//   p_ij = exp(s_ij - lse_i) (0 for an excluded key or a row with lse = -inf), z_ij = keep_ij / (1 - dropout_p)
//   (1 without dropout), dP_ij = z_ij * dot(dO_i, v_j), dS_ij = p_ij * (dP_ij - delta_i).
//
// delta_main  delta[bh * Nq + i] = sum_d dout * o (row-wise; bh = b * Hq + h). One thread per row, DELTA_WG threads
//        per workgroup; dispatch x = ceil(B * Hq * Nq / DELTA_WG) (a 2-D grid (x, y) with x * y * DELTA_WG >= rows
//        is also accepted). Uses: params, o, dout, delta.
// dkdv   a workgroup owns BLOCK_N keys of one (b, hk): dispatch (ceil(Nk / BLOCK_N), Hk, B), BLOCK_N * THREADS
//        threads. K and V tiles stay in workgroup memory; it loops over the g query heads of the group and over
//        query tiles of BLOCK_M rows (under causal, starting at the first tile that can see the keys):
//          1. thread (c, t) computes p and dS for rows t, t + THREADS, ... of its key c -> p_tile, ds_tile
//          2. thread (c, t) accumulates dV_c += (p z)_rc dO_r and dK_c += dS_rc q_r for its vec4 columns
//             t + THREADS * n (n < 4) in registers.
//        Writes dk [B, Hk, Nk, D] = scale * dK and dv [B, Hk, Nk, Dv] (contiguous; per batch even when k/v
//        broadcast over the batch: the caller reduces). No atomics.
//        Uses: params, q, k, v, mask, dout, lse, delta, dk, dv.
// dq_main  a workgroup owns BLOCK_M queries of one (b, h): dispatch (ceil(Nq / BLOCK_M), Hq, B), BLOCK_M * THREADS
//        threads; streams key tiles of BLOCK_N (causal: only up to the tile's last row, unless dmask is written):
//          1. thread (r, t) computes dS for keys t, t + THREADS, ... of its row r -> ds_tile (and dmask)
//          2. thread (r, t) accumulates dQ_r += dS_rc k_c for its vec4 columns.
//        Writes dq [B, Hq, Nq, D] = scale * dQ; when write_dmask == 1 also dmask [B, Hq, Nq, Nk] = dS (the
//        gradient of the additive float mask; every element is written, 0 where excluded).
//        Uses: params, q, k, v, mask, dout, lse, delta, dq, dmask.
// Workgroup memory (bytes), HD4 = HEAD_DIM_MAX / 4, T = 16 * (HD4 + 1) * (2 * BLOCK_M + 2 * BLOCK_N):
//   dkdv: T + 8 * BLOCK_M * (BLOCK_N + 1) + 8 * BLOCK_M;   dq: T + 4 * BLOCK_M * (BLOCK_N + 1) + 8 * BLOCK_M
//   32 KiB, THREADS = max(4, HEAD_DIM_MAX / 16):
//     HEAD_DIM_MAX 64:  dkdv BLOCK_N 32, BLOCK_M 16 -> 30 464 B; dq BLOCK_M 32, BLOCK_N 16 -> 28 544 B
//     HEAD_DIM_MAX 128: dkdv BLOCK_N 16, BLOCK_M 8  -> 26 496 B; dq BLOCK_M 16, BLOCK_N 8  -> 26 048 B
//     HEAD_DIM_MAX 256: dkdv BLOCK_N 8,  BLOCK_M 4  -> 25 280 B; dq BLOCK_M 8,  BLOCK_N 4  -> 25 184 B
//   48 KiB: 64: dkdv 64/8 (43 392 B), dq 64/16 (48 384 B); 128: dkdv 32/8, dq 32/8; 256: dkdv 16/4, dq 16/4
// Constraints: HEAD_DIM_MAX % 4 == 0, max(D, Dv) <= HEAD_DIM_MAX, ceil(max(D, Dv) / 4) <= 4 * THREADS, memory
//   <= maxComputeWorkgroupStorageSize, workgroup size <= maxComputeInvocationsPerWorkgroup. Each pipeline
//   (entry point) takes its own constants, so dkdv and dq may use different BLOCK_M / BLOCK_N.

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
  write_dmask: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<u32>;
@group(0) @binding(5) var<storage, read> o: array<f32>;
@group(0) @binding(6) var<storage, read> dout: array<f32>;
@group(0) @binding(7) var<storage, read> lse: array<f32>;
@group(0) @binding(8) var<storage, read_write> delta: array<f32>;   // written by delta_main, only read by dkdv / dq_main
@group(0) @binding(9) var<storage, read_write> dq: array<f32>;
@group(0) @binding(10) var<storage, read_write> dk: array<f32>;
@group(0) @binding(11) var<storage, read_write> dv: array<f32>;
@group(0) @binding(12) var<storage, read_write> dmask: array<f32>;

override BLOCK_M: u32 = 16u;        // query rows per tile (dq: per workgroup)
override BLOCK_N: u32 = 16u;        // keys per tile (dkdv: per workgroup)
override THREADS: u32 = 8u;         // threads per owned row (dq) or owned key (dkdv)
override HEAD_DIM_MAX: u32 = 64u;   // tile capacity: >= max(D, Dv), multiple of 4
override DELTA_WG: u32 = 64u;       // workgroup size of the delta entry
// Derived; leave them unset (reflection cannot read an expression inside @workgroup_size).
override DQ_WORKGROUP: u32 = BLOCK_M * THREADS;
override DKDV_WORKGROUP: u32 = BLOCK_N * THREADS;

const ACC4: u32 = 4u;
const MASKED: f32 = -0x1.fffffep+127f;
const VALID_FLOOR: f32 = -3.0e38;

var<workgroup> q_tile: array<vec4<f32>, BLOCK_M * (HEAD_DIM_MAX / 4u + 1u)>;
var<workgroup> do_tile: array<vec4<f32>, BLOCK_M * (HEAD_DIM_MAX / 4u + 1u)>;
var<workgroup> k_tile: array<vec4<f32>, BLOCK_N * (HEAD_DIM_MAX / 4u + 1u)>;
var<workgroup> v_tile: array<vec4<f32>, BLOCK_N * (HEAD_DIM_MAX / 4u + 1u)>;
var<workgroup> ds_tile: array<f32, BLOCK_M * (BLOCK_N + 1u)>;
var<workgroup> p_tile: array<f32, BLOCK_M * (BLOCK_N + 1u)>;
var<workgroup> lse_tile: array<f32, BLOCK_M>;
var<workgroup> delta_tile: array<f32, BLOCK_M>;

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

fn load4_dout(base: u32, n_left: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  if (n_left >= 4u) {
    r = vec4<f32>(dout[base], dout[base + 1u], dout[base + 2u], dout[base + 3u]);
  } else {
    for (var c = 0u; c < n_left; c++) { r[c] = dout[base + c]; }
  }
  return r;
}

// lse as stored by the forward, with -inf (fully masked row) mapped to MASKED so no inf is ever computed with.
fn lse_or_masked(x: f32) -> f32 {
  return select(x, MASKED, bitcast<u32>(x) == 0xff800000u);
}

// Loads query rows [row0, row0 + BLOCK_M) of head (b, h): q_tile, do_tile, lse_tile, delta_tile.
fn load_query_tile(tid: u32, nthreads: u32, b: u32, h: u32, row0: u32) {
  let Nq = params.Nq;
  let D4 = (params.D + 3u) / 4u;
  let DV4 = (params.Dv + 3u) / 4u;
  let QS = D4 | 1u;
  let DS = DV4 | 1u;
  let bh = b * params.Hq + h;
  let q_base = params.q_off + b * params.q_sb + h * params.q_sh;
  for (var e = tid; e < BLOCK_M * D4; e += nthreads) {
    let rr = e / D4;
    let d4 = e % D4;
    var val = vec4<f32>(0.0);
    if (row0 + rr < Nq) {
      val = load4_q(q_base + (row0 + rr) * params.q_sn + 4u * d4, params.D - 4u * d4);
    }
    q_tile[rr * QS + d4] = val;
  }
  for (var e = tid; e < BLOCK_M * DV4; e += nthreads) {
    let rr = e / DV4;
    let d4 = e % DV4;
    var val = vec4<f32>(0.0);
    if (row0 + rr < Nq) {
      val = load4_dout((bh * Nq + row0 + rr) * params.Dv + 4u * d4, params.Dv - 4u * d4);
    }
    do_tile[rr * DS + d4] = val;
  }
  for (var rr = tid; rr < BLOCK_M; rr += nthreads) {
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

// Loads keys [c0, c0 + BLOCK_N) of kv head (b, hk): k_tile, v_tile.
fn load_key_tile(tid: u32, nthreads: u32, b: u32, hk: u32, c0: u32) {
  let Nk = params.Nk;
  let D4 = (params.D + 3u) / 4u;
  let DV4 = (params.Dv + 3u) / 4u;
  let QS = D4 | 1u;
  let DS = DV4 | 1u;
  let k_base = params.k_off + b * params.k_sb + hk * params.k_sh;
  let v_base = params.v_off + b * params.v_sb + hk * params.v_sh;
  for (var e = tid; e < BLOCK_N * D4; e += nthreads) {
    let cc = e / D4;
    let d4 = e % D4;
    var val = vec4<f32>(0.0);
    if (c0 + cc < Nk) {
      val = load4_k(k_base + (c0 + cc) * params.k_sn + 4u * d4, params.D - 4u * d4);
    }
    k_tile[cc * QS + d4] = val;
  }
  for (var e = tid; e < BLOCK_N * DV4; e += nthreads) {
    let cc = e / DV4;
    let d4 = e % DV4;
    var val = vec4<f32>(0.0);
    if (c0 + cc < Nk) {
      val = load4_v(v_base + (c0 + cc) * params.v_sn + 4u * d4, params.Dv - 4u * d4);
    }
    v_tile[cc * DS + d4] = val;
  }
}

struct Entry {
  p: f32,    // softmax probability (undropped)
  pz: f32,   // p * z: the weight dV uses
  ds: f32,   // dS
}

// Recomputes one score's p and dS from the tiles (tile-local row rr, tile-local key cc; global i, j).
fn score_grad(b: u32, h: u32, rr: u32, cc: u32, i: u32, j: u32) -> Entry {
  var res = Entry(0.0, 0.0, 0.0);
  let lse_i = lse_tile[rr];
  if (i >= params.Nq || j >= params.Nk || lse_i <= MASKED || (params.causal != 0u && j > i)) {
    return res;
  }
  let D4 = (params.D + 3u) / 4u;
  let DV4 = (params.Dv + 3u) / 4u;
  let QS = D4 | 1u;
  let DS = DV4 | 1u;
  var dot4 = vec4<f32>(0.0);
  for (var d4 = 0u; d4 < D4; d4++) {
    dot4 += q_tile[rr * QS + d4] * k_tile[cc * QS + d4];
  }
  var sc = params.scale * ((dot4.x + dot4.y) + (dot4.z + dot4.w));
  if (params.mask_kind != 0u) {
    let bits = mask[params.m_off + b * params.m_sb + h * params.m_sh + i * params.m_sq + j * params.m_sk];
    if (params.mask_kind == 1u) {
      if (bits == 0u) { return res; }
    } else {
      if (bits == 0xff800000u) { return res; }
      sc += bitcast<f32>(bits);
    }
  }
  let s = max(sc, VALID_FLOOR);
  let p = exp(s - lse_i);
  var z = 1.0;
  if (params.dropout_p > 0.0) {
    let bh = b * params.Hq + h;
    z = select(0.0, 1.0 / (1.0 - params.dropout_p), attn_dropout_keep(params.seed0, params.seed1, bh, i, j, params.dropout_p));
  }
  var dp4 = vec4<f32>(0.0);
  for (var d4 = 0u; d4 < DV4; d4++) {
    dp4 += do_tile[rr * DS + d4] * v_tile[cc * DS + d4];
  }
  let dp = z * ((dp4.x + dp4.y) + (dp4.z + dp4.w));
  res.p = p;
  res.pz = p * z;
  res.ds = p * (dp - delta_tile[rr]);
  return res;
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
    acc += dout[base + d] * o[base + d];
  }
  delta[row] = acc;
}

@compute @workgroup_size(DKDV_WORKGROUP)
fn dkdv(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let nthreads = BLOCK_N * THREADS;
  let b = wg.z;
  let hk = wg.y;
  let c0 = wg.x * BLOCK_N;
  let g = params.Hq / params.Hk;
  let Nq = params.Nq;
  let D = params.D;
  let Dv = params.Dv;
  let D4 = (D + 3u) / 4u;
  let DV4 = (Dv + 3u) / 4u;
  let QS = D4 | 1u;
  let DS = DV4 | 1u;
  let SS = BLOCK_N + 1u;
  let cc = tid / THREADS;
  let t = tid % THREADS;
  let j = c0 + cc;

  load_key_tile(tid, nthreads, b, hk, c0);

  var dk_acc: array<vec4<f32>, ACC4>;
  var dv_acc: array<vec4<f32>, ACC4>;
  for (var n = 0u; n < ACC4; n++) {
    dk_acc[n] = vec4<f32>(0.0);
    dv_acc[n] = vec4<f32>(0.0);
  }

  // Under causal, query rows below c0 see none of these keys: start at the tile holding row c0.
  var row_start = 0u;
  if (params.causal != 0u) {
    row_start = (c0 / BLOCK_M) * BLOCK_M;
  }

  for (var h = hk * g; h < hk * g + g; h++) {
    for (var row0 = row_start; row0 < Nq; row0 += BLOCK_M) {
      workgroupBarrier();   // previous tile's readers are done (also orders the K/V tile load)
      load_query_tile(tid, nthreads, b, h, row0);
      workgroupBarrier();

      for (var rr = t; rr < BLOCK_M; rr += THREADS) {
        let e = score_grad(b, h, rr, cc, row0 + rr, j);
        p_tile[rr * SS + cc] = e.pz;
        ds_tile[rr * SS + cc] = e.ds;
      }
      workgroupBarrier();

      let r_end = min(BLOCK_M, Nq - row0);
      for (var rr = 0u; rr < r_end; rr++) {
        let pz = p_tile[rr * SS + cc];
        let dsv = ds_tile[rr * SS + cc];
        for (var n = 0u; n < ACC4; n++) {
          let d4 = t + THREADS * n;
          if (d4 < DV4) {
            dv_acc[n] += pz * do_tile[rr * DS + d4];
          }
          if (d4 < D4) {
            dk_acc[n] += dsv * q_tile[rr * QS + d4];
          }
        }
      }
    }
  }

  if (j < params.Nk) {
    let kv_row = (b * params.Hk + hk) * params.Nk + j;
    for (var n = 0u; n < ACC4; n++) {
      let d4 = t + THREADS * n;
      if (d4 < D4) {
        let val = dk_acc[n] * params.scale;
        for (var c = 0u; c < min(4u, D - 4u * d4); c++) {
          dk[kv_row * D + 4u * d4 + c] = val[c];
        }
      }
      if (d4 < DV4) {
        let val = dv_acc[n];
        for (var c = 0u; c < min(4u, Dv - 4u * d4); c++) {
          dv[kv_row * Dv + 4u * d4 + c] = val[c];
        }
      }
    }
  }
}

@compute @workgroup_size(DQ_WORKGROUP)
fn dq_main(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let nthreads = BLOCK_M * THREADS;
  let b = wg.z;
  let h = wg.y;
  let row0 = wg.x * BLOCK_M;
  let hk = h / (params.Hq / params.Hk);
  let bh = b * params.Hq + h;
  let Nq = params.Nq;
  let Nk = params.Nk;
  let D = params.D;
  let D4 = (D + 3u) / 4u;
  let QS = D4 | 1u;
  let SS = BLOCK_N + 1u;
  let rr = tid / THREADS;
  let t = tid % THREADS;
  let i = row0 + rr;
  let write_dmask = params.write_dmask != 0u;

  load_query_tile(tid, nthreads, b, h, row0);

  var dq_acc: array<vec4<f32>, ACC4>;
  for (var n = 0u; n < ACC4; n++) { dq_acc[n] = vec4<f32>(0.0); }

  var key_end = Nk;
  if (params.causal != 0u && !write_dmask) {
    key_end = min(Nk, row0 + BLOCK_M);
  }

  for (var c0 = 0u; c0 < key_end; c0 += BLOCK_N) {
    workgroupBarrier();
    load_key_tile(tid, nthreads, b, hk, c0);
    workgroupBarrier();

    for (var cc = t; cc < BLOCK_N; cc += THREADS) {
      let j = c0 + cc;
      let e = score_grad(b, h, rr, cc, i, j);
      ds_tile[rr * SS + cc] = e.ds;
      if (write_dmask && i < Nq && j < Nk) {
        dmask[(bh * Nq + i) * Nk + j] = e.ds;
      }
    }
    workgroupBarrier();

    let c_end = min(BLOCK_N, key_end - c0);
    for (var cc = 0u; cc < c_end; cc++) {
      let dsv = ds_tile[rr * SS + cc];
      for (var n = 0u; n < ACC4; n++) {
        let d4 = t + THREADS * n;
        if (d4 < D4) {
          dq_acc[n] += dsv * k_tile[cc * QS + d4];
        }
      }
    }
  }

  if (i < Nq) {
    for (var n = 0u; n < ACC4; n++) {
      let d4 = t + THREADS * n;
      if (d4 < D4) {
        let val = dq_acc[n] * params.scale;
        for (var c = 0u; c < min(4u, D - 4u * d4); c++) {
          dq[(bh * Nq + i) * D + 4u * d4 + c] = val[c];
        }
      }
    }
  }
}
