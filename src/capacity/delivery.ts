// How granted pool capacity reaches a head's VM, and how it is taken back:
// LD hot-add (a cxl-type3 on a spare root port, for stock guests) or DCD
// extents (for DCD-capable guests). One object per attached head, speaking
// QMP to that head's QEMU; the pool's bookkeeping stays in CapacityManager.
// A tagged hot-added LD also gets a label storage area naming its tag
// (lsa.ts), a small 0600 file in /dev/shm that lives as long as the LD.
import { rmSync, writeFileSync } from 'node:fs';
import { CAPACITY_UNIT, lsaObjectPath, lsaObjectsOf } from '../pool/index.js';
import {
  ldBackendId,
  ldDeviceId,
  ldLsaBackendId,
  ldSerial,
  peripheralPath,
  qemuFeatures,
  reachability,
  rememberBackend,
} from '../qemu/index.js';
import type { QmpSession } from '../qmp/index.js';
import { LSA_BYTES, lsaImage, type RegionLabel } from './lsa.js';

export type DeliveryKind = 'hotplug' | 'dcd';

/** How a head receives dynamic capacity, as its VM was configured (`qemu-args --delivery`); found by heads/devices. */
export type DeliveryConfig =
  | { kind: 'dcd'; devicePath: string; regionBase: number }
  | { kind: 'hotplug'; ports: string[]; occupied: Map<string, string> };

/** The delivery a head's configuration calls for. */
export function deliveryFor(
  qmp: QmpSession,
  cfg: DeliveryConfig,
  pool: { name: string; dataPath: string; blockBytes: number; head: number },
): Delivery {
  if (cfg.kind === 'dcd') return new DcdDelivery(qmp, cfg.devicePath, pool.blockBytes, cfg.regionBase, pool.dataPath);
  return new HotplugDelivery(qmp, pool.dataPath, cfg.ports, cfg.occupied, (port) => ldSerial(pool.name, port), {
    lsaPath: (n) => lsaObjectPath(pool.name, pool.head, n),
    lsaLeftovers: () => lsaObjectsOf(pool.name, pool.head),
  });
}

/** One contiguous piece of the pool delivered to a head. */
export interface Piece {
  offset: number;
  len: number;
}

/** A piece to deliver; a tagged one carries the region label its LD's label area shows the guest. */
export interface LabelledPiece extends Piece {
  label?: RegionLabel;
}

/** What a delivery remembers about a piece in QEMU (device ids for hot-add). */
export interface Delivered extends Piece {
  deviceId?: string;
  backendId?: string;
  port?: string;
  /** The LD's label area file (tagged hot-adds). */
  lsaPath?: string;
}

/** A release's end on QEMU's side: the reachability read taken as the device left, or nothing if none was taken. */
export type Departure = Promise<string[] | undefined>;

export interface Delivery {
  readonly kind: DeliveryKind;
  /** Alignment and granularity of pieces (bytes). */
  readonly unit: number;
  /** Base DPA of the head's DC region 0 (FM-API addresses are base + pool offset). */
  readonly regionBase: number;
  /** How many more pieces this head can take now. */
  capacityForPieces(): number;
  /** Delivers all pieces or none: on failure, what was delivered is withdrawn before rejecting. */
  add(pieces: LabelledPiece[]): Promise<Delivered[]>;
  /**
   * Starts taking a piece back; resolves when QEMU accepted. `gone` resolves
   * when QEMU has finished its part (the device left), with what QEMU showed
   * still reaching the bytes at that moment when it looked (the release's evidence).
   */
  release(piece: Delivered): Promise<{ gone: Departure }>;
  /**
   * Why the guest can still reach a piece's bytes, from what QEMU shows now
   * (qemu/reach.ts); empty only with evidence that it cannot. The blocks go
   * back to the pool on nothing less (docs/security.md).
   */
  reachable(piece: Piece & { deviceId?: string }): Promise<string[]>;
  /** The head's QEMU is gone: drop what the delivery kept outside QEMU (label area files). */
  dispose(): void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** How often an event-driven hot-remove still looks at QOM, in case DEVICE_DELETED never comes. */
const EVENT_BACKUP_POLL_MS = 1000;

/**
 * LD hot-add. Removal is confirmed by `DEVICE_DELETED` where QEMU sends it
 * for a cxl-type3 (11.1), by polling QOM where it never does (10.0).
 * Neither can delete the memory backend afterwards (10.0: "in use", 11.1:
 * "mapped"), so every hot-add uses a fresh backend id.
 */
export class HotplugDelivery implements Delivery {
  readonly kind = 'hotplug';
  // A hot-added LD is a CXL device, so it comes in CXL capacity units.
  readonly unit = CAPACITY_UNIT;
  readonly regionBase = 0;
  private readonly busy = new Map<string, string>(); // port → device id
  private nextBackend: number;

  constructor(
    private readonly qmp: QmpSession,
    private readonly dataPath: string,
    private readonly ports: string[],
    occupied: Map<string, string>,
    private readonly serialFor: (port: string) => bigint,
    opts: {
      pollMs?: number;
      removalTimeoutMs?: number;
      lsaPath?: (n: number) => string;
      lsaLeftovers?: () => string[];
      /** Wait for DEVICE_DELETED instead of polling (default: what the QEMU's version does). */
      deviceDeletedEvent?: boolean;
    } = {},
  ) {
    for (const [p, d] of occupied) this.busy.set(p, d);
    this.deviceDeletedEvent = opts.deviceDeletedEvent ?? qemuFeatures(qmp.version).type3DeviceDeleted;
    this.nextBackend = Date.now();
    this.pollMs = opts.pollMs ?? 100;
    this.removalTimeoutMs = opts.removalTimeoutMs ?? 60_000;
    this.lsaPath = opts.lsaPath ?? null;
    this.lsaLeftovers = opts.lsaLeftovers ?? (() => []);
  }
  private readonly pollMs: number;
  private readonly removalTimeoutMs: number;
  private readonly deviceDeletedEvent: boolean;
  private readonly lsaPath: ((n: number) => string) | null;
  private readonly lsaLeftovers: () => string[];

  capacityForPieces(): number {
    return this.ports.filter((p) => !this.busy.has(p)).length;
  }

  async add(pieces: LabelledPiece[]): Promise<Delivered[]> {
    const free = this.ports.filter((p) => !this.busy.has(p));
    if (free.length < pieces.length) throw new Error(`only ${free.length} spare CXL root port(s) free for ${pieces.length} extent(s)`);
    const done: Delivered[] = [];
    try {
      for (const [i, { label, ...piece }] of pieces.entries()) {
        const port = free[i] as string;
        const n = this.nextBackend++;
        const backendId = ldBackendId(n);
        const deviceId = ldDeviceId(port);
        const lsa = label && this.lsaPath ? { id: ldLsaBackendId(n), path: this.lsaPath(n) } : null;
        // The label area is written before device_add: the guest may read it as soon as the device appears.
        if (lsa) writeFileSync(lsa.path, lsaImage(label as RegionLabel), { mode: 0o600, flag: 'wx' });
        const objects = [
          { id: backendId, 'mem-path': this.dataPath, offset: piece.offset, size: piece.len },
          ...(lsa ? [{ id: lsa.id, 'mem-path': lsa.path, size: LSA_BYTES }] : []),
        ];
        // Sent together, backends first: QEMU runs them in order, so device_add finds its backends (or
        // fails for want of them), and the head waits for its QEMU once, not once per command.
        const made = objects.map((obj) => this.qmp.execute('object-add', { 'qom-type': 'memory-backend-file', ...obj, share: true }));
        const added = this.qmp.execute('device_add', {
          driver: 'cxl-type3',
          bus: port,
          'volatile-memdev': backendId,
          ...(lsa ? { lsa: lsa.id } : {}),
          id: deviceId,
          sn: Number(this.serialFor(port)),
        });
        const [device, ...backends] = await Promise.allSettled([added, ...made]);
        // Created with exactly these: a release's reachability check need not ask QEMU for them (one round trip).
        for (const [k, r] of backends.entries()) {
          const obj = objects[k];
          if (r.status === 'fulfilled' && obj)
            rememberBackend(this.qmp, { id: obj.id, path: obj['mem-path'], offset: obj.offset ?? 0, size: obj.size });
        }
        if (device?.status === 'rejected') {
          // The backend objects exist from their object-add on, even if device_add fails: QEMU can't always delete them.
          for (const [k, r] of backends.entries()) {
            if (r.status === 'fulfilled') await this.qmp.execute('object-del', { id: objects[k]?.id }).catch(() => undefined);
          }
          if (lsa) rmSync(lsa.path, { force: true });
          // A backend's own refusal says more than device_add's missing memdev that follows from it.
          throw backends.find((r) => r.status === 'rejected')?.reason ?? device.reason;
        }
        this.busy.set(port, deviceId);
        done.push({ ...piece, deviceId, backendId, port, ...(lsa ? { lsaPath: lsa.path } : {}) });
      }
      return done;
    } catch (e) {
      for (const d of done) await this.withdraw(d).catch(() => undefined);
      throw e;
    }
  }

  async release(piece: Delivered): Promise<{ gone: Departure }> {
    if (!piece.deviceId) throw new Error(`extent at ${piece.offset} has no hot-added device to remove`);
    // Subscribed before device_del: without a guest, QEMU sends the event before it answers.
    const deleted = this.deviceDeletedEvent
      ? this.qmp
          .waitForEvent('DEVICE_DELETED', (e) => e.data.device === piece.deviceId, this.removalTimeoutMs)
          .then(
            () => true,
            () => false,
          )
      : null;
    try {
      await this.qmp.execute('device_del', { id: piece.deviceId });
    } catch (e) {
      // Asked again (a restarted backend finishing an answered release): the unplug under way is ours.
      if (!/already in the process of unplug/i.test((e as Error).message)) throw e;
    }
    return { gone: this.waitGone(piece, deleted) };
  }

  async reachable(piece: Piece & { deviceId?: string }): Promise<string[]> {
    // Asked together (one wait for QEMU): the device's presence, then what maps the range; the second only counts without the first.
    const present = piece.deviceId ? this.present(piece as Delivered) : Promise.resolve(false);
    const reach = reachability(this.qmp, this.dataPath, piece.offset, piece.len);
    reach.catch(() => undefined);
    if (await present) return [`device ${piece.deviceId} is still present`];
    const why = await reach;
    // The range left at last: its port (kept while the old LD was mapped) is free again.
    const port = [...this.busy].find(([, d]) => d === piece.deviceId)?.[0];
    if (why.length === 0 && port && piece.deviceId) this.busy.delete(port);
    return why;
  }

  private async withdraw(d: Delivered): Promise<void> {
    const { gone } = await this.release(d);
    await gone;
  }

  private present(piece: Delivered): Promise<boolean> {
    return this.qmp.execute('qom-get', { path: peripheralPath(String(piece.deviceId)), property: 'type' }).then(
      () => true,
      () => false,
    );
  }

  /** Resolves once the device left QOM (the guest finished its unplug), then frees the port; with what still maps the range. */
  private async waitGone(piece: Delivered, deleted: Promise<boolean> | null): Departure {
    const deadline = Date.now() + this.removalTimeoutMs;
    // With DEVICE_DELETED (11.1) the event ends the wait; a look at QOM every
    // second backs it up, since 11.1 was also seen not to send it for a guest
    // that had the LD as devdax (docs/qemu-facts.md §9). Without it (10.0), QOM is polled.
    const every = deleted === null ? this.pollMs : EVENT_BACKUP_POLL_MS;
    // Without a guest QEMU sends the event before it answers device_del: already here, it saves a look at QOM.
    let eventSeen = deleted !== null && (await Promise.race([deleted, Promise.resolve(false)]));
    // Wakes the loop on the event; after a timeout or the session's end it never fires again.
    const wake = deleted?.then((seen) => {
      eventSeen = seen;
      return seen ? undefined : new Promise<void>(() => {});
    });
    while (!eventSeen && (await this.present(piece))) {
      if (Date.now() > deadline) throw new Error(`device ${piece.deviceId} is still present ${this.removalTimeoutMs} ms after device_del`);
      await Promise.race([sleep(every), ...(wake ? [wake] : [])]);
    }
    // A window still mapping the old LD (QEMU 11's alias) is not given to a new one: the two would overlap.
    // The same read is the release's evidence (gone resolves with it): the device has left, so only mappings count.
    const why = await this.reachable({ offset: piece.offset, len: piece.len }).catch(() => undefined);
    if (piece.port && why?.length === 0) this.busy.delete(piece.port);
    // The memory backends can't be deleted in QEMU 10.0 or 11.1 ("in use", "mapped"); try, for later QEMUs.
    // Not waited for: nothing depends on the answer, and QEMU runs what is sent after them in order.
    if (piece.backendId) void this.qmp.execute('object-del', { id: piece.backendId }).catch(() => undefined);
    if (piece.lsaPath) {
      void this.qmp.execute('object-del', { id: ldLsaBackendId(lsaNumber(piece.lsaPath)) }).catch(() => undefined);
      // QEMU may still map it; unlinking only drops the name, and nothing will read it again.
      rmSync(piece.lsaPath, { force: true });
    }
    return why;
  }

  dispose(): void {
    for (const f of this.lsaLeftovers()) rmSync(f, { force: true });
  }
}

const lsaNumber = (path: string): number => Number(path.slice(path.lastIndexOf('.') + 1));

/** DCD extents on the head's DC region, which spans the whole pool file. */
export class DcdDelivery implements Delivery {
  readonly kind = 'dcd';
  /** The device's event log holds 8 records; more are dropped by QEMU. */
  static readonly MAX_EXTENTS_PER_ADD = 8;

  constructor(
    private readonly qmp: QmpSession,
    private readonly devicePath: string,
    readonly unit: number,
    readonly regionBase: number,
    private readonly dataPath: string,
  ) {}

  capacityForPieces(): number {
    return DcdDelivery.MAX_EXTENTS_PER_ADD;
  }

  // QEMU 10.0 does not support tags on DC extents; the backend keeps them (5603h reports them).
  async add(pieces: LabelledPiece[]): Promise<Delivered[]> {
    if (pieces.length > DcdDelivery.MAX_EXTENTS_PER_ADD) {
      throw new Error(`at most ${DcdDelivery.MAX_EXTENTS_PER_ADD} extents per add: the device's event log holds 8 records`);
    }
    await this.qmp.execute('cxl-add-dynamic-capacity', {
      path: this.devicePath,
      'host-id': 0,
      'selection-policy': 'prescriptive',
      region: 0,
      extents: pieces.map((p) => ({ offset: p.offset, len: p.len })),
    });
    return pieces.map((p) => ({ offset: p.offset, len: p.len }));
  }

  async release(piece: Delivered): Promise<{ gone: Departure }> {
    await this.qmp.execute('cxl-release-dynamic-capacity', {
      path: this.devicePath,
      'host-id': 0,
      'removal-policy': 'prescriptive',
      region: 0,
      extents: [{ offset: piece.offset, len: piece.len }],
    });
    // QEMU reports no extent state: whether the guest gave it back is asked by reachable().
    return { gone: Promise.resolve(undefined) };
  }

  /**
   * QEMU lists no DC extents, but refuses to release one it no longer backs
   * ("non-existing DPA range"): asking again is the evidence. An extent the
   * guest still holds is simply asked for again. The DC region's backend is
   * mapped as long as the device exists, so only aliases onto the piece count.
   */
  async reachable(piece: Piece): Promise<string[]> {
    const why: string[] = [];
    try {
      await this.release({ offset: piece.offset, len: piece.len });
      why.push(`QEMU still backs the extent: the guest has not given it back`);
    } catch (e) {
      if (!/non-existing DPA range/i.test((e as Error).message)) why.push(`QEMU: ${(e as Error).message}`);
    }
    const dc = String(await this.qmp.execute('qom-get', { path: this.devicePath, property: 'volatile-dc-memdev' }).catch(() => ''));
    const dcId = dc.slice(dc.lastIndexOf('/') + 1);
    return [...why, ...(await reachability(this.qmp, this.dataPath, piece.offset, piece.len, { exempt: (id) => id === dcId }))];
  }

  dispose(): void {}
}
