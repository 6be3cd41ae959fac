// Roofline probes through raw WebGPU on kiln's own device: peak FMA rate and copy bandwidth.
// Browser-safe (no node imports): the WGSL text is passed in by the runner.

async function timeDispatch(device, pipeline, bindGroup, groups, useTimestamps) {
  const now = () => performance.now();
  if (useTimestamps) {
    const qs = device.createQuerySet({ type: 'timestamp', count: 2 });
    const resolve = device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const read = device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass({ timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(...groups);
    pass.end();
    enc.resolveQuerySet(qs, 0, 2, resolve, 0);
    enc.copyBufferToBuffer(resolve, 0, read, 0, 16);
    device.queue.submit([enc.finish()]);
    await read.mapAsync(GPUMapMode.READ);
    const t = new BigUint64Array(read.getMappedRange().slice(0));
    read.unmap();
    read.destroy();
    resolve.destroy();
    qs.destroy();
    const ms = Number(t[1] - t[0]) / 1e6;
    if (ms > 0) return ms;
  }
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(...groups);
  pass.end();
  const t0 = now();
  device.queue.submit([enc.finish()]);
  await device.queue.onSubmittedWorkDone();
  return now() - t0;
}

function split(groups, maxPerDim = 65535) {
  if (groups <= maxPerDim) return [groups, 1, 1];
  return [maxPerDim, Math.ceil(groups / maxPerDim), 1];
}

/**
 * Measures peak FMA throughput (GFLOP/s) and copy bandwidth (GB/s). `targetMs` sizes each probe so that one
 * dispatch takes about that long; the best of `reps` dispatches counts (peaks are best cases).
 */
export async function probePeaks(device, wgsl, { targetMs = 60, reps = 5, isSoftware = false, log = () => {} } = {}) {
  const useTs = device.features.has('timestamp-query');
  const result = { timing: useTs ? 'timestamp-query' : 'wall-clock', fma: null, copy: null };
  const errors = [];
  device.pushErrorScope('validation');

  // ---- FMA ----
  {
    const module = device.createShaderModule({ code: wgsl.fma, label: 'bench fma' });
    const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
    const workgroups = isSoftware ? 32 : 4096;
    const invocations = workgroups * 256;
    const out = device.createBuffer({ size: invocations * 4, usage: GPUBufferUsage.STORAGE });
    const params = device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    const bg = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [
      { binding: 0, resource: { buffer: params } }, { binding: 1, resource: { buffer: out } }] });
    let iters = 256;
    let ms = 0;
    device.queue.writeBuffer(params, 0, new Uint32Array([iters, 0]));
    await timeDispatch(device, pipeline, bg, split(workgroups), useTs); // warm-up (pipeline compile, first use)
    for (let k = 0; k < 12; k++) {
      device.queue.writeBuffer(params, 0, new Uint32Array([iters, 0]));
      device.queue.writeBuffer(params, 4, new Float32Array([0.5]));
      ms = await timeDispatch(device, pipeline, bg, split(workgroups), useTs);
      if (ms >= targetMs / 2 || iters >= 1 << 20) break;
      iters = Math.min(1 << 20, iters * Math.max(2, Math.min(16, Math.ceil(targetMs / Math.max(ms, 1e-3)))));
    }
    let best = Infinity;
    for (let r = 0; r < reps; r++) best = Math.min(best, await timeDispatch(device, pipeline, bg, split(workgroups), useTs));
    const flops = invocations * iters * 64;
    result.fma = { gflops: flops / (best * 1e6), bestMs: best, flops, iters, invocations };
    log(`fma: ${result.fma.gflops.toFixed(2)} GFLOP/s (${iters} iters, ${best.toFixed(2)} ms)`);
    out.destroy();
    params.destroy();
  }

  // ---- copy ----
  {
    const module = device.createShaderModule({ code: wgsl.copy, label: 'bench copy' });
    const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
    const maxBind = device.limits.maxStorageBufferBindingSize;
    const bytes = Math.min(maxBind, isSoftware ? 32 << 20 : 512 << 20) & ~255;
    const n = bytes / 16;
    const src = device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE });
    const dst = device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE });
    const params = device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    const groups = Math.min(Math.ceil(n / 256), isSoftware ? 256 : 65535);
    device.queue.writeBuffer(params, 0, new Uint32Array([n, groups * 256]));
    const bg = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [
      { binding: 0, resource: { buffer: params } }, { binding: 1, resource: { buffer: src } }, { binding: 2, resource: { buffer: dst } }] });
    await timeDispatch(device, pipeline, bg, [groups, 1, 1], useTs); // warm-up
    let best = Infinity;
    for (let r = 0; r < reps; r++) best = Math.min(best, await timeDispatch(device, pipeline, bg, [groups, 1, 1], useTs));
    result.copy = { gbps: (2 * bytes) / (best * 1e6), bestMs: best, bytes };
    log(`copy: ${result.copy.gbps.toFixed(2)} GB/s (${(bytes / 2 ** 20).toFixed(0)} MiB, ${best.toFixed(2)} ms)`);
    src.destroy();
    dst.destroy();
    params.destroy();
  }
  const err = await device.popErrorScope();
  if (err) errors.push(err.message);
  if (errors.length) result.errors = errors;
  return result;
}
