// CapacityManager is the FM-API's view of the pool (the FmBackend): it
// answers the informational commands from the pool and the attached heads,
// and turns Initiate DC Add/Release into block claims (all-or-nothing,
// journaled) plus deliveries to the head's QEMU. It owns the per-head list
// of grants (extents) and their generation numbers, and the deliveries of
// the attached heads, which each head's session hands it (registerDelivery)
// and takes back when it ends: the manager never looks a head up. The add
// and the start of a release are initiate.ts's, the end of a release
// release.ts's, the tag rules of shared allocations allocations.ts's, FM
// references references.ts's, the region's settings region.ts's, and every
// block that goes back to the free set passes through r32.returnBlocks
// (sanitize.ts).
import {
  type AddRequest,
  type DcdInfoResponse,
  DsmasFlag,
  type Extent,
  type ExtentListRequest,
  type ExtentListResponse,
  type FmBackend,
  FmError,
  type HeadInfoRequest,
  type HeadInfoResponse,
  type IdentifyInfo,
  type MhdInfoRequest,
  type MhdInfoResponse,
  type ReferenceRequest,
  type RegionConfigRequest,
  type RegionConfigResponse,
  type ReleaseRequest,
  ReturnCode,
  type SetRegionConfigRequest,
  type TagListRequest,
  type TagListResponse,
  ZERO_TAG,
} from '../fmapi/index.js';
import type { Pool } from '../pool/index.js';
import type { AllocationView } from './allocation-view.js';
import { TagRegistry } from './allocations.js';
import type { Delivery, Departure, Piece } from './delivery.js';
import { type CapacityEvent, type Grant, type GrantView, tagOrNull, VIA } from './grants.js';
import { dcdInfo, headInfo, identifyInfo, mhdInfo } from './info.js';
import { addCapacity, type Ledger, startRelease } from './initiate.js';
import { type KeptView, R32Commands } from './references.js';
import { DEFAULT_SETTLE, ReleaseSettler, type SettleTiming } from './release.js';

export { type CapacityEvent, type Grant, type GrantView, VIA };

export interface CapacityOptions {
  serial: bigint;
  /** Called synchronously after each journaled change; must not call back into the manager. */
  onEvent?: (e: CapacityEvent) => void;
  /**
   * Called synchronously whenever what a head holds looks different (added,
   * releasing, released, forgotten, adopted), answered or not; must not call
   * back into the manager. The daemon rewrites the head's record on it.
   */
  onGrantsChanged?: (head: number) => void;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
  /** How long a release waits for evidence before answering, and how often it asks again (release.ts). */
  settle?: Partial<SettleTiming>;
}

const TAGS_SUPPORTED = 1024;

export class CapacityManager implements FmBackend {
  private readonly grants = new Map<number, Grant[]>();
  private readonly generations = new Map<number, number>();
  /** The delivery of each attached head, as its session handed it over. */
  private readonly deliveries = new Map<number, Delivery>();
  private readonly tags = new TagRegistry(
    (tag) => this.holding(tag),
    (tag) => this.r32.kept(tag),
  );
  private readonly r32: R32Commands;
  /** One FM-API mutation at a time: claims and deliveries must not interleave. */
  private queue: Promise<unknown> = Promise.resolve();
  /** Time spent carrying out adds and releases (claims + QMP), for the benchmarks' accounting. */
  busyMs = 0;
  private readonly settler: ReleaseSettler;
  /** Per head, extents (`offset:len`) and tags whose release ended after it answered Retry Required: a retry answers Success once. */
  private readonly ended = new Map<number, Set<string>>();
  /** What initiate.ts's add and release change. */
  private readonly ledger: Ledger;

  constructor(
    private readonly pool: Pool,
    private readonly opts: CapacityOptions,
  ) {
    this.r32 = new R32Commands({
      pool,
      tags: this.tags,
      extentCount: () => [...this.grants.values()].reduce((n, l) => n + l.length, 0),
      holders: (tag, state) => this.holding(tag, state),
      log: opts.log,
    });
    this.settler = new ReleaseSettler(
      {
        deliveryOf: (h) => this.deliveries.get(h),
        held: (g) => this.grants.get(g.head)?.includes(g) ?? false,
        free: (g) => this.finishRelease(g),
        quarantine: (g, reason) => this.quarantine(g, reason),
      },
      { ...DEFAULT_SETTLE, ...opts.settle },
    );
    this.ledger = {
      pool,
      grants: this.grants,
      ended: this.ended,
      tags: this.tags,
      regionBlockSize: () => this.r32.region.blockSize,
      delivery: (h) => this.delivery(h),
      changed: (h) => this.changed(h),
      emit: (e) => this.emit(e),
      log: opts.log,
    };
  }

  // ---- informational commands -------------------------------------------

  identify(): IdentifyInfo {
    return identifyInfo(this.opts.serial);
  }

  mhdInfo(req: MhdInfoRequest): MhdInfoResponse {
    return mhdInfo(this.pool.state, req);
  }

  headInfo(req: HeadInfoRequest): HeadInfoResponse {
    return headInfo(this.pool.state, req);
  }

  dcdInfo(): DcdInfoResponse {
    return dcdInfo(this.pool.state);
  }

  hostRegionConfig(req: RegionConfigRequest): RegionConfigResponse {
    const d = this.delivery(req.hostId);
    const cap = this.pool.state.header.capacityBytes;
    const regions =
      req.startRegion === 0 && req.regionCount > 0
        ? [
            {
              base: d.regionBase,
              decodeLength: cap,
              length: cap,
              blockSize: Math.max(d.unit, this.r32.region.blockSize),
              dsmasFlags: DsmasFlag.Sharable,
              sanitizeOnRelease: this.r32.region.sanitizeOnRelease ? 1 : 0,
            },
          ]
        : [];
    const held = this.grantsOf(req.hostId);
    const tags = new Set(held.map((g) => g.tag).filter((t) => t !== ZERO_TAG));
    return {
      hostId: req.hostId,
      numRegions: 1,
      regions,
      extentsSupported: held.length + d.capacityForPieces(),
      extentsAvailable: d.capacityForPieces(),
      tagsSupported: TAGS_SUPPORTED,
      tagsAvailable: TAGS_SUPPORTED - tags.size,
    };
  }

  extentList(req: ExtentListRequest): ExtentListResponse {
    this.checkHost(req.hostId);
    const base = this.deliveries.get(req.hostId)?.regionBase ?? 0;
    const all: Extent[] = this.grantsOf(req.hostId).map((g) => ({
      startDpa: base + g.offset,
      len: g.len,
      tag: g.tag,
      sharedSeq: g.shared ? this.tags.seq(g.tag, g.offset) : 0,
    }));
    return {
      hostId: req.hostId,
      startIndex: req.startIndex,
      totalExtents: all.length,
      generation: this.generations.get(req.hostId) ?? 0,
      extents: all.slice(req.startIndex, req.startIndex + req.extentCount),
    };
  }

  // ---- add / release -----------------------------------------------------

  /** `via` names the path the request came in on (for events); through() fills it in for an FM-API path. */
  initiateAdd(req: AddRequest, via: string = VIA.fmApi): Promise<void> {
    return this.serialize(() => addCapacity(this.ledger, req, via));
  }

  /**
   * Success once the blocks are back in the pool; Retry Required while they
   * are quarantined (QEMU shows the guest may still reach them). Only the
   * start is serialized: waiting for the evidence holds up no other request.
   */
  async initiateRelease(req: ReleaseRequest, via: string = VIA.fmApi): Promise<void> {
    const { started, retried } = await this.serialize(() => startRelease(this.ledger, req, via));
    const settled = await Promise.all([
      ...started.map(({ g, gone }) => this.settler.settle(g, gone)),
      ...retried.map((g) => this.settler.recheck(g)),
    ]);
    const waiting = [...started.map(({ g }) => g), ...retried].filter((_, i) => !settled[i]);
    if (waiting.length > 0) {
      throw new FmError(
        ReturnCode.RetryRequired,
        `released, but QEMU does not yet show that head ${req.hostId}'s guest can no longer reach ${waiting
          .map((g) => `${g.len}@${g.offset}`)
          .join(', ')}: quarantined, held by the head until it does (${waiting.map((g) => g.reason ?? 'unknown').join('; ')})`,
      );
    }
    // This answer tells the caller: a later retry of these is no longer owed a Success.
    for (const g of [...started.map(({ g }) => g), ...retried]) {
      this.ended.get(g.head)?.delete(`${g.offset}:${g.len}`);
      this.ended.get(g.head)?.delete(`tag:${g.tag}`);
    }
  }

  /**
   * The FM-API backend of one path (fm.sock, a head's FM-LD port): its adds
   * and releases name it. The one FmBackend the daemon serves: nothing wraps
   * it, since every change it makes is reported (onEvent, onGrantsChanged).
   */
  through(via: string): FmBackend {
    return {
      identify: () => this.identify(),
      mhdInfo: (r) => this.mhdInfo(r),
      headInfo: (r) => this.headInfo(r),
      dcdInfo: () => this.dcdInfo(),
      hostRegionConfig: (r) => this.hostRegionConfig(r),
      extentList: (r) => this.extentList(r),
      initiateAdd: (r) => this.initiateAdd(r, via),
      initiateRelease: (r) => this.initiateRelease(r, via),
      ...{ setRegionConfig: this.setRegionConfig, addReference: this.addReference, removeReference: this.removeReference },
      listTags: this.listTags,
    };
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const timed = async () => {
      const t0 = performance.now();
      try {
        return await fn();
      } finally {
        this.busyMs += performance.now() - t0;
      }
    };
    const run = this.queue.then(timed, timed);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Blocks the FM released that the guest may still reach: held by the head, journaled and announced once. */
  private quarantine(g: Grant, reason: string): void {
    const first = g.state !== 'quarantined';
    g.state = 'quarantined';
    g.reason = reason;
    if (!first) return;
    this.pool.note({ event: 'release-quarantined', head: g.head, offset: g.offset, len: g.len, reason });
    this.changed(g.head);
    const via = g.releaseVia ?? VIA.fmApi;
    this.emit({ kind: 'capacity-quarantined', head: g.head, offset: g.offset, len: g.len, tag: tagOrNull(g.tag), via, reason });
    this.opts.log?.(`head ${g.head}: ${g.len}@${g.offset} quarantined: ${reason}`, { head: g.head });
  }

  private finishRelease(g: Grant): void {
    const list = this.grants.get(g.head);
    if (!list?.includes(g)) return; // the head detached meanwhile; its blocks went with it
    this.returnBlocks([g], { head: g.head }, () =>
      this.pool.release(g.head, this.pool.state.bytesToBlocks(g.offset, g.len), { kind: 'dynamic', tag: g.tag }),
    );
    list.splice(list.indexOf(g), 1);
    if (g.state === 'quarantined') {
      const ended = this.ended.get(g.head) ?? new Set<string>();
      ended.add(`${g.offset}:${g.len}`);
      if (g.tag !== ZERO_TAG) ended.add(`tag:${g.tag}`);
      this.ended.set(g.head, ended);
    }
    this.changed(g.head);
    this.emit({
      kind: 'capacity-released',
      head: g.head,
      offset: g.offset,
      len: g.len,
      tag: tagOrNull(g.tag),
      via: g.releaseVia ?? VIA.fmApi,
    });
    this.opts.log?.(`head ${g.head}: released ${g.len}@${g.offset}`, { head: g.head });
  }

  // ---- head lifecycle -------------------------------------------------------

  /**
   * A head's session knows how the head receives capacity (from its
   * discovery on, through claiming or re-adoption, while attached): requests
   * for the head go through this delivery until unregisterDelivery.
   */
  registerDelivery(head: number, delivery: Delivery): void {
    this.deliveries.set(head, delivery);
  }

  /** The head's session ended: from now on requests for it are refused as not attached. Its grants are forgetHead's. */
  unregisterDelivery(head: number): void {
    this.deliveries.delete(head);
  }

  /** The head's QEMU is gone and its blocks were released (journaled) with it: `via` says why. */
  forgetHead(head: number, via: string = VIA.qemuExit): void {
    const held = this.grants.get(head);
    this.ended.delete(head);
    if (!held) return;
    // The head's blocks were freed with its detach, in this same turn: zeroed now, before any add can run.
    this.returnBlocks(held, { head }, () => undefined);
    this.grants.delete(head);
    this.changed(head);
    for (const g of held) this.emit({ kind: 'capacity-released', head, offset: g.offset, len: g.len, tag: tagOrNull(g.tag), via });
  }

  /**
   * Rebuilds the grants of a re-adopted head (backend restart); announced as
   * added by recovery. Those whose release had begun are releasing again:
   * `resumeReleases` asks QEMU for the evidence, as the first time.
   */
  adopt(head: number, grants: (Omit<Grant, 'state' | 'head'> & { releasing?: boolean })[]): void {
    const list: Grant[] = grants
      .map(({ releasing, ...g }) => ({ ...g, head, state: releasing ? ('releasing' as const) : ('active' as const) }))
      .sort((a, b) => a.offset - b.offset);
    this.grants.set(head, list);
    this.tags.adopt(list);
    this.changed(head);
    for (const g of list) {
      this.emit({ kind: 'capacity-added', head, offset: g.offset, len: g.len, shared: g.shared, tag: tagOrNull(g.tag), via: VIA.recovery });
    }
  }

  /**
   * A guest reset drops its shared dynamic capacity (CXL r3.1 §9.13.3: shared
   * extents do not survive a reset of the host). Taken back as a release.
   */
  async onReset(head: number): Promise<void> {
    const d = this.deliveries.get(head);
    if (!d) return;
    // A reset may be the evidence a quarantined release waits for: ask again.
    const waiting = this.grantsOf(head).filter((g) => g.state !== 'active');
    const shared = this.grantsOf(head).filter((g) => g.shared && g.state === 'active');
    const started = await this.serialize(async () => {
      const out: { g: Grant; gone: Departure }[] = [];
      for (const g of shared) {
        try {
          const { gone } = await d.release(g.delivered);
          g.state = 'releasing';
          g.releaseVia = VIA.guestReset;
          this.touched(head);
          out.push({ g, gone });
        } catch (e) {
          this.opts.log?.(`head ${head}: reset release of ${g.len}@${g.offset} failed: ${(e as Error).message}`, { head });
        }
      }
      return out;
    });
    await Promise.all([...started.map(({ g, gone }) => this.settler.settle(g, gone)), ...waiting.map((g) => this.settler.recheck(g))]);
  }

  /**
   * After a backend restart: the re-adopted head's releases that had begun
   * (journaled, not yet freed) are finished the usual way. A hot-added device
   * QEMU still has is asked to leave again; the rest only need the evidence.
   */
  async resumeReleases(head: number): Promise<void> {
    const d = this.deliveries.get(head);
    if (!d) return;
    const waiting = this.grantsOf(head).filter((g) => g.state === 'releasing');
    for (const g of waiting) g.releaseVia = VIA.recovery;
    await this.settler.resume(d, waiting);
  }

  /** Tagged allocations with their holders (status). */
  allocations(): AllocationView[] {
    return this.tags.list();
  }

  grantsOf(head: number): Grant[] {
    return this.grants.get(head) ?? [];
  }

  view(head: number): GrantView[] {
    return this.grantsOf(head).map((g) => ({
      offset: g.offset,
      len: g.len,
      tag: g.tag,
      shared: g.shared,
      state: g.state,
      seq: g.shared ? this.tags.seq(g.tag, g.offset) : 0,
      ...(g.reason ? { reason: g.reason } : {}),
      delivery: this.deliveries.get(head)?.kind ?? 'unknown',
      ...(g.delivered.deviceId ? { device: g.delivered.deviceId } : {}),
    }));
  }

  // ---- helpers ----------------------------------------------------------------

  private checkHost(host: number): void {
    const n = this.pool.state.headCount;
    if (!Number.isInteger(host) || host < 0 || host >= n)
      throw new FmError(ReturnCode.InvalidInput, `host ${host} does not exist: the device has heads 0..${n - 1}`);
  }

  private delivery(host: number): Delivery {
    this.checkHost(host);
    const d = this.deliveries.get(host);
    if (!d) throw new FmError(ReturnCode.InvalidInput, `head ${host} is not attached`);
    return d;
  }

  /** Heads whose grants carry `tag`: all, those active, or those whose release is under way (releasing or quarantined). */
  private holding(tag: string, which?: 'active' | 'pending'): number[] {
    const counts = (g: Grant) => g.tag === tag && (!which || (g.state === 'active') === (which === 'active'));
    return [...this.grants].filter(([, l]) => l.some(counts)).map(([h]) => h);
  }

  /** A head's grants changed: 5603h's generation moves on (and 5608h's). */
  private changed(head: number): void {
    this.generations.set(head, ((this.generations.get(head) ?? 0) + 1) >>> 0);
    this.r32.bump();
    this.touched(head);
  }

  /** What a head holds looks different (a reset's release marks a grant releasing without a new generation). */
  private touched(head: number): void {
    this.opts.onGrantsChanged?.(head);
  }

  // ---- 5602h, 5606h–5608h (r3.2): references.ts, one FM-API mutation at a time like the others

  setRegionConfig = (req: SetRegionConfigRequest): Promise<void> => this.serialize(async () => this.r32.setRegionConfig(req));
  addReference = (req: ReferenceRequest): Promise<void> => this.serialize(async () => this.r32.addReference(req));
  removeReference = (req: ReferenceRequest): Promise<void> => this.serialize(async () => this.r32.removeReference(req));
  listTags = (req: TagListRequest): TagListResponse => this.r32.listTags(req);
  /** Tags the FM keeps with references (status, Redfish): count and extents. */
  references = (): KeptView[] => this.r32.references();
  /** Frees blocks (`free`) the way every release does: zeroed first when the region sanitizes (recovery's paths use it too). */
  returnBlocks = (ranges: Piece[], leaving: { head?: number }, free: () => void): void => this.r32.returnBlocks(ranges, leaving, free);

  private emit(e: CapacityEvent): void {
    this.opts.onEvent?.(e);
  }
}
