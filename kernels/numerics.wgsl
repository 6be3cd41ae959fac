// NaN-faithful float helpers, shared through `//!include numerics.wgsl` (include-only: no entry point).
//
// WGSL lets an implementation assume that floats are never NaN or infinite: comparisons, min, max and clamp may be
// rewritten on that assumption (lavapipe's NIR folds `v != v` to false, `max(NaN, 0)` to 0 and `clamp(NaN, 0, 1)` to
// 0). So kiln never asks a float comparison whether a value is NaN, and never relies on min/max/clamp to pass a NaN
// through: a NaN is found from its bits (exponent all ones, mantissa not zero), and a NaN result is chosen explicitly
// with select(). These are integer operations, which no float assumption can fold.
//
// Semantics (PyTorch's): max/min/maximum/minimum/clamp return NaN when an operand is NaN; an ordered comparison with
// a NaN operand is false and `!=` is true; a NaN is truthy (logical ops, casts to bool).

// A quiet NaN as a run-time value: WGSL rejects a constant expression that evaluates to NaN.
var<private> num_nan_bits: u32 = 0x7fc00000u;

fn is_nan(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

fn is_inf(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u;
}

fn is_neg_inf(x: f32) -> bool {
  return bitcast<u32>(x) == 0xff800000u;
}

fn nan_f32() -> f32 {
  return bitcast<f32>(num_nan_bits);
}

fn inf_f32() -> f32 {
  return bitcast<f32>(num_nan_bits ^ 0x00400000u); // 0x7f800000
}

fn neg_inf_f32() -> f32 {
  return bitcast<f32>(num_nan_bits ^ 0x80400000u); // 0xff800000
}

// max / min that return a NaN operand (the first, if both are).
fn max_nan(a: f32, b: f32) -> f32 {
  return select(select(max(a, b), b, is_nan(b)), a, is_nan(a));
}

fn min_nan(a: f32, b: f32) -> f32 {
  return select(select(min(a, b), b, is_nan(b)), a, is_nan(a));
}

// clamp(x, lo, hi) = min(max(x, lo), hi) as PyTorch (lo > hi gives hi); NaN stays NaN. Bounds are never NaN.
fn clamp_nan(x: f32, lo: f32, hi: f32) -> f32 {
  return select(min(max(x, lo), hi), x, is_nan(x));
}

// Comparisons with IEEE semantics, whatever the compiler assumes.
fn f_eq(a: f32, b: f32) -> bool {
  return !(is_nan(a) || is_nan(b)) && a == b;
}
fn f_ne(a: f32, b: f32) -> bool {
  return is_nan(a) || is_nan(b) || a != b;
}
fn f_lt(a: f32, b: f32) -> bool {
  return !(is_nan(a) || is_nan(b)) && a < b;
}
fn f_le(a: f32, b: f32) -> bool {
  return !(is_nan(a) || is_nan(b)) && a <= b;
}

// x as a truth value: nonzero, NaN included (as C, PyTorch's bool()).
fn truthy(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7fffffffu) != 0u;
}

// erf with |error| < 1.2e-7 (Numerical Recipes' erfc Chebyshev fit), enough for f32 gelu.
fn erf_approx(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
          t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
          t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}

// relu and gelu and their gradients: elementwise.wgsl's ops and matmul.wgsl's epilogues call these same functions, so
// a fused epilogue gives bit-identical results (relu passes the gradient where x is NaN, as threshold_backward).
fn relu_f(x: f32) -> f32 { return select(max(x, 0.0), x, is_nan(x)); }
fn gelu_f(x: f32) -> f32 { return 0.5 * x * (1.0 + erf_approx(x * 0.70710678118654752)); }
fn relu_grad_f(x: f32, g: f32) -> f32 { return select(0.0, g, is_nan(x) || x > 0.0); }
fn gelu_grad_f(x: f32, g: f32) -> f32 {
  let cdf = 0.5 * (1.0 + erf_approx(x * 0.70710678118654752));
  let pdf = exp(-0.5 * x * x) * 0.39894228040143268;
  return g * (cdf + x * pdf);
}
