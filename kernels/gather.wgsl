// Row gather and its adjoint, for embeddings and indexing along dim 0.
//   Dimensions: R indices (any shape: `i_rank` dims of `i_shape`, row-major) into a table of V rows of C elements.
//   Every input is a strided view read in place: idx element r at i_off + view_offset(r, i_strides); table element
//   (v, c) at t_off + v * t_sv + c * t_sc; src element (r, c) at s_off + view_offset(r, s_strides) + c * s_sc.
//   gather reads table and idx (i32) and writes out [R, C] (contiguous).
//   scatter_add reads src [R, C] and idx and adds each row into acc [V, C] (contiguous) with an atomic
//   compare-exchange loop on the f32 bit pattern (WGSL has no float atomics), so repeated
//   indices accumulate correctly, in whatever order the threads arrive (the last bits vary from run to run).
//   scatter_add_sorted is the deterministic adjoint: it reads the indices sorted (sorted_ids [R], stable, with perm
//   [R] their original positions) and src, and writes grad [V, C] (contiguous): element (v, c) binary-searches the run
//   of v in sorted_ids and sums src[perm[k], c] over it in order, so equal indices add in their original order and the
//   bits are the same every run. An index outside [0, V) matches no row and is reported (as scatter_add does).
//   Index checks: an index outside [0, V) is never read through; gather writes a NaN row there (so the mistake shows)
//   and scatter_add skips it, and both record it in kiln_errors, which the host turns into an IndexError at the next
//   sync (index_check.wgsl).
//   Tiling: one thread per output element, 2-D grid past 65535 workgroups.

struct Params {
  R: u32,
  C: u32,
  V: u32,
  check_id: u32,
  t_off: u32,
  t_sv: u32,
  t_sc: u32,
  i_off: u32,
  i_rank: u32,
  s_off: u32,
  s_sc: u32,
  pad0: u32,
  i_shape: array<vec4<u32>, 2>,
  i_strides: array<vec4<u32>, 2>,
  s_strides: array<vec4<u32>, 2>,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> src: array<f32>;
@group(0) @binding(5) var<storage, read_write> acc: array<atomic<u32>>;
@group(0) @binding(6) var<storage, read_write> kiln_errors: array<atomic<u32>, 8>;
@group(0) @binding(7) var<storage, read> sorted_ids: array<i32>;
@group(0) @binding(8) var<storage, read> perm: array<i32>;
@group(0) @binding(9) var<storage, read_write> grad: array<f32>;

//!include numerics.wgsl
//!include index_check.wgsl
//!include strides.wgsl

fn index_at(r: u32) -> i32 {
  return idx[params.i_off + view_offset(r, params.i_rank, params.i_shape, params.i_strides)];
}

@compute @workgroup_size(WG)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = gid.x + gid.y * nwg.x * WG;
  if (e >= params.R * params.C) { return; }
  let r = e / params.C;
  let c = e % params.C;
  let v = index_at(r);
  if (v < 0 || u32(v) >= params.V) {
    out[e] = nan_f32();
    if (c == 0u) { report_index_error(CHECK_ROWS, params.check_id, r, v, params.V); }
  } else {
    out[e] = table[params.t_off + u32(v) * params.t_sv + c * params.t_sc];
  }
}

@compute @workgroup_size(WG)
fn scatter_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = gid.x + gid.y * nwg.x * WG;
  if (e >= params.R * params.C) { return; }
  let r = e / params.C;
  let c = e % params.C;
  let v = index_at(r);
  if (v < 0 || u32(v) >= params.V) {
    if (c == 0u) { report_index_error(CHECK_ROWS, params.check_id, r, v, params.V); }
    return;
  }
  let dst = u32(v) * params.C + c;
  let add = src[params.s_off + view_offset(r, params.i_rank, params.i_shape, params.s_strides) + c * params.s_sc];
  var old = atomicLoad(&acc[dst]);
  loop {
    let res = atomicCompareExchangeWeak(&acc[dst], old, bitcast<u32>(bitcast<f32>(old) + add));
    if (res.exchanged) { break; }
    old = res.old_value;
  }
}

// The first k in [0, R) with sorted_ids[k] >= v (R if none).
fn first_at_least(v: i32) -> u32 {
  var lo = 0u;
  var hi = params.R;
  while (lo < hi) {
    let mid = (lo + hi) / 2u;
    if (sorted_ids[mid] < v) { lo = mid + 1u; } else { hi = mid; }
  }
  return lo;
}

@compute @workgroup_size(WG)
fn scatter_add_sorted(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = gid.x + gid.y * nwg.x * WG;
  // Threads e < R also check sorted position e (the launch covers max(V * C, R) threads).
  if (e < params.R) {
    let bad = sorted_ids[e];
    if (bad < 0 || u32(bad) >= params.V) { report_index_error(CHECK_ROWS, params.check_id, u32(perm[e]), bad, params.V); }
  }
  if (e >= params.V * params.C) { return; }
  let v = i32(e / params.C);
  let c = e % params.C;
  var sum = 0.0;
  for (var k = first_at_least(v); k < params.R && sorted_ids[k] == v; k++) {
    let r = u32(perm[k]);
    sum += src[params.s_off + view_offset(r, params.i_rank, params.i_shape, params.s_strides) + c * params.s_sc];
  }
  grad[e] = sum;
}
