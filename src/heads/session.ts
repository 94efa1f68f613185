// One head's session: a QEMU that dialled head<N>.sock, from the QMP
// handshake to its end, as an explicit state machine. Attach rules (see
// docs): a fresh head is refused unless every static window is acceptable
// and free; a head the journal says is still this QEMU's is re-adopted
// (grants and lease kept); a running guest is never told to quit, a paused
// one that is refused is.
//
//   handshake ─► discovering ─► claiming ───► resuming ─► attached ─► detached
//       │             │            │              │           │
//       │             └► readopting┘              │           └──► closed (backend stops)
//       ▼                  (any step before attached) ─► refused | dropped | closed
//    dropped
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { CapacityManager, Delivery } from '../capacity/index.js';
import { deliveryFor } from '../capacity/index.js';
import type { Channel } from '../fmapi/index.js';
import { dataObjectPath, type Pool, PoolError } from '../pool/index.js';
import { QmpSession } from '../qmp/index.js';
import {
  discoverDelivery,
  discoverWindows,
  fileIdOf,
  isHotAddedLd,
  type PoolWindow,
  QEMU_ARGS_OBJECTS,
  type QomSnapshot,
  readQom,
  sameFile,
  windowProblem,
} from './devices.js';
import type { BackendEvent } from './events.js';
import { type FmldPort, hasFmldPort, openFmldPort, reattachFmldPort, removeFmldPort } from './fmld.js';
import type { PeerInfo } from './listener.js';
import { adoptGrants, ensureWindows, pidAlive, type RecoveryHost } from './recovery.js';

export type SessionState =
  /** Connected; waiting for QEMU's QMP greeting. */
  | 'handshake'
  /** Reading the VM's devices: windows of this pool, delivery kind. */
  | 'discovering'
  /** A fresh head: registering it and claiming its static windows (and the lease, if free). */
  | 'claiming'
  /** The backend restarted under this QEMU: keeping its grants and lease, rebinding the FM-LD. */
  | 'readopting'
  /** Everything is in place; telling QEMU to run (`cont`). */
  | 'resuming'
  | 'attached'
  /** Refused: nothing of it stays claimed; a paused VM was told to quit. */
  | 'refused'
  /** Given up without a refusal (handshake or re-adoption failed); QEMU redials. */
  | 'dropped'
  /** QEMU went away; its grants were released. */
  | 'detached'
  /** The backend stopped; QEMU keeps running and its grants, for the next backend. */
  | 'closed';

const TRANSITIONS: Record<SessionState, readonly SessionState[]> = {
  handshake: ['discovering', 'dropped', 'closed'],
  discovering: ['claiming', 'readopting', 'refused', 'dropped', 'closed'],
  claiming: ['resuming', 'refused', 'dropped', 'closed'],
  readopting: ['resuming', 'refused', 'dropped', 'closed'],
  resuming: ['attached', 'refused', 'dropped', 'closed'],
  attached: ['detached', 'closed'],
  refused: [],
  dropped: [],
  detached: [],
  closed: [],
};

/** What a session needs from the daemon that runs it. */
export interface SessionHost extends RecoveryHost {
  readonly poolName: string;
  readonly qmpTimeoutMs: number;
  /** Sessions with a QMP connection, by head: the daemon's registry. */
  readonly live: Map<number, HeadSession>;
  stopping(): boolean;
  /** Serves the FM-API on the lease owner's FM-LD port. */
  bindFmld(session: HeadSession, port: FmldPort): Channel;
  /** Heads whose attach is under way (this one included). */
  attachesUnderWay(): number;
}

/** The refusal of an attach, with the reason the operator reads. */
class AttachRefused extends Error {}

export class HeadSession {
  private current: SessionState = 'handshake';
  qmp: QmpSession | null = null;
  windows: PoolWindow[] = [];
  fmld: FmldPort | null = null;
  channel: Channel | null = null;
  delivery: Delivery | null = null;
  private readonly log: Logger;

  constructor(
    private readonly host: SessionHost,
    readonly head: number,
    private readonly socket: Socket,
    readonly peer: PeerInfo,
  ) {
    this.log = host.log;
  }

  get state(): SessionState {
    return this.current;
  }

  get pid(): number {
    return this.peer.pid;
  }

  private to(next: SessionState): void {
    if (!TRANSITIONS[this.current].includes(next)) throw new Error(`head ${this.head}: session cannot go from ${this.current} to ${next}`);
    this.current = next;
  }

  private get pool(): Pool {
    return this.host.pool;
  }

  private get capacity(): CapacityManager {
    return this.host.capacity;
  }

  private emit(e: BackendEvent): void {
    this.host.emit(e);
  }

  /** Runs the attach; resolves when the session is attached or over. */
  async run(): Promise<void> {
    const { head, pid } = this;
    this.host.setRecord(head, { phase: 'attaching', pid, reason: null });
    this.socket.resume();
    let qmp: QmpSession;
    // Sent right behind qmp_capabilities, in its round trip: whether the guest runs, and QOM (read ahead for
    // the static window a VM made by `cxl-mhd qemu-args` has; discovery still reads whatever else QOM lists).
    let discovered: Promise<QomSnapshot>;
    let queried: Promise<{ running: boolean; status: string }>;
    try {
      qmp = await QmpSession.open(this.socket, { commandTimeoutMs: this.host.qmpTimeoutMs, pipelineCapabilities: true });
      discovered = readQom(qmp, QEMU_ARGS_OBJECTS);
      queried = qmp.execute<{ running: boolean; status: string }>('query-status');
      for (const p of [discovered, queried]) p.catch(() => undefined);
      await qmp.negotiated.catch((e) => {
        qmp.close();
        throw e;
      });
    } catch (e) {
      this.socket.destroy();
      this.to('dropped');
      const reason = `QMP handshake failed: ${(e as Error).message}`;
      this.host.setRecord(head, { phase: 'detached', pid, reason });
      this.emit({ kind: 'head-detached', head, pid, reason });
      this.log.warn({ head, qemuPid: pid }, `head ${head}: ${reason}`);
      return;
    }
    this.qmp = qmp;
    this.to('discovering');
    this.host.live.set(head, this);
    let guestRunning = false;
    try {
      // Whether the guest runs is known before any discovery failure is handled.
      const status = await queried;
      guestRunning = status.running;
      const qom = await discovered;
      const shmHead = this.pool.state.head(head);
      const dataPath = dataObjectPath(this.host.poolName);
      // The pool is a file, not a spelling: `/dev/shm//x`, a link or a relative path map it just as well.
      const poolFile = fileIdOf(dataPath, process.pid);
      const isPool = (memPath: string) => sameFile(fileIdOf(memPath, pid), poolFile);
      const ours = (await discoverWindows(qmp, qom)).filter((w) => isPool(w.memPath));
      const fresh = !(shmHead.attached && shmHead.pid === pid);
      // Only a re-adopted VM has hot-added LDs we made; on a fresh one every device over the pool is a window to claim or refuse, whatever its id.
      this.windows = fresh ? ours : ours.filter((w) => !isHotAddedLd(w));
      const h = this.pool.state.header;
      const cfg = await discoverDelivery(qmp, isPool, h.capacityBytes, ours, qom);
      this.delivery = deliveryFor(qmp, cfg, { name: this.host.poolName, dataPath, blockBytes: h.blockBytes, head });
      // Handed to capacity now, not at `attached`: re-adoption finishes answered releases through it.
      this.capacity.registerDelivery(head, this.delivery);
      if (!fresh) {
        this.to('readopting');
        await this.readopt(status.running, ours.filter(isHotAddedLd));
      } else {
        if (shmHead.attached) {
          if (pidAlive(shmHead.pid)) {
            throw new AttachRefused(`head ${head} is already attached to QEMU pid ${shmHead.pid}, which is still running`);
          }
          this.pool.note({ event: 'stale-head-reclaimed', head, pid: shmHead.pid });
          this.host.detachInShm(head);
          this.emit({ kind: 'head-detached', head, pid: shmHead.pid, reason: `QEMU pid ${shmHead.pid} is gone` });
        }
        this.to('claiming');
        await this.claim();
      }
      qmp.on('RESET', () => {
        this.pool.note({ event: 'guest-reset', head });
        void this.capacity.onReset(head);
      });
      this.to('resuming');
      // What the attach journaled is on disk before its guest runs or anyone hears it attached;
      // with other heads attaching, its fdatasync leaves the loop to them (docs/performance.md).
      await this.pool.durable({ offLoop: this.host.attachesUnderWay() > 1 });
      if (!status.running) await qmp.execute('cont');
      if (this.host.stopping()) return;
      this.to('attached');
      this.host.setRecord(head, { phase: 'attached', pid, reason: null });
      this.emit({ kind: 'head-attached', head, pid, fmld: this.fmld !== null, delivery: this.delivery?.kind ?? null });
      this.log.info(
        { head, qemuPid: pid, fmld: this.fmld !== null },
        `head ${head}: attached (QEMU pid ${pid})${this.fmld ? ', FM-LD owner' : ''}`,
      );
      void qmp.closed.then((reason) => this.detach(reason.message));
    } catch (e) {
      if (guestRunning && !(e instanceof AttachRefused)) {
        // A running guest is never told to quit over a failed re-adoption: drop the session, QEMU redials and we try again.
        this.to('dropped');
        this.release();
        qmp.close();
        const reason = `re-adoption failed, waiting for QEMU to redial: ${(e as Error).message}`;
        this.host.setRecord(head, { phase: 'detached', pid, reason });
        this.emit({ kind: 'head-detached', head, pid, reason });
        this.log.warn({ head, qemuPid: pid }, `head ${head}: re-adoption failed: ${(e as Error).message}`);
        return;
      }
      await this.refuse(e);
    }
  }

  /** A fresh head: its static windows are checked and claimed; the first head also takes the lease and the FM-LD. */
  private async claim(): Promise<void> {
    const { head } = this;
    const header = this.pool.state.header;
    for (const w of this.windows) {
      const problem = windowProblem(w, header);
      if (problem) throw new AttachRefused(problem);
    }
    // Nothing is left claimed for a refused head.
    const undo = () => {
      this.host.detachInShm(head);
      this.host.freeLeaseIfNoHeads();
    };
    // One durable write for the whole claim (register, windows, lease), not one per step.
    const lease = this.pool.batch(() => {
      this.pool.registerHead(head, this.pid);
      try {
        this.claimWindows();
        return this.pool.acquireLease(head);
      } catch (e) {
        undo();
        throw e;
      }
    });
    if (!lease) return;
    this.emit({ kind: 'lease-acquired', head, epoch: this.pool.state.lease().epoch });
    try {
      this.bindFmld(await openFmldPort(this.requireQmp()));
    } catch (e) {
      undo();
      throw e;
    }
  }

  private claimWindows(): void {
    const { head } = this;
    for (const w of this.windows) {
      const range = this.pool.state.bytesToBlocks(w.offset, w.size);
      try {
        this.pool.claim(head, range, { shared: !w.exclusive });
      } catch (e) {
        if (e instanceof PoolError && e.code === 'CONFLICT') {
          const holders = (e.detail.holders as number[] | undefined) ?? [];
          throw new AttachRefused(
            `its ${w.exclusive ? 'exclusive' : 'shared'} window at pool offset ${w.offset} (size ${w.size}) conflicts with ${
              e.detail.sharedHolder ? 'a shared' : 'an exclusive'
            } grant of head${holders.length > 1 ? 's' : ''} ${holders.join(', ')}`,
          );
        }
        throw e;
      }
    }
  }

  /** The backend restarted under a running QEMU: keep grants and lease, rebind the FM-LD channel. */
  private async readopt(running: boolean, hotAdded: PoolWindow[]): Promise<void> {
    const { head } = this;
    this.pool.note({ event: 'head-readopted', head, pid: this.pid, running });
    ensureWindows(this.pool, head, this.windows);
    await adoptGrants(this.host, head, this.delivery, hotAdded);
    if (this.pool.state.lease().owner === head) this.bindFmld(await reattachFmldPort(this.requireQmp()));
    // The lease moved away while this VM was not connected (a takeover): fence it now.
    else if (await hasFmldPort(this.requireQmp())) {
      await removeFmldPort(this.requireQmp());
      this.pool.note({ event: 'fmld-fenced', head, reason: 'not the lease owner when re-adopted' });
    }
  }

  /** Takeover, new owner: gives this VM the FM-LD port (one left from an earlier ownership is reused). */
  async becomeOwner(): Promise<void> {
    this.bindFmld(await reattachFmldPort(this.requireQmp()));
  }

  /**
   * Takeover, old owner: removes its FM-LD port from its QEMU, then closes
   * our end; from then on its channel answers nothing. If QEMU refuses,
   * nothing has changed.
   */
  async fence(reason: string): Promise<void> {
    await removeFmldPort(this.requireQmp());
    this.channel?.close();
    this.fmld?.close();
    this.channel = null;
    this.fmld = null;
    this.pool.note({ event: 'fmld-fenced', head: this.head, reason });
  }

  private bindFmld(port: FmldPort): void {
    this.fmld = port;
    this.channel = this.host.bindFmld(this, port);
  }

  private requireQmp(): QmpSession {
    if (!this.qmp) throw new Error(`head ${this.head}: no QMP session`);
    return this.qmp;
  }

  private async refuse(e: unknown): Promise<void> {
    const { head, pid } = this;
    const reason = e instanceof AttachRefused || e instanceof PoolError ? e.message : `attach failed: ${(e as Error).message ?? String(e)}`;
    this.to('refused');
    this.release();
    // Whatever this attach registered and claimed goes (e.g. QEMU died between the claim and `cont`).
    const shm = this.pool.state.head(head);
    const registered = shm.attached && shm.pid === pid;
    if (registered) {
      this.host.detachInShm(head);
      this.capacity.forgetHead(head, 'attach-refused');
    }
    this.pool.note({ event: 'attach-refused', head, pid, reason });
    this.emit({ kind: 'head-refused', head, pid, reason });
    if (registered) this.host.freeLeaseIfNoHeads();
    this.host.setRecord(head, { phase: 'refused', pid, reason });
    this.log.error({ head, qemuPid: pid }, `head ${head}: refused: ${reason}`);
    // The guest never ran (still -S): tell QEMU to quit rather than leave it paused forever.
    await this.qmp?.execute('quit', undefined, { timeoutMs: 2000 }).catch(() => undefined);
    this.qmp?.close();
  }

  /** QEMU's connection ended: its grants go, and the lease if no head is left. */
  private detach(why: string): void {
    if (this.current !== 'attached' || this.host.live.get(this.head) !== this) return;
    const { head, pid } = this;
    this.to('detached');
    this.release();
    this.host.detachInShm(head);
    this.capacity.forgetHead(head, 'qemu-exit');
    this.delivery?.dispose();
    const reason = `QEMU disconnected: ${why}`;
    this.emit({ kind: 'head-detached', head, pid, reason });
    this.host.freeLeaseIfNoHeads();
    this.host.setRecord(head, { phase: 'detached', pid, reason });
    this.log.info({ head, qemuPid: pid }, `head ${head}: detached (${why})`);
  }

  /** The backend stops: the session ends, QEMU keeps running and keeps its grants. */
  close(): void {
    if (TRANSITIONS[this.current].includes('closed')) this.to('closed');
    this.release();
    this.qmp?.close();
    this.socket.destroy();
  }

  /** Leaves the daemon's registry, takes its delivery back from capacity and closes the FM-LD channel. */
  private release(): void {
    if (this.host.live.get(this.head) === this) {
      this.host.live.delete(this.head);
      this.capacity.unregisterDelivery(this.head);
    }
    this.channel?.close();
    this.fmld?.close();
  }
}
