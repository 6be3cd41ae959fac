// Shared helpers for the examples: flags, output folder, a progress line, and the final report line.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { init, type DeviceInfo } from 'kiln';

export interface ExampleArgs {
  /** A few steps only: CI checks that the loss falls. */
  smoke: boolean;
  /** Train longer than the default. */
  full: boolean;
  argv: string[];
}

/** The value after `--name` in argv, or the fallback. */
export function flag(args: ExampleArgs, name: string, fallback?: string): string | undefined {
  const i = args.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.argv.length ? args.argv[i + 1] : fallback;
}

/** examples/<name>/out, created on demand (git-ignored): checkpoints, heatmaps. */
export function outDir(name: string): string {
  const root = process.env.KILN_EXAMPLES_OUT ?? join(process.cwd(), 'examples', name, 'out');
  mkdirSync(root, { recursive: true });
  return root;
}

export async function setup(name: string): Promise<DeviceInfo> {
  const info = await init();
  console.log(`${name}: adapter ${info.description || info.vendor}${info.isSoftware ? ' (software)' : ''}`);
  return info;
}

/** The machine-readable last line: `<name>: <metric> <value>`. */
export function report(name: string, metric: string, value: number, digits = 3): void {
  console.log(`${name}: ${metric} ${value.toFixed(digits)}`);
}

/** For --smoke runs: the first and last training losses, printed so tests can assert the loss falls. */
export function reportLoss(name: string, first: number, last: number): void {
  console.log(`${name}: loss ${first.toFixed(4)} -> ${last.toFixed(4)}`);
}

/** The index of the largest entry of each row of a row-major [rows, classes] array of logits. */
export function argmaxRows(logits: ArrayLike<number>, classes: number): Int32Array {
  const rows = Math.floor(logits.length / classes);
  const out = new Int32Array(rows);
  for (let i = 0; i < rows; i++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (logits[i * classes + c]! > logits[i * classes + best]!) best = c;
    out[i] = best;
  }
  return out;
}

/** A small deterministic generator of uniform numbers in [0, 1) (mulberry32), for building datasets. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
