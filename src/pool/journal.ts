// The pool journal: a snapshot (snapshot.json, the image as of a seq) and a
// tail (journal.jsonl) of JSON lines appended after it, one per operation,
// fsynced before the operation is reported done. Snapshot + tail replay to
// the image (image.ts) that recovery and fsck compare with shared memory.
// What a line may say is journal-events.ts.
import {
  closeSync,
  fdatasync,
  fdatasyncSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { PoolError } from './errors.js';
import { JournalImage, type Snapshot } from './image.js';
import type { JournalEntry } from './journal-events.js';
import { journalLineProblem, setOrigin, snapshotProblem } from './journal-schema.js';
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
 * write(2), however many lines it carries, made at once: a process killed
 * after it leaves the line in the file. Making it durable is one fdatasync,
 * either at once on the calling thread (the default) or, with group commit
 * (groupCommit()), off the event loop in libuv's threadpool, one fdatasync
 * covering every append made before it started; durable() says when.
 */
export class Journal {
  private fd: number | null;
  private bytes: number;
  /** Appends written so far; the last that must reach the disk; the last known on it. */
  private written = 0;
  private required = 0;
  private synced = 0;
  private deferred = false;
  private syncing = false;
  private flushing = false;
  private waiters: { need: number; offLoop: boolean; resolve: () => void; reject: (e: Error) => void }[] = [];
  /** A failed fdatasync: what the kernel dropped is unknown, so nothing after it is reported durable. */
  private failed: Error | null = null;

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

  /** fdatasyncs of the tail issued so far (tests count them: a group is one). */
  fdatasyncs = 0;

  /** Bytes in the tail now. */
  get tailBytes(): number {
    return this.bytes;
  }

  /**
   * From now on appends are made durable in groups (the backend): one
   * fdatasync, at the end of the event-loop turn, covers every line written
   * in it; the caller awaits durable() before it reports anything a line
   * says. Where it runs is chosen per group: one operation alone waiting
   * for it runs it on the event loop (a hand-off to libuv's threadpool and
   * back costs that operation 0.5 ms or more on a busy host,
   * docs/performance.md); several waiting, or none, or one already running,
   * and it goes to the threadpool, so the loop serves the others meanwhile.
   */
  groupCommit(): void {
    this.deferred = true;
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
    this.bytes += Buffer.byteLength(text);
    this.written++;
    if (!sync) return;
    this.required = this.written;
    if (this.deferred) {
      // Made durable even if nobody asks (a detach's lines): whoever reports it next finds it done.
      this.flushSoon();
      return;
    }
    this.fdatasyncs++;
    fdatasyncSync(this.fd);
    this.synced = this.written;
  }

  /**
   * Resolves once every append made so far that asked for it is on disk;
   * rejects if an fdatasync failed. `offLoop`: the caller knows others are
   * busy on the loop (heads attaching together), so even alone its
   * fdatasync goes to the threadpool.
   */
  durable(opts: { offLoop?: boolean } = {}): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.synced >= this.required) return Promise.resolve();
    const need = this.required;
    return new Promise((resolve, reject) => {
      this.waiters.push({ need, offLoop: opts.offLoop === true, resolve, reject });
      this.flushSoon();
    });
  }

  private flushSoon(): void {
    if (this.flushing) return;
    this.flushing = true;
    setImmediate(() => {
      this.flushing = false;
      this.flush();
    });
  }

  /** The group: everything written this turn. */
  private flush(): void {
    const fd = this.fd;
    if (this.syncing || fd === null || this.failed || this.synced >= this.required) return;
    if (this.waiters.length !== 1 || this.waiters[0]?.offLoop) {
      this.startSync();
      return;
    }
    const covers = this.written;
    this.fdatasyncs++;
    try {
      fdatasyncSync(fd);
    } catch (e) {
      this.fail(this.syncError(e as NodeJS.ErrnoException));
      return;
    }
    this.markSynced(covers);
  }

  /** One fdatasync in the threadpool at a time; what is written while it runs goes with the next. */
  private startSync(): void {
    const fd = this.fd;
    if (this.syncing || fd === null || this.failed || this.synced >= this.required) return;
    this.syncing = true;
    const covers = this.written;
    this.fdatasyncs++;
    fdatasync(fd, (e) => {
      this.syncing = false;
      // Closed meanwhile: close() made everything durable itself and answered the waiters.
      if (this.fd !== fd) return;
      if (e) {
        this.fail(this.syncError(e));
        return;
      }
      this.markSynced(covers);
      this.startSync();
    });
  }

  private syncError(e: NodeJS.ErrnoException): PoolError {
    return new PoolError('BAD_STATE', `journal ${this.path}: fdatasync failed (${e.code ?? e.message}); nothing more is reported durable`);
  }

  private markSynced(covers: number): void {
    this.synced = Math.max(this.synced, covers);
    const ready = this.waiters.filter((w) => w.need <= this.synced);
    this.waiters = this.waiters.filter((w) => w.need > this.synced);
    for (const w of ready) w.resolve();
  }

  private fail(e: Error): void {
    this.failed = e;
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) w.reject(e);
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
    // The snapshot, fsynced, holds every line written so far.
    if (!this.failed) this.markSynced(this.written);
  }

  /** Closes the tail, after making what is still owed durable (and telling those who wait). */
  close(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    try {
      if (!this.failed && this.synced < this.required) {
        this.fdatasyncs++;
        fdatasyncSync(fd);
      }
      if (!this.failed) this.markSynced(this.written);
    } catch (e) {
      this.fail(this.syncError(e as NodeJS.ErrnoException));
    } finally {
      this.fd = null;
      closeSync(fd);
    }
  }
}

function badLine(path: string, line: number, why: string): PoolError {
  return new PoolError(
    'BAD_STATE',
    `journal ${path}:${line}: ${why}; refusing to replay it (fsck shows the same; a damaged journal is restored from a copy, or the pool is destroyed)`,
  );
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
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      // Only a torn final line (crash mid-write: no newline yet, never fsynced, never answered) is
      // tolerable; a line that ends in a newline was written whole, so garbage there is damage.
      if (i === lines.length - 1) continue;
      throw badLine(path, i + 1, 'not valid JSON');
    }
    const problem = journalLineProblem(value);
    if (problem) throw badLine(path, i + 1, problem);
    setOrigin(value as JournalEntry, `${path}:${i + 1}`);
    out.push(value as JournalEntry);
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
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // Written to a temp file and renamed only once fsynced: a damaged snapshot is real damage.
    throw new PoolError('BAD_STATE', `snapshot ${path}:1: not valid JSON; refusing to replay it`);
  }
  const problem = snapshotProblem(value);
  if (problem) throw new PoolError('BAD_STATE', `snapshot ${path}:1: ${problem}; refusing to replay it`);
  return { snapshot: value as Snapshot, bytes: Buffer.byteLength(text) };
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
    if (!before) {
      if (!tail.some((e) => e.op === 'pool-create' && e.result.ok)) {
        throw new PoolError(
          'BAD_STATE',
          `journal ${tailFile} ${tail.length ? 'has no pool-create line' : 'is empty'} and there is no snapshot ${snapshotFile}: the pool's shared-memory objects were not made with this state directory (check --state-dir), or its journal was lost`,
          { noCreate: true },
        );
      }
      return { image: JournalImage.fromEntries(tail), tailEntries: tail.length, snapshotSeq: null, snapshotBytes: 0 };
    }
    const image = JournalImage.fromSnapshot(before.snapshot, `snapshot ${snapshotFile}`);
    const newer = tail.filter((e) => e.seq > before.snapshot.lastSeq);
    for (const e of newer) image.apply(e);
    return { image, tailEntries: newer.length, snapshotSeq: before.snapshot.lastSeq, snapshotBytes: before.bytes };
  }
}

/**
 * The mode the pool was created with (snapshot, else the tail's pool-create
 * line), or null if neither says: what a shm object may be opened up to.
 * Damage is not reported here; the writer and fsck report it when they replay.
 */
export function recordedMode(snapshotFile: string, tailFile: string): number | null {
  const modeOf = (v: unknown): number | null => {
    const m = (v as { mode?: unknown } | null)?.mode;
    return typeof m === 'number' && Number.isInteger(m) && m >= 0 && m <= 0o777 ? m : null;
  };
  try {
    return modeOf((JSON.parse(readFileSync(snapshotFile, 'utf8')) as { pool?: unknown }).pool);
  } catch {
    // No (readable) snapshot: the tail's first line is pool-create until the first compaction.
  }
  try {
    const first = readFileSync(tailFile, 'utf8').split('\n', 1)[0] ?? '';
    const e = JSON.parse(first) as { op?: unknown; args?: unknown };
    return e.op === 'pool-create' ? modeOf(e.args) : null;
  } catch {
    return null;
  }
}
