// The invariant checker: what must hold in a pool's state image, and
// whether shared memory agrees with the journal's replay (snapshot + tail).
import { existsSync } from 'node:fs';
import { maskHolders } from './block-word.js';
import { journalMismatch, journalWhere } from './identity.js';
import { MASK_BITS, REF_FLAG, SHARED_FLAG } from './layout.js';
import type { Pool } from './pool.js';
import type { PoolState } from './state.js';

export type FindingKind =
  | 'holder-out-of-range'
  | 'unregistered-holder'
  | 'exclusive-multiple-owners'
  | 'stray-shared-flag'
  | 'stray-bits'
  | 'reference-unaccounted'
  | 'lease-out-of-range'
  | 'lease-without-heads'
  | 'journal-missing'
  | 'journal-unreadable'
  | 'journal-block-mismatch'
  | 'journal-head-mismatch'
  | 'journal-lease-mismatch'
  /** The journal (or snapshot) is another pool's: geometry, id, creation time or seqs differ from the state object's. */
  | 'journal-foreign'
  /** The journal lacks lines shared memory says were written (answered operations). */
  | 'journal-lost-lines';

export interface Finding {
  kind: FindingKind;
  message: string;
  block?: number;
  head?: number;
}

export interface FsckReport {
  clean: boolean;
  findings: Finding[];
  blocksChecked: number;
  /** Tail lines replayed on top of the snapshot. */
  journalEntries: number | null;
  /** The last seq the snapshot covers, or null when the journal has no snapshot yet. */
  snapshotSeq: number | null;
  /** Tags the journal says the FM keeps (5606h), with their blocks. */
  references: { tag: string; count: number; blocks: number }[];
  /**
   * Grants the FM released whose blocks are still held: QEMU has not yet
   * shown that the guest cannot reach them (`reason` once quarantined).
   * Expected state, not a finding.
   */
  pendingReleases: { head: number; offset: number; len: number; reason: string | null }[];
}

/** Invariants of one image on its own. Stops listing after `limit` findings. */
export function checkInvariants(state: PoolState, limit = 100): Finding[] {
  const out: Finding[] = [];
  const registered = state.heads().map((h) => h.attached);
  const headMask = (1n << BigInt(state.headCount)) - 1n;
  for (let b = 0; b < state.blockCount && out.length < limit; b++) {
    const w = state.rawBlockWord(b);
    if (w === 0n) continue;
    const mask = w & MASK_BITS;
    if ((w & ~(MASK_BITS | SHARED_FLAG | REF_FLAG)) !== 0n)
      out.push({ kind: 'stray-bits', block: b, message: `block ${b} has undefined bits set (word 0x${w.toString(16)})` });
    if (mask === 0n && (w & REF_FLAG) !== 0n) continue; // kept by a tag reference (5606h), no holder
    if (mask === 0n) {
      out.push({ kind: 'stray-shared-flag', block: b, message: `block ${b} is marked shared but has no holder` });
      continue;
    }
    if ((mask & ~headMask) !== 0n) {
      out.push({
        kind: 'holder-out-of-range',
        block: b,
        message: `block ${b} is held by head(s) ${maskHolders(mask & ~headMask).join(', ')} beyond the pool's ${state.headCount} heads`,
      });
    }
    for (const h of maskHolders(mask & headMask)) {
      if (!registered[h])
        out.push({ kind: 'unregistered-holder', block: b, head: h, message: `block ${b} is held by head ${h}, which is not registered` });
    }
    if ((w & SHARED_FLAG) === 0n && maskHolders(mask).length > 1) {
      out.push({
        kind: 'exclusive-multiple-owners',
        block: b,
        message: `block ${b} is exclusive yet held by heads ${maskHolders(mask).join(', ')}`,
      });
    }
  }
  const lease = state.lease();
  if (lease.owner !== null) {
    if (lease.owner >= state.headCount) {
      out.push({
        kind: 'lease-out-of-range',
        head: lease.owner,
        message: `the FM-LD lease names head ${lease.owner}, beyond the pool's heads`,
      });
    } else if (!registered.some(Boolean)) {
      out.push({
        kind: 'lease-without-heads',
        head: lease.owner,
        message: `the FM-LD lease is held by head ${lease.owner} but no head is attached`,
      });
    }
  }
  return out;
}

/** Shm against the journal's replay (snapshot + tail). */
export function compareWithJournal(state: PoolState, replay: PoolState, limit = 100): Finding[] {
  const out: Finding[] = [];
  for (let b = 0; b < state.blockCount && out.length < limit; b++) {
    const a = state.rawBlockWord(b);
    const r = replay.rawBlockWord(b);
    if (a !== r) {
      out.push({
        kind: 'journal-block-mismatch',
        block: b,
        message: `block ${b}: shared memory has holders [${maskHolders(a & MASK_BITS)}]${a & SHARED_FLAG ? ' shared' : ''}, the journal says [${maskHolders(r & MASK_BITS)}]${r & SHARED_FLAG ? ' shared' : ''}`,
      });
    }
  }
  for (let h = 0; h < state.headCount; h++) {
    const a = state.isAttached(h);
    if (a !== replay.isAttached(h)) {
      out.push({
        kind: 'journal-head-mismatch',
        head: h,
        message: `head ${h} is ${a ? '' : 'not '}registered in shared memory but the journal says it is ${a ? 'not' : ''}`,
      });
    }
  }
  const la = state.lease().owner;
  const lr = replay.lease().owner;
  if (la !== lr)
    out.push({
      kind: 'journal-lease-mismatch',
      message: `the FM-LD lease is held by ${la ?? 'nobody'} in shared memory, by ${lr ?? 'nobody'} per the journal`,
    });
  return out;
}

export function fsck(pool: Pool): FsckReport {
  const findings = checkInvariants(pool.state);
  let journalEntries: number | null = null;
  let snapshotSeq: number | null = null;
  let references: FsckReport['references'] = [];
  const pendingReleases: FsckReport['pendingReleases'] = [];
  if (!existsSync(pool.journalFile)) {
    findings.push({
      kind: 'journal-missing',
      message: `journal ${pool.journalFile} does not exist; shared memory cannot be checked against it`,
    });
  } else {
    try {
      const seqBefore = pool.state.journalSeq;
      const loaded = pool.loadImage();
      journalEntries = loaded.tailEntries;
      snapshotSeq = loaded.snapshotSeq;
      const bad = journalMismatch(pool.state.header, seqBefore, pool.state.journalSeq, loaded, journalWhere(pool, loaded));
      if (bad) findings.push({ kind: bad.kind, message: bad.message });
      // Another pool's replay compared block by block would only bury the one finding that matters.
      if (bad?.kind !== 'journal-foreign') findings.push(...compareWithJournal(pool.state, loaded.image.toState()));
      for (let head = 0; head < pool.state.headCount; head++) {
        for (const g of loaded.image.grantsOf(head).filter((x) => x.releasing)) {
          pendingReleases.push({ head, offset: g.offset, len: g.len, reason: g.quarantined ?? null });
        }
      }
      references = loaded.image
        .references()
        .map((r) => ({ tag: r.tag, count: r.count, blocks: r.ranges.reduce((n, x) => n + x.count, 0) }));
      const covered = new Set(
        loaded.image.references().flatMap((r) => r.ranges.flatMap((x) => Array.from({ length: x.count }, (_, i) => x.first + i))),
      );
      for (let b = 0; b < pool.state.blockCount && findings.length < 100; b++) {
        if (pool.state.block(b).referenced && !covered.has(b))
          findings.push({
            kind: 'reference-unaccounted',
            block: b,
            message: `block ${b} is marked referenced but no journaled tag reference covers it`,
          });
      }
    } catch (e) {
      findings.push({ kind: 'journal-unreadable', message: (e as Error).message });
    }
  }
  return {
    clean: findings.length === 0,
    findings,
    blocksChecked: pool.state.blockCount,
    journalEntries,
    snapshotSeq,
    pendingReleases,
    references,
  };
}
