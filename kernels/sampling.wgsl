// Sampling from categorical distributions (multinomial), from kiln's counter-based Philox generator.
//   Dimensions: `rows` distributions of C categories; probs (f32, any strides) at p_off + row * p_sr + c * p_sc holds
//   non-negative weights (not necessarily normalised); n samples per row.
//   race_keys (without replacement): keys [rows, C] (contiguous) = -log(1 - u) / w with u uniform from
//   philox((c, row, 0, 0x6D75), seed): the n smallest keys are a sample without replacement (the exponential race,
//   equivalent to drawing one at a time); w = 0 gives +inf. The launcher sorts the keys (sort.wgsl), then
//   mark_invalid (one workgroup per row) sets to -1 every sample of a row with a negative, NaN or infinite weight and
//   every sample past the row's count of positive weights (where PyTorch raises: not enough categories to draw).
//   with_replacement: one workgroup per row: a two-level scan of the weights into cum [rows, C] (each thread a chunk,
//   then the chunk totals in workgroup memory), then each sample s draws u from philox((s, row, 1, 0x6D75), seed) and
//   binary-searches the first category whose cumulative weight exceeds u * total. A row with a negative, NaN or
//   infinite weight, or with no positive weight, gives -1 for each sample (PyTorch raises there; kiln cannot throw
//   from a kernel, and -1 makes any later lookup an IndexError). Writes out [rows, n] (i32, contiguous).
//!include numerics.wgsl
//!include random.wgsl

struct Params {
  rows: u32,
  C: u32,
  n: u32,
  p_off: u32,
  p_sr: u32,
  p_sc: u32,
  seed0: u32,
  seed1: u32,
}

const WG: u32 = 256u;
const TAG: u32 = 0x6D75u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> probs: array<f32>;
@group(0) @binding(2) var<storage, read_write> keys: array<f32>;
@group(0) @binding(3) var<storage, read_write> cum: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<i32>;

var<workgroup> part: array<f32, WG>;
var<workgroup> bad: atomic<u32>;
var<workgroup> positive: atomic<u32>;

fn weight(row: u32, c: u32) -> f32 {
  return probs[params.p_off + row * params.p_sr + c * params.p_sc];
}

@compute @workgroup_size(WG)
fn race_keys(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = gid.x + gid.y * nwg.x * WG;
  if (e >= params.rows * params.C) { return; }
  let row = e / params.C;
  let c = e % params.C;
  let w = weight(row, c);
  let r = philox4x32_10(vec4<u32>(c, row, 0u, TAG), vec2<u32>(params.seed0, params.seed1));
  let t = -log(1.0 - uniform_from_u32(r.x));
  keys[e] = select(t / w, inf_f32(), w == 0.0 && !is_nan(w));
}

@compute @workgroup_size(WG)
fn with_replacement(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (lid == 0u) { atomicStore(&bad, 0u); }
  workgroupBarrier();
  let C = params.C;
  let chunk = (C + WG - 1u) / WG;
  let start = min(C, lid * chunk);
  let end = min(C, start + chunk);
  var s = 0.0;
  for (var c = start; c < end; c++) {
    let w = weight(row, c);
    if (is_nan(w) || is_inf(w) || w < 0.0) { atomicStore(&bad, 1u); }
    s += w;
    cum[row * C + c] = s;
  }
  part[lid] = s;
  workgroupBarrier();
  // Inclusive scan of the chunk totals (Hillis-Steele).
  for (var d = 1u; d < WG; d <<= 1u) {
    var v = part[lid];
    if (lid >= d) { v += part[lid - d]; }
    workgroupBarrier();
    part[lid] = v;
    workgroupBarrier();
  }
  let before = select(0.0, part[max(lid, 1u) - 1u], lid > 0u);
  for (var c = start; c < end; c++) {
    cum[row * C + c] += before;
  }
  storageBarrier();
  workgroupBarrier();
  let total = cum[row * C + C - 1u];
  let invalid = atomicLoad(&bad) != 0u || !(total > 0.0);
  for (var smp = lid; smp < params.n; smp += WG) {
    var pick = -1;
    if (!invalid) {
      let r = philox4x32_10(vec4<u32>(smp, row, 1u, TAG), vec2<u32>(params.seed0, params.seed1));
      let goal = uniform_from_u32(r.x) * total;
      var lo = 0u;
      var hi = C - 1u;
      while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (cum[row * C + mid] > goal) { hi = mid; } else { lo = mid + 1u; }
      }
      // u * total may round up to total: then the last category with weight.
      while (lo > 0u && cum[row * C + lo] == cum[row * C + lo - 1u]) { lo -= 1u; }
      pick = i32(lo);
    }
    out[row * params.n + smp] = pick;
  }
}

@compute @workgroup_size(WG)
fn mark_invalid(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (lid == 0u) {
    atomicStore(&bad, 0u);
    atomicStore(&positive, 0u);
  }
  workgroupBarrier();
  var count = 0u;
  for (var c = lid; c < params.C; c += WG) {
    let w = weight(row, c);
    if (is_nan(w) || is_inf(w) || w < 0.0) { atomicStore(&bad, 1u); }
    if (w > 0.0) { count += 1u; }
  }
  atomicAdd(&positive, count);
  workgroupBarrier();
  let invalid = atomicLoad(&bad) != 0u;
  let limit = atomicLoad(&positive);
  for (var smp = lid; smp < params.n; smp += WG) {
    if (invalid || smp >= limit) { out[row * params.n + smp] = -1; }
  }
}
