// Fused scaled dot-product attention, forward, register-tiled for software adapters (no workgroup memory, no barriers).
// Entry point: main_rows. Same bindings, params, outputs and semantics as attention_forward.wgsl's main (see its header;
// this file includes it for its helpers), plus k4 / v4: vec4 views of k and v, whose offsets and strides the plan
// checks are multiples of 4.
//
// Tiling
//   One workgroup is one subgroup of ROWS_LANES = 8 invocations (THREADS = 8; 'subgroups' variant only: lane_vec and
//   any_lane are the subgroup operations of attention_lanes_subgroups.wgsl). Invocation tid owns the 4 query rows
//   row0 + tid + THREADS * r (r < 4): BLOCK_M = 4 * THREADS, so RG = THREADS and admit_block's rows are the thread's.
//   q and the o accumulators of its rows stay in registers (HEAD_DIM_MAX = 64 = 4 * ROWS_HD4: the loops over the head
//   dim have the arrays' length, so the compiler unrolls them and indexes the arrays with constants), so do the running
//   max and sum per row. It walks the visited key tiles (causal skipping and block masks as main) 4 keys at a time: the
//   4 k (then v) rows, 64 vec4, are read from storage once per subgroup, 8 vec4 per lane (lane t holds vec4 t + 8 * (i %
//   2) of key i / 2 in share[i]), and every lane takes each vec4 from the lane holding it (lane_vec). On lavapipe a
//   storage or workgroup load costs a bounds check and a branch per lane (as much for a vec4 as for one f32), and a
//   barrier splits the shader, so this is cheaper than main's workgroup tiles ([1, 4, 1024, 64]: 3-4x, bench/README.md).
//   Per key group: 4 x 4 scores, admit_block (masks, mods), main's online softmax with o rescaled only where a row's max
//   grew (exp(0) = 1 elsewhere: the same numbers), o += p v.
// Non-finite values: a first pass multiplies the zero weights of inadmissible entries in with the rest; where a row's o
//   then holds a non-finite value (an inf or NaN in v, admissible or not), the subgroup recomputes its rows skipping
//   inadmissible entries (fma_rows' keep), as main does once a tile held a non-finite value.
// Constraints: THREADS = ROWS_LANES = the subgroup size (invocations in index order), BLOCK_M = 4 * THREADS,
//   BLOCK_N % 4 == 0, HEAD_DIM_MAX = 64 >= max(D, Dv), D and Dv multiples of 4, k and v offsets and strides multiples
//   of 4 (src/attention/tiles.ts checks them).

//!include attention_forward.wgsl
//!include attention_lanes.wgsl

const ROWS_HD4: u32 = 16u;
const ROWS_LANES: u32 = 8u;

@group(0) @binding(7) var<storage, read> k4: array<vec4<io_t>>;
@group(0) @binding(8) var<storage, read> v4: array<vec4<io_t>>;

// This lane's share of the 4 rows (k4 or v4 from vec4 offsets base + rows4 * stride4) of a key group: vec4 tid + 8 * (i % 2)
// of row i / 2 in element i, zero past the row's n4 vec4s.
fn rows_share(is_v: bool, rows4: vec4<u32>, tid: u32, n4: u32) -> array<vec4<f32>, ROWS_LANES> {
  var share: array<vec4<f32>, ROWS_LANES>;
  for (var i = 0u; i < ROWS_LANES; i++) {
    let d4 = tid + ROWS_LANES * (i % 2u);
    let at = rows4[i / 2u] + min(d4, n4 - 1u);
    var x: vec4<f32>;
    if (is_v) {
      x = vec4<f32>(v4[at]);
    } else {
      x = vec4<f32>(k4[at]);
    }
    share[i] = select(vec4<f32>(0.0), x, d4 < n4);
  }
  return share;
}

@compute @workgroup_size(THREADS)
fn main_rows(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wg: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
  let qt = query_tile(wg, nwg);
  if (!qt.valid) {
    return;
  }
  let D4 = params.D / 4u;
  let DV4 = params.Dv / 4u;
  let use_dropout = params.dropout_p > 0.0;
  let rows = vec4<u32>(qt.row0 + tid) + vec4<u32>(0u, THREADS, 2u * THREADS, 3u * THREADS);
  let q_rows = vec4<u32>(params.q_off + qt.b * params.q_sb + qt.h * params.q_sh) + min(rows, vec4<u32>(params.Nq - 1u)) * params.q_sn;
  var qr: array<Block4, ROWS_HD4>;
  for (var d4 = 0u; d4 < ROWS_HD4; d4++) {
    let left = select(0u, params.D - 4u * d4, d4 < D4);
    qr[d4] = Block4(load4(SRC_Q, q_rows.x + 4u * d4, left), load4(SRC_Q, q_rows.y + 4u * d4, left),
                    load4(SRC_Q, q_rows.z + 4u * d4, left), load4(SRC_Q, q_rows.w + 4u * d4, left));
  }
  let k_base = (params.k_off + qt.b * params.k_sb + qt.hk * params.k_sh) / 4u;
  let v_base = (params.v_off + qt.b * params.v_sb + qt.hk * params.v_sh) / 4u;
  let n_tiles = key_tile_count(qt.b, qt.h, qt.row0, causal_key_end(qt.row0, BLOCK_M));
  let last_key = vec4<u32>(max(params.Nk, 1u) - 1u);

  var acc: array<Block4, ROWS_HD4>;
  var m_run = vec4<f32>(MASKED);
  var l = vec4<f32>(0.0);
  var careful = false;
  loop {
    for (var n = 0u; n < n_tiles; n++) {
      let c0 = key_tile_start(qt.b, qt.h, qt.row0, n);
      for (var g = 0u; g < BLOCK_N; g += 4u) {
        let jv = vec4<u32>(c0 + g) + vec4<u32>(0u, 1u, 2u, 3u);
        let ks = rows_share(false, vec4<u32>(k_base) + min(jv, last_key) * (params.k_sn / 4u), tid, D4);
        var s = Block4(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
        for (var d4 = 0u; d4 < ROWS_HD4; d4++) {
          let lane = d4 % ROWS_LANES;
          let hi = d4 / ROWS_LANES;
          let y0 = lane_vec(ks[hi], lane);
          let y1 = lane_vec(ks[2u + hi], lane);
          let y2 = lane_vec(ks[4u + hi], lane);
          let y3 = lane_vec(ks[6u + hi], lane);
          let x = qr[d4];
          s.r0 = rows_dot(s.r0, x.r0, y0, y1, y2, y3);
          s.r1 = rows_dot(s.r1, x.r1, y0, y1, y2, y3);
          s.r2 = rows_dot(s.r2, x.r2, y0, y1, y2, y3);
          s.r3 = rows_dot(s.r3, x.r3, y0, y1, y2, y3);
        }
        let e = admit_block(s, qt.row0, tid, jv, qt.b, qt.h);
        let m_new = max(m_run, vec4<f32>(hmax(e.r0), hmax(e.r1), hmax(e.r2), hmax(e.r3)));
        if (any(m_new > m_run)) {
          let alpha = rescale(m_run, m_new);
          l *= alpha;
          for (var d4 = 0u; d4 < ROWS_HD4; d4++) {
            acc[d4] = scale_rows(acc[d4], alpha);
          }
          m_run = m_new;
        }
        let p = Block4(weights(e.r0, m_run.x), weights(e.r1, m_run.y), weights(e.r2, m_run.z), weights(e.r3, m_run.w));
        l += vec4<f32>(hsum(p.r0), hsum(p.r1), hsum(p.r2), hsum(p.r3));
        var w0 = block_column(p, 0u);
        var w1 = block_column(p, 1u);
        var w2 = block_column(p, 2u);
        var w3 = block_column(p, 3u);
        if (use_dropout) {
          w0 *= keep4(qt.bh, rows, jv.x);
          w1 *= keep4(qt.bh, rows, jv.y);
          w2 *= keep4(qt.bh, rows, jv.z);
          w3 *= keep4(qt.bh, rows, jv.w);
        }
        let vs = rows_share(true, vec4<u32>(v_base) + min(jv, last_key) * (params.v_sn / 4u), tid, DV4);
        // keep: every row where the weights are plain (first pass), the admissible entries after a non-finite o.
        let all = vec4<bool>(!careful);
        let k0 = unpack_bits(adm_bits(block_column(e, 0u))) | all;
        let k1 = unpack_bits(adm_bits(block_column(e, 1u))) | all;
        let k2 = unpack_bits(adm_bits(block_column(e, 2u))) | all;
        let k3 = unpack_bits(adm_bits(block_column(e, 3u))) | all;
        for (var d4 = 0u; d4 < ROWS_HD4; d4++) {
          let lane = d4 % ROWS_LANES;
          let hi = d4 / ROWS_LANES;
          var a = fma_rows(acc[d4], w0, lane_vec(vs[hi], lane), k0);
          a = fma_rows(a, w1, lane_vec(vs[2u + hi], lane), k1);
          a = fma_rows(a, w2, lane_vec(vs[4u + hi], lane), k2);
          acc[d4] = fma_rows(a, w3, lane_vec(vs[6u + hi], lane), k3);
        }
      }
    }
    var bad = vec4<bool>(false);
    for (var d4 = 0u; d4 < ROWS_HD4; d4++) {
      let a = acc[d4];
      bad = bad | vec4<bool>(any_nonfinite(a.r0), any_nonfinite(a.r1), any_nonfinite(a.r2), any_nonfinite(a.r3));
    }
    if (careful || !any_lane(any(bad & (rows < vec4<u32>(params.Nq))))) {
      break;
    }
    careful = true;
    acc = array<Block4, ROWS_HD4>();
    m_run = vec4<f32>(MASKED);
    l = vec4<f32>(0.0);
  }

  var inv = select(vec4<f32>(0.0), 1.0 / l, l > vec4<f32>(0.0));
  if (use_dropout) {
    inv *= 1.0 / (1.0 - params.dropout_p);
  }
  for (var c = 0u; c < ROWS_HD4; c += 4u) {
    let a0 = acc[c];
    let a1 = acc[c + 1u];
    let a2 = acc[c + 2u];
    let a3 = acc[c + 3u];
    store_row(qt, rows.x, c, 1u, 4u, inv.x, m_run.x, l.x, a0.r0, a1.r0, a2.r0, a3.r0);
    store_row(qt, rows.y, c, 1u, 4u, inv.y, m_run.y, l.y, a0.r1, a1.r1, a2.r1, a3.r1);
    store_row(qt, rows.z, c, 1u, 4u, inv.z, m_run.z, l.z, a0.r2, a1.r2, a2.r2, a3.r2);
    store_row(qt, rows.w, c, 1u, 4u, inv.w, m_run.w, l.w, a0.r3, a1.r3, a2.r3, a3.r3);
  }
  flex_report();
}

// s (one row, 4 keys) + the row's 4 head-dim values x against the 4 keys' y0..y3.
fn rows_dot(s: vec4<f32>, x: vec4<f32>, y0: vec4<f32>, y1: vec4<f32>, y2: vec4<f32>, y3: vec4<f32>) -> vec4<f32> {
  var r = fma(vec4<f32>(x.x), vec4<f32>(y0.x, y1.x, y2.x, y3.x), s);
  r = fma(vec4<f32>(x.y), vec4<f32>(y0.y, y1.y, y2.y, y3.y), r);
  r = fma(vec4<f32>(x.z), vec4<f32>(y0.z, y1.z, y2.z, y3.z), r);
  return fma(vec4<f32>(x.w), vec4<f32>(y0.w, y1.w, y2.w, y3.w), r);
}
