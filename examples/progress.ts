// A one-line progress bar: redrawn in place on a terminal; otherwise (logs, tests) a line every 10% or 20 s.
export class Progress {
  private readonly t0 = performance.now();
  private lastPrinted = -1;
  private lastTime = 0;
  constructor(private readonly label: string, private readonly total: number) {}

  update(done: number, extra = ''): void {
    const width = 24;
    const filled = Math.round((done / this.total) * width);
    const secs = (performance.now() - this.t0) / 1000;
    const line = `${this.label} [${'='.repeat(filled)}${' '.repeat(width - filled)}] ${done}/${this.total} ${extra} ${secs.toFixed(0)}s`;
    if (process.stdout.isTTY) {
      process.stdout.write(`\r${line}`);
      if (done === this.total) process.stdout.write('\n');
      return;
    }
    const decile = Math.floor((done / this.total) * 10);
    if (decile !== this.lastPrinted || secs - this.lastTime >= 20) {
      this.lastPrinted = decile;
      this.lastTime = secs;
      console.log(line);
    }
  }
}

/**
 * Linear warm-up then cosine decay to `minFactor`, where "how far along" is the larger of the
 * step fraction and the elapsed fraction of a wall-clock budget: a run cut short by the budget
 * still ends with a decayed learning rate.
 */
export function budgetedWarmupCosine(totalSteps: number, warmupSteps: number, budgetSeconds: number, minFactor: number): (step: number) => number {
  const t0 = performance.now();
  return (step: number) => {
    if (step < warmupSteps) return (step + 1) / (warmupSteps + 1);
    const byTime = (performance.now() - t0) / 1000 / budgetSeconds;
    const bySteps = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
    const t = Math.min(1, Math.max(byTime, bySteps));
    return minFactor + (1 - minFactor) * 0.5 * (1 + Math.cos(Math.PI * t));
  };
}
