// Batched matrix product C[b] = A[b] @ B[b], with broadcasting over up to 4 batch dims.
//   Dimensions: M, N, K; batch dims batch_shape[0..batch_rank).
//   Reads: a (any strides: a_sm, a_sk within a matrix, a_bs per batch dim, 0 = broadcast; so a
//          transposed view needs no copy), b likewise (b_sk, b_sn, b_bs).
//   Writes: out, contiguous [batch..., M, N].
//   Tiling: a workgroup computes a TM x TN tile of C (TM = TN = 16 * RB); 16 x 16 threads, each
//   accumulating RB x RB outputs in registers (register blocking); K advances TK at a time
//   through workgroup memory. Threads own rows ty + 16 i and columns tx + 16 j, so neighbouring
//   threads read neighbouring words of the B tile and write neighbouring words of C.
//   Workgroup memory: 4 * TK * (TM + TN) bytes = 8 KiB with the defaults.
//   Dispatch: ceil(N / TN) * ceil(M / TM) * batch workgroups in any grid (x fastest): the workgroup's linear id picks
//   its column tile, then its row tile, then its batch entry, so no grid dimension has to reach 65,535 (the host
//   folds the count into x * y); ids past the last tile exit (uniformly: they depend on the workgroup id only).

struct Params {
  M: u32,
  N: u32,
  K: u32,
  batch_rank: u32,
  a_off: u32,
  b_off: u32,
  a_sm: u32,
  a_sk: u32,
  b_sk: u32,
  b_sn: u32,
  alpha: f32,
  pad0: u32,
  batch_shape: vec4<u32>,
  a_bs: vec4<u32>,
  b_bs: vec4<u32>,
}

const RB: u32 = 4u;
const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> tileA: array<f32, 1024>; // [TK][TM]
var<workgroup> tileB: array<f32, 1024>; // [TK][TN]

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let M = params.M;
  let N = params.N;
  let K = params.K;
  let tiles_x = (N + TN - 1u) / TN;
  let tiles_y = (M + TM - 1u) / TM;
  let per_batch = tiles_x * tiles_y;
  let lin = wid.x + nwg.x * (wid.y + nwg.y * wid.z);
  let bidx = lin / per_batch;
  var batch_count = 1u;
  for (var d = 0u; d < params.batch_rank; d++) { batch_count *= params.batch_shape[d]; }
  if (bidx >= batch_count) { return; }
  let tile = lin % per_batch;
  // Offsets of this batch entry in a and b.
  var rem = bidx;
  var a_base = params.a_off;
  var b_base = params.b_off;
  for (var d = i32(params.batch_rank) - 1; d >= 0; d--) {
    let size = params.batch_shape[d];
    let coord = rem % size;
    rem = rem / size;
    a_base += coord * params.a_bs[d];
    b_base += coord * params.b_bs[d];
  }
  let row0 = (tile / tiles_x) * TM;
  let col0 = (tile % tiles_x) * TN;
  var acc: array<array<f32, RB>, RB>;
  for (var i = 0u; i < RB; i++) {
    for (var j = 0u; j < RB; j++) { acc[i][j] = 0.0; }
  }
  let tiles = (K + TK - 1u) / TK;
  for (var t = 0u; t < tiles; t++) {
    let k0 = t * TK;
    // 1024 elements of each tile, 4 per thread. A: k fastest (rows of a row-major A are contiguous).
    for (var r = 0u; r < 4u; r++) {
      let e = tid + 256u * r;
      let m = e / TK;
      let k = e % TK;
      let gm = row0 + m;
      let gk = k0 + k;
      var va = 0.0;
      if (gm < M && gk < K) { va = a[a_base + gm * params.a_sm + gk * params.a_sk]; }
      tileA[k * TM + m] = va;
      let kb = e / TN;
      let n = e % TN;
      let gkb = k0 + kb;
      let gn = col0 + n;
      var vb = 0.0;
      if (gkb < K && gn < N) { vb = b[b_base + gkb * params.b_sk + gn * params.b_sn]; }
      tileB[kb * TN + n] = vb;
    }
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      var av: array<f32, RB>;
      var bv: array<f32, RB>;
      for (var i = 0u; i < RB; i++) { av[i] = tileA[k * TM + lid.y + 16u * i]; }
      for (var j = 0u; j < RB; j++) { bv[j] = tileB[k * TN + lid.x + 16u * j]; }
      for (var i = 0u; i < RB; i++) {
        for (var j = 0u; j < RB; j++) { acc[i][j] = fma(av[i], bv[j], acc[i][j]); }
      }
    }
    workgroupBarrier();
  }
  let out_base = bidx * M * N;
  for (var i = 0u; i < RB; i++) {
    let gm = row0 + lid.y + 16u * i;
    if (gm >= M) { continue; }
    for (var j = 0u; j < RB; j++) {
      let gn = col0 + lid.x + 16u * j;
      if (gn < N) { out[out_base + gm * N + gn] = params.alpha * acc[i][j]; }
    }
  }
}
