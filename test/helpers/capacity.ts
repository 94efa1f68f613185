// Capacity tests without QEMU: a real shm pool with registered heads, a
// delivery stub that records calls and fails on cue, and request builders.
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { afterEach } from 'vitest';
import type { Delivered, Delivery, LabelledPiece, RegionLabel } from '../../src/capacity/index.js';
import { CapacityManager } from '../../src/capacity/manager.js';
import { FmError, SelectionPolicy, ZERO_TAG } from '../../src/fmapi/index.js';
import { dataObjectPath, Pool } from '../../src/pool/index.js';
import { tempDir, uniquePoolName } from './pool.js';

export const MiB = 2 ** 20;
export const GiB = 2 ** 30;
/** Run after each test, pass or fail. */
export const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

export function pool(heads = 3): Pool {
  const p = Pool.create({
    name: uniquePoolName('cap'),
    stateDir: tempDir(),
    capacityBytes: 2 * GiB,
    blockBytes: 2 * MiB,
    headCount: heads,
  });
  cleanups.push(() => p.close());
  for (let h = 0; h < heads; h++) p.registerHead(h, 1000 + h);
  return p;
}

/** A delivery that records calls and fails when told to. */
export class StubDelivery implements Delivery {
  readonly kind = 'hotplug' as const;
  readonly unit = 256 * MiB;
  readonly regionBase = 0;
  failAdd = false;
  failRelease = false;
  added: Delivered[] = [];
  released: Delivered[] = [];
  slots = 2;
  capacityForPieces() {
    return this.slots - this.added.length + this.released.length;
  }
  dispose() {}
  /** The region label each delivered piece carried (undefined: untagged). */
  labels: (RegionLabel | undefined)[] = [];
  async add(pieces: LabelledPiece[]) {
    if (this.failAdd) throw new Error('device_add: Bus has no free slot');
    this.labels.push(...pieces.map((p) => p.label));
    const d = pieces.map(({ label: _, ...p }) => ({ ...p, deviceId: `dev-${p.offset}` }));
    this.added.push(...d);
    return d;
  }
  /** What reachable() answers per piece offset (absent: unreachable once released, as QEMU 10.0 with a gone device). */
  reach = new Map<number, string[]>();
  /** When set, release() leaves `gone` pending until it is called (the guest still unplugging). */
  holdGone: (() => void) | null = null;
  holdRemovals = false;
  async release(piece: Delivered) {
    if (this.failRelease) throw new Error('cannot release extent with pending DPA range');
    this.released.push(piece);
    // Gone without a reading of its own: the settler asks reachable() for the evidence.
    if (!this.holdRemovals) return { gone: Promise.resolve(undefined) };
    this.present.add(piece.offset);
    return {
      gone: new Promise<string[] | undefined>((r) => {
        this.holdGone = () => {
          this.present.delete(piece.offset);
          r(undefined);
        };
      }),
    };
  }
  /** Pieces whose device has not left yet (holdRemovals). */
  present = new Set<number>();
  async reachable(piece: { offset: number }) {
    if (this.present.has(piece.offset)) return [`device dev-${piece.offset} is still present`];
    return this.reach.get(piece.offset) ?? [];
  }
}

/** A manager whose heads `deliveries` names are attached with those deliveries (as their sessions would register them). */
export function manager(p: Pool, deliveries: Record<number, Delivery>) {
  const m = new CapacityManager(p, { serial: 0x1234n });
  for (const [h, d] of Object.entries(deliveries)) m.registerDelivery(Number(h), d);
  return m;
}

export async function code(fn: () => unknown): Promise<number | string> {
  try {
    await fn();
    return 'ok';
  } catch (e) {
    if (e instanceof FmError) return e.code;
    throw e;
  }
}

export const add = (hostId: number, extents: [number, number][], extra: Partial<Parameters<CapacityManager['initiateAdd']>[0]> = {}) => ({
  hostId,
  selectionPolicy: SelectionPolicy.Prescriptive,
  region: 0,
  length: 0,
  tag: ZERO_TAG,
  extents: extents.map(([startDpa, len]) => ({ startDpa, len, tag: ZERO_TAG, sharedSeq: 0 })),
  ...extra,
});

/** Writes `bytes` into the pool's data object at `offset` (what a guest's store would leave there). */
export function poke(p: { name: string }, offset: number, bytes: Buffer): void {
  const fd = openSync(dataObjectPath(p.name), 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.length, offset);
  } finally {
    closeSync(fd);
  }
}

/** `len` bytes of the pool's data object at `offset`. */
export function peek(p: { name: string }, offset: number, len: number): Buffer {
  const fd = openSync(dataObjectPath(p.name), 'r');
  try {
    const b = Buffer.alloc(len);
    readSync(fd, b, 0, len, offset);
    return b;
  } finally {
    closeSync(fd);
  }
}
