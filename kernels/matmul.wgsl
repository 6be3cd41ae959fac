// Batched matrix product C[b] = alpha * A[b] @ B[b], with broadcasting over up to 4 batch dims.
//   Dimensions: M, N, K; batch dims batch_shape[0..batch_rank).
//   Reads: a (f32, or f16 in the f16 variant; any strides: a_sm, a_sk within a matrix, a_bs per batch dim, 0 = broadcast; so a
//          transposed view needs no copy), b likewise (b_sk, b_sn, b_bs).
//   Writes: out, contiguous [batch..., M, N]; with HAS_BIAS (the epilogue of linear), out[..., m, n] = alpha * (A @ B)[m, n]
//          + bias[bias_off + n] (f32, contiguous), added to the f32 sum before it is stored: one rounding, as a separate add.
//   Tiling: a workgroup of WX x WY = 8 x 4 threads computes a TM x TN = 16 x 64 tile of C; each thread a register
//   tile of RM x 8 = 4 x 8 outputs (rows ty * 4 + i, eight consecutive columns tx * 8 + j, held as two vec4), f32
//   accumulators. Each k step reads 4 values of A and 8 of B (two vec4 loads in `main_vec`) for 32 FMAs. Operands are
//   read straight from storage, without workgroup-memory tiles or barriers: measured on lavapipe (a CPU, where the
//   caches do the tiling and each barrier splits the shader), this is 2-4x faster than the 64 x 64 workgroup-memory
//   kernel it replaced, at 256^3 and 512^3 (see bench/README.md).
//   Edges: rows and columns past M or N are clamped for reading (so every read is in bounds) and never written; K
//   needs no padding, so no padded zero meets an inf (NaN and inf propagate as IEEE sums of the real products).
//   Entry points: `main` reads both operands with any strides; `main_vec` reads B as vec4 (b_sn == 1, N, b_sk, the
//   offset and the batch strides of B all multiples of 4; the launcher decides, and passes offsets in vec4 units).
//   Dispatch: ceil(N / TN) * ceil(M / TM) * batch workgroups in any grid (x fastest): the workgroup's linear id picks
//   its column tile, then its row tile, then its batch entry, so no grid dimension has to reach 65,535 (the host
//   folds the count into x * y); ids past the last tile exit (uniformly: they depend on the workgroup id only).

//!include matmul_common.wgsl
//!include numerics.wgsl

const WX: u32 = 8u;
const WY: u32 = 4u;
const RM: u32 = 4u;
const TM: u32 = 16u; // WY * RM
const TN: u32 = 64u; // WX * 8

// The operands' storage type: the f16 variant (kernelVariant 'f16', shader-f16) reads f16 A and B directly, widening
// each value to f32 (exact) as it is loaded; the sums and `out` stay f32 (the launcher rounds out to f16 once).
alias io_t = f32;

@group(0) @binding(1) var<storage, read> a: array<io_t>;
@group(0) @binding(2) var<storage, read> b: array<io_t>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> b4: array<vec4<io_t>>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read> residual: array<f32>;
@group(0) @binding(7) var<storage, read_write> out_act: array<f32>;

override HAS_BIAS: u32 = 0u;
// Epilogues a compiled step folds in (src/compile/epilogue.ts), after the bias: EPI_RESIDUAL adds residual[res_off +
// o] (contiguous, as out); EPI_ACT 1 (relu) or 2 (gelu) writes the activation of the value to out_act and the value
// itself to out (the activation's backward reads it); EPI_ACT_GRAD 1 (relu) or 2 (gelu) stores the activation's
// gradient with the value as the incoming gradient and residual[res_off + o] as the activation's input. The functions
// are numerics.wgsl's, which elementwise.wgsl's ops call too.
override EPI_RESIDUAL: u32 = 0u;
override EPI_ACT: u32 = 0u;
override EPI_ACT_GRAD: u32 = 0u;

// Where a thread works: its batch entry (`inside` false past the last one), the batch entry's offsets in a and b, and
// the first row and column of its 4 x 8 outputs.
struct Place {
  inside: bool,
  bidx: u32,
  a_base: u32,
  b_base: u32,
  row0: u32,
  col0: u32,
}

fn place(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> Place {
  let tiles_x = (params.N + TN - 1u) / TN;
  let per_batch = tiles_x * ((params.M + TM - 1u) / TM);
  let lin = wid.x + nwg.x * (wid.y + nwg.y * wid.z);
  let bidx = lin / per_batch;
  var p: Place;
  p.inside = bidx < batch_count();
  if (!p.inside) { return p; }
  let bases = batch_bases(bidx);
  let tile = lin % per_batch;
  p.bidx = bidx;
  p.a_base = bases.x;
  p.b_base = bases.y;
  p.row0 = (tile / tiles_x) * TM + lid.y * RM;
  p.col0 = (tile % tiles_x) * TN + lid.x * 8u;
  return p;
}

// Row offsets (in a) of the thread's RM rows, clamped into the matrix.
fn row_offsets(a_base: u32, row0: u32) -> vec4<u32> {
  let last = params.M - 1u;
  return vec4<u32>(a_base) + params.a_sm * min(vec4<u32>(row0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last));
}

// acc += (the thread's 4 values of A's column k, read at offsets ra) x (its 8 values of B's row k, lo and hi).
fn rank1_update(acc: ptr<function, array<vec4<f32>, 8>>, ra: vec4<u32>, lo: vec4<f32>, hi: vec4<f32>) {
  // Unrolled: constant indices keep the accumulators in registers.
  let a0 = vec4<f32>(f32(a[ra.x]));
  let a1 = vec4<f32>(f32(a[ra.y]));
  let a2 = vec4<f32>(f32(a[ra.z]));
  let a3 = vec4<f32>(f32(a[ra.w]));
  (*acc)[0] = fma(a0, lo, (*acc)[0]);
  (*acc)[1] = fma(a0, hi, (*acc)[1]);
  (*acc)[2] = fma(a1, lo, (*acc)[2]);
  (*acc)[3] = fma(a1, hi, (*acc)[3]);
  (*acc)[4] = fma(a2, lo, (*acc)[4]);
  (*acc)[5] = fma(a2, hi, (*acc)[5]);
  (*acc)[6] = fma(a3, lo, (*acc)[6]);
  (*acc)[7] = fma(a3, hi, (*acc)[7]);
}

fn store(bidx: u32, row0: u32, col0: u32, acc: array<vec4<f32>, 8>) {
  let M = params.M;
  let N = params.N;
  let base = bidx * M * N;
  for (var i = 0u; i < RM; i++) {
    let gm = row0 + i;
    if (gm >= M) { break; }
    for (var h = 0u; h < 2u; h++) {
      var v = params.alpha * acc[2u * i + h];
      let c = col0 + 4u * h;
      if (HAS_BIAS == 1u) {
        // Columns past N are clamped for reading (never stored).
        let cb = min(vec4<u32>(c) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(N - 1u)) + vec4<u32>(params.bias_off);
        v += vec4<f32>(bias[cb.x], bias[cb.y], bias[cb.z], bias[cb.w]);
      }
      let o = base + gm * N + c;
      if (EPI_RESIDUAL == 1u) {
        let rb = params.res_off + o;
        for (var j = 0u; j < 4u; j++) { if (c + j < N) { v[j] = v[j] + residual[rb + j]; } }
      }
      if (EPI_ACT_GRAD != 0u) {
        let rb = params.res_off + o;
        for (var j = 0u; j < 4u; j++) {
          if (c + j >= N) { continue; }
          if (EPI_ACT_GRAD == 1u) { v[j] = relu_grad_f(residual[rb + j], v[j]); } else { v[j] = gelu_grad_f(residual[rb + j], v[j]); }
        }
      }
      if (c + 3u < N) {
        out[o] = v.x;
        out[o + 1u] = v.y;
        out[o + 2u] = v.z;
        out[o + 3u] = v.w;
      } else {
        for (var j = 0u; j < 4u; j++) { if (c + j < N) { out[o + j] = v[j]; } }
      }
      if (EPI_ACT != 0u) {
        for (var j = 0u; j < 4u; j++) {
          if (c + j < N) {
            if (EPI_ACT == 1u) { out_act[o + j] = relu_f(v[j]); } else { out_act[o + j] = gelu_f(v[j]); }
          }
        }
      }
    }
  }
}

@compute @workgroup_size(WX, WY, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let p = place(wid, nwg, lid);
  if (!p.inside) { return; }
  let ra = row_offsets(p.a_base, p.row0);
  // Column offsets (in b) of the thread's 8 columns, clamped into the matrix.
  let last = params.N - 1u;
  let c_lo = p.b_base + params.b_sn * min(vec4<u32>(p.col0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last));
  let c_hi = p.b_base + params.b_sn * min(vec4<u32>(p.col0) + vec4<u32>(4u, 5u, 6u, 7u), vec4<u32>(last));
  var acc: array<vec4<f32>, 8>;
  for (var k = 0u; k < params.K; k++) {
    let kb = k * params.b_sk;
    let lo = vec4<f32>(f32(b[c_lo.x + kb]), f32(b[c_lo.y + kb]), f32(b[c_lo.z + kb]), f32(b[c_lo.w + kb]));
    let hi = vec4<f32>(f32(b[c_hi.x + kb]), f32(b[c_hi.y + kb]), f32(b[c_hi.z + kb]), f32(b[c_hi.w + kb]));
    rank1_update(&acc, ra + vec4<u32>(k * params.a_sk), lo, hi);
  }
  store(p.bidx, p.row0, p.col0, acc);
}

// B read as vec4: b_off, b_sk and b_bs are in vec4 units here (the launcher divides them by 4).
@compute @workgroup_size(WX, WY, 1)
fn main_vec(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
  let p = place(wid, nwg, lid);
  if (!p.inside) { return; }
  let ra = row_offsets(p.a_base, p.row0);
  // N is a multiple of 4: the thread's two column quads, clamped to the last quad.
  let last = params.N / 4u - 1u;
  let q_lo = p.b_base + min(p.col0 / 4u, last);
  let q_hi = p.b_base + min(p.col0 / 4u + 1u, last);
  var acc: array<vec4<f32>, 8>;
  for (var k = 0u; k < params.K; k++) {
    let kb = k * params.b_sk;
    let lo = vec4<f32>(b4[q_lo + kb]);
    let hi = vec4<f32>(b4[q_hi + kb]);
    rank1_update(&acc, ra + vec4<u32>(k * params.a_sk), lo, hi);
  }
  store(p.bidx, p.row0, p.col0, acc);
}
