// Pool: one named pool's shared-memory objects (data + state), its journal
// and its writer lock. Every state-changing operation goes to PoolState
// (lock-free, in shm) and is then journaled and fsynced before returning;
// how lines are written, batched, kept in the image and compacted is
// writer.ts's.
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isNativeError, native } from '../native/index.js';
import { PoolError } from './errors.js';
import { validateGeometry } from './geometry.js';
import { droppedGrants, requireOwnJournal } from './identity.js';
import type { JournalImage } from './image.js';
import { type LoadedImage, loadImage, recordedMode } from './journal.js';
import type { FmPiece, GrantMeta, JournalEvent, JournalResult, NoteEvent } from './journal-events.js';
import { type Geometry, stateObjectBytes } from './layout.js';
import {
  checkObject,
  checkObjectByName,
  closeObject,
  type Mapped,
  objectExists,
  objectLocked,
  openObject,
  refusedLink,
  unlinkQuietly,
} from './objects.js';
import {
  ensureDir,
  journalPath,
  lsaObjectsOf,
  poolStateDir,
  removePoolStateDir,
  shmDataName,
  shmStateName,
  snapshotPath,
  validatePoolName,
} from './paths.js';
import { reconcileWithReplay } from './reconcile.js';
import { type BlockRange, type ClaimOptions, PoolState } from './state.js';
import { COMPACT_FLOOR, JournalWriter } from './writer.js';

export { COMPACT_FLOOR };

const DEFAULT_MODE = 0o600;

export interface CreateOptions extends Geometry {
  name: string;
  stateDir: string;
  /** Object mode; 0600 unless the operator widens it. */
  mode?: number;
  /** Skip the /dev/shm free-space check (sparse benchmark pools only). */
  allowOvercommit?: boolean;
}

export interface OpenOptions {
  name: string;
  stateDir: string;
  /** Open without journaling (read-only tools such as status). */
  readOnly?: boolean;
}

export interface LockOptions {
  /**
   * Start even though the journal lacks lines shared memory says were
   * written (answered operations): shared memory is then put back to the
   * journal, and what that drops is journaled and logged. Off by default.
   */
  acceptJournalLoss?: boolean;
}

export class Pool {
  private journal: JournalWriter | null;
  private locked = false;
  /** Seqs the journal lacks, accepted by the operator (--accept-journal-loss); recovery journals what it drops for them. */
  private acceptedLoss: { from: number; to: number } | null = null;

  private constructor(
    readonly name: string,
    readonly stateDir: string,
    private stateObj: Mapped | null,
    readonly state: PoolState,
    readOnly: boolean,
  ) {
    this.journal = readOnly ? null : new JournalWriter(journalPath(stateDir, name), snapshotPath(stateDir, name), state);
  }

  /** Compactions done by this writer (tests and the long-run soak read it). */
  get compactions(): number {
    return this.journal?.compactions ?? 0;
  }

  /**
   * Creates both shm objects and the journal. Exclusive: an existing pool is
   * never touched. On any failure everything created so far is removed.
   */
  static create(opts: CreateOptions): Pool {
    const name = validatePoolName(opts.name);
    validateGeometry(opts, opts);
    const mode = opts.mode ?? DEFAULT_MODE;
    // The journal's directory first: a bad state dir must fail before any shm object exists.
    ensureDir(poolStateDir(opts.stateDir, name));
    const { SHM_CREATE, SHM_EXCL } = native.constants;
    const created: string[] = [];
    let stateObj: Mapped | null = null;
    try {
      const blockCount = opts.capacityBytes / opts.blockBytes;
      try {
        stateObj = openObject(shmStateName(name), SHM_CREATE | SHM_EXCL, mode, stateObjectBytes(blockCount), true);
      } catch (e) {
        if (isNativeError(e, 'EEXIST')) throw new PoolError('EXISTS', `pool "${name}" already exists (shm object ${shmStateName(name)})`);
        throw e;
      }
      created.push(shmStateName(name));
      const dataFd = (() => {
        try {
          return native.shmOpen(shmDataName(name), SHM_CREATE | SHM_EXCL, mode);
        } catch (e) {
          if (isNativeError(e, 'EEXIST')) throw new PoolError('EXISTS', `pool "${name}" already exists (shm object ${shmDataName(name)})`);
          throw e;
        }
      })();
      created.push(shmDataName(name));
      try {
        native.ftruncate(dataFd, opts.capacityBytes);
      } finally {
        native.close(dataFd);
      }
      const createdMs = Date.now();
      // node:crypto is loaded here, on create only: `status` and the other short commands open pools.
      const { randomBytes } = createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto');
      const poolId = randomBytes(16).toString('hex');
      const state = PoolState.format(stateObj.buf, opts, createdMs, poolId);
      rmSync(journalPath(opts.stateDir, name), { force: true });
      rmSync(snapshotPath(opts.stateDir, name), { force: true });
      const pool = new Pool(name, opts.stateDir, stateObj, state, false);
      stateObj = null;
      pool.record(
        {
          op: 'pool-create',
          args: { capacityBytes: opts.capacityBytes, blockBytes: opts.blockBytes, headCount: opts.headCount, createdMs, mode, poolId },
        },
        { ok: true },
      );
      return pool;
    } catch (e) {
      closeObject(stateObj);
      for (const n of created) unlinkQuietly(n);
      throw e;
    }
  }

  static open(opts: OpenOptions): Pool {
    const name = validatePoolName(opts.name);
    let stateObj: Mapped;
    const readOnly = opts.readOnly === true;
    try {
      stateObj = openObject(shmStateName(name), 0, 0, null, true);
    } catch (e) {
      if (isNativeError(e, 'ENOENT')) {
        throw new PoolError(
          'NOT_FOUND',
          `pool "${name}" does not exist (no shm object ${shmStateName(name)}); create it with \`cxl-mhd pool create\``,
        );
      }
      throw refusedLink(e, shmStateName(name), name);
    }
    try {
      // Owner and mode before a single byte of it is believed (objects.ts).
      const trust = { mode: recordedMode(snapshotPath(opts.stateDir, name), journalPath(opts.stateDir, name)) ?? DEFAULT_MODE, readOnly };
      checkObject(stateObj.fd, shmStateName(name), name, trust);
      checkObjectByName(shmDataName(name), name, trust);
      const state = PoolState.attach(stateObj.buf, `pool "${name}" state object ${shmStateName(name)}`);
      return new Pool(name, opts.stateDir, stateObj, state, readOnly);
    } catch (e) {
      closeObject(stateObj);
      throw e;
    }
  }

  static exists(name: string): boolean {
    return objectExists(shmStateName(validatePoolName(name)));
  }

  /**
   * Removes the pool's shm objects and journal. Refuses while a head is
   * attached or a writer (backend) holds the lock, unless forced.
   */
  static destroy(opts: { name: string; stateDir: string; force?: boolean }): void {
    const name = validatePoolName(opts.name);
    // Forced: not even opened, so root can clear objects someone else made first (objects.ts).
    if (Pool.exists(name) && !opts.force) {
      const pool = Pool.open({ name, stateDir: opts.stateDir, readOnly: true });
      try {
        pool.lockWriter();
        const attached = pool.state
          .heads()
          .filter((h) => h.attached)
          .map((h) => h.id);
        if (attached.length > 0) {
          throw new PoolError(
            'HEAD_ATTACHED',
            `pool "${name}" still has attached head(s) ${attached.join(', ')}; detach them first (or --force)`,
          );
        }
      } finally {
        pool.close();
      }
    } else if (!opts.force) {
      throw new PoolError('NOT_FOUND', `pool "${name}" does not exist`);
    }
    // Journal first: if it cannot go, the pool stays whole rather than half-destroyed.
    removePoolStateDir(opts.stateDir, name);
    unlinkQuietly(shmStateName(name));
    unlinkQuietly(shmDataName(name));
    for (const f of lsaObjectsOf(name)) rmSync(f, { force: true });
  }

  // ---- writer lock ----------------------------------------------------

  /**
   * Takes the pool's single-writer lock (flock on the state object, so a
   * crashed writer's lock vanishes with it). Throws LOCKED naming the holder.
   */
  lockWriter(opts: LockOptions = {}): void {
    const m = this.mapped();
    try {
      native.flock(m.fd, true, true);
    } catch (e) {
      if (isNativeError(e, 'EWOULDBLOCK') || isNativeError(e, 'EAGAIN')) {
        const pid = this.state.writerPid;
        throw new PoolError('LOCKED', `pool "${this.name}" is in use by another writer${pid ? ` (pid ${pid})` : ''}`, { pid });
      }
      throw e;
    }
    this.locked = true;
    this.state.setWriterPid(process.pid);
    if (this.journal) {
      const seqBefore = this.state.journalSeq;
      // A damaged journal throws here; the caller closes the pool, which drops the lock.
      const loaded = this.journal.open();
      this.acceptedLoss = requireOwnJournal(this, seqBefore, loaded, opts.acceptJournalLoss === true);
      this.journal.keep(loaded);
    }
  }

  /** The journal's image from disk: snapshot + tail. */
  loadImage(): LoadedImage {
    return loadImage(this.snapshotFile, this.journalFile);
  }

  /** The writer's live image of the journal (what replaying it now would give). */
  get image(): JournalImage {
    const img = this.journal?.image;
    if (!img) throw new PoolError('LOCKED', `pool "${this.name}": the journal image is kept by the writer only`);
    return img;
  }

  get hasWriterLock(): boolean {
    return this.locked;
  }

  /** True if some process holds the writer lock (probe by trying it). */
  writerActive(): boolean {
    return this.locked || objectLocked(shmStateName(this.name));
  }

  // ---- journaled operations ----------------------------------------------

  private mapped(): Mapped {
    if (!this.stateObj) throw new PoolError('CLOSED', `pool "${this.name}" is closed`);
    return this.stateObj;
  }

  /**
   * Runs `fn` (synchronous) with the journal lines it makes written together
   * at its end: one write and one fdatasync, not one per line. For steps
   * that answer nobody in between (a head's attach: register, claims,
   * lease); a crash inside leaves none of them, as if the attach had not
   * begun. Three fdatasyncs per attach were the top frame of 32 concurrent
   * attaches (docs/performance.md).
   */
  batch<T>(fn: () => T): T {
    return this.journal ? this.journal.batch(fn) : fn();
  }

  /** The one place a journal line is written. Returns its seq (an FM add's transaction id). */
  private record(event: JournalEvent, result: JournalResult, sync = true): number {
    return this.journal?.record(event, result, sync) ?? 0;
  }

  // ---- durability ---------------------------------------------------------------

  /**
   * Group commit (the backend): journal lines are still written when the
   * operation makes them, but fdatasynced off the event loop, one
   * fdatasync for every line written while the previous one ran. Whoever
   * reports an operation awaits durable() first. Without it (the CLI, the
   * tests' writers) each line is fdatasynced before record() returns.
   */
  groupCommit(): void {
    this.journal?.groupCommit();
  }

  /** Resolves once every journal line written so far (but the unsynced notes) is on disk (Journal.durable). */
  durable(opts: { offLoop?: boolean } = {}): Promise<void> {
    return this.journal?.durable(opts) ?? Promise.resolve();
  }

  /** Writes the image as the new snapshot and empties the tail (writer only). */
  compact(): void {
    if (!this.journal) throw new PoolError('LOCKED', 'compaction needs the writer lock');
    this.journal.compact();
  }

  /** Runs `fn`, journals its outcome (success or refusal), returns or rethrows. */
  private journaled<T>(event: JournalEvent, fn: () => T, detail: (r: T) => Record<string, unknown> = () => ({})): T {
    if (!this.journal) throw new PoolError('CLOSED', `pool "${this.name}" was opened read-only`);
    let r: T;
    try {
      r = fn();
    } catch (e) {
      if (e instanceof PoolError) this.record(event, { ok: false, code: e.code, message: e.message });
      throw e;
    }
    this.record(event, { ok: true, ...detail(r) });
    return r;
  }

  registerHead(head: number, pid: number): void {
    this.journaled({ op: 'head-register', args: { head, pid } }, () => this.state.registerHead(head, pid));
  }

  unregisterHead(head: number): void {
    this.journaled({ op: 'head-unregister', args: { head } }, () => this.state.unregisterHead(head));
  }

  /** `meta` rides along in the journal entry (grant kind, tag, delivery) for recovery and audit. */
  claim(head: number, range: BlockRange, opts: ClaimOptions = {}, meta: GrantMeta = {}): void {
    this.journaled({ op: 'claim', args: { ...meta, head, first: range.first, count: range.count, shared: opts.shared === true } }, () =>
      this.state.claim(head, range, opts),
    );
  }

  release(head: number, range: BlockRange, meta: GrantMeta = {}): void {
    this.journaled({ op: 'release', args: { ...meta, head, first: range.first, count: range.count } }, () =>
      this.state.release(head, range),
    );
  }

  releaseAll(head: number, opts: { sharedOnly?: boolean } = {}): number {
    return this.journaled(
      { op: 'release-all', args: { head, sharedOnly: opts.sharedOnly === true } },
      () => this.state.releaseAll(head, opts),
      (n) => ({
        released: n,
      }),
    );
  }

  acquireLease(head: number): boolean {
    return this.journaled(
      { op: 'lease-acquire', args: { head } },
      () => this.state.acquireLease(head),
      (acquired) => ({ acquired, owner: this.state.lease().owner, epoch: this.state.lease().epoch }),
    );
  }

  /** Moves the lease to `to` (whoever held it, `from`, was fenced by the caller); bumps the epoch. Returns it. */
  takeLease(from: number | null, to: number, forced: boolean): number {
    return this.journaled(
      { op: 'lease-takeover', args: { from, to, forced } },
      () => this.state.takeLease(from, to),
      (epoch) => ({ epoch }),
    );
  }

  // ---- one-write FM operations (docs/reliability.md) -----------------------------

  /**
   * Claims in shared memory only: an FM add stages its claims, delivers, and
   * journals itself whole with recordAdd. A writer killed before that line
   * leaves shm ahead of the journal, which recovery undoes.
   */
  stage(head: number, range: BlockRange, opts: ClaimOptions = {}): void {
    this.state.claim(head, range, opts);
  }

  /**
   * Undoes a staged claim (the add failed before it was journaled). Blocks
   * the head no longer holds are skipped: its QEMU may have gone meanwhile,
   * taking everything with it.
   */
  unstage(head: number, range: BlockRange): void {
    for (let b = range.first; b < range.first + range.count; b++) {
      if (this.state.block(b).holders.includes(head)) this.state.release(head, { first: b, count: 1 });
    }
  }

  /** The one durable write of an FM add: its staged claims and delivered devices. */
  recordAdd(args: { head: number; pieces: FmPiece[]; shared: boolean; tag: string; delivery: string }): void {
    this.record({ op: 'fm-add', args }, { ok: true });
  }

  /** The one durable write of an FM release: QEMU accepted it; the blocks follow with release() once QEMU dropped them. */
  recordRelease(args: { head: number; pieces: { first: number; count: number }[] }): void {
    this.record({ op: 'fm-release', args }, { ok: true });
  }

  /** A tag reference (5606h): marks the allocation's blocks kept; journaled with the count's change. */
  addReference(tag: string, shared: boolean, ranges: BlockRange[]): void {
    this.journaled({ op: 'ref-add', args: { tag, shared, ranges } }, () => {
      for (const r of ranges) this.state.reference(r);
    });
  }

  /** One reference fewer (5607h); with the last, the mark goes and unheld blocks are free. Returns how many. */
  removeReference(tag: string, last: boolean, ranges: BlockRange[]): number {
    return this.journaled(
      { op: 'ref-remove', args: { tag, last, ranges } },
      () => (last ? ranges.reduce((n, r) => n + this.state.unreference(r), 0) : 0),
      (freed) => ({ freed }),
    );
  }

  /** 5602h's setting, journaled so a restart reports it (no shared-memory state). */
  recordRegionConfig(args: { region: number; blockSize: number; sanitizeOnRelease: boolean }): void {
    this.record({ op: 'region-config', args }, { ok: true });
  }

  releaseLease(head: number): boolean {
    return this.journaled(
      { op: 'lease-release', args: { head } },
      () => this.state.releaseLease(head),
      (released) => ({ released }),
    );
  }

  /**
   * Journals an event worth keeping (journal-events.ts). Returns its seq,
   * which an FM add uses as its transaction id. `sync: false` for a note
   * that changes no state (an FM refusal): written at once, made durable by
   * the next fdatasync, so a refused request does not wait for the disk.
   */
  note(event: NoteEvent, opts: { sync?: boolean } = {}): number {
    return this.record({ op: 'note', args: event }, { ok: true }, opts.sync ?? true);
  }

  /**
   * Makes shared memory equal the journal's replay (reconcile.ts). Returns
   * what was changed (also journaled), and with an accepted journal loss,
   * the grants that loss dropped.
   */
  recoverFromJournal(): { blocks: number; heads: number[]; lease: boolean; dropped?: { head: number; first: number; count: number }[] } {
    if (!this.locked) throw new PoolError('LOCKED', 'recovery needs the writer lock');
    const img = this.image;
    const replay = img.toState();
    const s = this.state;
    const lost = this.acceptedLoss;
    const dropped = lost ? droppedGrants(s, replay) : undefined;
    if (lost && dropped) {
      this.acceptedLoss = null;
      this.note({ event: 'journal-loss-accepted', lostSeqs: lost, dropped });
    }
    const { blocks, heads, lease } = reconcileWithReplay(s, img, replay);
    if (blocks > 0 || heads.length > 0 || lease) this.note({ event: 'recovered-from-journal', blocks, heads, lease });
    return { blocks, heads, lease, ...(dropped ? { dropped } : {}) };
  }

  get journalFile(): string {
    return journalPath(this.stateDir, this.name);
  }

  get snapshotFile(): string {
    return snapshotPath(this.stateDir, this.name);
  }

  close(): void {
    if (!this.stateObj) return;
    if (this.locked) {
      this.state.setWriterPid(0);
      // Closing the fd drops the flock.
    }
    this.journal?.close();
    this.journal = null;
    closeObject(this.stateObj);
    this.stateObj = null;
    this.locked = false;
  }
}
