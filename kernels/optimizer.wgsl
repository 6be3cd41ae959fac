// Fused multi-tensor optimizer step over a parameter arena: SGD (momentum, dampening, Nesterov, weight decay), Adam
// (L2 weight decay added to the gradient, as torch.optim.Adam) and AdamW (decoupled decay), every parameter in ONE
// dispatch with no copies.
//   Dimensions: P parameters of n_i elements; parameter i occupies [start_i, start_i + n_i) of an arena of
//   T = params.total elements (starts are aligned, so the arena also holds gaps, which no thread reads or writes).
//   Layout (src/optim/arena.ts): every parameter tensor is a view into `weights` and every gradient a view into
//   `grads` at the same offsets, so the step binds the same four buffers whatever P is. `state` holds m (the SGD
//   momentum buffer, the Adam first moment) at [0, T) and, for Adam and AdamW, v (the second moment) at [T, 2T).
//   Reads: table [3 * P] u32: for parameter i, (start_i, n_i, lag_i). Its step count after this update is
//   params.step - lag_i; lag_i = SKIP means it has no gradient this step, and it, its state and its step count stay
//   (as PyTorch skips parameters whose .grad is None). A lag changes only when a parameter is skipped, so the table
//   is uploaded only then. grads [T].
//   skip [>= skip_offset + 1] f32: a found-inf flag (GradScaler's): when skip[params.skip_offset] is nonzero the
//   whole step is skipped (nothing is written), decided on the GPU so the step needs no readback; a zero placeholder
//   is bound when no scaler asks.
//   Writes: weights [T], state [T] or [2T] (read-modify-write; bound to a placeholder when the mode keeps no state).
//   Tiling: one thread per arena element, 256 a workgroup; the grid folds into 2-D past 65,535 workgroups (element =
//   (workgroup y * workgroups x + workgroup x) * 256 + local index; threads past T return). Each thread finds its
//   parameter by binary search over the starts (log2 P steps).

const MODE_SGD: u32 = 0u;
const MODE_ADAM: u32 = 1u;
const MODE_ADAMW: u32 = 2u;
const SKIP: u32 = 0xffffffffu;

struct Params {
  total: u32,
  num_params: u32,
  mode: u32,
  nesterov: u32,
  step: u32,
  maximize: u32,
  lr: f32,
  weight_decay: f32,
  momentum: f32,
  dampening: f32,
  beta1: f32,
  beta2: f32,
  eps: f32,
  skip_offset: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> table: array<u32>;
@group(0) @binding(2) var<storage, read> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> weights: array<f32>;
@group(0) @binding(4) var<storage, read_write> state: array<f32>;
@group(0) @binding(5) var<storage, read> skip: array<u32>;

// The last parameter whose start is <= e.
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
  if ((skip[params.skip_offset] & 0x7fffffffu) != 0u) { return; }
  let pi = find_param(e);
  if (e - table[3u * pi] >= table[3u * pi + 1u]) { return; } // an alignment gap
  let lag = table[3u * pi + 2u];
  if (lag == SKIP) { return; }
  let t = params.step - lag;
  var g = grads[e];
  if (params.maximize != 0u) { g = -g; }
  var w = weights[e];
  let lr = params.lr;
  let wd = params.weight_decay;
  if (params.mode == MODE_SGD) {
    if (wd != 0.0) { g = g + wd * w; }
    if (params.momentum != 0.0) {
      var buf: f32;
      if (t == 1u) { buf = g; } else { buf = params.momentum * state[e] + (1.0 - params.dampening) * g; }
      state[e] = buf;
      if (params.nesterov != 0u) { g = g + params.momentum * buf; } else { g = buf; }
    }
    w = w - lr * g;
  } else {
    if (params.mode == MODE_ADAMW) {
      w = w * (1.0 - lr * wd);
    } else if (wd != 0.0) {
      g = g + wd * w;
    }
    let b1 = params.beta1;
    let b2 = params.beta2;
    let ve = params.total + e;
    let m1 = b1 * state[e] + (1.0 - b1) * g;
    let v1 = b2 * state[ve] + (1.0 - b2) * g * g;
    state[e] = m1;
    state[ve] = v1;
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
