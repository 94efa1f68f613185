// Crash recovery and re-adoption: what the journal says a head holds and
// which FM adds never answered, read from the typed journal events
// (pool/journal-events.ts), and the procedures a starting backend runs on
// them so every operation is either wholly there or not at all.
import { ZERO_TAG } from '../fmapi/index.js';
import { type JournalEntry, noteOf } from '../pool/index.js';

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
