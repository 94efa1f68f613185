// Whether a journal (snapshot + tail) is this pool's and whole: its
// geometry and identity (pool id, creation time) must be the state
// object's, and its last seq must be where shared memory's counter says.
// A journal from another pool, or one that lost lines already answered,
// would otherwise be "recovered" into shared memory, silently dropping
// grants (docs/reliability.md). Both serve and fsck ask this.
import { PoolError } from './errors.js';
import type { LoadedImage } from './journal.js';
import { type Header, MASK_BITS } from './layout.js';
import type { PoolState } from './state.js';

export interface JournalMismatch {
  kind: 'journal-foreign' | 'journal-lost-lines';
  message: string;
  /** Seqs shared memory handed out that the journal lacks (journal-lost-lines). */
  lost?: { from: number; to: number };
}

/**
 * `seqBefore`/`seqAfter`: shared memory's journal counter read before and
 * after the journal was loaded (a live writer may append meanwhile). A
 * writer killed between taking a seq and its fsync leaves one seq unwritten,
 * never answered; more than one missing means answered lines are gone.
 */
export function journalMismatch(
  header: Header,
  seqBefore: number,
  seqAfter: number,
  loaded: LoadedImage,
  where: string,
): JournalMismatch | null {
  const p = loaded.image.pool;
  const said = (g: { capacityBytes: number; headCount: number; blockBytes: number; createdMs: number; poolId?: string }) =>
    `capacity ${g.capacityBytes}, ${g.headCount} heads, ${g.blockBytes}-byte blocks, created ${new Date(g.createdMs).toISOString()}${g.poolId ? `, id ${g.poolId}` : ''}`;
  const sameId = !p.poolId || !header.poolId || p.poolId === header.poolId;
  if (
    p.capacityBytes !== header.capacityBytes ||
    p.headCount !== header.headCount ||
    p.blockBytes !== header.blockBytes ||
    p.createdMs !== header.createdMs ||
    !sameId
  ) {
    return {
      kind: 'journal-foreign',
      message: `${where} belongs to another pool: it says ${said(p)}; shared memory says ${said(header)}`,
    };
  }
  const last = loaded.image.lastSeq;
  if (last > seqAfter) {
    return {
      kind: 'journal-foreign',
      message: `${where} goes up to seq ${last} but shared memory has handed out seqs up to ${seqAfter} only: the journal is not this pool's`,
    };
  }
  if (seqBefore - last > 1) {
    return {
      kind: 'journal-lost-lines',
      message: `${where} ends at seq ${last} but shared memory has handed out seqs up to ${seqBefore}: ${seqBefore - last} journaled operations (answered ones among them) are missing`,
      lost: { from: last + 1, to: seqBefore },
    };
  }
  return null;
}

/** What putting `shm` back to `replay` takes away: each head's blocks shared memory has and the journal does not, as runs. */
export function droppedGrants(shm: PoolState, replay: PoolState): { head: number; first: number; count: number }[] {
  const out: { head: number; first: number; count: number }[] = [];
  const open = new Map<number, { head: number; first: number; count: number }>();
  for (let b = 0; b <= shm.blockCount; b++) {
    const gone = b < shm.blockCount ? shm.rawBlockWord(b) & ~replay.rawBlockWord(b) & MASK_BITS : 0n;
    for (let h = 0; h < shm.headCount; h++) {
      const run = open.get(h);
      if ((gone >> BigInt(h)) & 1n) {
        if (run) run.count++;
        else open.set(h, { head: h, first: b, count: 1 });
      } else if (run) {
        out.push(run);
        open.delete(h);
      }
    }
  }
  return out.sort((a, b) => a.head - b.head || a.first - b.first);
}

/**
 * The writer's check when it takes the lock: a foreign journal is refused;
 * lost lines are refused unless `accept`, and then returned so recovery
 * journals what it drops for them.
 */
export function requireOwnJournal(
  pool: { name: string; state: PoolState; journalFile: string; snapshotFile: string },
  seqBefore: number,
  loaded: LoadedImage,
  accept: boolean,
): { from: number; to: number } | null {
  const where =
    loaded.snapshotSeq === null ? `journal ${pool.journalFile}` : `journal ${pool.journalFile} (with snapshot ${pool.snapshotFile})`;
  const bad = journalMismatch(pool.state.header, seqBefore, pool.state.journalSeq, loaded, where);
  if (bad?.kind === 'journal-foreign') throw new PoolError('BAD_STATE', `pool "${pool.name}": ${bad.message}; refusing to recover from it`);
  if (!bad?.lost) return null;
  if (!accept) {
    throw new PoolError(
      'JOURNAL_LOSS',
      `pool "${pool.name}": ${bad.message}; refusing to start, since recovering from this journal would drop them (--accept-journal-loss accepts that, journaled and logged)`,
      { lost: bad.lost },
    );
  }
  return bad.lost;
}

/** How messages name a pool's journal: the tail, and the snapshot when there is one. */
export function journalWhere(pool: { journalFile: string; snapshotFile: string }, loaded: LoadedImage): string {
  return loaded.snapshotSeq === null ? `journal ${pool.journalFile}` : `journal ${pool.journalFile} (with snapshot ${pool.snapshotFile})`;
}
