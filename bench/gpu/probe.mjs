// Self-contained Dawn probe (no kiln code): adapter info, features, limits, and a
// correctness-checked 1024x1024 f32 matmul timed with timestamp queries.
//   node bench/gpu/probe.mjs [N=1024] [iters=20]
// On the GPU machine: bash bench/gpu/remote.sh bench/gpu/probe.mjs
import { create, globals } from 'webgpu';

Object.assign(globalThis, globals);
const N = Number(process.argv[2] ?? 1024);
const ITERS = Number(process.argv[3] ?? 20);
const t0 = performance.now();
const log = (...a) => console.log(...a);

const gpu = create(['disable-dawn-features=timestamp_quantization']);
const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
if (!adapter) {
  log('PROBE FAIL: requestAdapter returned null (no Vulkan ICD / driver found?)');
  process.exit(1);
}
log(`adapter acquired in ${(performance.now() - t0).toFixed(0)} ms`);

// adapter.info fields are prototype getters: JSON.stringify(adapter.info) prints {}.
const info = adapter.info;
const infoOut = {};
for (const k of ['vendor', 'architecture', 'device', 'description', 'subgroupMinSize', 'subgroupMaxSize', 'isFallbackAdapter']) {
  infoOut[k] = info?.[k];
}
log('adapter.info:', JSON.stringify(infoOut));
if (info?.isFallbackAdapter || info?.architecture === 'software' || /llvmpipe|swiftshader/i.test(info?.description ?? '')) {
  log('WARNING: this is a CPU/software fallback adapter, not the GPU (Vulkan ICD not found?)');
}
if ('isFallbackAdapter' in adapter) log('adapter.isFallbackAdapter:', adapter.isFallbackAdapter);
const features = [...adapter.features].sort();
log(`features (${features.length}):`, features.join(', '));

const L = adapter.limits;
const key = ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ', 'maxComputeWorkgroupsPerDimension', 'maxStorageBuffersPerShaderStage',
  'subgroupMinSize', 'subgroupMaxSize'];
log('key limits:');
for (const k of key) log(`  ${k} = ${L[k]}`);
const allNames = new Set();
for (let o = L; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
  for (const n of Object.getOwnPropertyNames(o)) if (n !== 'constructor') allNames.add(n);
}
const all = {};
for (const n of [...allNames].sort()) if (typeof L[n] === 'number') all[n] = L[n];
log('all limits:', JSON.stringify(all));

const hasTS = adapter.features.has('timestamp-query');
const device = await adapter.requestDevice({
  requiredFeatures: hasTS ? ['timestamp-query'] : [],
});
device.addEventListener?.('uncapturederror', (e) => log('UNCAPTURED GPU ERROR:', e.error?.message));
device.lost.then((l) => { if (l.reason !== 'destroyed') log('DEVICE LOST:', l.reason, l.message); });
log(`device ok; timestamp-query ${hasTS ? 'enabled' : 'NOT AVAILABLE'}`);

// ---- matmul C[M,N] = A[M,K] * B[K,N], row-major f32. 64x64 tile, 16x16 threads, 4x4 per thread.
const wgsl = /* wgsl */ `
struct Dims { M: u32, N: u32, K: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> d: Dims;
const TM = 64u;
const TN = 64u;
const TK = 16u;
var<workgroup> As: array<f32, 1024>; // [TK][TM]
var<workgroup> Bs: array<f32, 1024>; // [TK][TN]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u,
        @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * TM;
  let col0 = wg.x * TN;
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < d.K; k0 += TK) {
    for (var i = 0u; i < 4u; i++) {
      let e = li + i * 256u;
      let ar = e / TK; let ac = e % TK;
      let gr = row0 + ar; let gk = k0 + ac;
      As[ac * TM + ar] = select(0.0, A[min(gr * d.K + gk, arrayLength(&A) - 1u)], gr < d.M && gk < d.K);
      let br = e / TN; let bc = e % TN;
      let gk2 = k0 + br; let gc = col0 + bc;
      Bs[br * TN + bc] = select(0.0, B[min(gk2 * d.N + gc, arrayLength(&B) - 1u)], gk2 < d.K && gc < d.N);
    }
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      var a: array<f32, 4>;
      var b: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        a[i] = As[k * TM + lid.y + 16u * i];
        b[i] = Bs[k * TN + lid.x + 16u * i];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
          acc[i * 4u + j] = fma(a[i], b[j], acc[i * 4u + j]);
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    for (var j = 0u; j < 4u; j++) {
      let r = row0 + lid.y + 16u * i;
      let c = col0 + lid.x + 16u * j;
      if (r < d.M && c < d.N) { C[r * d.N + c] = acc[i * 4u + j]; }
    }
  }
}`;

const M = N, K = N, NN = N;
let seed = 12345;
const rnd = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
const a = new Float32Array(M * K).map(rnd);
const b = new Float32Array(K * NN).map(rnd);

const S = GPUBufferUsage.STORAGE;
const mk = (data, usage) => {
  const buf = device.createBuffer({ size: data.byteLength, usage: usage | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(buf, 0, data);
  return buf;
};
const bufA = mk(a, S), bufB = mk(b, S);
const bufC = device.createBuffer({ size: M * NN * 4, usage: S | GPUBufferUsage.COPY_SRC });
const bufD = mk(new Uint32Array([M, NN, K, 0]), GPUBufferUsage.UNIFORM);
const readC = device.createBuffer({ size: M * NN * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });

device.pushErrorScope('validation');
const module = device.createShaderModule({ code: wgsl });
const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
const bind = device.createBindGroup({
  layout: pipeline.getBindGroupLayout(0),
  entries: [bufA, bufB, bufC, bufD].map((buffer, binding) => ({ binding, resource: { buffer } })),
});
const verr = await device.popErrorScope();
if (verr) { log('PROBE FAIL: validation error:', verr.message); process.exit(1); }

const gx = Math.ceil(NN / 64), gy = Math.ceil(M / 64);
const TOTAL = ITERS + 1; // pass 0 = warm-up (timed too, reported separately)
let qs, qResolve, qRead;
if (hasTS) {
  qs = device.createQuerySet({ type: 'timestamp', count: 2 * TOTAL });
  qResolve = device.createBuffer({ size: 16 * TOTAL, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  qRead = device.createBuffer({ size: 16 * TOTAL, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
}
const w0 = performance.now();
const enc = device.createCommandEncoder();
for (let it = 0; it < TOTAL; it++) {
  const pass = enc.beginComputePass(hasTS ? {
    timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 2 * it, endOfPassWriteIndex: 2 * it + 1 },
  } : {});
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bind);
  pass.dispatchWorkgroups(gx, gy);
  pass.end();
}
enc.copyBufferToBuffer(bufC, 0, readC, 0, M * NN * 4);
if (hasTS) {
  enc.resolveQuerySet(qs, 0, 2 * TOTAL, qResolve, 0);
  enc.copyBufferToBuffer(qResolve, 0, qRead, 0, 16 * TOTAL);
}
device.queue.submit([enc.finish()]);
await device.queue.onSubmittedWorkDone();
const wallMs = performance.now() - w0;

await readC.mapAsync(GPUMapMode.READ);
const c = new Float32Array(readC.getMappedRange().slice(0));
readC.unmap();

// correctness: 400 random entries vs float64 dot
let bad = 0, maxRel = 0;
const CHECKS = 400;
for (let t = 0; t < CHECKS; t++) {
  const i = Math.floor(((rnd() + 1) / 2) * M), j = Math.floor(((rnd() + 1) / 2) * NN);
  let ref = 0, mag = 0;
  for (let k = 0; k < K; k++) { const p = a[i * K + k] * b[k * NN + j]; ref += p; mag += Math.abs(p); }
  const err = Math.abs(c[i * NN + j] - ref);
  const rel = err / mag;
  maxRel = Math.max(maxRel, rel);
  if (!(err <= 1e-4 * mag + 1e-6)) { if (bad++ < 5) log(`  mismatch C[${i},${j}] gpu=${c[i * NN + j]} ref=${ref}`); }
}
log(`matmul ${M}x${K}x${NN} f32: ${bad === 0 ? 'CORRECT' : 'WRONG'} (${CHECKS} entries vs f64, ${bad} bad, max err/sum|a*b| = ${maxRel.toExponential(2)})`);

const flop = 2 * M * NN * K;
log(`wall: ${TOTAL} dispatches in ${wallMs.toFixed(2)} ms (incl. submit+first-use overhead) -> ${(flop * TOTAL / wallMs / 1e6).toFixed(1)} GFLOP/s`);
if (hasTS) {
  await qRead.mapAsync(GPUMapMode.READ);
  const ts = new BigUint64Array(qRead.getMappedRange().slice(0));
  qRead.unmap();
  const ms = [];
  for (let it = 0; it < TOTAL; it++) ms.push(Number(ts[2 * it + 1] - ts[2 * it]) / 1e6);
  const timed = ms.slice(1).sort((x, y) => x - y);
  const med = timed[timed.length >> 1], min = timed[0];
  log(`timestamp raw (first 4 ns): ${[...ts.slice(0, 4)].join(' ')}`);
  log(`timestamp: warm-up pass ${ms[0].toFixed(4)} ms; ${ITERS} passes min ${min.toFixed(4)} ms, median ${med.toFixed(4)} ms, max ${timed[timed.length - 1].toFixed(4)} ms`);
  log(`timestamp GFLOP/s: median ${(flop / med / 1e6).toFixed(1)}, best ${(flop / min / 1e6).toFixed(1)}`);
  if (!(med > 0)) log('WARNING: timestamps are zero/non-increasing: timestamp queries do not work here');
}
log(`PROBE ${bad === 0 ? 'OK' : 'FAIL'} in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
device.destroy();
process.exit(bad === 0 ? 0 : 1);
