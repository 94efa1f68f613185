// Every line the product writes to a pool journal, as one discriminated
// union: the state-changing operations (`op`) replay rebuilds shared memory
// from, and the `note` events (`args.event`) that recovery and audits read.
// The on-disk form is a JSON line { seq, time, op, args, result }; the field
// names here are that format, so journals written before this type replay.

/** What rides along with a claim or release: grant kind and FM transaction, for recovery and audit. */
export interface GrantMeta {
  /** 'static': a window a VM declares; 'dynamic': capacity moved by the FM-API. */
  kind?: 'static' | 'dynamic';
  tag?: string;
  delivery?: 'hotplug' | 'dcd';
  /** The seq of the fm-add-begin note this claim (or its rollback) belongs to (journals written before one-line adds). */
  tx?: number;
  /** Undoes a claim of the same transaction. */
  rollback?: boolean;
  /** Made by recovery (a backend restart), not by a request. */
  recovered?: boolean;
}

interface Range {
  head: number;
  first: number;
  count: number;
}

/** One delivered piece of an FM add: blocks and, for a hot-add, the device QEMU has. */
export interface FmPiece {
  first: number;
  count: number;
  device?: string;
}

/** The notes: events worth keeping that change no state by themselves. */
export type NoteEvent =
  | { event: 'fm-add-begin'; head: number; pieces: { offset: number; len: number }[]; shared: boolean; tag: string; delivery: string }
  | { event: 'fm-add-end'; tx: number; ok: boolean; devices?: (string | null)[]; recovered?: boolean }
  | { event: 'attach-refused'; head: number; pid: number; reason: string }
  | { event: 'stale-head-reclaimed'; head: number; pid: number }
  | { event: 'head-readopted'; head: number; pid: number; running: boolean }
  | { event: 'orphan-ld-removed'; head: number; device: string; offset: number; size: number }
  | { event: 'guest-reset'; head: number }
  | { event: 'fm-refused'; via: string; opcode: number; code: number; reason: string }
  | { event: 'fm-internal-error'; via: string; opcode: number; reason: string }
  /** The owner's FM-LD channel answered a request with a refusal (port not bound), or dropped garbled input. */
  | { event: 'fmld-refused'; head: number }
  | { event: 'fmld-reset'; head: number; reason: string }
  | { event: 'recovered-from-journal'; blocks: number; heads: number[]; lease: boolean }
  | { event: 'fmld-fenced'; head: number; reason: string }
  /** Released by the FM, but QEMU did not show that the guest lost it: the blocks stay held by the head until it does. */
  | { event: 'release-quarantined'; head: number; offset: number; len: number; reason: string };

export type NoteName = NoteEvent['event'];

/** One journaled operation or note, as written (without seq, time and result). */
export type JournalEvent =
  | { op: 'pool-create'; args: { capacityBytes: number; blockBytes: number; headCount: number; createdMs: number; mode: number } }
  | { op: 'head-register'; args: { head: number; pid: number } }
  | { op: 'head-unregister'; args: { head: number } }
  | { op: 'claim'; args: GrantMeta & Range & { shared: boolean } }
  | { op: 'release'; args: GrantMeta & Range }
  | { op: 'release-all'; args: { head: number; sharedOnly: boolean } }
  | { op: 'lease-acquire'; args: { head: number } }
  | { op: 'lease-release'; args: { head: number } }
  /** The lease moved by `lease takeover` (result: { epoch }); `from` was fenced first. */
  | { op: 'lease-takeover'; args: { from: number | null; to: number; forced: boolean } }
  /**
   * One FM add, whole: its claims and delivered devices in one line, written
   * once QEMU has the capacity and before the client hears Success. Nothing
   * of the add is durable before it (docs/reliability.md).
   */
  | { op: 'fm-add'; args: { head: number; pieces: FmPiece[]; shared: boolean; tag: string; delivery: string } }
  /** QEMU accepted the release of these grants; their blocks are freed by a `release` once QEMU shows the guest can no longer reach them. */
  | { op: 'fm-release'; args: { head: number; pieces: { first: number; count: number }[] } }
  | { op: 'note'; args: NoteEvent };

export type JournalOp = JournalEvent['op'];

/** 'ok' with the operation's details (lease-acquire: acquired, owner; release-all: released ...), or why it was refused. */
export type JournalResult = { ok: true; [detail: string]: unknown } | { ok: false; code: string; message: string };

/** One journal line. */
export type JournalEntry = JournalEvent & { seq: number; time: string; result: JournalResult };

/** The note of an entry, when it is that note (typed by its name). */
export function noteOf<N extends NoteName>(e: JournalEntry, name: N): Extract<NoteEvent, { event: N }> | null {
  return e.op === 'note' && e.args.event === name ? (e.args as Extract<NoteEvent, { event: N }>) : null;
}
