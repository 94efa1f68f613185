// Crash recovery and re-adoption: what the journal says a head holds and
// which FM adds never answered, read from the typed journal events
// (pool/journal-events.ts), and the procedures a starting backend runs on
// them so every operation is either wholly there or not at all.
import type { Logger } from 'pino';
import { type CapacityManager, type Delivered, type Delivery, VIA } from '../capacity/index.js';
import { ZERO_TAG } from '../fmapi/index.js';
import { type JournalEntry, noteOf, type Pool, readJournal } from '../pool/index.js';
import { ldPortOf } from '../qemu/index.js';
import type { PoolWindow } from './devices.js';
import type { BackendEvent } from './events.js';
import type { RecordState } from './records.js';

export interface JournalGrant {
  offset: number;
  len: number;
  tag: string;
  shared: boolean;
}

/**
 * The dynamic grants a head holds according to the journal: its `kind:
 * dynamic` claims since it last registered, less what was released since.
 * Used to rebuild a re-adopted head's extent list after a backend restart.
 */
export function grantsFromJournal(entries: JournalEntry[], head: number, blockBytes: number): JournalGrant[] {
  let start = 0;
  entries.forEach((e, i) => {
    if (e.op === 'head-register' && e.result.ok && e.args.head === head) start = i + 1;
  });
  const live = new Map<number, JournalGrant>();
  for (const e of entries.slice(start)) {
    if (!e.result.ok) continue;
    if (e.op === 'release-all' && e.args.head === head) live.clear();
    if ((e.op !== 'claim' && e.op !== 'release') || e.args.head !== head || e.args.kind !== 'dynamic') continue;
    const offset = e.args.first * blockBytes;
    const len = e.args.count * blockBytes;
    if (e.op === 'claim') live.set(offset, { offset, len, tag: e.args.tag ?? ZERO_TAG, shared: e.args.shared === true });
    else live.delete(offset);
  }
  return [...live.values()].sort((a, b) => a.offset - b.offset);
}

export interface UnfinishedAdd {
  tx: number;
  head: number;
  ranges: { first: number; count: number }[];
}

/**
 * Claims of FM adds that began but never ended (the backend died between
 * claim and answer): the FM client never saw Success, so they are undone.
 */
export function unfinishedAdds(entries: JournalEntry[]): UnfinishedAdd[] {
  const ended = new Set<number>();
  const begun = new Map<number, number>();
  for (const e of entries) {
    const begin = noteOf(e, 'fm-add-begin');
    if (begin) begun.set(e.seq, begin.head);
    const end = noteOf(e, 'fm-add-end');
    if (end) ended.add(end.tx);
  }
  const out: UnfinishedAdd[] = [];
  for (const [tx, head] of begun) {
    if (ended.has(tx)) continue;
    const held = new Map<number, number>(); // first → count
    for (const e of entries) {
      if ((e.op !== 'claim' && e.op !== 'release') || e.args.tx !== tx || !e.result.ok) continue;
      if (e.op === 'claim') held.set(e.args.first, e.args.count);
      else held.delete(e.args.first);
    }
    out.push({ tx, head, ranges: [...held].map(([first, count]) => ({ first, count })) });
  }
  return out;
}

// ---- procedures -------------------------------------------------------------

/** What recovery needs from the daemon. */
export interface RecoveryHost {
  readonly pool: Pool;
  readonly capacity: CapacityManager;
  readonly log: Logger;
  emit(e: BackendEvent): void;
  setRecord(head: number, state: RecordState): void;
  /** Releases everything the head holds and unregisters it (journaled). The lease is not touched. */
  detachInShm(head: number): void;
  /** Frees the lease when no head is attached any more. */
  freeLeaseIfNoHeads(): void;
}

export function pidAlive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A backend killed mid-operation: shm is put back to what the journal
 * says, and FM adds that never answered are undone, so each operation is
 * either wholly there or not at all.
 */
export function recoverFromCrash(host: RecoveryHost): void {
  const { pool, log } = host;
  const fixed = pool.recoverFromJournal();
  if (fixed.blocks || fixed.heads.length || fixed.lease) {
    log.warn(fixed, 'shared memory was ahead of the journal (backend killed mid-operation); restored from the journal');
  }
  const state = pool.state;
  for (const u of unfinishedAdds(readJournal(pool.journalFile))) {
    for (const r of u.ranges) {
      if (state.isAttached(u.head) && state.block(r.first).holders.includes(u.head)) {
        pool.release(u.head, r, { kind: 'dynamic', tx: u.tx, rollback: true, recovered: true });
      }
    }
    pool.note({ event: 'fm-add-end', tx: u.tx, ok: false, recovered: true });
    log.warn({ head: u.head, tx: u.tx }, `FM add ${u.tx} to head ${u.head} never answered; undone`);
  }
}

/**
 * Heads registered by an earlier backend whose QEMU is gone are detached
 * now; heads whose QEMU still runs wait for it to reconnect (reconnect-ms).
 */
export function recoverStaleHeads(host: RecoveryHost): void {
  const { pool, log } = host;
  for (const h of pool.state.heads()) {
    if (!h.attached) continue;
    if (pidAlive(h.pid)) {
      log.info({ head: h.id, qemuPid: h.pid }, `head ${h.id}: QEMU pid ${h.pid} still runs; waiting for it to reconnect`);
      host.setRecord(h.id, { phase: 'detached', pid: h.pid, reason: 'waiting for QEMU to reconnect after a backend restart' });
      continue;
    }
    log.warn({ head: h.id, qemuPid: h.pid }, `head ${h.id}: QEMU pid ${h.pid} is gone; reclaiming its grants`);
    pool.note({ event: 'stale-head-reclaimed', head: h.id, pid: h.pid });
    host.detachInShm(h.id);
    host.emit({ kind: 'head-detached', head: h.id, pid: h.pid, reason: `QEMU pid ${h.pid} is gone (found by recovery)` });
  }
  host.freeLeaseIfNoHeads();
}

/** A backend killed mid-attach may have registered the head without claiming its windows: claim what is missing. */
export function ensureWindows(pool: Pool, head: number, windows: PoolWindow[]): void {
  const s = pool.state;
  for (const w of windows) {
    const r = s.bytesToBlocks(w.offset, w.size);
    if (s.block(r.first).holders.includes(head)) continue;
    pool.claim(head, r, { shared: !w.exclusive }, { kind: 'static', recovered: true });
  }
}

/**
 * Rebuilds a re-adopted head's grants from the journal and reconciles them
 * with the LDs QEMU really has: a hot-add grant whose device is gone was
 * released while we were down (its blocks are freed now); a device with no
 * grant is left from an add that never answered (it is removed).
 */
export async function adoptGrants(host: RecoveryHost, head: number, delivery: Delivery | null, hotAdded: PoolWindow[]): Promise<void> {
  const { pool } = host;
  const grants = grantsFromJournal(readJournal(pool.journalFile), head, pool.state.header.blockBytes);
  const hotplug = delivery?.kind === 'hotplug';
  const kept = [];
  for (const g of grants) {
    const ld = hotAdded.find((w) => w.offset === g.offset && w.size === g.len);
    if (hotplug && !ld) {
      pool.release(head, pool.state.bytesToBlocks(g.offset, g.len), { kind: 'dynamic', tag: g.tag, recovered: true });
      const tag = g.tag === ZERO_TAG ? null : g.tag;
      host.emit({ kind: 'capacity-released', head, offset: g.offset, len: g.len, tag, via: VIA.recovery });
      continue;
    }
    kept.push({ ...g, delivered: ld ? ldDelivered(ld) : { offset: g.offset, len: g.len } });
  }
  for (const w of hotAdded) {
    if (kept.some((g) => g.delivered.deviceId === w.deviceId)) continue;
    pool.note({ event: 'orphan-ld-removed', head, device: w.deviceId, offset: w.offset, size: w.size });
    // Through the delivery, so its port is free again once QEMU has dropped the device.
    await delivery?.release(ldDelivered(w)).then(
      ({ gone }) => gone.catch(() => undefined),
      () => undefined,
    );
  }
  if (grants.length > 0) host.capacity.adopt(head, kept);
}

/** A hot-added LD found in QOM, as its delivery would have recorded it. */
function ldDelivered(w: PoolWindow): Delivered {
  return {
    offset: w.offset,
    len: w.size,
    deviceId: w.deviceId,
    backendId: w.backendId,
    port: ldPortOf(w.deviceId) ?? undefined,
    ...(w.lsaPath ? { lsaPath: w.lsaPath } : {}),
  };
}
