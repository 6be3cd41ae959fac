// Include-only: to_io(v) stores an f32 result as io_t, the storage element of the including file (declared there as
// `alias io_t = f32;`, which the file's 'f16' variant makes f16; see src/gpu/kernels.ts kernelVariant). Used by the
// kernels that read and write f16 storage directly (elementwise.wgsl's `native`, batchnorm.wgsl's f16 variant).
//
// v rounded once to f16 as dtypes.wgsl's f32_to_half rounds it: WGSL's conversion may take values between 65504 and
// 2^16 to either 65504 or infinity, so those below IEEE's overflow threshold (65520) become 65504 and the rest are
// doubled (past 2^16: infinity for certain, sign kept). NaN stays NaN. Only for io_t = f16: with f32 it would move
// values between 65504 and 2^16.
fn to_io(v: f32) -> io_t {
  let m = abs(v);
  var w = v;
  if (m > 65504.0 && m < 65520.0) { w = sign(v) * 65504.0; }
  if (m >= 65520.0 && m < 65536.0) { w = 2.0 * v; }
  return io_t(w);
}
