// Strided views for kernels that read their inputs in place (include-only): a view's element at a row-major index
// over `rank` dims lives at the sum of its coordinates times the view's strides (0 strides broadcast). Shapes and
// strides are passed as array<vec4<u32>, 2> (up to 8 dims), as every kernel's params carry them.

fn view_offset(i: u32, rank: u32, shape: array<vec4<u32>, 2>, strides: array<vec4<u32>, 2>) -> u32 {
  var rem = i;
  var off = 0u;
  for (var d = i32(rank) - 1; d >= 0; d--) {
    let du = u32(d);
    let size = shape[du / 4u][du % 4u];
    off += (rem % size) * strides[du / 4u][du % 4u];
    rem = rem / size;
  }
  return off;
}
