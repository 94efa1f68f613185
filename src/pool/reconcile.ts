// Puts shared memory back to the journal's replay: block words, head
// entries, the lease owner, and the counters that only ever grow. The
// writer journals an operation after its atomic update, so a writer killed
// in between leaves shm one unreported step ahead; that step never counted.
// Pool.recoverFromJournal calls it and journals what it changed.
import type { JournalImage } from './image.js';
import type { PoolState } from './state.js';

export interface Reconciled {
  /** Block words rewritten. */
  blocks: number;
  /** Heads whose attached state was put back. */
  heads: number[];
  /** Whether the lease owner was put back. */
  lease: boolean;
}

/** Makes `s` equal `img`'s replay (`replay`, its state); returns what differed. */
export function reconcileWithReplay(s: PoolState, img: JournalImage, replay: PoolState): Reconciled {
  let blocks = 0;
  for (let b = 0; b < s.blockCount; b++) {
    const want = replay.rawBlockWord(b);
    if (s.rawBlockWord(b) !== want) {
      s.setRawBlockWord(b, want);
      blocks++;
    }
  }
  const heads: number[] = [];
  for (let h = 0; h < s.headCount; h++) {
    if (s.isAttached(h) !== replay.isAttached(h)) {
      s.forceHeadState(h, replay.isAttached(h), replay.head(h).pid);
      heads.push(h);
    }
  }
  const lease = s.lease().owner !== img.lease.owner;
  if (lease) s.setRawLease(img.lease.owner);
  // The epoch only has to grow: shm may be one takeover ahead, never behind.
  s.raiseLeaseEpoch(img.lease.epoch);
  s.raiseJournalSeq(img.lastSeq);
  return { blocks, heads, lease };
}
