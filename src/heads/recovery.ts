// Crash recovery and re-adoption: what the journal's image (pool/image.ts:
// snapshot + tail, built once when the backend takes the writer lock) says
// each head holds and which FM adds never answered, and the procedures a
// starting backend runs on it so every operation is either wholly there or
// not at all.
import type { Logger } from 'pino';
import type { CapacityManager, Delivered, Delivery, Grant } from '../capacity/index.js';
import { type ImageGrant, type JournalEntry, JournalImage, type Pool, type UnfinishedAdd } from '../pool/index.js';
import { ldPortOf } from '../qemu/index.js';
import type { PoolWindow } from './devices.js';
import type { BackendEvent } from './events.js';
import type { RecordState } from './records.js';

/**
 * The dynamic grants a head holds according to a whole journal (lines
 * from pool-create on). Recovery itself reads the writer's live image
 * (Pool.image), built once from snapshot + tail; this is for tools and tests.
 */
export function grantsFromJournal(entries: JournalEntry[], head: number): ImageGrant[] {
  return JournalImage.fromEntries(entries).grantsOf(head);
}

/** Claims of FM adds that began and never ended, in a whole journal (journals written before one-line adds). */
export function unfinishedAdds(entries: JournalEntry[]): UnfinishedAdd[] {
  return JournalImage.fromEntries(entries).unfinishedAdds();
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
  // Only journals written before one-line adds can hold these (fm-add-begin without fm-add-end).
  for (const u of pool.image.unfinishedAdds()) {
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
 * Rebuilds a re-adopted head's grants from the journal's image (built once
 * at start, not read again per head) and reconciles them with the LDs QEMU
 * really has: a device with no grant is left from an add that never
 * answered (it is removed). A grant whose release had begun, or whose
 * hot-added device left while we were down, is releasing again: its blocks
 * are freed once QEMU shows the guest cannot reach them, else quarantined
 * (capacity/release.ts); a hot-added device still present is asked to leave again.
 */
export async function adoptGrants(host: RecoveryHost, head: number, delivery: Delivery | null, hotAdded: PoolWindow[]): Promise<void> {
  const { pool } = host;
  const grants = pool.image.grantsOf(head);
  const hotplug = delivery?.kind === 'hotplug';
  const kept: (Omit<Grant, 'state' | 'head'> & { releasing: boolean })[] = [];
  for (const g of grants) {
    const ld = hotAdded.find((w) => w.offset === g.offset && w.size === g.len);
    if (!delivery && (g.releasing || (hotplug && !ld))) {
      // Nothing to ask QEMU with: the blocks stay held (QEMU's exit frees them).
      host.log.warn({ head }, `head ${head}: ${g.len}@${g.offset} stays held: no delivery to ask whether the guest still reaches it`);
    }
    const delivered = ld ? ldDelivered(ld) : { offset: g.offset, len: g.len };
    // A hot-added LD that left while we were down is free only once QEMU shows no way in (docs/security.md).
    const releasing = g.releasing || (hotplug && !ld);
    kept.push({ offset: g.offset, len: g.len, tag: g.tag, shared: g.shared, delivered, releasing });
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
  if (grants.length === 0) return;
  host.capacity.adopt(head, kept);
  // Begun releases finish the usual way, freeing only on evidence; the re-adoption does not wait for them.
  void host.capacity
    .resumeReleases(head)
    .catch((e: Error) => host.log.warn({ head }, `head ${head}: finishing a release failed: ${e.message}`));
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
