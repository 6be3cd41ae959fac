// Programmable attention's helper passes (F.flexAttention, createBlockMask). Entry points:
//   block_eval      one workgroup per block (row, qb, kb), row = rb * Hm + rh over the mask's Bm x Hm rows: evaluates
//                   mask_mod(rb, rh, i, j) over the block's entries inside [Nq, Nk] (queries qb * QBS .. + QBS, keys
//                   kb * KBS .. + KBS) and writes status[(row * nqb + qb) * nkb + kb] = 1 (some entry admissible) | 2
//                   (every entry admissible).
//   block_lists     one invocation per list: for list < rows * nqb (row, qb), the key blocks in ascending order:
//                   lists[row * nqb + qb] = count, lists[kv_idx + (row * nqb + qb) * nkb + t] = kb | (full << 31);
//                   for the rows * nkb lists after that (row, kb), the query blocks likewise at q_cnt and q_idx. This
//                   is the layout the fused kernels read (attention_common.wgsl, bm_* params).
//   capture_reduce  grad[e] = sum over w < slots of partials[base + w * stride + e], in order of w (e < n): the fixed-order
//                   reduction of the flex backward's per-workgroup captured-tensor gradients.
// Grids: 1-D counts folded over (x, y) as grid1d does (linear = x + nx * y).

//!include numerics.wgsl
//!include attention_mask_hook.wgsl

struct Params {
  n: u32,
  slots: u32,
  stride: u32,
  base: u32,
  Nq: u32,
  Nk: u32,
  qbs: u32,
  kbs: u32,
  nqb: u32,
  nkb: u32,
  rows: u32,
  Hm: u32,
  kv_idx: u32,
  q_cnt: u32,
  q_idx: u32,
  check_id: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> status: array<u32>;
@group(0) @binding(4) var<storage, read_write> lists: array<u32>;

var<workgroup> any_ok: atomic<u32>;
var<workgroup> all_ok: atomic<u32>;

@compute @workgroup_size(64)
fn block_eval(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wg: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
  let blk = wg.x + nwg.x * wg.y;
  let blocks = params.rows * params.nqb * params.nkb;
  if (blk >= blocks) {
    return;
  }
  if (tid == 0u) {
    atomicStore(&any_ok, 0u);
    atomicStore(&all_ok, 1u);
  }
  workgroupBarrier();
  let kb = blk % params.nkb;
  let qb = (blk / params.nkb) % params.nqb;
  let row = blk / (params.nkb * params.nqb);
  let rb = row / params.Hm;
  let rh = row % params.Hm;
  var some = false;
  var every = true;
  for (var e = tid; e < params.qbs * params.kbs; e += 64u) {
    let i = qb * params.qbs + e / params.kbs;
    let j = kb * params.kbs + e % params.kbs;
    if (i < params.Nq && j < params.Nk) {
      let ok = mask_mod(rb, rh, i, j);
      some = some || ok;
      every = every && ok;
    }
  }
  flex_report();
  if (some) {
    atomicOr(&any_ok, 1u);
  }
  if (!every) {
    atomicAnd(&all_ok, 0u);
  }
  workgroupBarrier();
  if (tid == 0u) {
    let a = atomicLoad(&any_ok);
    status[blk] = a | select(0u, 2u, a != 0u && atomicLoad(&all_ok) != 0u);
  }
}

@compute @workgroup_size(64)
fn block_lists(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let list = gid.x + nwg.x * 64u * gid.y;
  let kv_lists = params.rows * params.nqb;
  if (list < kv_lists) {
    var count = 0u;
    for (var kb = 0u; kb < params.nkb; kb++) {
      let st = status[list * params.nkb + kb];
      if (st != 0u) {
        lists[params.kv_idx + list * params.nkb + count] = kb | select(0u, 0x80000000u, st >= 2u);
        count++;
      }
    }
    lists[list] = count;
    return;
  }
  let ql = list - kv_lists;
  if (ql >= params.rows * params.nkb) {
    return;
  }
  let row = ql / params.nkb;
  let kb = ql % params.nkb;
  var count = 0u;
  for (var qb = 0u; qb < params.nqb; qb++) {
    let st = status[(row * params.nqb + qb) * params.nkb + kb];
    if (st != 0u) {
      lists[params.q_idx + ql * params.nqb + count] = qb | select(0u, 0x80000000u, st >= 2u);
      count++;
    }
  }
  lists[params.q_cnt + ql] = count;
}

@compute @workgroup_size(64)
fn capture_reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = gid.x + nwg.x * 64u * gid.y;
  if (e >= params.n) {
    return;
  }
  var acc = 0.0;
  for (var w = 0u; w < params.slots; w++) {
    acc += partials[params.base + w * params.stride + e];
  }
  grad[e] = acc;
}
