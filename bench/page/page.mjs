// The bench page: runs bench/lib/runner.mjs against kiln's browser bundle. Driven by bench/lib/browser.mjs,
// which calls window.kilnBench(opts) and exposes window.benchProgress / window.benchLog.
import * as kiln from '/dist/kiln.browser.js';
import * as experimental from '/dist/experimental.browser.js';
import { runBench } from '/bench/lib/runner.mjs';

window.kilnBench = async (opts) => {
  const text = (p) => fetch(p).then((r) => r.text());
  const wgsl = { fma: await text('/bench/kernels/fma.wgsl'), copy: await text('/bench/kernels/copy.wgsl') };
  const status = document.getElementById('status');
  // kiln's API and kiln/experimental (flags, GPU timers, the device), which share one device.
  const part = await runBench({ ...kiln, ...experimental }, {
    ...opts, runtime: 'browser', wgsl,
    onProgress: (p) => { status.textContent = `${p.done.toFixed(1)}/${p.total} ${p.label}`; window.benchProgress?.(p); },
    log: (m) => window.benchLog?.(m),
  });
  // JSON round trip: Infinity and typed values become plain JSON before crossing to Node.
  return JSON.parse(JSON.stringify(part, (key, v) => (v === Infinity ? 'Infinity' : v)));
};
document.getElementById('status').textContent = 'ready';
