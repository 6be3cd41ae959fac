// Reductions over any set of dims of a strided tensor, without copying it first.
//   Dimensions: n_out outputs (the kept dims, out_rank of them, row-major), each reducing R inputs
//   (the reduced dims, red_rank of them).
//   Reads: x at off + sum(kept coord * out_strides) + sum(reduced coord * red_strides).
//   Writes: out, contiguous [n_out] (f32, or i32 for integer sums and for argmax/argmin; f16 inputs reduce into f32,
//   which the launcher rounds to f16 once).
//   Tiling: `per_group`: one workgroup of WG threads per output, each thread striding over R, then
//   a tree in workgroup memory (long rows); `per_thread`: one thread per output (short rows).
//   OP: RED_SUM (times `scale`, so mean = sum * 1/R), RED_MAX, RED_MIN, RED_ARGMAX, RED_ARGMIN (below).
//   A_DT: DT_F32, DT_F16 (packed halves, read as f32: sums accumulate in f32), DT_I32 (compared as integers), DT_BOOL
//   (dtypes.wgsl). Ties in argmax/argmin give the first index. NaN wins
//   max/min/argmax/argmin, as PyTorch: the result is NaN, and its index is the first NaN's (tested by its bits: see
//   numerics.wgsl; a float comparison may be folded as if NaN did not exist).
//!include numerics.wgsl

//!include dtypes.wgsl

const RED_SUM: u32 = 0u;
const RED_MAX: u32 = 1u;
const RED_MIN: u32 = 2u;
const RED_ARGMAX: u32 = 3u;
const RED_ARGMIN: u32 = 4u;

struct Params {
  n_out: u32,
  R: u32,
  out_rank: u32,
  red_rank: u32,
  off: u32,
  scale: f32,
  pad0: u32,
  pad1: u32,
  out_shape: array<vec4<u32>, 2>,
  out_strides: array<vec4<u32>, 2>,
  red_shape: array<vec4<u32>, 2>,
  red_strides: array<vec4<u32>, 2>,
}

override OP: u32 = 0u;
override A_DT: u32 = 0u;
override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

var<workgroup> red_v: array<f32, WG>;
var<workgroup> red_i: array<u32, WG>;
var<workgroup> red_s: array<i32, WG>;

fn base_of(o: u32) -> u32 {
  var rem = o;
  var off = params.off;
  for (var d = i32(params.out_rank) - 1; d >= 0; d--) {
    let du = u32(d);
    let size = params.out_shape[du / 4u][du % 4u];
    off += (rem % size) * params.out_strides[du / 4u][du % 4u];
    rem = rem / size;
  }
  return off;
}

fn red_off(r: u32) -> u32 {
  var rem = r;
  var off = 0u;
  for (var d = i32(params.red_rank) - 1; d >= 0; d--) {
    let du = u32(d);
    let size = params.red_shape[du / 4u][du % 4u];
    off += (rem % size) * params.red_strides[du / 4u][du % 4u];
    rem = rem / size;
  }
  return off;
}

fn load(i: u32) -> f32 {
  return dt_load_f(x[dt_word(i, A_DT)], i, A_DT);
}

fn is_int_sum() -> bool {
  return OP == RED_SUM && (A_DT == DT_I32 || A_DT == DT_BOOL);
}

// Whether candidate (v, i) beats the current (bv, bi) for max-like ops.
fn better(v: f32, i: u32, bv: f32, bi: u32) -> bool {
  let want_max = OP == RED_MAX || OP == RED_ARGMAX;
  let v_nan = is_nan(v);
  let b_nan = is_nan(bv);
  if (v_nan || b_nan) { return v_nan && (!b_nan || i < bi); }
  if (v == bv) { return i < bi; }
  return select((v < bv), (v > bv), want_max);
}

// The same for i32 inputs, compared as integers: f32 cannot tell apart integers above 2^24.
fn better_i(v: i32, i: u32, bv: i32, bi: u32) -> bool {
  let want_max = OP == RED_MAX || OP == RED_ARGMAX;
  if (v == bv) { return i < bi; }
  return select((v < bv), (v > bv), want_max);
}

// s carries the integer sum, or for i32 max/min the integer extremum.
fn store_result(o: u32, v: f32, idx: u32, s: i32) {
  if (OP == RED_SUM) {
    if (is_int_sum()) { out[o] = bitcast<u32>(s); }
    else { out[o] = bitcast<u32>(v * params.scale); }
  } else if (OP == RED_MAX || OP == RED_MIN) {
    // The output has the input's dtype: an i32 extremum is stored as i32, not as its f32 bits.
    if (A_DT == DT_I32) { out[o] = bitcast<u32>(s); }
    else { out[o] = bitcast<u32>(v); }
  } else {
    out[o] = idx;
  }
}

@compute @workgroup_size(WG)
fn per_group(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let o = wid.x + wid.y * nwg.x;
  if (o >= params.n_out) { return; } // uniform across the workgroup
  let base = base_of(o);
  var sum = 0.0;
  var isum = 0i;
  var bv = 0.0;
  var bi = 0xffffffffu;
  var first = true;
  for (var r = lid; r < params.R; r += WG) {
    let idx = base + red_off(r);
    if (OP == RED_SUM) {
      if (A_DT == DT_I32) { isum += bitcast<i32>(x[idx]); }
      else if (A_DT == DT_BOOL) { isum += select(0i, 1i, x[idx] != 0u); }
      else { sum += load(idx); }
    } else if (A_DT == DT_I32) {
      let v = bitcast<i32>(x[idx]);
      if (first || better_i(v, r, isum, bi)) { isum = v; bi = r; first = false; }
    } else {
      let v = load(idx);
      if (first || better(v, r, bv, bi)) { bv = v; bi = r; first = false; }
    }
  }
  red_v[lid] = select(bv, sum, OP == RED_SUM);
  red_i[lid] = bi;
  red_s[lid] = isum;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
    if (lid < stride) {
      if (OP == RED_SUM) {
        red_v[lid] += red_v[lid + stride];
        red_s[lid] += red_s[lid + stride];
      } else if (A_DT == DT_I32) {
        if (red_i[lid + stride] != 0xffffffffu &&
            (red_i[lid] == 0xffffffffu || better_i(red_s[lid + stride], red_i[lid + stride], red_s[lid], red_i[lid]))) {
          red_s[lid] = red_s[lid + stride];
          red_i[lid] = red_i[lid + stride];
        }
      } else if (red_i[lid + stride] != 0xffffffffu &&
                 (red_i[lid] == 0xffffffffu || better(red_v[lid + stride], red_i[lid + stride], red_v[lid], red_i[lid]))) {
        red_v[lid] = red_v[lid + stride];
        red_i[lid] = red_i[lid + stride];
      }
    }
    workgroupBarrier();
  }
  if (lid == 0u) { store_result(o, red_v[0], red_i[0], red_s[0]); }
}

@compute @workgroup_size(WG)
fn per_thread(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = gid.x + gid.y * nwg.x * WG;
  if (o >= params.n_out) { return; }
  let base = base_of(o);
  var sum = 0.0;
  var isum = 0i;
  var bv = 0.0;
  var bi = 0xffffffffu;
  for (var r = 0u; r < params.R; r++) {
    let idx = base + red_off(r);
    if (OP == RED_SUM) {
      if (A_DT == DT_I32) { isum += bitcast<i32>(x[idx]); }
      else if (A_DT == DT_BOOL) { isum += select(0i, 1i, x[idx] != 0u); }
      else { sum += load(idx); }
    } else if (A_DT == DT_I32) {
      let v = bitcast<i32>(x[idx]);
      if (r == 0u || better_i(v, r, isum, bi)) { isum = v; bi = r; }
    } else {
      let v = load(idx);
      if (r == 0u || better(v, r, bv, bi)) { bv = v; bi = r; }
    }
  }
  store_result(o, select(bv, sum, OP == RED_SUM), bi, isum);
}
