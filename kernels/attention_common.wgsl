// What the fused attention kernels share: attention_forward.wgsl (entry main) and attention_backward.wgsl (delta_main,
// dkdv, dq_main) include this file. It holds the params, the q / k / v / mask bindings and their loads, the tile
// constants, the admissibility rule (admit), the score hooks, the grid folding, and the ONE routine that computes a
// 4 x 4 score block (score_block), used by the forward and by both backward passes.
//
// The including file provides
//   alias io_t (storage element of q, k, v: f32, or f16 in the 'f16' variant) and alias tile_t (workgroup tiles);
//   fn row_vec(pair: u32, idx: u32) -> vec4<f32> and fn col_vec(pair: u32, idx: u32) -> vec4<f32>: element idx
//     (row * RS + d4) of the row and column tiles of operand pair `pair` (0: q rows and k rows; the backward's
//     1: dO rows and v rows), widened to f32;
//   fn extra_input_at(i: u32) -> f32: element i of its own input read through load4(SRC_EXTRA, ...) (the backward's
//     dout; the forward has none);
//   fn acc_vec(tile: u32, idx: u32) -> vec4<f32>: element idx of the tile `tile` that acc_step multiplies in.
//
// Scores and admissibility (both kernels, and the float64 references in test/reference/attention.mjs)
//   s_ij = scale * dot(q_i, k_j) (+ float mask). Only masking makes a key inadmissible: j >= Nk, causal with j > i +
//   causal_diag (0: top-left aligned; Nk - Nq: bottom-right, PyTorch's causal_lower_right), a bool mask 0, a float
//   mask -inf, or mask_mod false. Admissible scores are encoded so that every later step compares finite numbers
//   only (WGSL compilers may assume there is no NaN: lavapipe folds x != x to false and max(NaN, 0) to 0):
//     inadmissible        MASKED         (f32 lowest)
//     -inf                NEG_INF_SCORE  weight 0 (IEEE: exp(-inf) = 0); a row of nothing else is NaN
//     NaN or +inf         POISON         the row is NaN (softmax([NaN, x]) and softmax([inf, x]) are NaN)
//     finite              max(s, VALID_FLOOR)
//   Row maxima therefore say what a row is: MASKED (no admissible key: o = 0, lse = -inf, zero gradients),
//   NEG_INF_SCORE or POISON (o, lse and the row's gradients NaN), anything else a softmax row.
//   An inadmissible entry takes no part anywhere: a non-finite q, k, v or dO value that meets only inadmissible
//   entries changes nothing. Admissible entries follow IEEE (a zero weight times NaN or inf is NaN). The weights
//   the accumulations read (p, p z, dS) are 0 at inadmissible entries, and each kernel keeps a bitmask of the
//   admissible ones beside them (adm_bits). While no loaded operand tile held a non-finite value (nonfinite_seen),
//   the zeros meet finite values; once one did, the workgroup skips the inadmissible entries (acc_step's keep).
//
// Seams
//   Matrix units: score_block() is the only place a score (or dP) block is computed; a subgroup-matrix variant
//   replaces it and the including files' accumulate loops (o += p v, dK += dS q, dV += p dO, dQ += dS k), which read
//   the same workgroup tiles.
//   Programmable attention (score and mask mods, as FlexAttention): admit_block() hands a block's scores and the
//   entries the built-in rules admit to mod_block (the matrix-unit kernels' admit(), attention_mma_shared.wgsl, one row to mod_row), which applies mask_mod(b, h, i, j)
//   (unless a block mask says the tile is full) and score_mod(s, b, h, i, j) to the entries still admissible.
//   attention_mods.wgsl holds identities; flexAttention generates a replacement from the traced mods
//   (src/attention/codegen.ts) that calls each mod at one site (a loop over the entries), whose backward multiplies
//   dS by mod_grad_block's d score_mod / d s, and accumulates captured-tensor gradients in the dq pass
//   (flex_capture_*). Key and query tiles are visited through key_tile_count/start and query_tile_count/start, which
//   follow a block mask when params.bm_on is set.
//
// Grid: one workgroup per (tile, b * H + h), in that order (tile fastest), folded over (x, y, z) so that B * H over
// 65,535 runs: linear = x + X * (y + Y * z); workgroups past the end exit before their first barrier.

//!include random.wgsl
//!include numerics.wgsl
//!include attention_mods.wgsl
// (fold_parts comes from attention_parts.wgsl or its _subgroups sibling, which each including file includes itself.)

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
  causal_diag: i32,
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
  check_id: u32,       // device-side index checks of captured-tensor reads (flex variants; 0 elsewhere)
  // Block mask (flexAttention with a BlockMask; bm_on 0 elsewhere): the mask binding then holds, as u32 words,
  //   kv_count [R * bm_nqb] at 0, kv_idx [R * bm_nqb * bm_nkb] at bm_kv_idx, q_count [R * bm_nkb] at bm_q_cnt,
  //   q_idx [R * bm_nkb * bm_nqb] at bm_q_idx, R = rows (b, h) of the mask, row = b * bm_sb + h * bm_sh. An index
  //   entry is a block number with bit 31 set when every entry of the block is admissible (mask_mod not evaluated).
  //   Blocks are bm_qbs query rows x bm_kbs keys, multiples of the kernels' tiles.
  bm_on: u32,
  bm_qbs: u32,
  bm_kbs: u32,
  bm_nqb: u32,
  bm_nkb: u32,
  bm_sb: u32,
  bm_sh: u32,
  bm_kv_idx: u32,
  bm_q_cnt: u32,
  bm_q_idx: u32,
  // Captured-tensor gradients (the flex backward's dq pass; see attention_mods.wgsl): the dmask binding holds, per
  // dq workgroup w, cg_pairs (index, value) scratch pairs at 2 * cg_pairs * w and cg_total partial sums at
  // cg_part_base + cg_total * w.
  cg_pairs: u32,
  cg_total: u32,
  cg_part_base: u32,
  // Layouts (offset, batch, head and row strides; the last dim contiguous) of o and dO (one layout for both), and of
  // the backward's dq, dk and dv: dense [B, H, N, X] by default; a compiled step points them at the buffers layout
  // copies used to make (src/compile/attention_layout.ts). Element (b, h, i, d) is at at(layout, b, h, i) + d.
  o_l: vec4<u32>,
  dq_l: vec4<u32>,
  dk_l: vec4<u32>,
  dv_l: vec4<u32>,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<io_t>;
@group(0) @binding(2) var<storage, read> k: array<io_t>;
@group(0) @binding(3) var<storage, read> v: array<io_t>;
@group(0) @binding(4) var<storage, read> mask: array<u32>;

override BLOCK_M: u32 = 32u;          // query rows per tile (multiple of 4)
override BLOCK_N: u32 = 32u;          // keys per tile (multiple of 4)
override THREADS: u32 = 64u;          // workgroup size (see each file's constraints)
override HEAD_DIM_MAX: u32 = 64u;     // capacity of the tiles: >= max(D, Dv), multiple of 4
override PARTS: u32 = 1u;             // score lanes per 4 x 4 block, splitting the head dim (> 1: 'subgroups' variant only)
// Derived; leave them unset.
override RG: u32 = BLOCK_M / 4u;                   // query-row groups
override CG: u32 = BLOCK_N / 4u;                   // key groups
override HD4: u32 = HEAD_DIM_MAX / 4u;
override RS: u32 = HEAD_DIM_MAX / 4u + 1u;         // row stride (vec4) of the q / k / v / dO tiles (odd: conflict-free)

const MASKED: f32 = -0x1.fffffep+127f;   // inadmissible (f32 lowest)
const NEG_INF_SCORE: f32 = -3.2e38;      // admissible -inf
const VALID_FLOOR: f32 = -3.0e38;        // admissible finite scores are clamped to >= this
const POISON: f32 = 0x1.fffffep+127f;    // admissible NaN or +inf (f32 max)

const SRC_Q: u32 = 0u;
const SRC_K: u32 = 1u;
const SRC_V: u32 = 2u;
const SRC_EXTRA: u32 = 3u;

// Set (never cleared) when a tile the accumulations read held a non-finite value.
var<workgroup> nonfinite_seen: atomic<u32>;

fn any_nonfinite(x: vec4<f32>) -> bool {
  return any((bitcast<vec4<u32>>(x) & vec4<u32>(0x7f800000u)) == vec4<u32>(0x7f800000u));
}

// Notes a non-finite value in a tile the accumulations will read (the caller loads x into it).
fn note_tile(x: vec4<f32>) {
  if (any_nonfinite(x)) {
    atomicOr(&nonfinite_seen, 1u);
  }
}

fn input_at(src: u32, i: u32) -> f32 {
  switch src {
    case SRC_Q: { return f32(q[i]); }
    case SRC_K: { return f32(k[i]); }
    case SRC_V: { return f32(v[i]); }
    default: { return extra_input_at(i); }
  }
}

// 4 consecutive elements of input `src` from `base`, zero past the row's last element (n_left of them remain).
fn load4(src: u32, base: u32, n_left: u32) -> vec4<f32> {
  if (n_left >= 4u) {
    return vec4<f32>(input_at(src, base), input_at(src, base + 1u), input_at(src, base + 2u), input_at(src, base + 3u));
  }
  var r = vec4<f32>(0.0);
  for (var c = 0u; c < n_left; c++) {
    r[c] = input_at(src, base + c);
  }
  return r;
}

fn at(l: vec4<u32>, b: u32, h: u32, i: u32) -> u32 {
  return dot(l, vec4<u32>(1u, b, h, i));
}

// (tile, b * H + h) of this workgroup, from the folded grid; x >= heads * tiles means "no work".
fn tile_and_head(wg: vec3<u32>, nwg: vec3<u32>, tiles: u32) -> vec2<u32> {
  let linear = th_linear(wg, nwg);
  return vec2<u32>(linear % tiles, linear / tiles);
}

// The linear workgroup index of the folded grid.
fn th_linear(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wg.x + nwg.x * (wg.y + nwg.y * wg.z);
}

// The query tile of a forward or dQ workgroup: BLOCK_M rows from row0 of query head h of batch b (bh = b * Hq + h),
// reading key/value head hk. valid is false for the workgroups past the end of a folded grid.
struct QueryTile {
  valid: bool,
  b: u32,
  h: u32,
  hk: u32,
  bh: u32,
  row0: u32,
}

fn query_tile(wg: vec3<u32>, nwg: vec3<u32>) -> QueryTile {
  let th = tile_and_head(wg, nwg, (params.Nq + BLOCK_M - 1u) / BLOCK_M);
  let h = th.y % params.Hq;
  return QueryTile(th.y < params.B * params.Hq, th.y / params.Hq, h, h / (params.Hq / params.Hk), th.y, th.x * BLOCK_M);
}

// The last key (exclusive) query rows [row0, row0 + rows) may see: Nk, or less under causal.
fn causal_key_end(row0: u32, rows: u32) -> u32 {
  if (params.causal == 0u) {
    return params.Nk;
  }
  return u32(clamp(i32(row0 + rows) + params.causal_diag, 0, i32(params.Nk)));
}

// The first query row that may see key c0 under causal (0 without causal).
fn causal_row_start(c0: u32) -> u32 {
  if (params.causal == 0u) {
    return 0u;
  }
  return u32(max(i32(c0) - params.causal_diag, 0));
}

// Set by key_tile_start / query_tile_start: the tile lies in a block whose entries are all admissible (block mask), so
// mask_mod need not be evaluated.
var<private> flex_full: bool = false;

fn bm_row(b: u32, h: u32) -> u32 {
  return b * params.bm_sb + h * params.bm_sh;
}

// The key tiles (BLOCK_N keys) a query tile from row0 visits, below key_end: all of them, or the block mask's.
fn key_tile_count(b: u32, h: u32, row0: u32, key_end: u32) -> u32 {
  if (params.bm_on == 0u) {
    return (key_end + BLOCK_N - 1u) / BLOCK_N;
  }
  return mask[bm_row(b, h) * params.bm_nqb + row0 / params.bm_qbs] * (params.bm_kbs / BLOCK_N);
}

// The first key of the n-th visited key tile (and flex_full).
fn key_tile_start(b: u32, h: u32, row0: u32, n: u32) -> u32 {
  if (params.bm_on == 0u) {
    return n * BLOCK_N;
  }
  let per = params.bm_kbs / BLOCK_N;
  let e = mask[params.bm_kv_idx + (bm_row(b, h) * params.bm_nqb + row0 / params.bm_qbs) * params.bm_nkb + n / per];
  flex_full = (e & 0x80000000u) != 0u;
  return (e & 0x7fffffffu) * params.bm_kbs + (n % per) * BLOCK_N;
}

// The query tiles (BLOCK_M rows) that see key tile c0, from row_start (causal) on: all of them, or the block mask's.
fn query_tile_count(b: u32, h: u32, c0: u32, row_start: u32) -> u32 {
  if (params.bm_on == 0u) {
    return (max(params.Nq, row_start) - row_start + BLOCK_M - 1u) / BLOCK_M;
  }
  return mask[params.bm_q_cnt + bm_row(b, h) * params.bm_nkb + c0 / params.bm_kbs] * (params.bm_qbs / BLOCK_M);
}

fn query_tile_start(b: u32, h: u32, c0: u32, row_start: u32, n: u32) -> u32 {
  if (params.bm_on == 0u) {
    return row_start + n * BLOCK_M;
  }
  let per = params.bm_qbs / BLOCK_M;
  let e = mask[params.bm_q_idx + (bm_row(b, h) * params.bm_nkb + c0 / params.bm_kbs) * params.bm_nqb + n / per];
  flex_full = (e & 0x80000000u) != 0u;
  return (e & 0x7fffffffu) * params.bm_qbs + (n % per) * BLOCK_M;
}

// Scores of query row i at keys jv (batch b, query head h) under the built-in rules (bounds, causal, the attn mask),
// before the mods: s = scale * raw (+ float mask), ok = admissible so far.
struct RowScores {
  s: vec4<f32>,
  ok: vec4<bool>,
}

fn admit_rules(raw: vec4<f32>, i: u32, jv: vec4<u32>, b: u32, h: u32) -> RowScores {
  var ok = (jv < vec4<u32>(params.Nk)) & vec4<bool>(i < params.Nq);
  if (params.causal != 0u) {
    ok = ok & (vec4<i32>(jv) <= vec4<i32>(i32(i) + params.causal_diag));
  }
  var s = raw * params.scale;
  if (params.mask_kind != 0u && i < params.Nq) {
    let m_row = params.m_off + b * params.m_sb + h * params.m_sh + i * params.m_sq;
    for (var t = 0u; t < 4u; t++) {
      if (ok[t]) {
        let bits = mask[m_row + jv[t] * params.m_sk];
        if (params.mask_kind == 1u) {
          ok[t] = bits != 0u;
        } else if (bits == 0xff800000u) {
          ok[t] = false;
        } else {
          s[t] += bitcast<f32>(bits);
        }
      }
    }
  }
  return RowScores(s, ok);
}

// The encoding of the header, of scores s admissible where ok.
fn encode_scores(s: vec4<f32>, ok: vec4<bool>) -> vec4<f32> {
  let bits = bitcast<vec4<u32>>(s);
  let poison = ((bits & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u)) | (bits == vec4<u32>(0x7f800000u));
  let encoded = select(select(max(s, vec4<f32>(VALID_FLOOR)), vec4<f32>(NEG_INF_SCORE), bits == vec4<u32>(0xff800000u)), vec4<f32>(POISON), poison);
  return select(vec4<f32>(MASKED), encoded, ok);
}

fn bool_bits(ok: vec4<bool>) -> u32 {
  return dot(select(vec4<u32>(0u), vec4<u32>(1u, 2u, 4u, 8u), ok), vec4<u32>(1u));
}

// Dropout keep multiplier (1 kept, 0 dropped) of query i, key j of flattened head bh = b * Hq + h.
fn dropout_keep(bh: u32, i: u32, j: u32) -> f32 {
  return select(0.0, 1.0, attn_dropout_keep(params.seed0, params.seed1, bh, i, j, params.dropout_p));
}

// A 4 x 4 block: row r (of rows a + RG * r), vec4 over the 4 columns (c + CG * j).
struct Block4 {
  r0: vec4<f32>,
  r1: vec4<f32>,
  r2: vec4<f32>,
  r3: vec4<f32>,
}

// What the mod hooks (attention_mods.wgsl) take and return: scores before encoding and their admissibility bits
// (ModRow: bit t for column t; ModBlock: bit 4 r + t for row r, column t).
struct ModRow {
  s: vec4<f32>,
  ok: u32,
}

struct ModBlock {
  s: Block4,
  ok: u32,
}

// Dot products of rows a + RG * r (r < 4) of the row tile with rows c + CG * j (j < 4) of the column tile of
// operand pair `pair`, over the head-dim vec4s part, part + PARTS, ... (folded over the PARTS lanes by fold_parts:
// every lane of a block ends with the whole block). Called by every lane of whole subgroups when PARTS > 1.
fn score_block(pair: u32, a: u32, c: u32, part: u32) -> Block4 {
  var s0 = vec4<f32>(0.0);
  var s1 = vec4<f32>(0.0);
  var s2 = vec4<f32>(0.0);
  var s3 = vec4<f32>(0.0);
  for (var d4 = part; d4 < HD4; d4 += PARTS) {
    let x0 = row_vec(pair, a * RS + d4);
    let x1 = row_vec(pair, (a + RG) * RS + d4);
    let x2 = row_vec(pair, (a + 2u * RG) * RS + d4);
    let x3 = row_vec(pair, (a + 3u * RG) * RS + d4);
    let y0 = col_vec(pair, c * RS + d4);
    let y1 = col_vec(pair, (c + CG) * RS + d4);
    let y2 = col_vec(pair, (c + 2u * CG) * RS + d4);
    let y3 = col_vec(pair, (c + 3u * CG) * RS + d4);
    s0 += vec4<f32>(dot(x0, y0), dot(x0, y1), dot(x0, y2), dot(x0, y3));
    s1 += vec4<f32>(dot(x1, y0), dot(x1, y1), dot(x1, y2), dot(x1, y3));
    s2 += vec4<f32>(dot(x2, y0), dot(x2, y1), dot(x2, y2), dot(x2, y3));
    s3 += vec4<f32>(dot(x3, y0), dot(x3, y1), dot(x3, y2), dot(x3, y3));
  }
  return Block4(fold_parts(s0), fold_parts(s1), fold_parts(s2), fold_parts(s3));
}

// Encoded scores of a block: rows row0 + a + RG * r, keys jv. The mods run on the whole block through one hook
// (mod_block), so a generated mod is compiled at one site per kernel rather than at each of the 16 entries.
fn admit_block(s: Block4, row0: u32, a: u32, jv: vec4<u32>, b: u32, h: u32) -> Block4 {
  let i0 = row0 + a;
  let x0 = admit_rules(s.r0, i0, jv, b, h);
  let x1 = admit_rules(s.r1, i0 + RG, jv, b, h);
  let x2 = admit_rules(s.r2, i0 + 2u * RG, jv, b, h);
  let x3 = admit_rules(s.r3, i0 + 3u * RG, jv, b, h);
  let ok = bool_bits(x0.ok) | (bool_bits(x1.ok) << 4u) | (bool_bits(x2.ok) << 8u) | (bool_bits(x3.ok) << 12u);
  let m = mod_block(ModBlock(Block4(x0.s, x1.s, x2.s, x3.s), ok), i0, jv, b, h);
  return Block4(encode_scores(m.s.r0, unpack_bits(m.ok)), encode_scores(m.s.r1, unpack_bits(m.ok >> 4u)),
                encode_scores(m.s.r2, unpack_bits(m.ok >> 8u)), encode_scores(m.s.r3, unpack_bits(m.ok >> 12u)));
}

// The admissibility bits of an encoded block (bit 4 r + t: row r, column t), as mod_block and mod_grad_block take.
fn block_bits(s: Block4) -> u32 {
  return adm_bits(s.r0) | (adm_bits(s.r1) << 4u) | (adm_bits(s.r2) << 8u) | (adm_bits(s.r3) << 12u);
}

// acc.r_x += w.x * x for the 4 rows x whose `keep` is true (a row with keep false gains nothing, not even 0 * NaN).
// The accumulate loops call it with keep = vec4<bool>(true) (folded away) until a tile held a non-finite value, and
// with the entries' admissibility (unpack_bits) after that.
fn fma_rows(acc: Block4, w: vec4<f32>, x: vec4<f32>, keep: vec4<bool>) -> Block4 {
  let z = vec4<f32>(0.0);
  return Block4(acc.r0 + w.x * select(z, x, keep.x), acc.r1 + w.y * select(z, x, keep.y),
                acc.r2 + w.z * select(z, x, keep.z), acc.r3 + w.w * select(z, x, keep.w));
}

// Bit n set where s[n] is admissible (the 4 entries of a block row or column), and back.
fn adm_bits(s: vec4<f32>) -> u32 {
  return bool_bits(s > vec4<f32>(MASKED));
}

fn unpack_bits(bits: u32) -> vec4<bool> {
  return (vec4<u32>(bits) & vec4<u32>(1u, 2u, 4u, 8u)) != vec4<u32>(0u);
}

fn scale_rows(acc: Block4, s: vec4<f32>) -> Block4 {
  return Block4(acc.r0 * s.x, acc.r1 * s.y, acc.r2 * s.z, acc.r3 * s.w);
}

// Accumulators of 4 rows times up to 4 vec4 columns (a thread's share of o, dQ, dK or dV): column block n is cn.
struct Acc {
  c0: Block4,
  c1: Block4,
  c2: Block4,
  c3: Block4,
}

fn zero_acc() -> Acc {
  let z = Block4(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
  return Acc(z, z, z, z);
}

// Column j of a block: vec4 over its 4 rows.
fn block_column(x: Block4, j: u32) -> vec4<f32> {
  return vec4<f32>(x.r0[j], x.r1[j], x.r2[j], x.r3[j]);
}

fn scale_acc(acc: Acc, s: vec4<f32>, dvn: u32) -> Acc {
  var r = acc;
  r.c0 = scale_rows(r.c0, s);
  if (dvn > 1u) { r.c1 = scale_rows(r.c1, s); }
  if (dvn > 2u) { r.c2 = scale_rows(r.c2, s); }
  if (dvn > 3u) { r.c3 = scale_rows(r.c3, s); }
  return r;
}

// acc (4 rows, vec4 columns oe + td * n for n < dvn) += w (vec4 over the 4 rows) times row `row` of operand tile
// `tile` (acc_vec, provided by the including file), each row only where `keep` is true (see fma_rows).
fn acc_step(acc: Acc, w: vec4<f32>, tile: u32, row: u32, oe: u32, td: u32, dvn: u32, keep: vec4<bool>) -> Acc {
  let base = row * RS;
  var r = acc;
  r.c0 = fma_rows(r.c0, w, acc_vec(tile, base + oe), keep);
  if (dvn > 1u) { r.c1 = fma_rows(r.c1, w, acc_vec(tile, base + min(oe + td, HD4 - 1u)), keep); }
  if (dvn > 2u) { r.c2 = fma_rows(r.c2, w, acc_vec(tile, base + min(oe + 2u * td, HD4 - 1u)), keep); }
  if (dvn > 3u) { r.c3 = fma_rows(r.c3, w, acc_vec(tile, base + min(oe + 3u * td, HD4 - 1u)), keep); }
  return r;
}
