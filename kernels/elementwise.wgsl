// Elementwise kernels over strided tensors of up to 8 dims.
//   Dimensions: n elements of the output, laid out by `shape` (rank dims, row-major).
//   Reads: a, b, c (any strides: broadcast dims have stride 0; views need no copy).
//   Writes: out, at o_off + sum(coord[d] * o_strides[d]) (contiguous for most ops; a slice for concat).
//   Buffers are raw 32-bit words: A_DT (a and b), C_DT (c) and OUT_DT (out, out2) say how to read them (DT_F32,
//   DT_I32, DT_BOOL, DT_F16: dtypes.wgsl). f16 is read from its packed words and computed in f32; an f16 result is
//   rounded once and written through out_h / out2_h (the same buffers as atomic words, bound instead of out / out2):
//   two threads may own the two halves of one word, so each clears and sets only its own half (atomicAnd, atomicOr),
//   which works for any output strides. f32, i32 and bool outputs are plain stores.
//   Tiling: one thread per output element; a 2-D grid when n needs more than 65535 workgroups.
// Entry points: unary (OP: UNARY_*; OP = UNARY_COPY copies), binary (OP: BINARY_*), select_where (c ? a : b), fill,
// accumulate (out += a, a gradient in place), and the backward
// of the differentiable ops in one dispatch each: unary_backward (OP: the forward's UNARY_* code; a = the forward's
// input x, b = its output y, c = the gradient g; out = dx) and binary_backward (OP: the forward's BINARY_* code; a = x,
// b = y operands broadcast to the output, c = g; out = dx and out2 = dy, both over the output's shape; scalar says
// which to write: 1 dx, 2 dy, 3 both). Each op's forward and backward sit side by side in unary_f / unary_grad_f and
// binary_f / binary_grad_f, and the launcher's rule table (src/launch/elementwise.ts) is typed over every op code.
// `native` (at the end) runs the same ops over f16 storage (the 'f16' variant, where the adapter has shader-f16).
// NaN: as PyTorch. relu, clamp, maximum, minimum give NaN for a NaN operand; comparisons with a NaN are false (ne:
// true); NaN is truthy; sign(NaN) is 0 (torch.sign's answer). Each is decided from the bits (numerics.wgsl), since
// the compiler may fold float comparisons, min and max as if NaN did not exist.
//!include numerics.wgsl
//!include dtypes.wgsl
//!include half_io.wgsl

struct Params {
  n: u32,
  rank: u32,
  a_off: u32,
  b_off: u32,
  c_off: u32,
  o_off: u32,
  scalar: f32,
  scalar2: f32,
  shape: array<vec4<u32>, 2>,
  a_strides: array<vec4<u32>, 2>,
  b_strides: array<vec4<u32>, 2>,
  c_strides: array<vec4<u32>, 2>,
  o_strides: array<vec4<u32>, 2>,
}

override OP: u32 = 0u;
override A_DT: u32 = 0u;
override C_DT: u32 = 0u;
override OUT_DT: u32 = 0u;
override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<u32>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read> c: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;
@group(0) @binding(5) var<storage, read_write> out2: array<u32>;
@group(0) @binding(6) var<storage, read_write> out_h: array<atomic<u32>>;
@group(0) @binding(7) var<storage, read_write> out2_h: array<atomic<u32>>;

// Offsets of a, b, c and out for the output element with row-major index i.
fn offsets(i: u32) -> vec4<u32> {
  var rem = i;
  var o = vec4<u32>(params.a_off, params.b_off, params.c_off, params.o_off);
  var d = i32(params.rank) - 1;
  loop {
    if (d < 0) { break; }
    let du = u32(d);
    let size = params.shape[du / 4u][du % 4u];
    let coord = rem % size;
    rem = rem / size;
    o += coord * vec4<u32>(params.a_strides[du / 4u][du % 4u], params.b_strides[du / 4u][du % 4u],
                           params.c_strides[du / 4u][du % 4u], params.o_strides[du / 4u][du % 4u]);
    d -= 1;
  }
  return o;
}

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

// Element e of a, b or c as f32 (float math is f32 for every float dtype; integer ops use the i32 paths below).
fn ld_a(e: u32) -> f32 { return dt_load_f(a[dt_word(e, A_DT)], e, A_DT); }
fn ld_b(e: u32) -> f32 { return dt_load_f(b[dt_word(e, A_DT)], e, A_DT); }
fn ld_c(e: u32) -> f32 { return dt_load_f(c[dt_word(e, C_DT)], e, C_DT); }

// The 16 bits h into half e of out_h / out2_h, leaving the other half of the word to its owner.
fn put_half(e: u32, h: u32) {
  let shift = 16u * (e & 1u);
  atomicAnd(&out_h[e >> 1u], ~(0xffffu << shift));
  atomicOr(&out_h[e >> 1u], h << shift);
}
fn put_half2(e: u32, h: u32) {
  let shift = 16u * (e & 1u);
  atomicAnd(&out2_h[e >> 1u], ~(0xffffu << shift));
  atomicOr(&out2_h[e >> 1u], h << shift);
}

// Output element e <- v, stored as OUT_DT (rounded once for f16).
fn put(e: u32, v: f32) {
  if (OUT_DT == DT_F16) { put_half(e, f32_to_half(v)); }
  else { out[e] = store_f(v); }
}
fn put2(e: u32, v: f32) {
  if (OUT_DT == DT_F16) { put_half2(e, f32_to_half(v)); }
  else { out2[e] = store_f(v); }
}

fn store_f(v: f32) -> u32 {
  if (OUT_DT == DT_F32) { return bitcast<u32>(v); }
  if (OUT_DT == DT_I32) { return bitcast<u32>(i32(v)); }
  return select(0u, 1u, truthy(v));
}

// x ^ p as C's pow (PyTorch): x ^ 0 = 1 ^ p = 1 (NaN too); integer powers of negative bases are real (WGSL's pow
// is undefined for x < 0); a finite negative base to a non-integer power is NaN; (-1) ^ +-inf = 1.
fn pow_real(x: f32, p: f32) -> f32 {
  if (f_eq(p, 0.0) || f_eq(x, 1.0)) { return 1.0; }
  if (is_nan(x) || is_nan(p)) { return nan_f32(); }
  let ax = abs(x);
  let odd_int = !is_inf(p) && p == floor(p) && p * 0.5 != floor(p * 0.5);
  if (ax == 0.0) {
    // WGSL's pow is undefined at 0 (lavapipe gives 0 ^ -1 = 0): 0 ^ p is +0 for p > 0 and +inf for p < 0, signed
    // like x for odd integer p.
    let r = select(0.0, inf_f32(), p < 0.0);
    return select(r, -r, odd_int && (bitcast<u32>(x) >> 31u) == 1u);
  }
  if (is_inf(p)) {
    if (ax == 1.0) { return 1.0; }
    return pow(ax, p);
  }
  if (p == floor(p)) {
    let m = pow(ax, p);
    return select(m, -m, x < 0.0 && odd_int);
  }
  // (-inf) ^ p is +inf for p > 0 and +0 for p < 0 when p is not an odd integer.
  if (is_inf(x)) { return pow(ax, p); }
  if (x < 0.0) { return nan_f32(); }
  return pow(x, p);
}

const UNARY_COPY: u32 = 0u;
const UNARY_NEG: u32 = 1u;
const UNARY_EXP: u32 = 2u;
const UNARY_LOG: u32 = 3u;
const UNARY_SQRT: u32 = 4u;
const UNARY_RELU: u32 = 5u;
const UNARY_GELU: u32 = 6u;
const UNARY_TANH: u32 = 7u;
const UNARY_SIGMOID: u32 = 8u;
const UNARY_POW: u32 = 9u;        // x ^ scalar
const UNARY_ABS: u32 = 10u;
const UNARY_ADD_SCALAR: u32 = 11u; // x + scalar
const UNARY_MUL_SCALAR: u32 = 12u; // x * scalar
const UNARY_NOT: u32 = 13u;
const UNARY_RSQRT: u32 = 14u;
const UNARY_SIN: u32 = 15u;
const UNARY_COS: u32 = 16u;
const UNARY_CLAMP: u32 = 17u;      // clamp(x, scalar, scalar2)
const UNARY_LOG1P: u32 = 18u;
const UNARY_SOFTPLUS: u32 = 19u;
const UNARY_SILU: u32 = 20u;       // x * sigmoid(x); silu(-inf) = -0 and silu(+inf) = +inf (the limits)
const UNARY_ERF: u32 = 21u;

// sigmoid without overflow: exp of a non-positive argument only.
fn sigmoid_f(x: f32) -> f32 {
  let e = exp(-abs(x));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}

fn unary_f(x: f32) -> f32 {
  switch OP {
    case UNARY_COPY: { return x; }
    case UNARY_NEG: { return -x; }
    case UNARY_EXP: { return exp(x); }
    case UNARY_LOG: { return log(x); }
    case UNARY_SQRT: { return sqrt(x); }
    case UNARY_RELU: { return relu_f(x); }
    case UNARY_GELU: { return gelu_f(x); }
    case UNARY_TANH: {
      // tanh() overflows to NaN for large |x| on some drivers; this form saturates.
      let e = exp(-2.0 * abs(x));
      return select(sign(x) * (1.0 - e) / (1.0 + e), x, is_nan(x));
    }
    case UNARY_SIGMOID: {
      let e = exp(-abs(x));
      return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
    }
    case UNARY_POW: {
      let p = params.scalar;
      if (p == 2.0) { return x * x; }
      if (p == 1.0) { return x; }
      if (p == 0.0) { return 1.0; }
      if (p == 0.5) { return sqrt(x); }
      return pow_real(x, p);
    }
    case UNARY_ABS: { return abs(x); }
    case UNARY_ADD_SCALAR: { return x + params.scalar; }
    case UNARY_MUL_SCALAR: { return x * params.scalar; }
    case UNARY_NOT: { return select(1.0, 0.0, truthy(x)); }
    case UNARY_RSQRT: { return inverseSqrt(x); }
    case UNARY_SIN: { return sin(x); }
    case UNARY_COS: { return cos(x); }
    case UNARY_CLAMP: { return clamp_nan(x, params.scalar, params.scalar2); }
    case UNARY_LOG1P: {
      // log(1 + x) without losing small x.
      // +inf: log(u) * x / (u - 1) would be inf * inf / inf = NaN.
      let u = 1.0 + x;
      return select(select(log(u) * x / (u - 1.0), x, u == 1.0), x, bitcast<u32>(x) == 0x7f800000u || is_nan(x));
    }
    case UNARY_SOFTPLUS: { return select(max(x, 0.0) + log(1.0 + exp(-abs(x))), x, is_nan(x)); }
    case UNARY_SILU: {
      // -inf * sigmoid(-inf) would be -inf * 0 = NaN.
      return select(x * sigmoid_f(x), bitcast<f32>(0x80000000u), is_neg_inf(x));
    }
    case UNARY_ERF: { return erf_approx(x); }
    default: { return x; }
  }
}

fn unary_i(x: i32) -> i32 {
  switch OP {
    case UNARY_NEG: { return -x; }
    case UNARY_ABS: { return abs(x); }
    case UNARY_ADD_SCALAR: { return x + i32(params.scalar); }
    case UNARY_MUL_SCALAR: { return x * i32(params.scalar); }
    default: { return x; }
  }
}

@compute @workgroup_size(WG)
fn unary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg);
  if (i >= params.n) { return; }
  let o = offsets(i);
  let w = a[dt_word(o.x, A_DT)];
  if (OP == UNARY_COPY && A_DT == DT_F16 && OUT_DT == DT_F16) {
    put_half(o.w, half_bits(w, o.x));
  } else if (OP == UNARY_COPY && A_DT == OUT_DT) {
    out[o.w] = w;
  } else if (A_DT == DT_I32 && OUT_DT == DT_I32) {
    out[o.w] = bitcast<u32>(unary_i(bitcast<i32>(w)));
  } else if (OP == UNARY_NOT) {
    out[o.w] = select(1u, 0u, w != 0u);
  } else {
    put(o.w, unary_f(dt_load_f(w, o.x, A_DT)));
  }
}

// d op(x) / dx times g, for the differentiable unary ops (x the input, y the output): as PyTorch's derivatives, NaN
// included (relu passes the gradient where x is NaN, as threshold_backward; clamp passes it where min <= x <= max).
fn unary_grad_f(x: f32, y: f32, g: f32) -> f32 {
  switch OP {
    case UNARY_COPY, UNARY_ADD_SCALAR: { return g; }
    case UNARY_NEG: { return -g; }
    case UNARY_MUL_SCALAR: { return g * params.scalar; }
    case UNARY_EXP: { return g * y; }
    case UNARY_LOG: { return g / x; }
    case UNARY_SQRT: { return g / (2.0 * y); }
    case UNARY_RSQRT: { return -0.5 * g * y / x; }
    case UNARY_RELU: { return relu_grad_f(x, g); }
    case UNARY_GELU: { return gelu_grad_f(x, g); }
    case UNARY_TANH: { return g * (1.0 - y * y); }
    case UNARY_SIGMOID: { return g * (y * (1.0 - y)); }
    case UNARY_POW: {
      // p x^(p-1); p = 0 gives a zero gradient (PyTorch), not 0 * inf at x = 0.
      let p = params.scalar;
      if (p == 0.0) { return 0.0; }
      return g * (p * pow_real(x, p - 1.0));
    }
    case UNARY_ABS: { return g * select(sign(x), 0.0, is_nan(x)); }
    case UNARY_SIN: { return g * cos(x); }
    case UNARY_COS: { return -(g * sin(x)); }
    case UNARY_CLAMP: { return select(0.0, g, f_eq(clamp_nan(x, params.scalar, params.scalar2), x)); }
    case UNARY_SOFTPLUS: {
      let e = exp(-abs(x));
      return g * select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
    }
    case UNARY_LOG1P: { return g / (1.0 + x); }
    case UNARY_SILU: {
      // s (1 + x (1 - s)); at +-inf the x (1 - s) term is inf * 0, its limit is 0 (so 1 at +inf and 0 at -inf).
      let s = sigmoid_f(x);
      let d = select(s * (1.0 + x * (1.0 - s)), s, is_inf(x));
      return g * d;
    }
    case UNARY_ERF: { return g * (1.1283791670955126 * exp(-x * x)); }
    default: { return nan_f32(); }
  }
}

@compute @workgroup_size(WG)
fn unary_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg);
  if (i >= params.n) { return; }
  let o = offsets(i);
  put(o.w, unary_grad_f(ld_a(o.x), ld_b(o.y), ld_c(o.z)));
}

const BINARY_ADD: u32 = 0u;
const BINARY_SUB: u32 = 1u;
const BINARY_MUL: u32 = 2u;
const BINARY_DIV: u32 = 3u;
const BINARY_POW: u32 = 4u;
const BINARY_MAX: u32 = 5u;
const BINARY_MIN: u32 = 6u;
const BINARY_EQ: u32 = 7u;
const BINARY_NE: u32 = 8u;
const BINARY_LT: u32 = 9u;
const BINARY_LE: u32 = 10u;
const BINARY_GT: u32 = 11u;
const BINARY_GE: u32 = 12u;
const BINARY_AND: u32 = 13u;
const BINARY_OR: u32 = 14u;
// 1 where x == y or both are NaN (the elements a full max()/min() reduction picked), else 0.
const BINARY_SAME: u32 = 15u;

fn binary_f(x: f32, y: f32) -> f32 {
  switch OP {
    case BINARY_ADD: { return x + y; }
    case BINARY_SUB: { return x - y; }
    case BINARY_MUL: { return x * y; }
    case BINARY_DIV: { return x / y; }
    case BINARY_POW: { return pow_real(x, y); }
    case BINARY_MAX: { return max_nan(x, y); }
    case BINARY_MIN: { return min_nan(x, y); }
    case BINARY_EQ: { return select(0.0, 1.0, f_eq(x, y)); }
    case BINARY_NE: { return select(0.0, 1.0, f_ne(x, y)); }
    case BINARY_LT: { return select(0.0, 1.0, f_lt(x, y)); }
    case BINARY_LE: { return select(0.0, 1.0, f_le(x, y)); }
    case BINARY_GT: { return select(0.0, 1.0, f_lt(y, x)); }
    case BINARY_GE: { return select(0.0, 1.0, f_le(y, x)); }
    case BINARY_AND: { return select(0.0, 1.0, truthy(x) && truthy(y)); }
    case BINARY_OR: { return select(0.0, 1.0, truthy(x) || truthy(y)); }
    case BINARY_SAME: { return select(0.0, 1.0, f_eq(x, y) || (is_nan(x) && is_nan(y))); }
    default: { return x; }
  }
}

fn binary_i(x: i32, y: i32) -> i32 {
  switch OP {
    case BINARY_ADD: { return x + y; }
    case BINARY_SUB: { return x - y; }
    case BINARY_MUL: { return x * y; }
    case BINARY_MAX: { return max(x, y); }
    case BINARY_MIN: { return min(x, y); }
    case BINARY_EQ: { return select(0, 1, x == y); }
    case BINARY_NE: { return select(0, 1, x != y); }
    case BINARY_LT: { return select(0, 1, x < y); }
    case BINARY_LE: { return select(0, 1, x <= y); }
    case BINARY_GT: { return select(0, 1, x > y); }
    case BINARY_GE: { return select(0, 1, x >= y); }
    case BINARY_AND: { return select(0, 1, x != 0 && y != 0); }
    case BINARY_OR: { return select(0, 1, x != 0 || y != 0); }
    default: { return x; }
  }
}

// (d op / dx, d op / dy) times g, for the differentiable binary ops, as PyTorch's derivatives.
fn binary_grad_f(x: f32, y: f32, g: f32) -> vec2<f32> {
  switch OP {
    case BINARY_ADD: { return vec2<f32>(g, g); }
    case BINARY_SUB: { return vec2<f32>(g, -g); }
    case BINARY_MUL: { return vec2<f32>(g * y, g * x); }
    case BINARY_DIV: { return vec2<f32>(g / y, -(g * x) / (y * y)); }
    case BINARY_POW: { return vec2<f32>(g * (y * pow_real(x, y - 1.0)), g * (log(x) * pow_real(x, y))); }
    case BINARY_MAX: {
      let share = select(select(1.0, 0.0, f_lt(x, y)), 0.5, f_eq(x, y));
      let other = select(select(1.0, 0.0, f_lt(y, x)), 0.5, f_eq(x, y));
      return vec2<f32>(g * share, g * other);
    }
    case BINARY_MIN: {
      let share = select(select(1.0, 0.0, f_lt(y, x)), 0.5, f_eq(x, y));
      let other = select(select(1.0, 0.0, f_lt(x, y)), 0.5, f_eq(x, y));
      return vec2<f32>(g * share, g * other);
    }
    default: { return vec2<f32>(nan_f32()); }
  }
}

@compute @workgroup_size(WG)
fn binary_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg);
  if (i >= params.n) { return; }
  let o = offsets(i);
  let d = binary_grad_f(ld_a(o.x), ld_b(o.y), ld_c(o.z));
  let which = u32(params.scalar);
  if ((which & 1u) != 0u) { put(o.w, d.x); }
  if ((which & 2u) != 0u) { put2(o.w, d.y); }
}

@compute @workgroup_size(WG)
fn binary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg);
  if (i >= params.n) { return; }
  let o = offsets(i);
  if (A_DT == DT_I32 || A_DT == DT_BOOL) {
    // Integers and booleans: exact integer arithmetic, then stored as the output dtype.
    let r = binary_i(bitcast<i32>(a[o.x]), bitcast<i32>(b[o.y]));
    if (OUT_DT == DT_F32) { out[o.w] = bitcast<u32>(f32(r)); }
    else if (OUT_DT == DT_BOOL) { out[o.w] = select(0u, 1u, r != 0); }
    else { out[o.w] = bitcast<u32>(r); }
  } else {
    put(o.w, binary_f(ld_a(o.x), ld_b(o.y)));
  }
}

// out = c ? a : b, c is bool; a, b and out share A_DT (f16 halves are moved as bits).
@compute @workgroup_size(WG)
fn select_where(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg);
  if (i >= params.n) { return; }
  let o = offsets(i);
  let pick_a = c[o.z] != 0u;
  if (A_DT == DT_F16) {
    put_half(o.w, select(half_bits(b[o.y >> 1u], o.y), half_bits(a[o.x >> 1u], o.x), pick_a));
  } else {
    out[o.w] = select(b[o.y], a[o.x], pick_a);
  }
}

// out = scalar (as OUT_DT), for every element of the (strided) output view.
@compute @workgroup_size(WG)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg);
  if (i >= params.n) { return; }
  let o = offsets(i);
  put(o.w, params.scalar);
}

// out += a (accumulate a gradient in place; out strided as given; f16 summed in f32 and rounded once).
@compute @workgroup_size(WG)
fn accumulate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg);
  if (i >= params.n) { return; }
  let o = offsets(i);
  if (OUT_DT == DT_F16) {
    let have = unpack2x16float(half_bits(atomicLoad(&out_h[o.w >> 1u]), o.w)).x;
    put_half(o.w, f32_to_half(have + ld_a(o.x)));
  } else {
    out[o.w] = bitcast<u32>(bitcast<f32>(out[o.w]) + ld_a(o.x));
  }
}

// ---- `native`: the ops of unary, binary, unary_backward and binary_backward (FORM 0 to 3; their OP codes, scalars and
// operand roles) where every operand and the result are f16, reading and writing f16 storage (a_n, b_n, c_n, out_n,
// out2_n) instead of packed words: each thread stores its own f16 element (a separate memory location with
// shader-f16), so any output strides work without the per-half atomics. It runs from the file's 'f16' variant
// (kernelVariant; needs shader-f16), where io_t is f16; in this text io_t is f32 and it is never launched. Arithmetic
// as above: values widened to f32 (exact), the op in f32, the result rounded once.
// (Bindings 8 to 10 are left to the inputs src/compile/fuse.ts appends to this text.)
alias io_t = f32;
override FORM: u32 = 0u;

@group(0) @binding(11) var<storage, read> a_n: array<io_t>;
@group(0) @binding(12) var<storage, read> b_n: array<io_t>;
@group(0) @binding(13) var<storage, read> c_n: array<io_t>;
@group(0) @binding(14) var<storage, read_write> out_n: array<io_t>;
@group(0) @binding(15) var<storage, read_write> out2_n: array<io_t>;

// (to_io, the one rounding of a result to io_t: half_io.wgsl.)
@compute @workgroup_size(WG)
fn native(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg);
  if (i >= params.n) { return; }
  let o = offsets(i);
  let x = f32(a_n[o.x]);
  if (FORM == 0u) {
    if (OP == UNARY_COPY) { out_n[o.w] = a_n[o.x]; } else { out_n[o.w] = to_io(unary_f(x)); }
  } else if (FORM == 1u) {
    out_n[o.w] = to_io(binary_f(x, f32(b_n[o.y])));
  } else if (FORM == 2u) {
    out_n[o.w] = to_io(unary_grad_f(x, f32(b_n[o.y]), f32(c_n[o.z])));
  } else {
    let d = binary_grad_f(x, f32(b_n[o.y]), f32(c_n[o.z]));
    let which = u32(params.scalar);
    if ((which & 1u) != 0u) { out_n[o.w] = to_io(d.x); }
    if ((which & 2u) != 0u) { out2_n[o.w] = to_io(d.y); }
  }
}
