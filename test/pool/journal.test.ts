// The journal tail's group commit (pool/journal.ts): with it, lines are in
// the file as soon as they are appended, and one fdatasync covers every
// line appended in the same turn of the event loop (or while the previous
// one ran); durable() says when. Real files; a FIFO, where fdatasync fails (EINVAL), stands
// for a disk that fails it.
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Journal, type JournalEntry, readJournal } from '../../src/pool/index.js';
import { tempDir } from '../helpers/pool.js';

const line = (seq: number): JournalEntry =>
  ({ seq, time: new Date(0).toISOString(), op: 'note', args: { event: 'guest-reset', head: 0 }, result: { ok: true } }) as JournalEntry;

describe('journal group commit', () => {
  it('without it, each append is fdatasynced before it returns', async () => {
    const j = new Journal(join(tempDir(), 'journal.jsonl'));
    j.append(line(1));
    j.append(line(2));
    expect(j.fdatasyncs).toBe(2);
    await j.durable();
    expect(j.fdatasyncs).toBe(2);
    j.close();
  });

  it('with it, appends are in the file at once and one fdatasync covers every line written in the same turn', async () => {
    const path = join(tempDir(), 'journal.jsonl');
    const j = new Journal(path);
    j.groupCommit();
    // Two operations answered in one turn (one alone would fdatasync on the loop, several in the threadpool).
    j.append(line(1));
    const first = j.durable();
    for (let s = 2; s <= 6; s++) j.append(line(s));
    const all = j.durable();
    // A writer killed now leaves every line in the file (the page cache has them).
    expect(readJournal(path).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(j.fdatasyncs).toBe(0);
    await Promise.all([first, all]);
    expect(j.fdatasyncs).toBe(1);
    // One operation alone.
    j.append(line(7));
    await j.durable();
    expect(j.fdatasyncs).toBe(2);
    // Nothing owed: no further fdatasync.
    await j.durable();
    expect(j.fdatasyncs).toBe(2);
    // A line nobody waits for (a head's detach) is made durable all the same, at the end of its turn.
    j.append(line(8));
    await new Promise((r) => setImmediate(r));
    expect(j.fdatasyncs).toBe(3);
    await j.durable();
    expect(j.fdatasyncs).toBe(3);
    j.close();
  });

  it('a lone waiter is made durable on the loop, within its turn; one asking offLoop, in the threadpool after it', async () => {
    const j = new Journal(join(tempDir(), 'journal.jsonl'));
    j.groupCommit();
    const order = async (offLoop: boolean) => {
      const seen: string[] = [];
      j.append(line(1));
      const done = j.durable({ offLoop }).then(() => seen.push('durable'));
      // Queued after the group's own end-of-turn flush: runs after it in the same turn.
      await new Promise<void>((r) =>
        setImmediate(() => {
          seen.push('turn over');
          r();
        }),
      );
      await done;
      return seen;
    };
    expect(await order(false)).toEqual(['durable', 'turn over']);
    expect(await order(true)).toEqual(['turn over', 'durable']);
    expect(j.fdatasyncs).toBe(2);
    j.close();
  });

  it('a line that asks for no sync is written but holds up nobody; the next synced line carries it', async () => {
    const path = join(tempDir(), 'journal.jsonl');
    const j = new Journal(path);
    j.groupCommit();
    j.append(line(1), false);
    await j.durable();
    expect(j.fdatasyncs).toBe(0);
    j.append(line(2));
    await j.durable();
    expect(j.fdatasyncs).toBe(1);
    expect(readJournal(path)).toHaveLength(2);
    j.close();
  });

  it('close makes what is owed durable and answers those waiting; compaction does too', async () => {
    const dir = tempDir();
    const j = new Journal(join(dir, 'journal.jsonl'));
    j.groupCommit();
    j.append(line(1));
    j.append(line(2));
    const waiting = j.durable();
    j.compact(join(dir, 'snapshot.json'), '{}\n');
    await waiting;
    j.append(line(3));
    const last = j.durable();
    j.close();
    await last;
    expect(readFileSync(join(dir, 'journal.jsonl'), 'utf8')).toContain('"seq":3');
  });

  it('a failed fdatasync fails every wait from then on, also those for lines written before it', async () => {
    const fifo = join(tempDir(), 'journal.jsonl');
    execFileSync('mkfifo', [fifo]);
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const sync = new Journal(fifo);
      expect(() => sync.append(line(1))).toThrow(/EINVAL/);
      sync.close();
      const j = new Journal(fifo);
      j.groupCommit();
      j.append(line(1));
      const first = j.durable();
      j.append(line(2));
      await expect(first).rejects.toThrow(/fdatasync failed \(EINVAL\); nothing more is reported durable/);
      await expect(j.durable()).rejects.toThrow(/fdatasync failed/);
      j.append(line(3), false);
      await expect(j.durable()).rejects.toThrow(/fdatasync failed/);
      j.close();
    } finally {
      closeSync(reader);
    }
  });
});
