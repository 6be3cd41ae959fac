// What every peer engine shares: the cases it runs, their inputs (drawn with kiln's seeded randn, the same
// numbers kiln's own cases use), their checks (float64 rows, and attention against kiln's impl:'reference'),
// and the timing loop. An engine supplies only how to build and run each case.
import { convCheck, convShapes, defaultSizes } from './runner.mjs';
import { summarize } from './stats.mjs';
import { attentionRowsF64, matmulF64, maxAbsErr, sampleIndices, softmaxRowsF64 } from './reference.mjs';

const now = () => performance.now();

/** Peer cases for the chosen suites: attention (full and causal), matmul, softmax, conv. */
export function planPeerCases(opts, log, engine) {
  const plans = [];
  for (const suite of opts.suites) {
    const sizes = opts.sizes ?? defaultSizes(suite, opts.quick);
    if (suite === 'attention') for (const N of sizes) for (const isCausal of [false, true]) plans.push({ suite, N, isCausal });
    else if (suite === 'matmul' || suite === 'softmax' || suite === 'conv') for (const N of sizes) plans.push({ suite, N });
    else log(`peers: no ${engine} case for ${suite}`);
  }
  return plans;
}

export function peerLabel(name, p) {
  return `${name} ${p.suite}${p.isCausal ? ' causal' : ''} N=${p.N}`;
}

/**
 * Inputs, report fields and the check of one case. Returns { fields, inputs, check(got) } where inputs is
 * { kind: 'attention', q, k, v, shape, D, isCausal } | { kind: 'matmul', a, b, n } | { kind: 'softmax', x, shape }
 * | { kind: 'conv', x, w, xShape, wShape, outShape } (NCHW / OIHW; check takes the output in NCHW).
 */
export async function preparePeerCase(k, p, opts) {
  if (p.suite === 'conv') {
    const s = p.N, sh = convShapes(s);
    const kx = k.randn(sh.x, { seed: 41 }), kw = k.randn(sh.w, { seed: 42 });
    const [xa, wa] = await Promise.all([kx.toArray(), kw.toArray()]);
    kx.dispose(); kw.dispose();
    return {
      fields: { shape: sh.x, params: { outChannels: 64, kernel: 3, padding: 1 }, flops: 2 * 8 * 64 * s * s * 32 * 9, bytes: 4 * (8 * 32 * s * s + 64 * 32 * 9 + 8 * 64 * s * s) },
      inputs: { kind: 'conv', x: xa, w: wa, xShape: sh.x, wShape: sh.w, outShape: sh.out },
      check: (got) => convCheck(xa, wa, s, got),
    };
  }
  if (p.suite === 'attention') {
    const { batch: B, heads: H, dim: D } = opts;
    const N = p.N;
    const shape = [B, H, N, D];
    const pairs = B * H * (p.isCausal ? (N * (N + 1)) / 2 : N * N);
    const kq = k.randn(shape, { seed: 11 }), kk = k.randn(shape, { seed: 12 }), kv = k.randn(shape, { seed: 13 });
    const [qa, ka, va] = await Promise.all([kq.toArray(), kk.toArray(), kv.toArray()]);
    const refFits = B * H * N * N * 4 <= (k.deviceInfo?.().limits?.maxStorageBufferBindingSize ?? 2 ** 27);
    const kref = refFits ? await k.tidy(() => k.F.scaledDotProductAttention(kq, kk, kv, { isCausal: p.isCausal, impl: 'reference' })).toArray() : null;
    kq.dispose(); kk.dispose(); kv.dispose();
    return {
      fields: { shape, params: { isCausal: p.isCausal }, flops: 4 * pairs * D, bytes: 4 * B * H * N * D * 4 },
      inputs: { kind: 'attention', q: qa, k: ka, v: va, shape, D, isCausal: p.isCausal },
      check(got) {
        const rows = sampleIndices(B * H * N, 64, N + 7);
        const want = attentionRowsF64(qa, ka, va, B * H, N, D, { isCausal: p.isCausal, rows });
        const at = rows.flatMap((r) => Array.from({ length: D }, (_, d) => r * D + d));
        const { err, scale } = maxAbsErr(got, want, at);
        const out = { against: 'cpu-f64-sampled', maxErr: err, tol: 1e-3 * Math.max(1, scale) };
        if (kref) out.maxErrVsReference = maxAbsErr(got, kref).err;
        out.passed = out.maxErr <= out.tol && (out.maxErrVsReference ?? 0) <= out.tol;
        return out;
      },
    };
  }
  if (p.suite === 'matmul') {
    const n = p.N;
    const ka = k.randn([n, n], { seed: 21 }), kb = k.randn([n, n], { seed: 22 });
    const [aa, ba] = await Promise.all([ka.toArray(), kb.toArray()]);
    ka.dispose(); kb.dispose();
    return {
      fields: { shape: [n, n, n], params: {}, flops: 2 * n ** 3, bytes: 3 * n * n * 4 },
      inputs: { kind: 'matmul', a: aa, b: ba, n },
      check(got) {
        const at = sampleIndices(n * n, 512, n);
        const { err, scale } = maxAbsErr(got, matmulF64(aa, ba, n, n, n, at), at);
        const tol = (1e-4 * Math.max(1, scale) * Math.sqrt(n)) / 4;
        return { against: 'cpu-f64-sampled', maxErr: err, tol, passed: err <= tol };
      },
    };
  }
  const n = p.N, H = opts.heads;
  const kx = k.randn([H, n, n], { seed: 31 });
  const xa = await kx.toArray();
  kx.dispose();
  return {
    fields: { shape: [H, n, n], params: { dim: -1 }, flops: 5 * H * n * n, bytes: 2 * H * n * n * 4 },
    inputs: { kind: 'softmax', x: xa, shape: [H, n, n] },
    check(got) {
      const { err } = maxAbsErr(got, softmaxRowsF64(xa, H * n, n));
      return { against: 'cpu-f64', maxErr: err, tol: 1e-5, passed: err <= 1e-5 };
    },
  };
}

/**
 * Checks `got` (the case's first output), then times `once()` (one call, awaited to completion) over warm-up and
 * timed runs, filling the report row. A case that fails its check is marked and not timed.
 */
export async function checkAndTime(row, chk, once, { opts, log, label, onTick }) {
  row.check = chk;
  row.maxErr = chk.maxErr;
  if (!chk.passed) {
    row.status = 'failed';
    log(`FAILED check: ${label}: maxErr ${chk.maxErr} (vs kiln reference ${chk.maxErrVsReference}): not timed`);
    return;
  }
  for (let i = 0; i < opts.warmup; i++) await once();
  const wall = [];
  for (let i = 0; i < opts.runs; i++) {
    const t0 = now();
    await once();
    wall.push(now() - t0);
    onTick?.((i + 1) / opts.runs);
  }
  const ws = summarize(wall);
  Object.assign(row, { status: 'ok', runs: opts.runs, warmup: opts.warmup, medianMs: ws.median, q1: ws.q1, q3: ws.q3, minMs: ws.min, maxMs: ws.max, meanMs: ws.mean, rateBasis: 'wall' });
  row.gflops = row.flops / (ws.median * 1e6);
  row.gbps = row.bytes / (ws.median * 1e6);
}

/** Marks a row that threw. */
export function errorRow(row, e, p, log, label) {
  row.status = 'error';
  row.error = String(e?.message ?? e);
  row.flops ??= 0; row.bytes ??= 0; row.shape ??= [p.N];
  log(`ERROR ${label}: ${row.error}`);
}
