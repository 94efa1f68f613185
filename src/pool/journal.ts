// The pool journal: a snapshot (snapshot.json, the image as of a seq) and a
// tail (journal.jsonl) of JSON lines appended after it, one per operation,
// fsynced before the operation is reported done. Snapshot + tail replay to
// the image (image.ts) that recovery and fsck compare with shared memory.
// What a line may say is journal-events.ts.
import { closeSync, fdatasyncSync, fstatSync, fsyncSync, ftruncateSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { PoolError } from './errors.js';
import { JournalImage, type Snapshot } from './image.js';
import type { JournalEntry } from './journal-events.js';
import { ensureDir } from './paths.js';
import type { PoolState } from './state.js';

/** Test-only fault injection: the crash tests kill the writer at a named point inside compaction. */
function faultPoint(name: string): void {
  if (process.env.CXL_MHD_FAULT === name) process.kill(process.pid, 'SIGKILL');
}

function fsyncDir(dir: string): void {
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

/**
 * The tail: JSON lines appended after the snapshot. Each append is one
 * write(2) and one fdatasync, however many lines it carries.
 */
export class Journal {
  private fd: number | null;
  private bytes: number;

  constructor(readonly path: string) {
    ensureDir(dirname(path));
    try {
      this.fd = openSync(path, 'a', 0o600);
    } catch (e) {
      throw new PoolError('BAD_STATE', `cannot open journal ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    this.bytes = fstatSync(this.fd).size;
    // A fresh journal must survive a crash of the directory entry too.
    fsyncDir(dirname(path));
  }

  /** Bytes in the tail now. */
  get tailBytes(): number {
    return this.bytes;
  }

  /** `sync: false` leaves the line to the next fdatasync (a note that changed nothing). */
  append(entry: JournalEntry, sync = true): void {
    this.appendAll([entry], sync);
  }

  /** Several lines in one write and one fdatasync (Pool.batch: an attach's register, claims and lease). */
  appendAll(entries: JournalEntry[], sync = true): void {
    if (this.fd === null) throw new PoolError('CLOSED', `journal ${this.path} is closed`);
    // One write per append: O_APPEND keeps concurrent writers' lines whole.
    const text = entries.map((e) => `${JSON.stringify(e)}\n`).join('');
    writeSync(this.fd, text);
    if (sync) fdatasyncSync(this.fd);
    this.bytes += Buffer.byteLength(text);
  }

  /**
   * A crash mid-write leaves a torn last line (never fsynced, so never
   * answered). It is cut off before the writer appends, or the next line
   * would be glued to it. Writer only. Returns the bytes dropped.
   */
  repairTail(): number {
    if (this.fd === null) throw new PoolError('CLOSED', `journal ${this.path} is closed`);
    const text = readFileSync(this.path);
    if (text.length === 0 || text[text.length - 1] === 0x0a) return 0;
    const keep = text.lastIndexOf(0x0a) + 1;
    ftruncateSync(this.fd, keep);
    fsyncSync(this.fd);
    this.bytes = keep;
    return text.length - keep;
  }

  /**
   * Writes `snapshot` (covering every line so far) atomically and empties
   * the tail. Order: temp file + fsync, rename + directory fsync, then
   * truncate. A crash before the rename leaves the old snapshot and the
   * whole tail; after it, the new snapshot and a tail whose lines it already
   * covers (replay skips seq <= its lastSeq). Either replays to the same image.
   */
  compact(snapshotFile: string, snapshot: string): void {
    if (this.fd === null) throw new PoolError('CLOSED', `journal ${this.path} is closed`);
    const tmp = `${snapshotFile}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, snapshot);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    faultPoint('compact-snapshot-written');
    renameSync(tmp, snapshotFile);
    fsyncDir(dirname(snapshotFile));
    faultPoint('compact-snapshot-renamed');
    ftruncateSync(this.fd, 0);
    fdatasyncSync(this.fd);
    this.bytes = 0;
    faultPoint('compact-tail-truncated');
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

export function readJournal(path: string): JournalEntry[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new PoolError('NOT_FOUND', `journal ${path} does not exist`);
    }
    throw e;
  }
  const out: JournalEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (!line) continue;
    try {
      out.push(JSON.parse(line) as JournalEntry);
    } catch {
      // Only a torn final line (crash mid-write) is tolerable; damage elsewhere is real.
      if (i === lines.length - 1 || (i === lines.length - 2 && lines[lines.length - 1] === '')) continue;
      throw new PoolError('BAD_STATE', `journal ${path} line ${i + 1} is not valid JSON`);
    }
  }
  // Concurrent writers append in completion order; seq is the true order.
  out.sort((a, b) => a.seq - b.seq);
  return out;
}

/** Rebuilds a private state image from journal entries (the whole journal, from pool-create on). */
export function replayJournal(entries: JournalEntry[]): { state: PoolState; lastSeq: number } {
  const img = JournalImage.fromEntries(entries);
  return { state: img.toState(), lastSeq: img.lastSeq };
}

function readSnapshot(path: string): { snapshot: Snapshot; bytes: number } | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new PoolError('BAD_STATE', `cannot read snapshot ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return { snapshot: JSON.parse(text) as Snapshot, bytes: Buffer.byteLength(text) };
  } catch {
    // Written to a temp file and renamed only once fsynced: a damaged snapshot is real damage.
    throw new PoolError('BAD_STATE', `snapshot ${path} is not valid JSON`);
  }
}

export interface LoadedImage {
  image: JournalImage;
  /** Tail lines replayed on top of the snapshot. */
  tailEntries: number;
  /** The snapshot's lastSeq, or null when there is none yet. */
  snapshotSeq: number | null;
  snapshotBytes: number;
}

/**
 * The pool's image from its snapshot (if any) and the tail lines after it.
 * A writer may compact meanwhile (fsck runs beside a live backend): if the
 * snapshot changed while we read, read again.
 */
export function loadImage(snapshotFile: string, tailFile: string): LoadedImage {
  for (let attempt = 0; ; attempt++) {
    const before = readSnapshot(snapshotFile);
    const tail = readJournal(tailFile);
    const after = readSnapshot(snapshotFile);
    if (attempt < 5 && (before?.snapshot.lastSeq ?? null) !== (after?.snapshot.lastSeq ?? null)) continue;
    if (!before) return { image: JournalImage.fromEntries(tail), tailEntries: tail.length, snapshotSeq: null, snapshotBytes: 0 };
    const image = JournalImage.fromSnapshot(before.snapshot, `snapshot ${snapshotFile}`);
    const newer = tail.filter((e) => e.seq > before.snapshot.lastSeq);
    for (const e of newer) image.apply(e);
    return { image, tailEntries: newer.length, snapshotSeq: before.snapshot.lastSeq, snapshotBytes: before.bytes };
  }
}
