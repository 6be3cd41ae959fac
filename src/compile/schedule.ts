// Level scheduling (pass `schedule`): the trace's GPU commands reordered by dependency level, so commands that can run
// side by side sit next to each other for the horizontal pass to merge. A command's level is one past the latest
// command it depends on: one that wrote a buffer it reads or writes (read after write, write after write), or one that
// read a buffer it writes (write after read: in one merged dispatch a reader and a writer of the same buffer would
// race). Commands keep the trace's order inside a level (a stable sort), so the reordering changes no result: every
// pair of dependent commands keeps its order. In a training step's backward this lifts each weight gradient and bias
// sum to the level of the input gradient made from the same incoming gradient, and work that depends only on the
// step's inputs (sorting the token ids for the embedding's gradient) to the start.
//   Buffers the pool does not own (dummies, the index-error flag: slots without a pooled buffer) order nothing: a
//   dummy's contents are never read, and index checks only OR bits into the flag.
//   Hooks and seed draws are host work the replay does before encoding, in the trace's order; they stay where they
//   are, and nothing moves across one (a dispatch's seeded params are patched after the draws before it).
import type { RecCommand, RecSlot } from './recording.js';
import { writes as slotsWritten } from './fuse.js';

const slotsRead = (c: RecCommand): number[] =>
  c.kind === 'dispatch' ? c.bindings.filter((b) => !b.writable).map((b) => b.slot) : c.kind === 'copy' ? [c.src] : [];

/** The commands in level order, the number of levels holding dispatches (what merging each level into one dispatch would leave), and how many commands moved. */
export function scheduleByLevel(commands: readonly RecCommand[], slots: readonly RecSlot[]): { commands: RecCommand[]; levels: number; moved: number } {
  const owned = (s: number) => s >= 0 && !!slots[s]?.pb;
  const lastWrite = new Map<number, number>();
  const lastRead = new Map<number, number>();
  const level: number[] = new Array(commands.length).fill(0);
  let floor = 0;
  let top = -1;
  commands.forEach((c, i) => {
    if (c.kind === 'hook' || c.kind === 'draw') {
      // A barrier: it keeps its place; everything after it comes after everything before it.
      floor = top + 1;
      level[i] = floor;
      top = Math.max(top, floor);
      floor = top + 1;
      return;
    }
    const reads = slotsRead(c).filter(owned), writes = slotsWritten(c).filter(owned);
    let l = floor;
    for (const s of reads) l = Math.max(l, (lastWrite.get(s) ?? -1) + 1);
    for (const s of writes) l = Math.max(l, (lastWrite.get(s) ?? -1) + 1, (lastRead.get(s) ?? -1) + 1);
    level[i] = l;
    top = Math.max(top, l);
    for (const s of reads) lastRead.set(s, Math.max(lastRead.get(s) ?? -1, l));
    for (const s of writes) lastWrite.set(s, l);
  });
  const order = commands.map((_, i) => i).sort((a, b) => level[a] - level[b] || a - b);
  const moved = order.reduce((n, idx, pos) => n + (idx !== pos ? 1 : 0), 0);
  const gpuLevels = new Set(commands.flatMap((c, i) => (c.kind === 'dispatch' ? [level[i]] : [])));
  return { commands: order.map((i) => commands[i]), levels: gpuLevels.size, moved };
}
