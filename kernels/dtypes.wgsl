// The dtype codes kernels read through their A_DT / OUT_DT override constants, and the packed-f16 helpers
// (include-only). f32, i32 and bool take one 32-bit word per element; f16 (DT_F16) is binary16 packed two to a word:
// element e is the low half of word e / 2 when e is even, the high half when odd. Kernels that take DT_F16 read it
// with dt_word / dt_load_f and round a result once with f32_to_half; the arithmetic stays f32, so no kernel needs
// shader-f16 for it. Kernels that do not say they take DT_F16 are never given it (their launchers refuse f16).
//!include numerics.wgsl
const DT_F32: u32 = 0u;
const DT_I32: u32 = 1u;
const DT_BOOL: u32 = 2u;
const DT_F16: u32 = 3u;

// The word that holds element e of a buffer of dtype dt.
fn dt_word(e: u32, dt: u32) -> u32 {
  return select(e, e >> 1u, dt == DT_F16);
}

// The 16 bits of element e of an f16 buffer, from its word.
fn half_bits(word: u32, e: u32) -> u32 {
  return (word >> (16u * (e & 1u))) & 0xffffu;
}

// Element e of dtype dt, from its word, as f32 (exact for f16).
fn dt_load_f(word: u32, e: u32, dt: u32) -> f32 {
  if (dt == DT_F32) { return bitcast<f32>(word); }
  if (dt == DT_F16) { return unpack2x16float(half_bits(word, e)).x; }
  if (dt == DT_I32) { return f32(bitcast<i32>(word)); }
  return select(0.0, 1.0, word != 0u);
}

// x rounded to binary16 (a nearest value: WGSL lets pack2x16float pick either neighbour between two), overflowing to
// +-infinity where IEEE round-to-nearest does (|x| >= 65520), NaN kept a NaN.
fn f32_to_half(x: f32) -> u32 {
  let sign = (bitcast<u32>(x) >> 16u) & 0x8000u;
  if (is_nan(x)) {
    return sign | 0x7e00u;
  }
  if (abs(x) >= 65520.0) {
    return sign | 0x7c00u;
  }
  return pack2x16float(vec2<f32>(x, 0.0)) & 0xffffu;
}
