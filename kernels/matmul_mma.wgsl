// Matrix-unit matmul: out[b] = alpha * A[b] @ B[b] with f16 tile products and f32 accumulation, batched and broadcast
// as matmul.wgsl (same params, matmul_common.wgsl).
//   Dimensions: M, N, K; batch dims batch_shape[0..batch_rank). Reads a, b (f32; f16 tensors arrive widened, exactly)
//   with any strides; writes out (f32), contiguous [batch..., M, N].
//   Tiling: one workgroup of LANES invocations (one subgroup where the hardware has matrix units: its x size must be a
//   multiple of the largest subgroup size) computes a TM x TN = 2 SM_M x 2 SM_N tile of C as 2 x 2 result matrices of
//   the body's shape SM_M x SM_N (x SM_K). K advances TK = 2 SM_K at a time through workgroup memory: tile_a [TM][TK]
//   and tile_b [TK][TN], row-major, f16; edges are zero-filled (a padded k multiplies two zeros, so no 0 x inf is made).
//   Precision: inputs are rounded once to f16 on the way into workgroup memory (exact for f16 tensors; 'medium' for f32).
//   With passes = 3 ('high', f32 inputs) the tiles also hold lo = f16(x - hi) after the hi halves, and each step adds
//   hi x hi + lo x hi + hi x lo: about f32 accuracy, from f16 products (f16's range: |x| above 65504 overflows). An inf
//   input stays inf (its lo is 0), but the other operand's lo halves times it may meet the hi product's inf with the
//   opposite sign: where f32 gives +-inf, 'high' may give NaN (medium and f16 follow IEEE).
//   The matrix steps go through three functions of the body (an //!include): mm_zero(), mm_mac(acc, a_off, b_off,
//   lane) (acc += the SM_M x SM_K block of tile_a at a_off times the SM_K x SM_N block of tile_b at b_off) and
//   mm_store(acc, c_off, lane) (into tile_c [TM][TN], f32). matmul_mma_body.wgsl computes them with ordinary WGSL
//   (portable: runs anywhere, so CI runs it); matmul_mma_body_sgmatrix.wgsl with the subgroup-matrix builtins (the
//   launcher swaps it in, with the shim of src/gpu/subgroup_matrix.ts for the probed config).
//   Dispatch: ceil(N / TN) * ceil(M / TM) * batch workgroups in any grid (x fastest), as matmul.wgsl.

enable f16;

//!include matmul_common.wgsl
//!include matmul_mma_body.wgsl

override LANES: u32 = 32u;
const TM: u32 = 2u * SM_M;
const TN: u32 = 2u * SM_N;
const TK: u32 = 2u * SM_K;

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// hi halves first, then (passes = 3) the lo halves.
var<workgroup> tile_a: array<f16, 2u * TM * TK>;
var<workgroup> tile_b: array<f16, 2u * TK * TN>;
var<workgroup> tile_c: array<f32, TM * TN>;

// x rounded to f16's 11 significant bits (nearest, ties to even), as an f32. Done on the bits: compilers may fold
// f32(f16(x)) back to x (lavapipe does), which would make every lo half zero. inf and NaN pass unchanged.
fn f16_part(x: f32) -> f32 {
  let u = bitcast<u32>(x);
  let r = (u + 0xfffu + ((u >> 13u) & 1u)) & 0xffffe000u;
  return bitcast<f32>(select(r, u, (u & 0x7f800000u) == 0x7f800000u));
}

// x - hi, exact in f32; 0 where hi is inf or NaN (x - hi would be NaN, and would turn an inf result into NaN).
fn lo_part(x: f32, hi: f32) -> f32 {
  return select(x - hi, 0.0, (bitcast<u32>(hi) & 0x7f800000u) == 0x7f800000u);
}

// Stores x rounded to f16 at tile_a[i] and, with passes = 3, the remainder (exact in f32) rounded to f16 after the hi
// halves.
fn split_a(i: u32, x: f32) {
  if (params.passes == 3u) {
    let hi = f16_part(x);
    tile_a[i] = f16(hi);
    tile_a[i + TM * TK] = f16(lo_part(x, hi));
  } else {
    tile_a[i] = f16(x);
  }
}

fn split_b(i: u32, x: f32) {
  if (params.passes == 3u) {
    let hi = f16_part(x);
    tile_b[i] = f16(hi);
    tile_b[i + TK * TN] = f16(lo_part(x, hi));
  } else {
    tile_b[i] = f16(x);
  }
}

@compute @workgroup_size(LANES, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lane: u32) {
  let M = params.M;
  let N = params.N;
  let K = params.K;
  let tiles_x = (N + TN - 1u) / TN;
  let per_batch = tiles_x * ((M + TM - 1u) / TM);
  let lin = wid.x + nwg.x * (wid.y + nwg.y * wid.z);
  let bidx = lin / per_batch;
  if (bidx >= batch_count()) { return; }
  let bases = batch_bases(bidx);
  let tile = lin % per_batch;
  let row0 = (tile / tiles_x) * TM;
  let col0 = (tile % tiles_x) * TN;
  var c00 = mm_zero();
  var c01 = mm_zero();
  var c10 = mm_zero();
  var c11 = mm_zero();
  let lo_a = TM * TK;
  let lo_b = TK * TN;
  for (var k0 = 0u; k0 < K; k0 += TK) {
    for (var e = lane; e < TM * TK; e += LANES) {
      let gm = row0 + e / TK;
      let gk = k0 + e % TK;
      var x = 0.0;
      if (gm < M && gk < K) { x = a[bases.x + gm * params.a_sm + gk * params.a_sk]; }
      split_a(e, x);
    }
    for (var e = lane; e < TK * TN; e += LANES) {
      let gk = k0 + e / TN;
      let gn = col0 + e % TN;
      var x = 0.0;
      if (gk < K && gn < N) { x = b[bases.y + gk * params.b_sk + gn * params.b_sn]; }
      split_b(e, x);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk += SM_K) {
      // Block (i, j) of C: rows i * SM_M of tile_a, columns j * SM_N of tile_b. Product 0 is hi x hi; with passes = 3,
      // product 1 is lo x hi and product 2 hi x lo (one loop, so the body's steps are inlined four times, not twelve:
      // lavapipe's compile time grows with every copy).
      for (var prod = 0u; prod < params.passes; prod++) {
        let a0 = kk + select(0u, lo_a, prod == 1u);
        let a1 = a0 + SM_M * TK;
        let b0 = kk * TN + select(0u, lo_b, prod == 2u);
        let b1 = b0 + SM_N;
        c00 = mm_mac(c00, a0, b0, lane);
        c01 = mm_mac(c01, a0, b1, lane);
        c10 = mm_mac(c10, a1, b0, lane);
        c11 = mm_mac(c11, a1, b1, lane);
      }
    }
    workgroupBarrier();
  }
  mm_store(c00, 0u, lane);
  mm_store(c01, SM_N, lane);
  mm_store(c10, SM_M * TN, lane);
  mm_store(c11, SM_M * TN + SM_N, lane);
  workgroupBarrier();
  let base = bidx * M * N;
  for (var e = lane; e < TM * TN; e += LANES) {
    let gm = row0 + e / TN;
    let gn = col0 + e % TN;
    if (gm < M && gn < N) { out[base + gm * N + gn] = params.alpha * tile_c[e]; }
  }
}
