// Batching: a seeded shuffling index iterator and a small host-side dataset.
import { ShapeError, ValueError, checkOptions } from '../errors.js';
import type { Tensor } from '../ops/tensor.js';
import { tensor } from '../ops/creation.js';
import { philox4x32 } from '../tensor/random.js';

export interface BatchOptions {
  seed?: number;
  shuffle?: boolean;
  dropLast?: boolean;
  /** Which pass over the data (mixed into the shuffle, so each epoch gets its own order from one seed). */
  epoch?: number;
}

/** A permutation of 0..n-1 (Fisher-Yates driven by Philox), the same for the same (seed, epoch). */
export function permutation(n: number, seed = 0, epoch = 0): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  const w = new Uint32Array(4);
  for (let i = n - 1; i > 0; i--) {
    philox4x32(i, epoch >>> 0, 0, 0xba7c, seed >>> 0, 0x5eed, w);
    // 53-bit uniform from two words keeps the modulo bias negligible.
    const u = (w[0] * 2 ** 21 + (w[1] >>> 11)) / 2 ** 53;
    const j = Math.floor(u * (i + 1));
    const t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
  }
  return idx;
}

/** Index batches over n examples: shuffled from a seed (default) or in order, the last short batch kept unless dropLast. */
export function batches(n: number, batchSize: number, options?: BatchOptions): Generator<number[]> {
  // Checked at the call, not at the first next() of the generator.
  return batchIndices(n, batchSize, checkOptions('batches', options, ['seed', 'shuffle', 'dropLast', 'epoch']));
}

function* batchIndices(n: number, batchSize: number, options: BatchOptions): Generator<number[]> {
  if (!Number.isInteger(n) || n < 0) throw new ValueError(`batches: n must be a non-negative integer, got ${n}`);
  if (!Number.isInteger(batchSize) || batchSize <= 0) throw new ValueError(`batches: batchSize must be a positive integer, got ${batchSize}`);
  const order = options.shuffle === false ? Array.from({ length: n }, (_, i) => i) : permutation(n, options.seed ?? 0, options.epoch ?? 0);
  for (let start = 0; start < n; start += batchSize) {
    const b = order.slice(start, start + batchSize);
    if (b.length < batchSize && options.dropLast) return;
    yield b;
  }
}

/** A batch: the model's input(s) and the targets. */
export interface Batch {
  inputs: Tensor;
  targets: Tensor;
}
/** Anything fit() can draw batches from. */
export interface Dataset {
  readonly length: number;
  /** Builds the batch for these example indices; fit() disposes it after the step. */
  getBatch(indices: number[]): Batch;
}

/**
 * Examples held on the host (x: one row of features per example, y: one target or row per example);
 * each batch is gathered on the host and uploaded (two uploads a batch).
 */
export class TensorDataset implements Dataset {
  readonly length: number;
  private readonly xRow: number;
  private readonly yRow: number;
  private readonly xData: Float32Array;
  private readonly yData: Float32Array | Int32Array;
  constructor(
    x: ArrayLike<number> | ArrayLike<number>[],
    y: ArrayLike<number> | ArrayLike<number>[],
    private readonly options: { xShape?: number[]; yShape?: number[]; yDtype?: 'f32' | 'i32' } = {},
  ) {
    checkOptions('TensorDataset', options, ['xShape', 'yShape', 'yDtype']);
    const flat = (a: ArrayLike<number> | ArrayLike<number>[]): { data: number[]; rows: number; row: number } => {
      if (a.length && typeof (a as ArrayLike<number>[])[0] === 'object') {
        const rows = a as ArrayLike<number>[];
        const row = rows[0].length;
        const data: number[] = [];
        for (const [i, r] of rows.entries()) {
          if (r.length !== row) throw new ShapeError(`TensorDataset: row ${i} has ${r.length} values, row 0 has ${row}`);
          for (let k = 0; k < r.length; k++) data.push(r[k]);
        }
        return { data, rows: rows.length, row };
      }
      return { data: Array.from(a as ArrayLike<number>), rows: a.length, row: 1 };
    };
    const fx = flat(x);
    const fy = flat(y);
    const xRowFromShape = options.xShape ? options.xShape.reduce((p, q) => p * q, 1) : fx.row;
    const yRowFromShape = options.yShape ? options.yShape.reduce((p, q) => p * q, 1) : fy.row;
    this.xRow = xRowFromShape;
    this.yRow = yRowFromShape;
    const nx = fx.data.length / this.xRow;
    const ny = fy.data.length / this.yRow;
    if (nx !== ny || !Number.isInteger(nx)) throw new ShapeError(`TensorDataset: ${nx} inputs but ${ny} targets`);
    this.length = nx;
    this.xData = Float32Array.from(fx.data);
    this.yData = options.yDtype === 'i32' ? Int32Array.from(fy.data) : Float32Array.from(fy.data);
  }
  getBatch(indices: number[]): Batch {
    const B = indices.length;
    const xs = new Float32Array(B * this.xRow);
    const ys = this.yData instanceof Int32Array ? new Int32Array(B * this.yRow) : new Float32Array(B * this.yRow);
    indices.forEach((idx, b) => {
      if (!(idx >= 0 && idx < this.length)) throw new ValueError(`TensorDataset: index ${idx} is out of range for ${this.length} examples`);
      xs.set(this.xData.subarray(idx * this.xRow, (idx + 1) * this.xRow), b * this.xRow);
      ys.set(this.yData.subarray(idx * this.yRow, (idx + 1) * this.yRow), b * this.yRow);
    });
    const xShape = [B, ...(this.options.xShape ?? (this.xRow === 1 && !this.options.xShape ? [1] : [this.xRow]))];
    const yShape = this.options.yShape ? [B, ...this.options.yShape] : this.yRow === 1 ? [B] : [B, this.yRow];
    return { inputs: tensor(xs, { shape: xShape }), targets: tensor(ys, { shape: yShape, dtype: this.yData instanceof Int32Array ? 'i32' : 'f32' }) };
  }
}
