// The benchmark suites, run against a kiln module `k` (Node bundle or browser bundle alike). Browser-safe:
// no node imports. Every case is checked against a float64 CPU reference (all entries for small sizes, a
// deterministic sample of rows/entries for large ones) and, for fused attention, against impl:'reference',
// before it is timed; a case that fails its check is reported with status 'failed' and not timed.
import { probePeaks } from './probes.mjs';
import { summarize } from './stats.mjs';
import { attentionRowsF64, flexRowsF64, convF64, layerNormRowsF64, matmulF64, maxAbsErr, sampleIndices, softmaxRowsF64 } from './reference.mjs';

export const SUITES = ['attention', 'matmul', 'softmax', 'layernorm', 'trainstep', 'conv', 'flex'];
export const SCHEMA_VERSION = 1;

export function defaultSizes(suite, quick) {
  if (suite === 'trainstep') return quick ? [32] : [64, 256];
  // conv: the side of a ResNet-like 3x3 layer [8, 32, s, s] -> 64 channels.
  if (suite === 'conv') return quick ? [28] : [14, 28, 56];
  if (quick) return suite === 'matmul' ? [128, 256] : suite === 'attention' ? [128, 256] : [256];
  return suite === 'matmul' ? [128, 256, 512, 1024] : [128, 256, 512, 1024];
}

const FULL_CHECK_LIMIT = 2 ** 25; // multiply-adds the CPU reference may spend on a full check
const now = () => performance.now();

function planCases(k, o) {
  const cases = [];
  const skipped = [];
  const F = k.F ?? {};
  for (const suite of o.suites) {
    const sizes = o.sizes ?? defaultSizes(suite, o.quick);
    if (suite === 'attention') {
      if (typeof F.scaledDotProductAttention !== 'function') {
        skipped.push({ suite, reason: 'F.scaledDotProductAttention is not in this kiln build (typeof !== "function")' });
        continue;
      }
      const { batch: B, heads: H, dim: D } = o;
      const maxBinding = o.adapter?.limits?.maxStorageBufferBindingSize ?? 2 ** 27;
      for (const N of sizes) {
        // The reference path materialises the [B, H, N, N] scores; past the binding limit it cannot run.
        const refFits = B * H * N * N * 4 <= maxBinding;
        if (!refFits) skipped.push({ suite, reason: `reference attention at [${B},${H},${N},${D}]: scores need ${B * H * N * N * 4} bytes > maxStorageBufferBindingSize ${maxBinding}; fused checked against float64 only` });
        for (const dtype of o.dtypes ?? ['f32'])
          for (const isCausal of [false, true])
            for (const impl of refFits ? ['fused', 'reference'] : ['fused']) cases.push(attentionCase(k, { B, H, N, D, isCausal, impl, refFits, dtype }));
      }
    } else if (suite === 'flex') {
      if (typeof F.flexAttention !== 'function') {
        skipped.push({ suite, reason: 'F.flexAttention is not in this kiln build (typeof !== "function")' });
        continue;
      }
      const { batch: B, heads: H, dim: D } = o;
      const noCapture = captureRefusal(k);
      if (noCapture) skipped.push({ suite, reason: `flex 'alibi causal' (slopes read from a captured tensor): ${noCapture}` });
      const variants = FLEX_VARIANTS.filter((v) => !(noCapture && v === 'alibi causal'));
      for (const N of sizes) for (const variant of variants) cases.push(flexCase(k, { B, H, N, D, variant }));
    } else if (suite === 'matmul') {
      for (const n of sizes) cases.push(matmulCase(k, n));
    } else if (suite === 'softmax') {
      for (const n of sizes) cases.push(softmaxCase(k, o.heads, n));
    } else if (suite === 'conv') {
      if (typeof F.conv2d !== 'function') {
        skipped.push({ suite, reason: 'F.conv2d is not in this kiln build (typeof !== "function")' });
        continue;
      }
      for (const n of sizes) cases.push(convCase(k, n));
    } else if (suite === 'layernorm') {
      for (const n of sizes) cases.push(layerNormCase(k, n, o.embed));
    } else if (suite === 'trainstep') {
      if (!k.nn?.TransformerEncoderLayer || !k.optim?.AdamW) {
        skipped.push({ suite, reason: 'nn.TransformerEncoderLayer / optim.AdamW not in this kiln build' });
        continue;
      }
      for (const n of sizes) for (const impl of ['fused', 'reference']) cases.push(trainStepCase(k, n, impl));
      // The autocast row (f16 attention, f32 weights, GradScaler), beside the f32 fused row of the same run.
      if (typeof k.autocast === 'function' && k.optim.GradScaler) for (const n of sizes) cases.push(trainStepCase(k, n, 'fused', 'autocast'));
    }
  }
  return { cases, skipped };
}

function attentionCase(k, { B, H, N, D, isCausal, impl, refFits, dtype = 'f32' }) {
  const pairs = B * H * (isCausal ? (N * (N + 1)) / 2 : N * N);
  const f16 = dtype === 'f16';
  return {
    // f16: q, k, v and o in binary16 (arithmetic in f32); params carry dtype only then, so f32 cases keep their keys.
    suite: 'attention', impl, shape: [B, H, N, D], params: f16 ? { isCausal, dtype } : { isCausal },
    label: `attention ${impl}${isCausal ? ' causal' : ''}${f16 ? ' f16' : ''} N=${N}`,
    flops: 4 * pairs * D, // QK^T and PV; softmax's few flops a score are not counted
    bytes: 4 * B * H * N * D * (f16 ? 2 : 4), // algorithmic minimum: read q, k, v, write o
    setup() {
      const shape = [B, H, N, D];
      const q = k.randn(shape, { seed: 11, dtype });
      const kk = k.randn(shape, { seed: 12, dtype });
      const v = k.randn(shape, { seed: 13, dtype });
      const run = () => k.F.scaledDotProductAttention(q, kk, v, { isCausal, impl });
      return {
        run,
        async check() {
          const [qa, ka, va, got] = await Promise.all([q.toArray(), kk.toArray(), v.toArray(), k.tidy(run).toArray()]);
          const BH = B * H;
          const full = BH * N * N * D * 2 <= FULL_CHECK_LIMIT;
          const rows = full ? undefined : sampleIndices(BH * N, 64, N + (isCausal ? 1 : 0));
          const want = attentionRowsF64(qa, ka, va, BH, N, D, { isCausal, rows });
          const at = rows ? rows.flatMap((r) => Array.from({ length: D }, (_, d) => r * D + d)) : undefined;
          const { err, scale } = maxAbsErr(got, want, at);
          const out = { against: full ? 'cpu-f64' : 'cpu-f64-sampled', maxErr: err, tol: 1e-3 * Math.max(1, scale) };
          if (impl === 'fused' && refFits) {
            const ref = await k.tidy(() => k.F.scaledDotProductAttention(q, kk, v, { isCausal, impl: 'reference' })).toArray();
            out.maxErrVsReference = maxAbsErr(got, ref).err;
            out.passed = out.maxErr <= out.tol && out.maxErrVsReference <= out.tol;
          } else out.passed = out.maxErr <= out.tol;
          return out;
        },
        dispose() { q.dispose(); kk.dispose(); v.dispose(); },
      };
    },
  };
}

// The flex suite: plain fused causal SDPA beside flexAttention with mods (soft-capped causal, ALiBi causal with its
// slopes read from a captured tensor and with them computed in the mod, a causal sliding window of 128 without and
// with a block mask), each checked against the float64 reference on sampled rows. The report gives each variant's
// time over plain fused causal SDPA's (same runtime and shape).
export const FLEX_VARIANTS = ['sdpa causal', 'softcap causal', 'alibi causal', 'alibi causal computed', 'window 128', 'window 128 + block mask'];
const SOFT_CAP = 20;
const WINDOW = 128;
/** ALiBi's slope of head h of H, 2^(-8 (h + 1) / H) (the paper's geometric sequence). */
const alibiSlope = (h, H) => 2 ** ((-8 * (h + 1)) / H);

/**
 * Why this adapter cannot run a mod that captures a tensor (Chromium's SwiftShader allows 10 storage buffers a shader
 * stage, fewer than the flex kernels need with one more), or null. flexAttention refuses that before any GPU work and
 * before it looks at shapes, so a call whose key head dimension disagrees answers without running anything: the
 * capture limit's DeviceError, or else the shape's ShapeError.
 */
function captureRefusal(k) {
  const q = k.zeros([1, 1, 1, 4]), kk = k.zeros([1, 1, 1, 8]), slopes = k.zeros([1]);
  try {
    k.F.flexAttention(q, kk, kk, { scoreMod: (s, _b, h) => s.add(slopes.at(h)) }).dispose();
    return null;
  } catch (e) {
    return e instanceof k.ShapeError ? null : String(e?.message ?? e);
  } finally {
    for (const t of [q, kk, slopes]) t.dispose();
  }
}

function flexCase(k, { B, H, N, D, variant }) {
  const window = variant.startsWith('window');
  const pairs = B * H * (window ? N * Math.min(N, WINDOW) : (N * (N + 1)) / 2);
  return {
    suite: 'flex', impl: variant.startsWith('sdpa') ? 'sdpa' : 'flex', shape: [B, H, N, D], params: { variant },
    label: `flex ${variant} N=${N}`,
    flops: 4 * pairs * D,
    bytes: 4 * B * H * N * D * 4,
    setup() {
      const shape = [B, H, N, D];
      const q = k.randn(shape, { seed: 11 });
      const kk = k.randn(shape, { seed: 12 });
      const v = k.randn(shape, { seed: 13 });
      const slopes = k.tensor(Float32Array.from({ length: H }, (_, h) => alibiSlope(h, H)), { shape: [H] });
      const causal = (_b, _h, i, j) => j.le(i);
      const win = (_b, _h, i, j) => { const d = i.sub(j); return d.ge(0).logicalAnd(d.lt(WINDOW)); };
      const blockMask = variant === 'window 128 + block mask' ? k.createBlockMask(win, null, null, N, N) : null;
      const opts = {
        'softcap causal': { scoreMod: (s) => s.div(SOFT_CAP).tanh().mul(SOFT_CAP), maskMod: causal },
        'alibi causal': { scoreMod: (s, _b, h, i, j) => s.add(slopes.at(h).mul(j.sub(i))), maskMod: causal },
        // The slope as exp(-(8 ln 2 / H) (h + 1)) in the kernel: no captured tensor, so it runs on every adapter.
        'alibi causal computed': { scoreMod: (s, _b, h, i, j) => s.add(h.add(1).mul((-8 * Math.LN2) / H).exp().mul(j.sub(i))), maskMod: causal },
        'window 128': { maskMod: win },
        'window 128 + block mask': { blockMask },
      }[variant];
      const run = variant === 'sdpa causal' ? () => k.F.scaledDotProductAttention(q, kk, v, { isCausal: true }) : () => k.F.flexAttention(q, kk, v, opts);
      const ref = {
        'sdpa causal': { maskMod: (_b, _h, i, j) => j <= i },
        'softcap causal': { scoreMod: (s) => SOFT_CAP * Math.tanh(s / SOFT_CAP), maskMod: (_b, _h, i, j) => j <= i },
        'alibi causal': { scoreMod: (s, _b, h, i, j) => s + alibiSlope(h, H) * (j - i), maskMod: (_b, _h, i, j) => j <= i },
        'alibi causal computed': { scoreMod: (s, _b, h, i, j) => s + alibiSlope(h, H) * (j - i), maskMod: (_b, _h, i, j) => j <= i },
        'window 128': { maskMod: (_b, _h, i, j) => i - j >= 0 && i - j < WINDOW },
        'window 128 + block mask': { maskMod: (_b, _h, i, j) => i - j >= 0 && i - j < WINDOW },
      }[variant];
      return {
        run,
        async check() {
          const [qa, ka, va, got] = await Promise.all([q.toArray(), kk.toArray(), v.toArray(), k.tidy(run).toArray()]);
          const rows = sampleIndices(B * H * N, 32, N + 1);
          const want = flexRowsF64(qa, ka, va, B, H, N, D, { ...ref, rows });
          const at = rows.flatMap((r) => Array.from({ length: D }, (_, d) => r * D + d));
          const { err, scale } = maxAbsErr(got, want, at);
          return { against: 'cpu-f64-sampled', maxErr: err, tol: 1e-3 * Math.max(1, scale), passed: err <= 1e-3 * Math.max(1, scale) };
        },
        dispose() { q.dispose(); kk.dispose(); v.dispose(); slopes.dispose(); blockMask?.dispose(); },
      };
    },
  };
}

function matmulCase(k, n) {
  return {
    suite: 'matmul', impl: 'kiln', shape: [n, n, n], params: {}, label: `matmul ${n}^3`,
    flops: 2 * n ** 3, bytes: 3 * n * n * 4,
    setup() {
      const a = k.randn([n, n], { seed: 21 });
      const b = k.randn([n, n], { seed: 22 });
      const run = () => k.matmul(a, b);
      return {
        run,
        async check() {
          const [aa, ba, got] = await Promise.all([a.toArray(), b.toArray(), k.tidy(run).toArray()]);
          const full = n ** 3 <= FULL_CHECK_LIMIT;
          const at = full ? undefined : sampleIndices(n * n, 512, n);
          const want = matmulF64(aa, ba, n, n, n, at);
          const { err, scale } = maxAbsErr(got, want, at);
          return { against: full ? 'cpu-f64' : 'cpu-f64-sampled', maxErr: err, tol: 1e-4 * Math.max(1, scale) * Math.sqrt(n) / 4, passed: err <= 1e-4 * Math.max(1, scale) * Math.sqrt(n) / 4 };
        },
        dispose() { a.dispose(); b.dispose(); },
      };
    },
  };
}

/** The ResNet-like 3x3 layer of the conv suite: x [8, 32, s, s], weight [64, 32, 3, 3], padding 1 (output [8, 64, s, s]). */
export function convShapes(s) {
  return { x: [8, 32, s, s], w: [64, 32, 3, 3], out: [8, 64, s, s], pad: 1 };
}

/** Checks conv2d output `got` (NCHW) against float64 at a deterministic sample of outputs. */
export function convCheck(xa, wa, s, got) {
  const sh = convShapes(s);
  const total = sh.out.reduce((a, b) => a * b, 1);
  const at = sampleIndices(total, 512, 97);
  const want = convF64(xa, wa, sh.x, sh.w, sh.pad, at);
  const { err, scale } = maxAbsErr(got, want, at);
  const tol = 1e-4 * Math.max(1, scale) * Math.sqrt(32 * 9) / 4;
  return { against: 'cpu-f64-sampled', maxErr: err, tol, passed: err <= tol };
}

function convCase(k, s) {
  const sh = convShapes(s);
  return {
    suite: 'conv', impl: 'kiln', shape: sh.x, params: { outChannels: 64, kernel: 3, padding: 1 }, label: `conv2d [8,32,${s},${s}] -> 64 3x3`,
    flops: 2 * 8 * 64 * s * s * 32 * 9, bytes: 4 * (8 * 32 * s * s + 64 * 32 * 9 + 8 * 64 * s * s),
    setup() {
      const x = k.randn(sh.x, { seed: 41 });
      const w = k.randn(sh.w, { seed: 42 });
      const run = () => k.F.conv2d(x, w, null, { padding: 1 });
      return {
        run,
        async check() {
          const [xa, wa, got] = await Promise.all([x.toArray(), w.toArray(), k.tidy(run).toArray()]);
          return convCheck(xa, wa, s, got);
        },
        dispose() { x.dispose(); w.dispose(); },
      };
    },
  };
}

function softmaxCase(k, H, n) {
  const rows = H * n;
  return {
    suite: 'softmax', impl: 'kiln', shape: [H, n, n], params: { dim: -1 }, label: `softmax [${H},${n},${n}]`,
    flops: 5 * rows * n, bytes: 2 * rows * n * 4,
    setup() {
      const x = k.randn([H, n, n], { seed: 31 });
      const run = () => k.softmax(x, -1);
      return {
        run,
        async check() {
          const [xa, got] = await Promise.all([x.toArray(), k.tidy(run).toArray()]);
          const { want, at, against } = rowsCheck(xa, rows, n, (sub, r) => softmaxRowsF64(sub, r, n));
          const { err } = maxAbsErr(got, want, at);
          return { against, maxErr: err, tol: 1e-5, passed: err <= 1e-5 };
        },
        dispose() { x.dispose(); },
      };
    },
  };
}

function layerNormCase(k, n, E) {
  return {
    suite: 'layernorm', impl: 'kiln', shape: [n, E], params: { normalizedShape: [E], affine: true }, label: `layerNorm [${n},${E}]`,
    flops: 8 * n * E, bytes: (2 * n * E + 2 * E) * 4,
    setup() {
      const x = k.randn([n, E], { seed: 41 });
      const w = k.randn([E], { seed: 42 });
      const b = k.randn([E], { seed: 43 });
      const run = () => k.layerNorm(x, [E], w, b);
      return {
        run,
        async check() {
          const [xa, wa, ba, got] = await Promise.all([x.toArray(), w.toArray(), b.toArray(), k.tidy(run).toArray()]);
          const { want, at, against } = rowsCheck(xa, n, E, (sub, r) => layerNormRowsF64(sub, r, E, wa, ba, 1e-5));
          const { err, scale } = maxAbsErr(got, want, at);
          const tol = 1e-4 * Math.max(1, scale);
          return { against, maxErr: err, tol, passed: err <= tol };
        },
        dispose() { x.dispose(); w.dispose(); b.dispose(); },
      };
    },
  };
}

// One training step of a small transformer (embedding, one encoder layer, a token classifier,
// cross-entropy, AdamW): forward, backward and the optimizer, with attention fused or composed; precision 'autocast'
// runs the forward and loss under k.autocast (f16) and steps through a GradScaler (its update's readback included).
// check.peakBytes is the step's peak live GPU memory (memory().peakBytes after resetPeak, over one step), and
// check.stepBytes that peak above the live bytes before the step.
function trainStepCase(k, N, impl, precision = 'f32') {
  const B = 4, E = 64, H = 4, V = 96, FF = 128;
  const layerFlops = (n) => 2 * B * n * (4 * E * E + 2 * E * FF) + 4 * B * H * n * n * (E / H);
  const amp = precision === 'autocast';
  return {
    suite: 'trainstep', impl, shape: [B, N, E], params: { heads: H, ff: FF, vocab: V, attention: impl, ...(amp ? { precision } : {}) },
    label: `train step ${impl}${amp ? ' autocast' : ''} [${B},${N},${E}]`,
    flops: 3 * (layerFlops(N) + 2 * B * N * E * V), // forward + about twice that for backward
    bytes: 0,
    setup() {
      const emb = new k.nn.Embedding(V, E, { seed: 1 });
      const layer = new k.nn.TransformerEncoderLayer(E, H, { dimFeedforward: FF, dropout: 0, isCausal: true, seed: 2 });
      const head = new k.nn.Linear(E, V, { seed: 3 });
      const params = [...emb.parameters(), ...layer.parameters(), ...head.parameters()];
      const opt = new k.optim.AdamW(params, { lr: 1e-3 });
      const ids = Int32Array.from({ length: B * N }, (_, i) => (i * 7919 + 13) % V);
      const tokens = k.tensor(ids, { shape: [B, N] });
      const targets = k.tensor(Int32Array.from(ids, (t, i) => ids[(i + 1) % ids.length]), { shape: [B * N] });
      const forward = (which) => {
        k.setFlag('attention.impl', which);
        try {
          const h = layer.forward(emb.forward(tokens));
          return k.F.crossEntropy(head.forward(h).reshape([B * N, V]), targets);
        } finally {
          k.setFlag('attention.impl', undefined);
        }
      };
      const scaler = amp ? new k.optim.GradScaler() : null;
      // run() is synchronous (the harness runs it in tidy); the scaler's update (its one readback) is `after`, which
      // the harness awaits after each run, inside the timed span.
      const run = () => {
        opt.zeroGrad();
        if (!scaler) {
          const loss = forward(impl);
          loss.backward();
          opt.step();
          return loss;
        }
        const loss = k.autocast(() => forward(impl));
        const scaled = scaler.scale(loss);
        scaled.backward();
        scaled.dispose();
        scaler.step(opt);
        return loss;
      };
      const after = async () => {
        if (scaler) await scaler.update();
      };
      // One step to measure its peak live memory (pipelines compiled, optimizer storage allocated).
      const mem = {};
      const probe = async () => {
        for (let i = 0; i < 2; i++) {
          if (i === 1) k.resetPeak();
          const base = k.memory().bytes;
          const loss = k.tidy(run);
          await loss.toArray();
          await after();
          loss.dispose();
          mem.peakBytes = k.memory().peakBytes;
          mem.stepBytes = k.memory().peakBytes - base;
        }
      };
      return {
        run,
        after,
        async check() {
          await probe();
          // The same parameters give the same loss and gradients through either attention path.
          const grads = [];
          const losses = [];
          for (const which of ['fused', 'reference']) {
            opt.zeroGrad();
            const loss = k.tidy(() => forward(which));
            loss.backward();
            losses.push((await loss.toArray())[0]);
            grads.push(await layer.selfAttn.inProjWeight.grad.toArray());
            loss.dispose();
          }
          opt.zeroGrad();
          const err = Math.max(Math.abs(losses[0] - losses[1]), maxAbsErr(grads[0], grads[1]).err);
          const tol = 1e-4;
          return { against: 'fused vs reference attention (loss, in_proj_weight grad)', maxErr: err, tol, passed: Number.isFinite(losses[0]) && err <= tol, ...mem };
        },
        dispose() {
          for (const m of [emb, layer, head]) m.dispose();
          opt.dispose?.();
          scaler?.dispose();
          tokens.dispose();
          targets.dispose();
        },
      };
    },
  };
}

/** Row-wise reference over all rows when small, else over 64 sampled rows; `at` maps reference entries to output entries. */
function rowsCheck(x, rows, cols, refRows) {
  if (rows * cols <= 2 ** 22) return { want: refRows(x, rows), at: undefined, against: 'cpu-f64' };
  const picked = sampleIndices(rows, 64, cols);
  const sub = new Float32Array(picked.length * cols);
  picked.forEach((r, i) => sub.set(x.subarray(r * cols, (r + 1) * cols), i * cols));
  const at = picked.flatMap((r) => Array.from({ length: cols }, (_, c) => r * cols + c));
  return { want: refRows(sub, picked.length), at, against: 'cpu-f64-sampled' };
}

/** Wall-clock cost of one tiny dispatch: 200 independent adds of [4] tensors, one sync, time / 200. */
async function measureOverhead(k, reps) {
  const a = k.tensor([1, 2, 3, 4]);
  const b = k.tensor([4, 3, 2, 1]);
  const time = async (count) => {
    const t0 = now();
    const outs = [];
    for (let i = 0; i < count; i++) outs.push(k.add(a, b));
    await k.sync();
    const ms = now() - t0;
    outs.forEach((t) => t.dispose());
    return ms;
  };
  await time(200);
  const per = [];
  const single = [];
  for (let r = 0; r < reps; r++) {
    per.push((await time(200)) / 200);
    single.push(await time(1));
  }
  a.dispose();
  b.dispose();
  const p = summarize(per);
  const s = summarize(single);
  return { dispatches: 200, perDispatchUs: p.median * 1000, perDispatchUsMin: p.min * 1000, singleDispatchRoundTripMs: s.median };
}

/**
 * Runs the suites. opts: { suites, sizes?, quick, runs, warmup, batch, heads, dim, embed, runtime, wgsl: {fma, copy},
 * probes (bool), onProgress({done,total,label}), log(msg) }. Returns the runtime's part of a report.
 */
export async function runBench(k, opts) {
  const o = { runs: 20, warmup: 3, batch: 1, heads: 2, dim: 64, embed: 768, probes: true, onProgress() {}, log() {}, ...opts };
  const adapter = await k.init();
  const useGpu = typeof k.startGpuTimer === 'function' && typeof k.hasTimestampQuery === 'function' && k.hasTimestampQuery();
  const { cases, skipped } = planCases(k, { ...o, adapter });
  for (const s of skipped) o.log(`skip ${s.suite}: ${s.reason}`);
  const total = cases.length + (o.probes ? 2 : 0);
  let done = 0;
  const tick = (label) => o.onProgress({ done, total, label });

  let peaks = null;
  let overhead = null;
  if (o.probes) {
    tick('roofline probes');
    if (typeof k.gpuDevice === 'function' && o.wgsl) {
      peaks = await probePeaks(k.gpuDevice(), o.wgsl, { isSoftware: adapter.isSoftware, log: o.log });
    } else o.log('no k.gpuDevice() or WGSL: roofline probes skipped');
    done++;
    tick('dispatch overhead');
    overhead = await measureOverhead(k, o.quick ? 5 : 10);
    o.log(`dispatch overhead: ${overhead.perDispatchUs.toFixed(1)} us/dispatch`);
    done++;
  }

  const results = [];
  for (const c of cases) {
    tick(c.label);
    const inst = c.setup();
    const row = { suite: c.suite, impl: c.impl, runtime: o.runtime, shape: c.shape, dtype: 'f32', params: c.params, flops: c.flops, bytes: c.bytes };
    try {
      const chk = await inst.check();
      row.check = chk;
      row.maxErr = chk.maxErr;
      if (!chk.passed) {
        row.status = 'failed';
        o.log(`FAILED check: ${c.label}: maxErr ${chk.maxErr} > tol ${chk.tol}${chk.maxErrVsReference !== undefined ? ` (vs reference ${chk.maxErrVsReference})` : ''}: not timed`);
      } else {
        for (let i = 0; i < o.warmup; i++) {
          const out = k.tidy(inst.run);
          await k.sync();
          await inst.after?.();
          out.dispose();
        }
        const wall = [];
        for (let i = 0; i < o.runs; i++) {
          const t0 = now();
          const out = k.tidy(inst.run);
          await k.sync();
          await inst.after?.();
          wall.push(now() - t0);
          out.dispose();
          o.onProgress({ done: done + (i + 1) / (o.runs * (useGpu ? 2 : 1)), total, label: c.label });
        }
        const ws = summarize(wall);
        Object.assign(row, { status: 'ok', runs: o.runs, warmup: o.warmup, medianMs: ws.median, q1: ws.q1, q3: ws.q3, minMs: ws.min, maxMs: ws.max, meanMs: ws.mean });
        if (useGpu) {
          const g = [];
          let dispatches = 0;
          for (let i = 0; i < o.runs; i++) {
            const timer = k.startGpuTimer();
            const out = k.tidy(inst.run);
            const t = await timer.stop();
            await inst.after?.();
            out.dispose();
            g.push(t.kernelNs / 1e6);
            dispatches = t.dispatches + t.untimed;
            if (c.suite === 'trainstep' && i === o.runs - 1) {
              // Where the step's GPU time goes, kernel by kernel: what a fusion experiment would target next.
              row.profile = Object.entries(t.byLabel)
                .map(([label, { count, ns, bytes }]) => ({ kernel: label, dispatches: count, gpuMs: ns / 1e6, share: t.kernelNs ? ns / t.kernelNs : 0, boundBytes: bytes ?? 0 }))
                .sort((a, b) => b.gpuMs - a.gpuMs);
            }
            o.onProgress({ done: done + 0.5 + (i + 1) / (o.runs * 2), total, label: c.label });
          }
          const gs = summarize(g);
          Object.assign(row, { gpuMs: gs.median, gpuQ1: gs.q1, gpuQ3: gs.q3, gpuMinMs: gs.min, gpuMaxMs: gs.max, dispatches });
        }
        // Kernel time above the wall time means the adapter's timestamps do not measure kernels (seen on
        // SwiftShader in Chromium); rates then use wall time and the case is flagged.
        if (row.gpuMs !== undefined && row.gpuMs > row.medianMs * 1.05) row.gpuTimingSuspect = true;
        const useGpuTime = row.gpuMs !== undefined && !row.gpuTimingSuspect;
        const basisMs = useGpuTime ? row.gpuMs : row.medianMs;
        row.rateBasis = useGpuTime ? 'gpu' : 'wall';
        row.gflops = c.flops / (basisMs * 1e6);
        row.gbps = c.bytes / (basisMs * 1e6);
        if (peaks?.fma) row.pctPeakFlops = (100 * row.gflops) / peaks.fma.gflops;
        if (peaks?.copy) row.pctPeakBw = (100 * row.gbps) / peaks.copy.gbps;
      }
    } catch (e) {
      row.status = 'error';
      row.error = String(e?.message ?? e);
      o.log(`ERROR ${c.label}: ${row.error}`);
    } finally {
      inst.dispose();
    }
    results.push(row);
    done++;
    tick(c.label);
  }
  return { runtime: o.runtime, adapter, timing: { gpu: useGpu ? 'timestamp-query (sum of kernel times)' : null, wall: 'performance.now() to queue.onSubmittedWorkDone (kiln sync)' }, peaks, overhead, skipped, cases: results };
}
