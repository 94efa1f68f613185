// The running backend of one pool (`cxl-mhd serve`): owns the writer lock,
// the listeners (head sockets, fm.sock and control.sock, all through
// listener.ts's one uid-checked gate), lease takeover, the sessions of
// attached heads (session.ts), the FM-API wiring, the event bus and the head records. Recovery runs before it
// listens (recovery.ts).
import { rmSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { CapacityManager } from '../capacity/index.js';
import { UsageError } from '../errors/index.js';
import { type Channel, FmApiServer, type FmBackend, inProcessChannel, opcodeHex, serveChannel } from '../fmapi/index.js';
import { DEFAULT_BLOCK_BYTES, fmSocketPath, Pool, poolStatus } from '../pool/index.js';
import { deviceSerial, peripheralPath, STATIC_DEVICE_ID } from '../qemu/index.js';
import { type ControlReply, listenControl } from './control.js';
import { type BackendEvent, type BackendListener, EventBus } from './events.js';
import type { FmldPort } from './fmld.js';
import { type InjectRequest, injectEvent } from './inject.js';
import { allowedUids, closeServers, listenAllowed, listenHeads, type PeerInfo, type SocketAccess } from './listener.js';
import { type HeadRecord, HeadRecords, type RecordState } from './records.js';
import { recoverFromCrash, recoverStaleHeads } from './recovery.js';
import { HeadSession, type SessionHost } from './session.js';
import { composeStatus, type Status } from './status.js';

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
  /** Start even if the journal lacks answered lines (`--accept-journal-loss`); Pool.lockWriter. */
  acceptJournalLoss?: boolean;
  /** Subscribed before recovery runs, so it also sees what recovery changes while the backend starts. */
  onEvent?: BackendListener;
}

/** The running backend's view: the pool's status (the one `status` shows) and its record of each head. */
export interface BackendSnapshot {
  status: Status;
  heads: HeadRecord[];
}

/** How long head records may lag a capacity change (they are rewritten once per burst). */
const RECORD_REFRESH_MS = 20;

/**
 * The FM-API backend whose every answer, Success or refusal, is sent only
 * once the journal lines written before it are on disk (Pool.groupCommit):
 * an FM client never hears of a change a crash could still take back. A
 * failed fdatasync answers Internal Error.
 */
function answerDurably(b: FmBackend, durable: () => Promise<void>): FmBackend {
  const out: Record<string, unknown> = {};
  for (const [key, method] of Object.entries(b) as [string, (req: unknown) => unknown][]) {
    out[key] = async (req: unknown) => {
      try {
        return await method.call(b, req);
      } finally {
        await durable();
      }
    };
  }
  return out as FmBackend;
}

function openPool(opts: BackendOptions): Pool {
  if (!Pool.exists(opts.pool) && opts.capacityBytes !== undefined && opts.headCount !== undefined) {
    return Pool.create({
      name: opts.pool,
      stateDir: opts.stateDir,
      capacityBytes: opts.capacityBytes,
      headCount: opts.headCount,
      blockBytes: opts.blockBytes ?? DEFAULT_BLOCK_BYTES,
    });
  }
  const pool = Pool.open({ name: opts.pool, stateDir: opts.stateDir });
  const h = pool.state.header;
  const mismatch =
    (opts.capacityBytes !== undefined && opts.capacityBytes !== h.capacityBytes) ||
    (opts.headCount !== undefined && opts.headCount !== h.headCount) ||
    (opts.blockBytes !== undefined && opts.blockBytes !== h.blockBytes);
  if (mismatch) {
    pool.close();
    throw new UsageError(
      `pool "${opts.pool}" exists with capacity ${h.capacityBytes}, ${h.headCount} heads, ${h.blockBytes}-byte blocks; the options given differ (omit them to serve it as it is)`,
    );
  }
  return pool;
}

export class Backend implements SessionHost {
  private servers: Server[] = [];
  private fmServer: Server | null = null;
  private controlServer: Server | null = null;
  private readonly fmClients = new Set<Duplex>();
  readonly live = new Map<number, HeadSession>();
  private readonly attaching = new Set<Promise<void>>();
  private readonly connecting = new Set<number>();
  private isStopping = false;
  private readonly pendingRefresh = new Set<number>();
  private refreshTimer: NodeJS.Timeout | null = null;
  private readonly records: HeadRecords;
  readonly log: Logger;
  readonly capacity: CapacityManager;
  readonly events: EventBus;
  /** Where the host FM-API socket listens (`fmSocket`), or null. */
  fmSocketPath: string | null = null;
  /** Called whenever a head's record changes (attaching, attached, refused, detached, grants). */
  onChange: (head: number, record: HeadRecord) => void = () => {};

  private constructor(
    readonly opts: BackendOptions,
    readonly pool: Pool,
  ) {
    this.log = opts.logger;
    this.records = new HeadRecords(
      opts.runDir,
      opts.pool,
      (r) => this.onChange(r.head, r),
      (e) => this.log.warn(`heads.json not written: ${e.message}`),
    );
    this.events = new EventBus((e) => this.log.error(`event listener failed: ${(e as Error)?.message ?? String(e)}`));
    if (opts.onEvent) this.events.subscribe(opts.onEvent);
    this.capacity = new CapacityManager(pool, {
      serial: deviceSerial(opts.pool),
      onEvent: (e) => this.events.emit(e),
      // The one trigger for rewriting a head's record after capacity moved: requests and resets leave it to this.
      onGrantsChanged: (head) => this.refreshLater(head),
      log: (msg, fields) => this.log.info(fields ?? {}, msg),
    });
  }

  static async start(opts: BackendOptions): Promise<Backend> {
    const pool = openPool(opts);
    try {
      pool.lockWriter({ acceptJournalLoss: opts.acceptJournalLoss === true });
    } catch (e) {
      pool.close();
      throw e;
    }
    // The event loop never waits for the disk; every answer waits for what it reports (answerDurably).
    pool.groupCommit();
    const backend = new Backend(opts, pool);
    try {
      recoverFromCrash(backend);
      recoverStaleHeads(backend);
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
    try {
      backend.controlServer = await listenControl(
        opts.runDir,
        opts.pool,
        async (req) => {
          const reply = await (req.op === 'inject' ? backend.inject(req.head, req) : backend.takeLease(req.head, req.force));
          await pool.durable();
          return reply;
        },
        (reason) => backend.log.warn(`control.sock: ${reason}`),
      );
      if (opts.fmSocket) await backend.listenFmSocket();
    } catch (e) {
      await backend.stop();
      throw e;
    }
    backend.records.write();
    return backend;
  }

  // ---- public surface -------------------------------------------------------

  get headCount(): number {
    return this.pool.state.headCount;
  }

  headRecord(head: number): HeadRecord | undefined {
    return this.records.get(head);
  }

  /** Returns the function that unsubscribes. */
  subscribe(listener: BackendListener): () => void {
    return this.events.subscribe(listener);
  }

  snapshot(): BackendSnapshot {
    // Grants are read live: the records file is refreshed a little after each change (refreshLater).
    const heads = this.records.all().map((r) => ({ ...r, grants: this.capacity.view(r.head) }));
    return { status: composeStatus(poolStatus(this.pool), heads, null), heads };
  }

  // ---- listeners --------------------------------------------------------------

  private accept(head: number, socket: Socket, peer: PeerInfo): void {
    if (this.isStopping) {
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
    const p = new HeadSession(this, head, socket, peer).run().finally(() => {
      this.connecting.delete(head);
      this.attaching.delete(p);
    });
    this.attaching.add(p);
  }

  private async listenFmSocket(): Promise<void> {
    const path = fmSocketPath(this.opts.runDir, this.opts.pool);
    // Left by a killed backend; we hold the writer lock, so no other backend serves it.
    rmSync(path, { force: true });
    this.fmServer = await listenAllowed(
      path,
      allowedUids(this.opts.access ?? {}),
      (socket) => {
        socket.on('error', () => socket.destroy());
        // Tracked so stop() can end them: server.close() waits for every open connection.
        this.fmClients.add(socket);
        socket.once('close', () => this.fmClients.delete(socket));
        const ch = serveChannel(socket, this.fmApi('fm.sock'), { isBound: () => this.fmBound() });
        socket.resume();
        void ch.done.then(() => socket.destroy());
      },
      (reason) => this.log.warn(`fm.sock: ${reason}`),
    );
    this.fmSocketPath = path;
  }

  /**
   * An FM-API channel inside this process, for the northbound: the same
   * FmApiServer (through `via`), codecs and lease rule as fm.sock, without a
   * socket. Returns the client's end; it ends when the backend stops.
   */
  fmChannel(via: string): Duplex {
    const { client } = inProcessChannel(this.fmApi(via), { isBound: () => this.fmBound() });
    this.fmClients.add(client);
    client.once('close', () => this.fmClients.delete(client));
    return client;
  }

  /** fm.sock and the in-process channel answer while the lease owner is attached. */
  private fmBound(): boolean {
    const owner = this.pool.state.lease().owner;
    return owner !== null && this.live.has(owner);
  }

  // ---- FM-API -------------------------------------------------------------------

  /** An FM-API server for one path, whose refusals are logged and journaled with their reasons. */
  private fmApi(via: string): FmApiServer {
    return new FmApiServer(
      answerDurably(this.capacity.through(via), () => this.pool.durable()),
      {
        onInternalError: (e, ctx) => {
          const reason = (e as Error).message ?? String(e);
          this.pool.note({ event: 'fm-internal-error', via, opcode: ctx.opcode, reason });
          this.log.error({ opcode: ctx.opcode }, `FM-API ${opcodeHex(ctx.opcode)} via ${via}: internal error: ${reason}`);
        },
        onRefusal: (e, ctx) => {
          // A refusal changed nothing: its note need not hold the answer until the disk has it.
          this.pool.note({ event: 'fm-refused', via, opcode: ctx.opcode, code: e.code, reason: e.message }, { sync: false });
          this.log.warn({ opcode: ctx.opcode, code: e.code }, `FM-API ${opcodeHex(ctx.opcode)} via ${via}: ${e.codeName}: ${e.message}`);
        },
      },
    );
  }

  /** Serves the FM-API on the owner's channel; it answers only while bound to the lease owner's current port. */
  bindFmld(session: HeadSession, port: FmldPort): Channel {
    const { head } = session;
    return serveChannel(port.socket, this.fmApi(`head ${head}'s FM-LD port`), {
      isBound: () => this.live.get(head)?.fmld === port && this.pool.state.lease().owner === head,
      onEvent: (ev) => {
        if (ev.type === 'refused' || ev.type === 'reset') {
          this.pool.note(ev.type === 'refused' ? { event: 'fmld-refused', head } : { event: 'fmld-reset', head, reason: ev.reason });
          this.log.warn({ head }, `FM-LD channel ${ev.type}`);
        }
      },
    });
  }

  // ---- lease takeover ------------------------------------------------------------

  /**
   * Moves the FM-LD lease to `head` (`cxl-mhd lease takeover`, docs/security.md).
   * Refused while the owner is attached unless forced. The old owner is
   * fenced first (its port leaves its QEMU), then the lease moves with a new
   * epoch (shm + journal), then the new owner gets its port. A failure
   * before the journal line changes nothing; fm.sock follows the lease.
   */
  /** `cxl-mhd inject`: one CXL event record into attached head `head`'s type-3 device (inject.ts). */
  async inject(head: number, req: InjectRequest): Promise<ControlReply> {
    const session = this.live.get(head);
    if (session?.state !== 'attached' || !session.qmp) return { ok: false, error: `head ${head} is not attached` };
    // The head's own device (its static window, or its DC region); hot-added LDs come and go.
    const own = session.delivery?.kind === 'dcd' || session.windows.some((w) => w.deviceId === STATIC_DEVICE_ID);
    if (!own) return { ok: false, error: `head ${head} has no type-3 device of its own to carry the record (started without --static)` };
    const path = peripheralPath(STATIC_DEVICE_ID);
    return { ok: true, message: await injectEvent(session.qmp, head, path, req) };
  }

  async takeLease(head: number, force: boolean): Promise<ControlReply> {
    const state = this.pool.state;
    if (head >= state.headCount)
      return { ok: false, error: `head ${head} does not exist: pool "${this.opts.pool}" has heads 0..${state.headCount - 1}` };
    const target = this.live.get(head);
    if (target?.state !== 'attached')
      return { ok: false, error: `head ${head} is not attached; the FM-LD lease goes only to an attached head` };
    const { owner, epoch: oldEpoch } = state.lease();
    if (owner === head) return { ok: false, error: `head ${head} already owns the FM-LD (epoch ${oldEpoch})` };
    const old = owner === null ? undefined : this.live.get(owner);
    const ownerAttached = old?.state === 'attached';
    if (ownerAttached && !force) {
      return {
        ok: false,
        error: `head ${owner} owns the FM-LD and is attached; add --force to fence it and give the lease to head ${head}`,
      };
    }
    if (old?.qmp) await old.fence(`lease taken over by head ${head}${force ? ' (forced)' : ''}`);
    const epoch = this.pool.takeLease(owner, head, force);
    if (owner !== null) this.emit({ kind: 'lease-released', head: owner, epoch: oldEpoch });
    this.emit({ kind: 'lease-acquired', head, epoch });
    this.log.warn(
      { head, from: owner, epoch, force },
      `FM-LD lease moved from ${owner === null ? 'nobody' : `head ${owner}`} to head ${head} (epoch ${epoch})`,
    );
    let portProblem: string | null = null;
    try {
      await target.becomeOwner();
    } catch (e) {
      portProblem = (e as Error).message;
      this.log.error({ head }, `head ${head}: FM-LD port not added: ${portProblem}`);
    }
    for (const h of [owner, head]) {
      const rec = h === null ? undefined : this.records.get(h);
      if (h !== null && rec) this.setRecord(h, { phase: rec.phase, pid: rec.pid, reason: rec.reason });
    }
    const from = owner === null ? 'nobody' : `head ${owner}${old?.qmp ? ' (fenced: its FM-LD port was removed)' : ' (detached)'}`;
    const detail = { from: owner, to: head, epoch, fenced: old?.qmp != null, port: portProblem === null };
    if (portProblem)
      return {
        ok: false,
        error: `the lease moved to head ${head} (epoch ${epoch}), but its FM-LD port could not be added: ${portProblem}`,
      };
    return { ok: true, message: `FM-LD lease moved from ${from} to head ${head}, epoch ${epoch}`, detail };
  }

  // ---- what sessions and recovery share ---------------------------------------
  // (the SessionHost / RecoveryHost side of Backend; callers outside heads/ use the public surface above)

  emit(e: BackendEvent): void {
    this.events.emit(e);
  }

  stopping(): boolean {
    return this.isStopping;
  }

  attachesUnderWay(): number {
    return this.connecting.size;
  }

  get poolName(): string {
    return this.opts.pool;
  }

  get qmpTimeoutMs(): number {
    return this.opts.qmpTimeoutMs ?? 10_000;
  }

  detachInShm(head: number): void {
    const state = this.pool.state;
    if (state.blocksOf(head).length > 0) this.pool.releaseAll(head);
    if (state.isAttached(head)) this.pool.unregisterHead(head);
  }

  freeLeaseIfNoHeads(): void {
    const { owner, epoch } = this.pool.state.lease();
    if (owner === null) return;
    if (this.pool.state.heads().some((h) => h.attached)) return;
    if (this.pool.releaseLease(owner)) this.emit({ kind: 'lease-released', head: owner, epoch });
    this.log.info({ head: owner }, `FM-LD lease of head ${owner} freed: no head is attached`);
  }

  // ---- head records -------------------------------------------------------------

  setRecord(head: number, r: RecordState): void {
    const session = this.live.get(head);
    this.records.set({
      head,
      ...r,
      since: new Date().toISOString(),
      windows: (session?.windows ?? []).map((w) => ({ offset: w.offset, size: w.size, exclusive: w.exclusive })),
      fmld: session?.fmld != null,
      delivery: session?.delivery?.kind ?? null,
      grants: this.capacity.view(head),
    });
  }

  /**
   * Capacity changed under a head (the manager said so): its record is
   * rewritten a little later, once for a burst of requests. heads.json is a
   * status file (not durable state) and rewriting it costs more than a DCD
   * add itself once a head holds many grants, so it stays off the answer path.
   */
  private refreshLater(head: number): void {
    this.pendingRefresh.add(head);
    this.refreshTimer ??= setTimeout(() => {
      this.refreshTimer = null;
      const heads = [...this.pendingRefresh];
      this.pendingRefresh.clear();
      if (this.isStopping) return;
      for (const h of heads) {
        const rec = this.records.get(h);
        if (rec) this.setRecord(h, { phase: rec.phase, pid: rec.pid, reason: rec.reason });
      }
      void this.records.flush();
    }, RECORD_REFRESH_MS);
  }

  // ---- shutdown -----------------------------------------------------------------

  /**
   * Stops serving. Attached QEMUs keep running and keep their grants: they
   * reconnect to the next backend, which re-adopts them.
   */
  async stop(): Promise<void> {
    if (this.isStopping) return;
    this.isStopping = true;
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    await Promise.allSettled([...this.attaching]);
    for (const session of [...this.live.values()]) session.close();
    this.live.clear();
    for (const s of this.fmClients) s.destroy();
    const fm = this.fmServer;
    if (fm) await new Promise((r) => fm.close(r));
    const control = this.controlServer;
    if (control) await new Promise((r) => control.close(r));
    await this.records.flush();
    await closeServers(this.servers, this.opts.runDir, this.opts.pool, this.pool.state.headCount);
    this.pool.close();
  }
}
