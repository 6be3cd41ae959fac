// Device-side index checks, shared through `//!include index_check.wgsl` (include-only: no entry point).
//
// A kernel that takes indices cannot throw. Instead it records the FIRST bad index it meets in the device's error
// flag, and never reads outside a tensor (it skips the read, or writes NaN where the read would go). The host reads
// the flag at the next sync and throws an IndexError naming the op, the position and the value (src/gpu/queue.ts).
// The including file declares, under these reserved names (dispatch() binds and fills them; op code never does):
//   @group(0) @binding(K) var<storage, read_write> kiln_errors: array<atomic<u32>, 8>;
//   a `check_id: u32` field in its params struct.
// Words: 0 the kind (0 = no error), 1 the check id, 2 the flat position in the index tensor, 3 the bad value (i32
// bits), 4 the limit it broke (the row or class count); 5..7 spare.

const CHECK_ROWS: u32 = 1u;    // an index into the rows of a table (embedding, gather): limit = the row count
const CHECK_CLASSES: u32 = 2u; // a class target that is neither ignore_index nor in [0, C) (cross-entropy)

fn report_index_error(kind: u32, check_id: u32, position: u32, value: i32, limit: u32) {
  // Only the first error is kept: a cheap load skips the compare-exchange once the flag is set.
  if (atomicLoad(&kiln_errors[0]) != 0u) { return; }
  loop {
    let r = atomicCompareExchangeWeak(&kiln_errors[0], 0u, kind);
    if (r.exchanged) {
      atomicStore(&kiln_errors[1], check_id);
      atomicStore(&kiln_errors[2], position);
      atomicStore(&kiln_errors[3], bitcast<u32>(value));
      atomicStore(&kiln_errors[4], limit);
      return;
    }
    if (r.old_value != 0u) { return; } // another invocation was first; a weak exchange may also fail spuriously
  }
}
