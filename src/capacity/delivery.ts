// How granted pool capacity reaches a head's VM, and how it is taken back:
// LD hot-add (a cxl-type3 on a spare root port, for stock guests) or DCD
// extents (for DCD-capable guests). One object per attached head, speaking
// QMP to that head's QEMU; the pool's bookkeeping stays in CapacityManager.
import { CAPACITY_UNIT } from '../pool/index.js';
import { ldBackendId, ldDeviceId, ldSerial, peripheralPath } from '../qemu/index.js';
import type { QmpSession } from '../qmp/index.js';

export type DeliveryKind = 'hotplug' | 'dcd';

/** How a head receives dynamic capacity, as its VM was configured (`qemu-args --delivery`); found by heads/devices. */
export type DeliveryConfig =
  | { kind: 'dcd'; devicePath: string; regionBase: number }
  | { kind: 'hotplug'; ports: string[]; occupied: Map<string, string> };

/** The delivery a head's configuration calls for. */
export function deliveryFor(qmp: QmpSession, cfg: DeliveryConfig, pool: { name: string; dataPath: string; blockBytes: number }): Delivery {
  if (cfg.kind === 'dcd') return new DcdDelivery(qmp, cfg.devicePath, pool.blockBytes, cfg.regionBase);
  return new HotplugDelivery(qmp, pool.dataPath, cfg.ports, cfg.occupied, (port) => ldSerial(pool.name, port));
}

/** One contiguous piece of the pool delivered to a head. */
export interface Piece {
  offset: number;
  len: number;
}

/** What a delivery remembers about a piece in QEMU (device ids for hot-add). */
export interface Delivered extends Piece {
  deviceId?: string;
  backendId?: string;
  port?: string;
}

export interface Delivery {
  readonly kind: DeliveryKind;
  /** Alignment and granularity of pieces (bytes). */
  readonly unit: number;
  /** Base DPA of the head's DC region 0 (FM-API addresses are base + pool offset). */
  readonly regionBase: number;
  /** How many more pieces this head can take now. */
  capacityForPieces(): number;
  /** Delivers all pieces or none: on failure, what was delivered is withdrawn before rejecting. */
  add(pieces: Piece[]): Promise<Delivered[]>;
  /** Starts taking a piece back; resolves when QEMU accepted. `gone` resolves when the blocks may be reused. */
  release(piece: Delivered): Promise<{ gone: Promise<void> }>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * LD hot-add. QEMU 10.0 never emits DEVICE_DELETED for a cxl-type3 and
 * cannot delete its memory backend afterwards ("in use"), so removal is
 * confirmed by polling QOM and every hot-add uses a fresh backend id.
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
    opts: { pollMs?: number; removalTimeoutMs?: number } = {},
  ) {
    for (const [p, d] of occupied) this.busy.set(p, d);
    this.nextBackend = Date.now();
    this.pollMs = opts.pollMs ?? 100;
    this.removalTimeoutMs = opts.removalTimeoutMs ?? 60_000;
  }
  private readonly pollMs: number;
  private readonly removalTimeoutMs: number;

  capacityForPieces(): number {
    return this.ports.filter((p) => !this.busy.has(p)).length;
  }

  async add(pieces: Piece[]): Promise<Delivered[]> {
    const free = this.ports.filter((p) => !this.busy.has(p));
    if (free.length < pieces.length) throw new Error(`only ${free.length} spare CXL root port(s) free for ${pieces.length} extent(s)`);
    const done: Delivered[] = [];
    try {
      for (const [i, piece] of pieces.entries()) {
        const port = free[i] as string;
        const backendId = ldBackendId(this.nextBackend++);
        const deviceId = ldDeviceId(port);
        await this.qmp.execute('object-add', {
          'qom-type': 'memory-backend-file',
          id: backendId,
          'mem-path': this.dataPath,
          offset: piece.offset,
          size: piece.len,
          share: true,
        });
        // The backend object exists from here on, even if device_add fails: QEMU can't always delete it.
        try {
          await this.qmp.execute('device_add', {
            driver: 'cxl-type3',
            bus: port,
            'volatile-memdev': backendId,
            id: deviceId,
            sn: Number(this.serialFor(port)),
          });
        } catch (e) {
          await this.qmp.execute('object-del', { id: backendId }).catch(() => undefined);
          throw e;
        }
        this.busy.set(port, deviceId);
        done.push({ ...piece, deviceId, backendId, port });
      }
      return done;
    } catch (e) {
      for (const d of done) await this.withdraw(d).catch(() => undefined);
      throw e;
    }
  }

  async release(piece: Delivered): Promise<{ gone: Promise<void> }> {
    if (!piece.deviceId) throw new Error(`extent at ${piece.offset} has no hot-added device to remove`);
    await this.qmp.execute('device_del', { id: piece.deviceId });
    return { gone: this.waitGone(piece) };
  }

  private async withdraw(d: Delivered): Promise<void> {
    const { gone } = await this.release(d);
    await gone;
  }

  /** Resolves once the device left QOM (the guest finished its unplug), then frees the port. */
  private async waitGone(piece: Delivered): Promise<void> {
    const path = peripheralPath(String(piece.deviceId));
    const deadline = Date.now() + this.removalTimeoutMs;
    for (;;) {
      const present = await this.qmp.execute('qom-get', { path, property: 'type' }).then(
        () => true,
        () => false,
      );
      if (!present) break;
      if (Date.now() > deadline) throw new Error(`device ${piece.deviceId} is still present ${this.removalTimeoutMs} ms after device_del`);
      await sleep(this.pollMs);
    }
    if (piece.port) this.busy.delete(piece.port);
    // The memory backend can't be deleted in QEMU 10.0 (it stays "in use"); try, for newer QEMUs.
    if (piece.backendId) await this.qmp.execute('object-del', { id: piece.backendId }).catch(() => undefined);
  }
}

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
  ) {}

  capacityForPieces(): number {
    return DcdDelivery.MAX_EXTENTS_PER_ADD;
  }

  // QEMU 10.0 does not support tags on DC extents; the backend keeps them (5603h reports them).
  async add(pieces: Piece[]): Promise<Delivered[]> {
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
    return pieces.map((p) => ({ ...p }));
  }

  async release(piece: Delivered): Promise<{ gone: Promise<void> }> {
    await this.qmp.execute('cxl-release-dynamic-capacity', {
      path: this.devicePath,
      'host-id': 0,
      'removal-policy': 'prescriptive',
      region: 0,
      extents: [{ offset: piece.offset, len: piece.len }],
    });
    // QEMU reports no extent state: the release it accepted is the last word we get.
    return { gone: Promise.resolve() };
  }
}
