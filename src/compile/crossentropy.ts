// Cross-entropy forward and backward in one dispatch (pass `crossEntropy`). A training step that calls
// loss.backward() on a reduced cross-entropy records: the forward (one workgroup per row: row losses and the rows'
// log-sum-exp), the reduction, the seed fill of the loss's gradient (a constant, 1), and the backward (dx from the
// logits, the log-sum-exp, the seed and the reduction's factor). Here the forward's workgroup also writes its row's dx
// (kernels/crossentropy.wgsl forward_backward): the seed's value is written into the params, and the reduction's
// factor (1, or 1 over the rows not ignored) each workgroup counts itself, exactly as reduce counts it, so dx is
// bit-identical to the backward's. The backward and the seed fill are dropped; the reduction stays (the loss), now
// independent of everything after it.
//   Conditions: the backward reads the forward's logits, targets and log-sum-exp, with a reduction ('sum' or 'mean');
//   its dy is written only by a one-element fill (and read only by the backward); nothing between the two writes the
//   logits or targets, or touches dx; with 'mean', N <= MAX_ROWS_COUNTED (each workgroup reads all N targets).
import { pipeline as kernelPipeline } from '../gpu/kernels.js';
import kernel from '../launch/kernels/crossentropy.js';
import dtypes from '../launch/kernels/dtypes.js';
import type { RecCommand, RecDispatch } from './recording.js';
import { writes } from './fuse.js';
import { slotAt, slotUsers } from './epilogue.js';

/** Rows past which a 'mean' loss is left alone: every workgroup counts over all N targets (N^2 reads in all). */
export const MAX_ROWS_COUNTED = 4096;
const B = { logits: 1, targets: 2, lse: 4, lseIn: 7, dy: 8, dx: 10 } as const;


/** Commands with each matched forward / seed / backward triple made one dispatch; the count of triples fused. */
export function fuseCrossEntropy(commands: readonly RecCommand[]): { commands: RecCommand[]; fused: number } {
  const work: (RecCommand | null)[] = commands.slice();
  const users = slotUsers(commands);
  const usersOf = (slot: number) => users.get(slot) ?? [];
  let fused = 0;
  for (let i = 0; i < work.length; i++) {
    const f = work[i];
    if (!f || f.kind !== 'dispatch' || f.file !== kernel.file || f.entry !== 'forward' || !f.values || !f.params || f.seedFields.length || f.replay) continue;
    const logits = slotAt(f, B.logits), targets = slotAt(f, B.targets), lse = slotAt(f, B.lse);
    // The backward that reads this forward's log-sum-exp.
    const j = work.findIndex((c, k) => k > i && !!c && c.kind === 'dispatch' && c.file === kernel.file && c.entry === 'backward' && slotAt(c, B.lseIn) === lse);
    if (j < 0) continue;
    const b = work[j] as RecDispatch;
    if (!b.values || Number(b.values.mode) === kernel.constants.MODE_NONE || slotAt(b, B.logits) !== logits || slotAt(b, B.targets) !== targets) continue;
    if (Number(f.values.mode) !== Number(b.values.mode) || Number(f.values.N) !== Number(b.values.N) || Number(f.values.C) !== Number(b.values.C)) continue;
    if (Number(b.values.mode) === kernel.constants.MODE_MEAN && Number(f.values.N) > MAX_ROWS_COUNTED) continue;
    // dy: a one-element fill's, read by the backward only.
    const dy = slotAt(b, B.dy), dx = slotAt(b, B.dx);
    const dyUsers = usersOf(dy);
    if (dyUsers.length !== 2 || dyUsers[1] !== j) continue;
    const s = work[dyUsers[0]]!;
    if (s.kind !== 'dispatch' || s.file !== 'elementwise.wgsl' || s.entry !== 'fill' || !s.values || s.replay || s.seedFields.length) continue;
    if (Number(s.values.n) !== 1 || Number(s.values.o_off) !== Number(b.values.dy_off) || (s.constants.OUT_DT ?? dtypes.constants.DT_F32) !== dtypes.constants.DT_F32) continue;
    // Between the forward and the backward: nothing writes the logits or targets; dx is first touched by the backward.
    const between = work.slice(i + 1, j).filter((c): c is RecCommand => !!c);
    if (between.some((c) => writes(c).some((w) => w === logits || w === targets))) continue;
    if (usersOf(dx)[0] !== j) continue;
    const field = f.fields.find((x) => x.name === 'dy_value');
    if (!field) continue;
    const value = Number(s.values.scalar);
    const params = f.params.slice();
    new DataView(params.buffer, params.byteOffset).setFloat32(field.offset, value, true);
    const p = kernelPipeline(kernel, 'forward_backward', f.constants);
    work[i] = {
      ...f, pipeline: p.pipeline, layout: p.layout, pipelineKey: p.key, entry: 'forward_backward', label: `${f.label}+backward`, params,
      values: { ...f.values, dy_value: value },
      bindings: [...f.bindings, { binding: B.dx, slot: dx, writable: true }],
    };
    work[j] = null;
    work[dyUsers[0]] = null;
    fused++;
  }
  return { commands: work.filter((c): c is RecCommand => c !== null), fused };
}
