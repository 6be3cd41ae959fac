// gather / indexSelect along a dim and their adjoint, scatterAdd, over strided views of up to 8 dims.
//   Dimensions: the output has `rank` dims (out_shape, row-major, n elements); `dim` is the indexed dim; L = the size
//   of the indexed tensor along dim (the index limit); P = the index's size along dim (scatter).
//   gather: out[c] = x[c with c[dim] = idx[c]] (out has the index's shape; indexSelect passes a broadcast index view,
//   strides 0 outside dim). Reads x (X_DT words) at x_off + sum(c * x_strides), idx (i32) at i_off + sum(c *
//   i_strides). Writes out contiguous.
//   scatter_add: out (x's shape, contiguous) = x (or 0 without HAS_X) plus, for every index position p along dim with
//   the same other coordinates (inside the index's shape i_shape), src[.., p, ..] where idx[.., p, ..] == c[dim]. Each
//   output element sums its own contributions in index order, so the result is deterministic (no float atomics).
//   Index checks: an index outside [0, L) is never read through: gather writes NaN (0 for integers) there and
//   scatter_add skips it; both record it in kiln_errors (index_check.wgsl; the position is sum(c * ipos_strides), the
//   flat position in the caller's index tensor), which the host turns into an IndexError at the next sync.
//   Tiling: one thread per output element, 2-D grid past 65535 workgroups.
//!include numerics.wgsl
//!include dtypes.wgsl
//!include index_check.wgsl

struct Params {
  n: u32,
  rank: u32,
  dim: u32,
  L: u32,
  P: u32,
  x_off: u32,
  i_off: u32,
  s_off: u32,
  check_id: u32,
  pad0: u32,
  pad1: u32,
  pad2: u32,
  out_shape: array<vec4<u32>, 2>,
  x_strides: array<vec4<u32>, 2>,
  i_strides: array<vec4<u32>, 2>,
  s_strides: array<vec4<u32>, 2>,
  ipos_strides: array<vec4<u32>, 2>,
  i_shape: array<vec4<u32>, 2>,
}

override X_DT: u32 = 0u;
override HAS_X: bool = true;
const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read> src: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;
@group(0) @binding(5) var<storage, read_write> kiln_errors: array<atomic<u32>, 8>;

fn at(v: array<vec4<u32>, 2>, d: u32) -> u32 {
  return v[d / 4u][d % 4u];
}

@compute @workgroup_size(WG)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = gid.x + gid.y * nwg.x * WG;
  if (e >= params.n) { return; }
  var rem = e;
  var xo = params.x_off;
  var io = params.i_off;
  var pos = 0u;
  for (var d = i32(params.rank) - 1; d >= 0; d--) {
    let du = u32(d);
    let size = at(params.out_shape, du);
    let c = rem % size;
    rem = rem / size;
    io += c * at(params.i_strides, du);
    pos += c * at(params.ipos_strides, du);
    if (du != params.dim) { xo += c * at(params.x_strides, du); }
  }
  let v = idx[io];
  if (v < 0 || u32(v) >= params.L) {
    out[e] = select(0u, bitcast<u32>(nan_f32()), X_DT == DT_F32);
    report_index_error(CHECK_ROWS, params.check_id, pos, v, params.L);
    return;
  }
  out[e] = x[xo + u32(v) * at(params.x_strides, params.dim)];
}

@compute @workgroup_size(WG)
fn scatter_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = gid.x + gid.y * nwg.x * WG;
  if (e >= params.n) { return; }
  var rem = e;
  var xo = params.x_off;
  var io = params.i_off;
  var so = params.s_off;
  var pos = 0u;
  var inside = true;
  var target_c = 0u;
  for (var d = i32(params.rank) - 1; d >= 0; d--) {
    let du = u32(d);
    let size = at(params.out_shape, du);
    let c = rem % size;
    rem = rem / size;
    xo += c * at(params.x_strides, du);
    if (du == params.dim) {
      target_c = c;
    } else {
      if (c >= at(params.i_shape, du)) { inside = false; }
      io += c * at(params.i_strides, du);
      so += c * at(params.s_strides, du);
      pos += c * at(params.ipos_strides, du);
    }
  }
  var accf = 0.0;
  var acci = 0;
  if (HAS_X) {
    let w = x[xo];
    accf = bitcast<f32>(w);
    acci = bitcast<i32>(w);
  }
  if (inside) {
    let is_ = at(params.i_strides, params.dim);
    let ss = at(params.s_strides, params.dim);
    let ps = at(params.ipos_strides, params.dim);
    for (var p = 0u; p < params.P; p++) {
      let v = idx[io + p * is_];
      if (v == i32(target_c)) {
        let w = src[so + p * ss];
        accf += bitcast<f32>(w);
        acci += bitcast<i32>(w);
      } else if (target_c == 0u && (v < 0 || u32(v) >= params.L)) {
        // The threads of the first slot along dim see every index of their line: they report a bad one.
        report_index_error(CHECK_ROWS, params.check_id, pos + p * ps, v, params.L);
      }
    }
  }
  out[e] = select(bitcast<u32>(accf), bitcast<u32>(acci), X_DT == DT_I32);
}
