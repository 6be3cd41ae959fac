// Fused multi-tensor optimizer step: SGD (momentum, dampening, Nesterov, weight decay), Adam (L2 weight
// decay added to the gradient, as torch.optim.Adam) and AdamW (decoupled decay), all parameters in ONE dispatch.
//   Dimensions: P parameters of sizes n_i, T = sum n_i elements in all, laid out back to back.
//   Design: WebGPU caps storage bindings per stage (8 by default), so one dispatch cannot bind every
//   parameter's own buffer. The optimizer therefore owns flat buffers of T elements: params (a
//   working copy), grads, and the state m (SGD momentum / Adam first moment) and v (Adam second
//   moment). A step encodes buffer-to-buffer copies (not dispatches) of each parameter and its
//   gradient into the flat buffers, this one dispatch, and copies of the updated parameters back.
//   Parameters stay separate tensors that own their buffers (so kernels that want offset 0 keep it),
//   and the state stays in place between steps.
//   Reads: table [3 * P] u32: for parameter i, (first element, element count, step), where step is
//   the parameter's step count after this update, or 0 when it has no gradient this step (skipped,
//   as PyTorch skips parameters whose .grad is None). grads [T].
//   Writes: params [T], m [T], v [T] (read-modify-write).
//   Tiling: one thread per element, 256 a workgroup, 2-D grid past 65535 workgroups; each thread
//   finds its parameter by binary search over the table (log2 P steps).
//   mode: 0 = SGD, 1 = Adam, 2 = AdamW.

struct Params {
  total: u32,
  num_params: u32,
  mode: u32,
  nesterov: u32,
  lr: f32,
  weight_decay: f32,
  momentum: f32,
  dampening: f32,
  beta1: f32,
  beta2: f32,
  eps: f32,
  maximize: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> table: array<u32>;
@group(0) @binding(2) var<storage, read> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> weights: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;

fn find_param(e: u32) -> u32 {
  var lo = 0u;
  var hi = params.num_params - 1u;
  while (lo < hi) {
    let mid = (lo + hi + 1u) / 2u;
    if (table[3u * mid] <= e) { lo = mid; } else { hi = mid - 1u; }
  }
  return lo;
}

@compute @workgroup_size(256)
fn step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = gid.x + gid.y * nwg.x * 256u;
  if (e >= params.total) { return; }
  let pi = find_param(e);
  let t = table[3u * pi + 2u];
  if (t == 0u) { return; }
  var g = grads[e];
  if (params.maximize != 0u) { g = -g; }
  var w = weights[e];
  let lr = params.lr;
  let wd = params.weight_decay;
  if (params.mode == 0u) {
    if (wd != 0.0) { g = g + wd * w; }
    if (params.momentum != 0.0) {
      var buf: f32;
      if (t == 1u) { buf = g; } else { buf = params.momentum * m[e] + (1.0 - params.dampening) * g; }
      m[e] = buf;
      if (params.nesterov != 0u) { g = g + params.momentum * buf; } else { g = buf; }
    }
    w = w - lr * g;
  } else {
    if (params.mode == 2u) {
      w = w * (1.0 - lr * wd);
    } else if (wd != 0.0) {
      g = g + wd * w;
    }
    let b1 = params.beta1;
    let b2 = params.beta2;
    let m1 = b1 * m[e] + (1.0 - b1) * g;
    let v1 = b2 * v[e] + (1.0 - b2) * g * g;
    m[e] = m1;
    v[e] = v1;
    let tf = f32(t);
    // pow(0, t) is not defined in WGSL; a zero beta means no bias correction.
    var bc1 = 1.0;
    if (b1 > 0.0) { bc1 = 1.0 - pow(b1, tf); }
    var bc2 = 1.0;
    if (b2 > 0.0) { bc2 = 1.0 - pow(b2, tf); }
    let denom = sqrt(v1) / sqrt(bc2) + params.eps;
    w = w - (lr / bc1) * m1 / denom;
  }
  weights[e] = w;
}
