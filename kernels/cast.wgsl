// Float casts and copies between f32 and f16 storage. Entry point: main.
//
// Dimensions
//   n elements of the output, laid out row-major by `shape` (rank <= 8 dims).
// Reads
//   src: a strided view (s_off + sum(coord[d] * s_strides[d]), in elements of the source dtype). SRC_F16 = 1: the
//   elements are binary16 packed two per u32 word (element e is the low half of word e / 2 when e is even, the
//   high half when odd); SRC_F16 = 0: f32 bits, one per word.
// Writes
//   dst: contiguous from element 0. DST_F16 = 1: one thread writes one whole word (elements 2w and 2w + 1), so no
//   two threads share a word and no atomics are needed; an odd n leaves the last word's high half 0.
//   DST_F16 = 0: one thread per f32 element.
// Semantics
//   f32 -> f16 rounds to a nearest binary16 value (WGSL lets an implementation pick either neighbour when a value
//   lies between two), overflows to +-infinity (|x| >= 65520, as IEEE round-to-nearest does), keeps NaN a NaN.
//   f16 -> f32 is exact. f16 -> f16 copies bits.
// Needs no shader-f16: the halves are unpacked with unpack2x16float / pack2x16float, so f16 tensors work on every
// adapter; the attention kernels' native f16 variant is what needs the feature.
// Tiling: one thread per output word; a 2-D grid when the count passes 65535 workgroups.
// NaN is found from its bits (numerics.wgsl): the compiler may fold `x != x` to false.
//!include dtypes.wgsl

struct Params {
  n: u32,
  rank: u32,
  s_off: u32,
  words: u32,
  shape: array<vec4<u32>, 2>,
  s_strides: array<vec4<u32>, 2>,
}

override SRC_F16: u32 = 0u;
override DST_F16: u32 = 1u;
override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

// Source element index of the output element with row-major index i.
fn src_index(i: u32) -> u32 {
  var rem = i;
  var o = params.s_off;
  var d = i32(params.rank) - 1;
  loop {
    if (d < 0) { break; }
    let du = u32(d);
    let size = params.shape[du / 4u][du % 4u];
    o += (rem % size) * params.s_strides[du / 4u][du % 4u];
    rem = rem / size;
    d -= 1;
  }
  return o;
}

// Source element e as its 16 bits (SRC_F16) or as f32 bits.
fn src_bits(e: u32) -> u32 {
  if (SRC_F16 == 1u) {
    return (src[e / 2u] >> (16u * (e % 2u))) & 0xffffu;
  }
  return src[e];
}

fn half_to_f32(h: u32) -> f32 {
  return unpack2x16float(h).x;
}

// Output element i as 16 bits.
fn out_half(i: u32) -> u32 {
  if (i >= params.n) {
    return 0u;
  }
  let b = src_bits(src_index(i));
  if (SRC_F16 == 1u) {
    return b;
  }
  return f32_to_half(bitcast<f32>(b));
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let w = gid.x + gid.y * nwg.x * WG;
  if (w >= params.words) {
    return;
  }
  if (DST_F16 == 1u) {
    dst[w] = out_half(2u * w) | (out_half(2u * w + 1u) << 16u);
  } else {
    let b = src_bits(src_index(w));
    if (SRC_F16 == 1u) {
      dst[w] = bitcast<u32>(half_to_f32(b));
    } else {
      dst[w] = b;
    }
  }
}
