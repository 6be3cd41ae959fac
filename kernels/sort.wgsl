// Sorting along one dim (sort, topk, and multinomial without replacement): a bitonic sort of (key, index) pairs.
//   Dimensions: `rows` rows (the input's other dims, outer_rank of them, row-major) of L elements along the sorted dim,
//   padded to P = the next power of two; B = 1024 elements per workgroup block; K outputs kept per row.
//   Reads: x (f32 or i32 words, X_DT) at x_off + view_offset(row, outer_shape, x_outer) + pos * x_sl (any strides).
//   Scratch: skey, sidx [rows * P] u32 (contiguous rows). Writes: values, indices (i32) [.., K, ..] at o_outer / o_sl.
//   Keys: each value becomes a u32 whose unsigned order is the value order: NaN above +inf (as PyTorch sorts it, the
//   largest), -0 equal to +0; DESC complements the key. Pairs compare by (key, index), so the order is total and
//   stable (equal values keep their original order) and padding (key and index all ones) sorts last.
//   Entries: local_sort (one workgroup per block of B pairs, loaded from x, every bitonic stage k <= min(P, B) in
//   workgroup memory); global_step (one thread per pair, stage k, distance j >= B, in the scratch); local_merge (stage
//   k > B, the distances below B in workgroup memory); finish (one thread per output: index and value, read from x);
//   scatter_back (the gradient: gx[row, index] = g[row, out], indices distinct per row, so no accumulation); compact
//   (top-k of long rows: every block sorted on its own (seg = B), the first kk of each kept, repeated until a row fits
//   one block, so k << L costs about one local sort of the row instead of a full multi-pass sort). local_sort loads
//   from x (FROM_X) or sorts the scratch in place.
//   Direction: a pair at position pos of its segment (seg: the row, or one block when sorting blocks on their own) sorts
//   ascending when k >= seg or (pos & k) == 0 (the bitonic rule, with the last stage ascending in every segment, also
//   when one block holds several rows).
//!include numerics.wgsl
//!include dtypes.wgsl
//!include strides.wgsl

struct Params {
  rows: u32,
  L: u32,
  P: u32,
  K: u32,
  k: u32,
  j: u32,
  x_off: u32,
  x_sl: u32,
  o_sl: u32,
  outer_rank: u32,
  g_off: u32,
  g_sl: u32,
  seg: u32,
  p_in: u32,
  kk: u32,
  pad0: u32,
  outer_shape: array<vec4<u32>, 2>,
  x_outer: array<vec4<u32>, 2>,
  o_outer: array<vec4<u32>, 2>,
  g_outer: array<vec4<u32>, 2>,
}

override X_DT: u32 = 0u;
override DESC: bool = false;
override FROM_X: bool = true;
const WG: u32 = 256u;
const BLOCK: u32 = 1024u;
const PAD: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> skey: array<u32>;
@group(0) @binding(3) var<storage, read_write> sidx: array<u32>;
@group(0) @binding(4) var<storage, read_write> values: array<u32>;
@group(0) @binding(5) var<storage, read_write> indices: array<u32>;
@group(0) @binding(6) var<storage, read> g: array<f32>;
@group(0) @binding(7) var<storage, read_write> gx: array<f32>;
@group(0) @binding(8) var<storage, read_write> dkey: array<u32>;
@group(0) @binding(9) var<storage, read_write> didx: array<u32>;

var<workgroup> wk: array<u32, BLOCK>;
var<workgroup> wi: array<u32, BLOCK>;

fn key_of(w: u32) -> u32 {
  var k: u32;
  if (X_DT == DT_I32) {
    k = w ^ 0x80000000u;
  } else if (is_nan(bitcast<f32>(w))) {
    k = 0xffffffffu;
  } else if ((w & 0x7fffffffu) == 0u) {
    k = 0x80000000u;
  } else if ((w >> 31u) == 1u) {
    k = ~w;
  } else {
    k = w | 0x80000000u;
  }
  if (DESC) { k = ~k; }
  return k;
}

fn x_base(row: u32) -> u32 {
  return params.x_off + view_offset(row, params.outer_rank, params.outer_shape, params.x_outer);
}

fn ascending(flat: u32, k: u32) -> bool {
  return k >= params.seg || ((flat % params.seg) & k) == 0u;
}

// Whether pair a comes after pair b.
fn after(ka: u32, ia: u32, kb: u32, ib: u32) -> bool {
  return ka > kb || (ka == kb && ia > ib);
}

// One compare-exchange stage (k, j) over the block in workgroup memory; `base` is the block's first flat position.
fn block_stage(lid: u32, base: u32, k: u32, j: u32) {
  for (var q = 0u; q < BLOCK / 2u; q += WG) {
    let p = lid + q;
    let i = (p / j) * 2u * j + (p % j);
    let l = i + j;
    let ka = wk[i];
    let ia = wi[i];
    let kb = wk[l];
    let ib = wi[l];
    if (after(ka, ia, kb, ib) == ascending(base + i, k)) {
      wk[i] = kb;
      wi[i] = ib;
      wk[l] = ka;
      wi[l] = ia;
    }
  }
  workgroupBarrier();
}

fn block_id(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.x + wid.y * nwg.x;
}

@compute @workgroup_size(WG)
fn local_sort(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let base = block_id(wid, nwg) * BLOCK;
  let total = params.rows * params.P;
  for (var e = lid; e < BLOCK; e += WG) {
    let f = base + e;
    let row = f / params.P;
    let pos = f % params.P;
    if (!FROM_X && f < total) {
      wk[e] = skey[f];
      wi[e] = sidx[f];
    } else if (FROM_X && f < total && pos < params.L) {
      wk[e] = key_of(x[x_base(row) + pos * params.x_sl]);
      wi[e] = pos;
    } else {
      wk[e] = PAD;
      wi[e] = PAD;
    }
  }
  workgroupBarrier();
  let kmax = min(params.seg, BLOCK);
  for (var k = 2u; k <= kmax; k <<= 1u) {
    for (var j = k >> 1u; j > 0u; j >>= 1u) {
      block_stage(lid, base, k, j);
    }
  }
  for (var e = lid; e < BLOCK; e += WG) {
    let f = base + e;
    if (f < total) {
      skey[f] = wk[e];
      sidx[f] = wi[e];
    }
  }
}

@compute @workgroup_size(WG)
fn local_merge(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  // Only used when P > BLOCK, so every block is whole.
  let base = block_id(wid, nwg) * BLOCK;
  for (var e = lid; e < BLOCK; e += WG) {
    wk[e] = skey[base + e];
    wi[e] = sidx[base + e];
  }
  workgroupBarrier();
  for (var j = BLOCK >> 1u; j > 0u; j >>= 1u) {
    block_stage(lid, base, params.k, j);
  }
  for (var e = lid; e < BLOCK; e += WG) {
    skey[base + e] = wk[e];
    sidx[base + e] = wi[e];
  }
}

@compute @workgroup_size(WG)
fn global_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let p = gid.x + gid.y * nwg.x * WG;
  if (p >= params.rows * params.P / 2u) { return; }
  let j = params.j;
  let i = (p / j) * 2u * j + (p % j);
  let l = i + j;
  let ka = skey[i];
  let ia = sidx[i];
  let kb = skey[l];
  let ib = sidx[l];
  if (after(ka, ia, kb, ib) == ascending(i, params.k)) {
    skey[i] = kb;
    sidx[i] = ib;
    skey[l] = ka;
    sidx[l] = ia;
  }
}

@compute @workgroup_size(WG)
fn finish(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = gid.x + gid.y * nwg.x * WG;
  if (e >= params.rows * params.K) { return; }
  let row = e / params.K;
  let c = e % params.K;
  let idx = sidx[row * params.P + c];
  let o = view_offset(row, params.outer_rank, params.outer_shape, params.o_outer) + c * params.o_sl;
  indices[o] = idx;
  values[o] = x[x_base(row) + idx * params.x_sl];
}

@compute @workgroup_size(WG)
fn scatter_back(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  // indices are read as the `x` binding here (the saved i32 output at x_off, laid out by o_outer / o_sl);
  // gx is contiguous with the input's shape, laid out by x_outer / x_sl.
  let e = gid.x + gid.y * nwg.x * WG;
  if (e >= params.rows * params.K) { return; }
  let row = e / params.K;
  let c = e % params.K;
  let idx = x[params.x_off + view_offset(row, params.outer_rank, params.outer_shape, params.o_outer) + c * params.o_sl];
  let gv = g[params.g_off + view_offset(row, params.outer_rank, params.outer_shape, params.g_outer) + c * params.g_sl];
  gx[view_offset(row, params.outer_rank, params.outer_shape, params.x_outer) + idx * params.x_sl] = gv;
}

// Top-k candidates: rows of p_in pairs whose blocks of BLOCK are each sorted keep the first kk of every block, into
// rows of P = (p_in / BLOCK) * kk pairs (dkey / didx); the k smallest keys of a row are among them.
@compute @workgroup_size(WG)
fn compact(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let f = gid.x + gid.y * nwg.x * WG;
  if (f >= params.rows * params.P) { return; }
  let row = f / params.P;
  let j = f % params.P;
  let src_at = row * params.p_in + (j / params.kk) * BLOCK + j % params.kk;
  dkey[f] = skey[src_at];
  didx[f] = sidx[src_at];
}
