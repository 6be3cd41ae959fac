// Inclusive prefix sums along one dim (cumsum), forward or reversed (cumsum's gradient), over strided views.
//   Dimensions: `rows` rows (the other dims, outer_rank of them, row-major) of L elements along the scanned dim.
//   Reads x (f32, or i32 for integer and bool inputs: X_DT) at x_off + view_offset(row, outer_shape, x_outer) +
//   pos * x_sl. Writes out contiguous with x's shape (o_outer / o_sl), f32 or i32.
//   per_thread: one thread per row, a sequential scan (short rows). per_group: one workgroup per row: each thread
//   scans a contiguous chunk, the chunk totals are scanned in workgroup memory (Hillis-Steele), then each chunk adds
//   its offset (long rows). REVERSE scans from the end (sum over pos' >= pos). NaN and infinities propagate as in a
//   sequential sum; integer sums wrap as i32.
//!include dtypes.wgsl
//!include strides.wgsl

struct Params {
  rows: u32,
  L: u32,
  x_off: u32,
  x_sl: u32,
  o_sl: u32,
  outer_rank: u32,
  pad0: u32,
  pad1: u32,
  outer_shape: array<vec4<u32>, 2>,
  x_outer: array<vec4<u32>, 2>,
  o_outer: array<vec4<u32>, 2>,
}

override X_DT: u32 = 0u;
override REVERSE: bool = false;
const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

var<workgroup> part_f: array<f32, WG>;
var<workgroup> part_i: array<i32, WG>;

// The k-th element in scan order of a row.
fn pos_of(k: u32) -> u32 {
  return select(k, params.L - 1u - k, REVERSE);
}

fn load_i(xb: u32, k: u32) -> i32 {
  let w = x[xb + pos_of(k) * params.x_sl];
  if (X_DT == DT_BOOL) { return select(0, 1, w != 0u); }
  return bitcast<i32>(w);
}

// The running sum (f32, or i32 for integer inputs) after the k-th element in scan order, stored when `store`.
struct Acc {
  f: f32,
  i: i32,
}

fn step(xb: u32, ob: u32, k: u32, acc: Acc, store: bool) -> Acc {
  var r = acc;
  let o = ob + pos_of(k) * params.o_sl;
  if (X_DT == DT_F32) {
    r.f += bitcast<f32>(x[xb + pos_of(k) * params.x_sl]);
    if (store) { out[o] = bitcast<u32>(r.f); }
  } else {
    r.i += load_i(xb, k);
    if (store) { out[o] = bitcast<u32>(r.i); }
  }
  return r;
}

@compute @workgroup_size(WG)
fn per_thread(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = gid.x + gid.y * nwg.x * WG;
  if (row >= params.rows) { return; }
  let xb = params.x_off + view_offset(row, params.outer_rank, params.outer_shape, params.x_outer);
  let ob = view_offset(row, params.outer_rank, params.outer_shape, params.o_outer);
  var acc = Acc(0.0, 0);
  for (var k = 0u; k < params.L; k++) {
    acc = step(xb, ob, k, acc, true);
  }
}

@compute @workgroup_size(WG)
fn per_group(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  let xb = params.x_off + view_offset(row, params.outer_rank, params.outer_shape, params.x_outer);
  let ob = view_offset(row, params.outer_rank, params.outer_shape, params.o_outer);
  let chunk = (params.L + WG - 1u) / WG;
  let start = min(params.L, lid * chunk);
  let end = min(params.L, start + chunk);
  var acc = Acc(0.0, 0);
  for (var k = start; k < end; k++) {
    acc = step(xb, ob, k, acc, false);
  }
  part_f[lid] = acc.f;
  part_i[lid] = acc.i;
  workgroupBarrier();
  for (var d = 1u; d < WG; d <<= 1u) {
    var vf = part_f[lid];
    var vi = part_i[lid];
    if (lid >= d) {
      vf += part_f[lid - d];
      vi += part_i[lid - d];
    }
    workgroupBarrier();
    part_f[lid] = vf;
    part_i[lid] = vi;
    workgroupBarrier();
  }
  acc = Acc(select(0.0, part_f[max(lid, 1u) - 1u], lid > 0u), select(0, part_i[max(lid, 1u) - 1u], lid > 0u));
  for (var k = start; k < end; k++) {
    acc = step(xb, ob, k, acc, true);
  }
}
