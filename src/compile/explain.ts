// step.explain(): a compiled step's plan as text (what runs, in order, and what memory the plan holds).
import type { Plan } from './plan.js';

const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;

export function explainPlan(key: string, plan: Plan, opts: { wgsl: boolean }): string {
  const s = plan.summary;
  const lines: string[] = [];
  lines.push(`compiled step [${key}]: replays ${s.dispatches} dispatches, ${s.copies + s.uploads} copies, ${s.clears} clears per call`);
  lines.push(`  memory: ${s.plannedBuffers} planned buffers, ${kib(s.plannedBytes)} (the trace's temporaries took ${kib(s.tempBytes)}); ${s.boundBuffers} bound buffers checked per call; uniforms ${kib(s.uniformBytes)}`);
  lines.push(`  host work per call: ${s.dynamicFields} dynamic params or uploads (seeds, optimizer step, index checks)`);
  lines.push(...plan.describe(opts.wgsl));
  return lines.join('\n');
}
