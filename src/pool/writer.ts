// JournalWriter: how a pool's journal lines are written. It numbers each
// line from shared memory's counter, batches the lines of one synchronous
// step into one write, keeps the writer's image of the journal (each line
// applied as it is written, from lockWriter on) and compacts the journal
// into a snapshot when the tail grows. Pool decides what to journal; this
// decides how and when it reaches the disk.
import { rmSync } from 'node:fs';
import { PoolError } from './errors.js';
import type { JournalImage } from './image.js';
import { Journal, type LoadedImage, loadImage } from './journal.js';
import type { JournalEntry, JournalEvent, JournalResult } from './journal-events.js';
import type { PoolState } from './state.js';

/**
 * The tail is compacted once it exceeds max(COMPACT_FLOOR, snapshot size).
 * 48 KiB, not 64: snapshot + tail of a pool with nothing granted then stay
 * under 64 KiB whatever the number of operations.
 */
export const COMPACT_FLOOR = 48 * 1024;

export class JournalWriter {
  private readonly journal: Journal;
  /** The journal's image, kept from adopt() on (the writer lock's holder). */
  private img: JournalImage | null = null;
  private snapshotBytes = 0;
  private compactPending = false;
  /** Lines of the running batch(), written at its end. */
  private batched: JournalEntry[] | null = null;
  /** Compactions done by this writer (tests and the long-run soak read it). */
  compactions = 0;

  constructor(
    journalFile: string,
    private readonly snapshotFile: string,
    private readonly state: PoolState,
  ) {
    this.journal = new Journal(journalFile);
  }

  /**
   * Makes the journal whole for writing and loads its image (the caller
   * decides whether to keep it, with keep()). A damaged journal throws.
   */
  open(): LoadedImage {
    this.journal.repairTail();
    // A compaction killed before its rename left this; the snapshot it was to replace is still whole.
    rmSync(`${this.snapshotFile}.tmp`, { force: true });
    return loadImage(this.snapshotFile, this.journal.path);
  }

  /** From now on every line is applied to `loaded`'s image as it is written. */
  keep(loaded: LoadedImage): void {
    this.img = loaded.image;
    this.snapshotBytes = loaded.snapshotBytes;
  }

  /** The live image, if kept. */
  get image(): JournalImage | null {
    return this.img;
  }

  /** See Pool.batch. */
  batch<T>(fn: () => T): T {
    if (this.batched) return fn();
    const lines: JournalEntry[] = [];
    this.batched = lines;
    try {
      return fn();
    } finally {
      this.batched = null;
      if (lines.length > 0) {
        this.journal.appendAll(lines);
        if (this.img) {
          for (const e of lines) this.img.apply(e);
          this.maybeCompact();
        }
      }
    }
  }

  /** Writes one line (or adds it to the running batch). Returns its seq. */
  record(event: JournalEvent, result: JournalResult, sync = true): number {
    const seq = this.state.nextJournalSeq();
    const entry = { seq, time: new Date().toISOString(), ...event, result } as JournalEntry;
    if (this.batched) {
      this.batched.push(entry);
      return seq;
    }
    this.journal.append(entry, sync);
    if (this.img) {
      this.img.apply(entry);
      this.maybeCompact();
    }
    return seq;
  }

  groupCommit(): void {
    this.journal.groupCommit();
  }

  durable(opts: { offLoop?: boolean } = {}): Promise<void> {
    return this.journal.durable(opts);
  }

  private get compactAt(): number {
    return Math.max(COMPACT_FLOOR, this.snapshotBytes);
  }

  /**
   * Compaction runs after the current operation has answered (setImmediate),
   * so it never adds to an FM answer's latency; a tail far past the mark
   * (a burst of synchronous writes) is compacted at once.
   */
  private maybeCompact(): void {
    const tail = this.journal.tailBytes;
    if (tail <= this.compactAt) return;
    if (tail > 4 * this.compactAt) {
      this.compact();
      return;
    }
    if (this.compactPending) return;
    this.compactPending = true;
    setImmediate(() => {
      this.compactPending = false;
      if (this.img && this.journal.tailBytes > this.compactAt) this.compact();
    });
  }

  /** Writes the image as the new snapshot and empties the tail (writer only). */
  compact(): void {
    if (!this.img) throw new PoolError('LOCKED', 'compaction needs the writer lock');
    const body = `${JSON.stringify(this.img.toSnapshot())}\n`;
    this.journal.compact(this.snapshotFile, body);
    this.snapshotBytes = Buffer.byteLength(body);
    this.compactions++;
  }

  close(): void {
    this.journal.close();
    this.img = null;
  }
}
