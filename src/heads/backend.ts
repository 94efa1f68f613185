// The running backend of one pool (`cxl-mhd serve`): owns the writer lock,
// the head sockets, one QMP session per attached QEMU, the attach/refuse/
// detach rules of DESIGN.md §2.1 and §2.3, and re-adoption of heads after a
// backend restart.
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Logger } from 'pino';
import {
  CapacityManager,
  type Delivered,
  type Delivery,
  deliveryFor,
  type GrantView,
  grantsFromJournal,
  unfinishedAdds,
  VIA,
} from '../capacity/index.js';
import { type Channel, FmApiServer, type FmBackend, opcodeHex, serveChannel, ZERO_TAG } from '../fmapi/index.js';
import { dataObjectPath, fmSocketPath, Pool, PoolError, type PoolStatus, poolRunDir, poolStatus, readJournal } from '../pool/index.js';
import { deviceSerial, ldPortOf } from '../qemu/names.js';
import { QmpSession } from '../qmp/index.js';
import { discoverDelivery, discoverWindows, isHotAddedLd, type PoolWindow, windowProblem } from './devices.js';
import { type BackendEvent, type BackendListener, EventBus } from './events.js';
import { type FmldPort, openFmldPort, reattachFmldPort } from './fmld.js';
import { allowedUids, closeServers, listenHeads, listenPrivately, type PeerInfo, peerOf, type SocketAccess } from './listener.js';

export interface BackendOptions {
  pool: string;
  runDir: string;
  stateDir: string;
  /** When given with headCount, a missing pool is created. */
  capacityBytes?: number;
  headCount?: number;
  blockBytes?: number;
  access?: SocketAccess;
  logger: Logger;
  qmpTimeoutMs?: number;
  /**
   * Also serve the FM-API on <run-dir>/<pool>/fm.sock (0600, allowed uids
   * only) for host-side tools and tests. It answers only while the lease
   * owner is attached, exactly as the owner's port would; guests never see it.
   */
  fmSocket?: boolean;
  /** Subscribed before recovery runs, so it also sees what recovery changes while the backend starts. */
  onEvent?: BackendListener;
}

/** What `status --json` shows: the pool and the backend's record of each head. */
export interface BackendSnapshot {
  status: PoolStatus;
  heads: HeadRecord[];
}

export type HeadPhase = 'attaching' | 'attached' | 'refused' | 'detached';

export interface HeadRecord {
  head: number;
  phase: HeadPhase;
  pid: number | null;
  reason: string | null;
  since: string;
  windows: { offset: number; size: number; exclusive: boolean }[];
  fmld: boolean;
  delivery: string | null;
  grants: GrantView[];
}

interface LiveHead {
  head: number;
  pid: number;
  qmp: QmpSession;
  socket: Socket;
  windows: PoolWindow[];
  fmld: FmldPort | null;
  channel: Channel | null;
  delivery: Delivery | null;
  /** Set when the backend itself ends the session (shutdown): no detach then. */
  leaving: boolean;
}

export function headRecordsPath(runDir: string, pool: string): string {
  return join(poolRunDir(runDir, pool), 'heads.json');
}

function pidAlive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

class AttachRefused extends Error {}

export class Backend {
  private servers: Server[] = [];
  private readonly extraServers: Server[] = [];
  private readonly fmClients = new Set<Socket>();
  private readonly live = new Map<number, LiveHead>();
  private readonly records = new Map<number, HeadRecord>();
  private readonly attaching = new Set<Promise<void>>();
  private readonly connecting = new Set<number>();
  private stopping = false;
  private readonly log: Logger;
  private readonly pendingRefresh = new Set<number>();
  private refreshTimer: NodeJS.Immediate | null = null;
  readonly capacity: CapacityManager;
  readonly events: EventBus;
  /** Where the host FM-API socket listens (`fmSocket`), or null. */
  fmSocketPath: string | null = null;
  /** Called when a head finishes attaching or detaching. */
  onChange: (head: number, record: HeadRecord) => void = () => {};

  private constructor(
    readonly opts: BackendOptions,
    readonly pool: Pool,
  ) {
    this.log = opts.logger;
    this.events = new EventBus((e) => this.log.error(`event listener failed: ${(e as Error)?.message ?? String(e)}`));
    if (opts.onEvent) this.events.subscribe(opts.onEvent);
    this.capacity = new CapacityManager(pool, {
      serial: deviceSerial(opts.pool),
      deliveryOf: (head) => this.live.get(head)?.delivery ?? undefined,
      onEvent: (e) => {
        this.events.emit(e);
        this.refreshLater(e.head);
      },
      log: (msg, fields) => this.log.info(fields ?? {}, msg),
    });
  }

  /** Returns the function that unsubscribes. */
  subscribe(listener: BackendListener): () => void {
    return this.events.subscribe(listener);
  }

  snapshot(): BackendSnapshot {
    return { status: poolStatus(this.pool), heads: [...this.records.values()].sort((a, b) => a.head - b.head) };
  }

  private emit(e: BackendEvent): void {
    this.events.emit(e);
  }

  static async start(opts: BackendOptions): Promise<Backend> {
    let pool: Pool;
    if (!Pool.exists(opts.pool) && opts.capacityBytes !== undefined && opts.headCount !== undefined) {
      pool = Pool.create({
        name: opts.pool,
        stateDir: opts.stateDir,
        capacityBytes: opts.capacityBytes,
        headCount: opts.headCount,
        blockBytes: opts.blockBytes ?? 2 * 2 ** 20,
      });
    } else {
      pool = Pool.open({ name: opts.pool, stateDir: opts.stateDir });
      const h = pool.state.header;
      const mismatch =
        (opts.capacityBytes !== undefined && opts.capacityBytes !== h.capacityBytes) ||
        (opts.headCount !== undefined && opts.headCount !== h.headCount) ||
        (opts.blockBytes !== undefined && opts.blockBytes !== h.blockBytes);
      if (mismatch) {
        pool.close();
        throw new PoolError(
          'EXISTS',
          `pool "${opts.pool}" exists with capacity ${h.capacityBytes}, ${h.headCount} heads, ${h.blockBytes}-byte blocks; the options given differ (omit them to serve it as it is)`,
        );
      }
    }
    try {
      pool.lockWriter();
    } catch (e) {
      pool.close();
      throw e;
    }
    const backend = new Backend(opts, pool);
    try {
      backend.recoverFromCrash();
      backend.recoverStaleHeads();
      backend.servers = await listenHeads(
        opts.runDir,
        opts.pool,
        pool.state.headCount,
        opts.access ?? {},
        (head, socket, peer) => backend.accept(head, socket, peer),
        (head, reason) => backend.log.warn({ head }, reason),
      );
    } catch (e) {
      pool.close();
      throw e;
    }
    if (opts.fmSocket) {
      try {
        await backend.listenFmSocket();
      } catch (e) {
        await backend.stop();
        throw e;
      }
    }
    backend.writeRecords();
    return backend;
  }

  private async listenFmSocket(): Promise<void> {
    const path = fmSocketPath(this.opts.runDir, this.opts.pool);
    this.fmSocketPath = path;
    rmSync(path, { force: true });
    const allowed = allowedUids(this.opts.access ?? {});
    const server = createServer((socket) => {
      let uid = -1;
      try {
        uid = peerOf(socket).uid;
      } catch {}
      if (!allowed.has(uid)) {
        socket.destroy();
        this.log.warn(`fm.sock: connection from uid ${uid} refused`);
        return;
      }
      socket.on('error', () => socket.destroy());
      // Tracked so stop() can end them: server.close() waits for every open connection.
      this.fmClients.add(socket);
      socket.once('close', () => this.fmClients.delete(socket));
      const ch = serveChannel(socket, this.fmServer('fm.sock'), {
        isBound: () => {
          const owner = this.pool.state.lease().owner;
          return owner !== null && this.live.has(owner);
        },
      });
      void ch.done.then(() => socket.destroy());
    });
    await listenPrivately(server, path);
    this.extraServers.push(server);
  }

  /**
   * A backend killed mid-operation: shm is put back to what the journal
   * says, and FM adds that never answered are undone, so each operation is
   * either wholly there or not at all.
   */
  private recoverFromCrash(): void {
    const fixed = this.pool.recoverFromJournal();
    if (fixed.blocks || fixed.heads.length || fixed.lease) {
      this.log.warn(fixed, 'shared memory was ahead of the journal (backend killed mid-operation); restored from the journal');
    }
    const state = this.pool.state;
    for (const u of unfinishedAdds(readJournal(this.pool.journalFile))) {
      for (const r of u.ranges) {
        if (state.isAttached(u.head) && state.block(r.first).holders.includes(u.head)) {
          this.pool.release(u.head, r, { kind: 'dynamic', tx: u.tx, rollback: true, recovered: true });
        }
      }
      this.pool.note('fm-add-end', { tx: u.tx, ok: false, recovered: true });
      this.log.warn({ head: u.head, tx: u.tx }, `FM add ${u.tx} to head ${u.head} never answered; undone`);
    }
  }

  /**
   * Heads registered by an earlier backend whose QEMU is gone are detached
   * now; heads whose QEMU still runs wait for it to reconnect (reconnect-ms).
   */
  private recoverStaleHeads(): void {
    for (const h of this.pool.state.heads()) {
      if (!h.attached) continue;
      if (pidAlive(h.pid)) {
        this.log.info({ head: h.id, qemuPid: h.pid }, `head ${h.id}: QEMU pid ${h.pid} still runs; waiting for it to reconnect`);
        this.setRecord(h.id, { phase: 'detached', pid: h.pid, reason: 'waiting for QEMU to reconnect after a backend restart' });
        continue;
      }
      this.log.warn({ head: h.id, qemuPid: h.pid }, `head ${h.id}: QEMU pid ${h.pid} is gone; reclaiming its grants`);
      this.pool.note('stale-head-reclaimed', { head: h.id, pid: h.pid });
      this.detachInShm(h.id);
      this.emit({ kind: 'head-detached', head: h.id, pid: h.pid, reason: `QEMU pid ${h.pid} is gone (found by recovery)` });
    }
    this.freeLeaseIfNoHeads();
  }

  get headCount(): number {
    return this.pool.state.headCount;
  }

  headRecord(head: number): HeadRecord | undefined {
    return this.records.get(head);
  }

  // ---- connection handling ----------------------------------------------

  private accept(head: number, socket: Socket, peer: PeerInfo): void {
    if (this.stopping) {
      socket.destroy();
      return;
    }
    // `connecting` closes the window between accept and the QMP handshake, when `live` has no entry yet.
    if (this.live.has(head) || this.connecting.has(head)) {
      this.log.warn({ head, qemuPid: peer.pid }, `head ${head}: second connection (pid ${peer.pid}) refused, the head is already attached`);
      socket.destroy();
      return;
    }
    this.connecting.add(head);
    const p = this.attach(head, socket, peer).finally(() => {
      this.connecting.delete(head);
      this.attaching.delete(p);
    });
    this.attaching.add(p);
  }

  private async attach(head: number, socket: Socket, peer: PeerInfo): Promise<void> {
    this.setRecord(head, { phase: 'attaching', pid: peer.pid, reason: null });
    socket.resume();
    let qmp: QmpSession;
    try {
      qmp = await QmpSession.open(socket, { commandTimeoutMs: this.opts.qmpTimeoutMs ?? 10_000 });
    } catch (e) {
      socket.destroy();
      const reason = `QMP handshake failed: ${(e as Error).message}`;
      this.setRecord(head, { phase: 'detached', pid: peer.pid, reason });
      this.emit({ kind: 'head-detached', head, pid: peer.pid, reason });
      this.log.warn({ head, qemuPid: peer.pid }, `head ${head}: QMP handshake failed: ${(e as Error).message}`);
      return;
    }
    const entry: LiveHead = { head, pid: peer.pid, qmp, socket, windows: [], fmld: null, channel: null, delivery: null, leaving: false };
    this.live.set(head, entry);
    let guestRunning = false;
    try {
      const status = await qmp.execute<{ running: boolean; status: string }>('query-status');
      guestRunning = status.running;
      const shmHead = this.pool.state.head(head);
      const dataPath = dataObjectPath(this.opts.pool);
      const ours = (await discoverWindows(qmp)).filter((w) => w.memPath === dataPath);
      entry.windows = ours.filter((w) => !isHotAddedLd(w));
      entry.delivery = await this.makeDelivery(qmp, ours);
      if (shmHead.attached && shmHead.pid === peer.pid) {
        await this.readopt(entry, status.running, ours.filter(isHotAddedLd));
      } else {
        if (shmHead.attached) {
          if (pidAlive(shmHead.pid)) {
            throw new AttachRefused(`head ${head} is already attached to QEMU pid ${shmHead.pid}, which is still running`);
          }
          this.pool.note('stale-head-reclaimed', { head, pid: shmHead.pid });
          this.detachInShm(head);
          this.emit({ kind: 'head-detached', head, pid: shmHead.pid, reason: `QEMU pid ${shmHead.pid} is gone` });
        }
        await this.attachFresh(entry);
      }
      qmp.on('RESET', () => {
        this.pool.note('guest-reset', { head });
        void this.capacity.onReset(head).then(() => this.refreshLater(head));
      });
      if (!status.running) await qmp.execute('cont');
      if (this.stopping) return;
      this.setRecord(head, { phase: 'attached', pid: peer.pid, reason: null });
      this.emit({ kind: 'head-attached', head, pid: peer.pid, fmld: entry.fmld !== null, delivery: entry.delivery?.kind ?? null });
      this.log.info(
        { head, qemuPid: peer.pid, fmld: entry.fmld !== null },
        `head ${head}: attached (QEMU pid ${peer.pid})${entry.fmld ? ', FM-LD owner' : ''}`,
      );
      void qmp.closed.then((reason) => this.onSessionEnd(entry, reason.message));
    } catch (e) {
      if (guestRunning && !(e instanceof AttachRefused)) {
        // A running guest is never told to quit over a failed re-adoption: drop the session, QEMU redials and we try again.
        entry.leaving = true;
        this.live.delete(head);
        entry.channel?.close();
        entry.fmld?.close();
        qmp.close();
        const reason = `re-adoption failed, waiting for QEMU to redial: ${(e as Error).message}`;
        this.setRecord(head, { phase: 'detached', pid: peer.pid, reason });
        this.emit({ kind: 'head-detached', head, pid: peer.pid, reason });
        this.log.warn({ head, qemuPid: peer.pid }, `head ${head}: re-adoption failed: ${(e as Error).message}`);
        return;
      }
      await this.refuse(entry, e);
    }
  }

  private async attachFresh(entry: LiveHead): Promise<void> {
    const { head } = entry;
    const header = this.pool.state.header;
    for (const w of entry.windows) {
      const problem = windowProblem(w, header);
      if (problem) throw new AttachRefused(problem);
    }
    this.pool.registerHead(head, entry.pid);
    try {
      for (const w of entry.windows) {
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
      if (this.pool.acquireLease(head)) {
        this.emit({ kind: 'lease-acquired', head, epoch: this.pool.state.lease().epoch });
        this.bindFmld(entry, await openFmldPort(entry.qmp));
      }
    } catch (e) {
      // Nothing is left claimed for a refused head.
      this.detachInShm(head);
      this.freeLeaseIfNoHeads();
      throw e;
    }
  }

  /** The backend restarted under a running QEMU: keep grants and lease, rebind the FM-LD channel. */
  private async readopt(entry: LiveHead, running: boolean, hotAdded: PoolWindow[]): Promise<void> {
    const { head } = entry;
    this.pool.note('head-readopted', { head, pid: entry.pid, running });
    this.ensureWindows(entry);
    await this.adoptGrants(entry, hotAdded);
    if (this.pool.state.lease().owner === head) this.bindFmld(entry, await reattachFmldPort(entry.qmp));
  }

  private async makeDelivery(qmp: QmpSession, windows: PoolWindow[]): Promise<Delivery> {
    const h = this.pool.state.header;
    const dataPath = dataObjectPath(this.opts.pool);
    const cfg = await discoverDelivery(qmp, dataPath, h.capacityBytes, windows);
    return deliveryFor(qmp, cfg, { name: this.opts.pool, dataPath, blockBytes: h.blockBytes });
  }

  /** A backend killed mid-attach may have registered the head without claiming its windows: claim what is missing. */
  private ensureWindows(entry: LiveHead): void {
    const s = this.pool.state;
    for (const w of entry.windows) {
      const r = s.bytesToBlocks(w.offset, w.size);
      if (s.block(r.first).holders.includes(entry.head)) continue;
      this.pool.claim(entry.head, r, { shared: !w.exclusive }, { kind: 'static', recovered: true });
    }
  }

  /**
   * Rebuilds a re-adopted head's grants from the journal and reconciles them
   * with the LDs QEMU really has: a hot-add grant whose device is gone was
   * released while we were down (its blocks are freed now); a device with no
   * grant is left from an add that never answered (it is removed).
   */
  private async adoptGrants(entry: LiveHead, hotAdded: PoolWindow[]): Promise<void> {
    const { head } = entry;
    const h = this.pool.state.header;
    const grants = grantsFromJournal(readJournal(this.pool.journalFile), head, h.blockBytes);
    const hotplug = entry.delivery?.kind === 'hotplug';
    const kept = [];
    for (const g of grants) {
      const ld = hotAdded.find((w) => w.offset === g.offset && w.size === g.len);
      if (hotplug && !ld) {
        this.pool.release(head, this.pool.state.bytesToBlocks(g.offset, g.len), { kind: 'dynamic', tag: g.tag, recovered: true });
        const tag = g.tag === ZERO_TAG ? null : g.tag;
        this.emit({ kind: 'capacity-released', head, offset: g.offset, len: g.len, tag, via: VIA.recovery });
        continue;
      }
      const delivered: Delivered = ld
        ? {
            offset: g.offset,
            len: g.len,
            deviceId: ld.deviceId,
            backendId: ld.backendId,
            port: ldPortOf(ld.deviceId) ?? undefined,
          }
        : { offset: g.offset, len: g.len };
      kept.push({ ...g, delivered });
    }
    for (const w of hotAdded) {
      if (kept.some((g) => g.delivered.deviceId === w.deviceId)) continue;
      this.pool.note('orphan-ld-removed', { head, device: w.deviceId, offset: w.offset, size: w.size });
      // Through the delivery, so its port is free again once QEMU has dropped the device.
      const orphan: Delivered = {
        offset: w.offset,
        len: w.size,
        deviceId: w.deviceId,
        backendId: w.backendId,
        port: ldPortOf(w.deviceId) ?? undefined,
      };
      await entry.delivery?.release(orphan).then(
        ({ gone }) => gone.catch(() => undefined),
        () => undefined,
      );
    }
    if (grants.length > 0) this.capacity.adopt(head, kept);
  }

  /** An FM-API server over the pool whose refusals are logged and journaled with their reasons. */
  private fmServer(via: string): FmApiServer {
    return new FmApiServer(this.fmBackend(via), {
      onInternalError: (e, ctx) => {
        const reason = (e as Error).message ?? String(e);
        this.pool.note('fm-internal-error', { via, opcode: ctx.opcode, reason });
        this.log.error({ opcode: ctx.opcode }, `FM-API ${opcodeHex(ctx.opcode)} via ${via}: internal error: ${reason}`);
      },
      onRefusal: (e, ctx) => {
        this.pool.note('fm-refused', { via, opcode: ctx.opcode, code: e.code, reason: e.message });
        this.log.warn({ opcode: ctx.opcode, code: e.code }, `FM-API ${opcodeHex(ctx.opcode)} via ${via}: ${e.codeName}: ${e.message}`);
      },
    });
  }

  /** The capacity manager as one path sees it; head records are refreshed once a request is done. */
  private fmBackend(via: string): FmBackend {
    const cap = this.capacity.through(via);
    return {
      ...cap,
      initiateAdd: (r) => this.capacity.initiateAdd(r, via).finally(() => this.refreshLater(r.hostId)),
      initiateRelease: (r) => this.capacity.initiateRelease(r, via).finally(() => this.refreshLater(r.hostId)),
    };
  }

  /** Serves the FM-API on the owner's channel; it answers only while bound to the lease owner's current port. */
  private bindFmld(entry: LiveHead, port: FmldPort): void {
    entry.fmld = port;
    const head = entry.head;
    const server = this.fmServer(`head ${head}'s FM-LD port`);
    entry.channel = serveChannel(port.socket, server, {
      isBound: () => this.live.get(head)?.fmld === port && this.pool.state.lease().owner === head,
      onEvent: (ev) => {
        if (ev.type === 'refused' || ev.type === 'reset') {
          this.pool.note(`fmld-${ev.type}`, { head, ...('reason' in ev ? { reason: ev.reason } : {}) });
          this.log.warn({ head }, `FM-LD channel ${ev.type}`);
        }
      },
    });
  }

  private async refuse(entry: LiveHead, e: unknown): Promise<void> {
    const { head, qmp } = entry;
    const reason = e instanceof AttachRefused || e instanceof PoolError ? e.message : `attach failed: ${(e as Error).message ?? String(e)}`;
    entry.leaving = true;
    this.live.delete(head);
    entry.channel?.close();
    entry.fmld?.close();
    // Whatever this attach registered and claimed goes (e.g. QEMU died between the claim and `cont`).
    const shm = this.pool.state.head(head);
    const owned = shm.attached && shm.pid === entry.pid;
    if (owned) {
      this.detachInShm(head);
      this.capacity.forgetHead(head, 'attach-refused');
    }
    this.pool.note('attach-refused', { head, pid: entry.pid, reason });
    this.emit({ kind: 'head-refused', head, pid: entry.pid, reason });
    if (owned) this.freeLeaseIfNoHeads();
    this.setRecord(head, { phase: 'refused', pid: entry.pid, reason });
    this.log.error({ head, qemuPid: entry.pid }, `head ${head}: refused: ${reason}`);
    // The guest never ran (still -S): tell QEMU to quit rather than leave it paused forever.
    await qmp.execute('quit', undefined, { timeoutMs: 2000 }).catch(() => undefined);
    qmp.close();
  }

  private onSessionEnd(entry: LiveHead, why: string): void {
    if (entry.leaving || this.live.get(entry.head) !== entry) return;
    this.live.delete(entry.head);
    entry.channel?.close();
    entry.fmld?.close();
    this.detachInShm(entry.head);
    this.capacity.forgetHead(entry.head, VIA.qemuExit);
    const reason = `QEMU disconnected: ${why}`;
    this.emit({ kind: 'head-detached', head: entry.head, pid: entry.pid, reason });
    this.freeLeaseIfNoHeads();
    this.setRecord(entry.head, { phase: 'detached', pid: entry.pid, reason });
    this.log.info({ head: entry.head, qemuPid: entry.pid }, `head ${entry.head}: detached (${why})`);
  }

  /** Releases everything the head holds and unregisters it (journaled). The lease is not touched. */
  private detachInShm(head: number): void {
    const state = this.pool.state;
    if (state.blocksOf(head).length > 0) this.pool.releaseAll(head);
    if (state.isAttached(head)) this.pool.unregisterHead(head);
  }

  private freeLeaseIfNoHeads(): void {
    const { owner } = this.pool.state.lease();
    if (owner === null) return;
    if (this.pool.state.heads().some((h) => h.attached)) return;
    const epoch = this.pool.state.lease().epoch;
    if (this.pool.releaseLease(owner)) this.emit({ kind: 'lease-released', head: owner, epoch });
    this.log.info({ head: owner }, `FM-LD lease of head ${owner} freed: no head is attached`);
  }

  // ---- records for status ----------------------------------------------

  private setRecord(head: number, r: { phase: HeadPhase; pid: number | null; reason: string | null }): void {
    const entry = this.live.get(head);
    const rec: HeadRecord = {
      head,
      ...r,
      since: new Date().toISOString(),
      windows: (entry?.windows ?? []).map((w) => ({ offset: w.offset, size: w.size, exclusive: w.exclusive })),
      fmld: entry?.fmld != null,
      delivery: entry?.delivery?.kind ?? null,
      grants: this.capacity.view(head),
    };
    this.records.set(head, rec);
    this.writeRecords();
    this.onChange(head, rec);
  }

  /** Capacity changed under a head: its record is rewritten once the current request has finished. */
  private refreshLater(head: number): void {
    this.pendingRefresh.add(head);
    this.refreshTimer ??= setImmediate(() => {
      this.refreshTimer = null;
      const heads = [...this.pendingRefresh];
      this.pendingRefresh.clear();
      if (this.stopping) return;
      for (const h of heads) {
        const rec = this.records.get(h);
        if (rec) this.setRecord(h, { phase: rec.phase, pid: rec.pid, reason: rec.reason });
      }
    });
  }

  private writeRecords(): void {
    const path = headRecordsPath(this.opts.runDir, this.opts.pool);
    const tmp = `${path}.tmp`;
    const body = { pool: this.opts.pool, backendPid: process.pid, heads: [...this.records.values()].sort((a, b) => a.head - b.head) };
    writeFileSync(tmp, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, path);
  }

  // ---- shutdown -----------------------------------------------------------

  /**
   * Stops serving. Attached QEMUs keep running and keep their grants: they
   * reconnect to the next backend, which re-adopts them.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.refreshTimer) clearImmediate(this.refreshTimer);
    await Promise.allSettled([...this.attaching]);
    for (const entry of this.live.values()) {
      entry.leaving = true;
      entry.channel?.close();
      entry.qmp.close();
      entry.fmld?.close();
    }
    this.live.clear();
    for (const s of this.fmClients) s.destroy();
    await Promise.all(this.extraServers.map((s) => new Promise((r) => s.close(r))));
    await closeServers(this.servers, this.opts.runDir, this.opts.pool, this.pool.state.headCount);
    this.pool.close();
  }
}
