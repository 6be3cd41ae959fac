// Validates a report against bench/SCHEMA.md (schemaVersion 1). Returns a list of problems (empty = valid).
export const SCHEMA_VERSION = 1;
const RUNTIMES = ['node', 'browser'];
const STATUSES = ['ok', 'failed', 'error'];

export function validateReport(r) {
  const errs = [];
  const need = (cond, msg) => { if (!cond) errs.push(msg); };
  const num = (x) => typeof x === 'number' && Number.isFinite(x);
  need(r && typeof r === 'object', 'report is not an object');
  if (!r || typeof r !== 'object') return errs;
  need(r.schemaVersion === SCHEMA_VERSION, `schemaVersion is ${r.schemaVersion}, expected ${SCHEMA_VERSION}`);
  need(typeof r.date === 'string' && !Number.isNaN(Date.parse(r.date)), 'date is not an ISO date string');
  need(r.kiln && typeof r.kiln.version === 'string', 'kiln.version missing');
  need(r.kiln && (r.kiln.commit === null || /^[0-9a-f]{7,40}$/.test(r.kiln.commit ?? '')), 'kiln.commit is neither a git hash nor null');
  need(r.options && Array.isArray(r.options.suites) && num(r.options.runs) && r.options.runs >= 1, 'options.suites/runs missing');
  need(Array.isArray(r.runtimes) && r.runtimes.length > 0, 'runtimes is not a non-empty array');
  for (const [i, rt] of (r.runtimes ?? []).entries()) {
    need(RUNTIMES.includes(rt.runtime), `runtimes[${i}].runtime is ${rt.runtime}`);
    if (rt.error) continue;
    need(rt.adapter && typeof rt.adapter.vendor === 'string' && typeof rt.adapter.isSoftware === 'boolean', `runtimes[${i}].adapter incomplete`);
    if (rt.peaks) {
      need(rt.peaks.fma === null || num(rt.peaks.fma?.gflops), `runtimes[${i}].peaks.fma.gflops not a number`);
      need(rt.peaks.copy === null || num(rt.peaks.copy?.gbps), `runtimes[${i}].peaks.copy.gbps not a number`);
    }
    if (rt.overhead) need(num(rt.overhead.perDispatchUs), `runtimes[${i}].overhead.perDispatchUs not a number`);
  }
  need(Array.isArray(r.cases), 'cases is not an array');
  for (const [i, c] of (r.cases ?? []).entries()) {
    const at = `cases[${i}]`;
    need(typeof c.suite === 'string' && typeof c.impl === 'string', `${at}: suite/impl`);
    need(RUNTIMES.includes(c.runtime), `${at}: runtime ${c.runtime}`);
    need(Array.isArray(c.shape) && c.shape.every((d) => Number.isInteger(d) && d > 0), `${at}: shape`);
    need(['f32', 'f16'].includes(c.dtype), `${at}: dtype ${c.dtype}`);
    need(STATUSES.includes(c.status), `${at}: status ${c.status}`);
    need(num(c.flops) && num(c.bytes), `${at}: flops/bytes`);
    // Peer cases (tfjs-webgpu, onnxruntime-webgpu, onnxruntime-cpu) name their engine.
    if (c.peer !== undefined) need(c.peer && typeof c.peer.engine === 'string', `${at}: peer.engine`);
    if (c.status === 'error') { need(typeof c.error === 'string', `${at}: error text`); continue; }
    need(c.check && typeof c.check.against === 'string' && typeof c.check.passed === 'boolean', `${at}: check`);
    need(num(c.maxErr) || c.maxErr === Infinity, `${at}: maxErr`);
    if (c.status !== 'ok') continue;
    need(c.check.passed === true, `${at}: status ok but check not passed`);
    for (const f of ['medianMs', 'q1', 'q3', 'minMs', 'maxMs', 'gflops', 'gbps']) need(num(c[f]) && c[f] >= 0, `${at}: ${f} = ${c[f]}`);
    need(c.minMs <= c.q1 && c.q1 <= c.medianMs && c.medianMs <= c.q3 && c.q3 <= c.maxMs, `${at}: min <= q1 <= median <= q3 <= max violated`);
    need(Number.isInteger(c.runs) && c.runs >= 20, `${at}: runs ${c.runs} < 20`);
    if (c.gpuMs !== undefined) need(num(c.gpuMs) && c.gpuMs >= 0, `${at}: gpuMs`);
    for (const f of ['pctPeakFlops', 'pctPeakBw']) if (c[f] !== undefined) need(num(c[f]), `${at}: ${f}`);
    need(['gpu', 'wall'].includes(c.rateBasis), `${at}: rateBasis`);
  }
  return errs;
}
