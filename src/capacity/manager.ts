// CapacityManager is the FM-API's view of the pool (the FmBackend): it
// answers the informational commands from the pool and the attached heads,
// and turns Initiate DC Add/Release into block claims (all-or-nothing,
// journaled) plus deliveries to the head's QEMU. It owns the per-head list
// of grants (extents) and their generation numbers, and the deliveries of
// the attached heads, which each head's session hands it (registerDelivery)
// and takes back when it ends: the manager never looks a head up. The tag
// rules of shared allocations are allocations.ts's.
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
  type RegionConfigRequest,
  type RegionConfigResponse,
  type ReleaseRequest,
  RemovalPolicy,
  ReturnCode,
  SelectionPolicy,
  ZERO_TAG,
} from '../fmapi/index.js';
import { type Pool, PoolError } from '../pool/index.js';
import { type AllocationView, TagRegistry } from './allocations.js';
import type { Delivered, Delivery, Piece } from './delivery.js';
import { firstFit, prescribedPieces } from './extents.js';

export interface Grant {
  head: number;
  offset: number;
  len: number;
  tag: string;
  shared: boolean;
  delivered: Delivered;
  /** 'releasing' from the moment QEMU accepted the release until the blocks are free. */
  state: 'active' | 'releasing';
  /** The path that asked for the release under way, named in its event. */
  releaseVia?: string;
}

/**
 * What the manager reports once a change is journaled (heads/events puts
 * them on the backend's bus). `via` names the path that caused it.
 */
export type CapacityEvent =
  | { kind: 'capacity-added'; head: number; offset: number; len: number; shared: boolean; tag: string | null; via: string }
  | { kind: 'capacity-released'; head: number; offset: number; len: number; tag: string | null; via: string };

/** The `via` of changes made outside any FM-API path. */
export const VIA = { qemuExit: 'qemu-exit', guestReset: 'guest-reset', recovery: 'recovery', fmApi: 'fm-api' } as const;

export interface GrantView {
  offset: number;
  len: number;
  tag: string;
  shared: boolean;
  state: Grant['state'];
  delivery: string;
  device?: string;
}

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
}

const TAGS_SUPPORTED = 1024;

export class CapacityManager implements FmBackend {
  private readonly grants = new Map<number, Grant[]>();
  private readonly generations = new Map<number, number>();
  /** The delivery of each attached head, as its session handed it over. */
  private readonly deliveries = new Map<number, Delivery>();
  private readonly tags = new TagRegistry((tag) => [...this.grants].filter(([, l]) => l.some((g) => g.tag === tag)).map(([h]) => h));
  /** One FM-API mutation at a time: claims and deliveries must not interleave. */
  private queue: Promise<unknown> = Promise.resolve();
  /** Time spent carrying out adds and releases (claims + QMP), for the benchmarks' accounting. */
  busyMs = 0;

  constructor(
    private readonly pool: Pool,
    private readonly opts: CapacityOptions,
  ) {}

  // ---- informational commands -------------------------------------------

  identify(): IdentifyInfo {
    // QEMU's cxl-type3 identity, so host tools recognise the device; the serial is the pool's.
    return { vendorId: 0x8086, deviceId: 0x0d93, subsystemVendorId: 0, subsystemId: 0, serialNumber: this.opts.serial, componentType: 3 };
  }

  mhdInfo(req: MhdInfoRequest): MhdInfoResponse {
    const n = this.pool.state.headCount;
    if (req.startLd >= n) throw new FmError(ReturnCode.InvalidInput, `start LD ${req.startLd} is past the ${n} LDs`);
    // An MH-SLD: one LD per head, LD i behind head i.
    const ldMap = Array.from({ length: Math.min(req.ldMapListLimit, n - req.startLd) }, (_, i) => req.startLd + i);
    return { numLds: n, numHeads: n, startLd: req.startLd, ldMap };
  }

  headInfo(req: HeadInfoRequest): HeadInfoResponse {
    const n = this.pool.state.headCount;
    if (req.startHead >= n) throw new FmError(ReturnCode.InvalidInput, `start head ${req.startHead} is past the ${n} heads`);
    const heads = [];
    for (let h = req.startHead; h < Math.min(n, req.startHead + req.numHeads); h++) {
      const up = this.pool.state.isAttached(h);
      // An emulated x8 link at 32 GT/s; "link up" means a QEMU is attached to the port.
      heads.push({
        port: h,
        maxLinkWidth: 8,
        negotiatedLinkWidth: up ? 8 : 0,
        supportedLinkSpeeds: 0b11111,
        maxLinkSpeed: 5,
        currentLinkSpeed: up ? 5 : 0,
        ltssmState: up ? 0x11 : 0,
        firstNegotiatedLane: 0,
        linkStateFlags: 0,
      });
    }
    return { heads };
  }

  dcdInfo(): DcdInfoResponse {
    const h = this.pool.state.header;
    return {
      numHosts: h.headCount,
      addPolicyMask:
        (1 << SelectionPolicy.Free) |
        (1 << SelectionPolicy.Contiguous) |
        (1 << SelectionPolicy.Prescriptive) |
        (1 << SelectionPolicy.EnableSharedAccess),
      removalPolicyMask: (1 << RemovalPolicy.TagBased) | (1 << RemovalPolicy.Prescriptive),
      sanitizeMask: 0,
      totalCapacityBytes: h.capacityBytes,
      regionBlockSizeMasks: [1n << BigInt(Math.log2(h.blockBytes))],
    };
  }

  hostRegionConfig(req: RegionConfigRequest): RegionConfigResponse {
    const d = this.delivery(req.hostId);
    const cap = this.pool.state.header.capacityBytes;
    const regions =
      req.startRegion === 0 && req.regionCount > 0
        ? [{ base: d.regionBase, decodeLength: cap, length: cap, blockSize: d.unit, dsmasFlags: DsmasFlag.Sharable, sanitizeOnRelease: 0 }]
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
    return this.serialize(() => this.add(req, via));
  }

  initiateRelease(req: ReleaseRequest, via: string = VIA.fmApi): Promise<void> {
    return this.serialize(() => this.release(req, via));
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

  private async add(req: AddRequest, via: string): Promise<void> {
    const d = this.delivery(req.hostId);
    if (req.region !== 0) throw new FmError(ReturnCode.InvalidInput, `region ${req.region} does not exist: each head has DC region 0 only`);
    const shared = req.selectionPolicy === SelectionPolicy.EnableSharedAccess;
    const pieces =
      req.selectionPolicy === SelectionPolicy.Prescriptive || shared
        ? prescribedPieces(req, d, this.pool.state)
        : firstFit(req.length, d, req.selectionPolicy, this.pool.state);
    const labels = this.tags.admit(req.hostId, req.tag, shared, pieces);
    if (pieces.length > d.capacityForPieces()) {
      throw new FmError(
        ReturnCode.ResourcesExhausted,
        `head ${req.hostId} can take ${d.capacityForPieces()} more extent(s) by ${d.kind}, not ${pieces.length}`,
      );
    }
    // One durable write per add (docs/reliability.md): claims are staged in shm,
    // QEMU gets the capacity, then one journal line says it all before Success.
    // A backend killed before that line is undone by recovery (shm back to the
    // journal, an orphan device removed on re-adoption).
    const claimed: Piece[] = [];
    const unstage = () => {
      for (const p of claimed) this.pool.unstage(req.hostId, this.pool.state.bytesToBlocks(p.offset, p.len));
    };
    try {
      for (const p of pieces) {
        this.pool.stage(req.hostId, this.pool.state.bytesToBlocks(p.offset, p.len), { shared });
        claimed.push(p);
      }
    } catch (e) {
      unstage();
      if (e instanceof PoolError && e.code === 'CONFLICT') throw new FmError(ReturnCode.ResourcesExhausted, e.message);
      throw e;
    }
    let delivered: Delivered[];
    try {
      delivered = await d.add(pieces.map((p, i) => ({ ...p, label: labels[i] })));
    } catch (e) {
      unstage();
      throw new FmError(ReturnCode.InternalError, `QEMU refused the ${d.kind} delivery to head ${req.hostId}: ${(e as Error).message}`);
    }
    this.pool.recordAdd({
      head: req.hostId,
      pieces: delivered.map((dv) => ({
        ...this.pool.state.bytesToBlocks(dv.offset, dv.len),
        ...(dv.deviceId ? { device: dv.deviceId } : {}),
      })),
      shared,
      tag: req.tag,
      delivery: d.kind,
    });
    const list = this.grants.get(req.hostId) ?? [];
    for (const dv of delivered)
      list.push({ head: req.hostId, offset: dv.offset, len: dv.len, tag: req.tag, shared, delivered: dv, state: 'active' });
    list.sort((a, b) => a.offset - b.offset);
    this.grants.set(req.hostId, list);
    this.tags.record(req.tag, shared, pieces);
    this.changed(req.hostId);
    for (const dv of delivered) {
      this.emit({ kind: 'capacity-added', head: req.hostId, offset: dv.offset, len: dv.len, shared, tag: tagOrNull(req.tag), via });
    }
    this.opts.log?.(`head ${req.hostId}: added ${pieces.map((p) => `${p.len}@${p.offset}`).join(', ')} by ${d.kind}`, { head: req.hostId });
  }

  private async release(req: ReleaseRequest, via: string): Promise<void> {
    const d = this.delivery(req.hostId);
    if (req.region !== 0) throw new FmError(ReturnCode.InvalidInput, `region ${req.region} does not exist: each head has DC region 0 only`);
    if (req.forced) throw new FmError(ReturnCode.InvalidInput, 'forced removal is not supported (QEMU 10.0 cannot force-release)');
    const active = this.grantsOf(req.hostId).filter((g) => g.state === 'active');
    let targets: Grant[];
    if (req.removalPolicy === RemovalPolicy.TagBased) {
      targets = active.filter((g) => g.tag === req.tag);
      if (targets.length === 0) throw new FmError(ReturnCode.InvalidInput, `head ${req.hostId} holds no extent tagged ${req.tag}`);
    } else {
      if (req.extents.length === 0) throw new FmError(ReturnCode.InvalidInput, 'a prescriptive release needs at least one extent');
      targets = req.extents.map((e) => {
        const g = active.find((x) => x.offset + d.regionBase === e.startDpa && x.len === e.len);
        if (!g)
          throw new FmError(
            ReturnCode.InvalidInput,
            `head ${req.hostId} holds no extent ${e.len}@DPA ${e.startDpa} (release whole extents as listed by 5603h)`,
          );
        return g;
      });
      this.tags.checkWhole(req.hostId, targets, active);
    }
    // One durable write per release, before the answer: what QEMU accepted is
    // marked releasing; the blocks are freed (journaled) once QEMU dropped them.
    const accepted: { g: Grant; gone: Promise<void> }[] = [];
    try {
      for (const g of targets) {
        try {
          accepted.push({ g, ...(await d.release(g.delivered)) });
        } catch (e) {
          throw new FmError(
            ReturnCode.Busy,
            `QEMU refused to release ${g.len}@${g.offset} from head ${req.hostId}: ${(e as Error).message}`,
          );
        }
      }
    } finally {
      if (accepted.length > 0) {
        this.pool.recordRelease({ head: req.hostId, pieces: accepted.map(({ g }) => this.pool.state.bytesToBlocks(g.offset, g.len)) });
      }
      for (const { g, gone } of accepted) {
        g.state = 'releasing';
        g.releaseVia = via;
        void gone.then(
          () => this.finishRelease(g),
          (e) =>
            this.opts.log?.(`head ${g.head}: release of ${g.len}@${g.offset} did not complete: ${(e as Error).message}`, { head: g.head }),
        );
      }
      if (accepted.length > 0) this.changed(req.hostId);
    }
  }

  private finishRelease(g: Grant): void {
    const list = this.grants.get(g.head);
    if (!list?.includes(g)) return; // the head detached meanwhile; its blocks went with it
    this.pool.release(g.head, this.pool.state.bytesToBlocks(g.offset, g.len), { kind: 'dynamic', tag: g.tag });
    list.splice(list.indexOf(g), 1);
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
    if (!held) return;
    this.grants.delete(head);
    this.changed(head);
    for (const g of held) this.emit({ kind: 'capacity-released', head, offset: g.offset, len: g.len, tag: tagOrNull(g.tag), via });
  }

  /** Rebuilds the grants of a re-adopted head (backend restart); announced as added by recovery. */
  adopt(head: number, grants: Omit<Grant, 'state' | 'head'>[]): void {
    const list = grants.map((g) => ({ ...g, head, state: 'active' as const })).sort((a, b) => a.offset - b.offset);
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
    const shared = this.grantsOf(head).filter((g) => g.shared && g.state === 'active');
    if (shared.length === 0) return;
    await this.serialize(async () => {
      for (const g of shared) {
        try {
          const { gone } = await d.release(g.delivered);
          g.state = 'releasing';
          g.releaseVia = VIA.guestReset;
          this.touched(head);
          await gone;
          this.finishRelease(g);
        } catch (e) {
          this.opts.log?.(`head ${head}: reset release of ${g.len}@${g.offset} failed: ${(e as Error).message}`, { head });
        }
      }
    });
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

  /** A head's grants changed: 5603h's generation moves on. */
  private changed(head: number): void {
    this.generations.set(head, ((this.generations.get(head) ?? 0) + 1) >>> 0);
    this.touched(head);
  }

  /** What a head holds looks different (a reset's release marks a grant releasing without a new generation). */
  private touched(head: number): void {
    this.opts.onGrantsChanged?.(head);
  }

  private emit(e: CapacityEvent): void {
    this.opts.onEvent?.(e);
  }
}

const tagOrNull = (tag: string): string | null => (tag === ZERO_TAG ? null : tag);
