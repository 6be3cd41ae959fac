// The flex-ratio page: runs bench/lib/flex_ratio.mjs against kiln's browser bundle. Driven by bench/flex_ratio.mjs
// --runtime browser, which calls window.flexRatio(opts) and exposes window.benchLog and window.benchLoad (the host's
// load average, read in Node).
import * as kiln from '/dist/kiln.browser.js';
import { runFlexRatio } from '/bench/lib/flex_ratio.mjs';

window.flexRatio = async (opts) => {
  const status = document.getElementById('status');
  const report = await runFlexRatio(kiln, opts, {
    log: (m) => { status.textContent = m; window.benchLog?.(m); },
    load: () => window.benchLoad?.() ?? '',
  });
  // JSON round trip: plain values before crossing to Node.
  return JSON.parse(JSON.stringify(report));
};
document.getElementById('status').textContent = 'ready';
