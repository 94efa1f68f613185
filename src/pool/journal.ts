// The pool journal: append-only JSON lines, one per operation, fsynced
// before the operation is reported done. Replaying it rebuilds the state
// image that fsck compares with shared memory. What a line may say is
// journal-events.ts.
import { closeSync, fdatasyncSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { PoolError } from './errors.js';
import type { JournalEntry } from './journal-events.js';
import type { Geometry } from './layout.js';
import { ensureDir } from './paths.js';
import { PoolState } from './state.js';

export class Journal {
  private fd: number | null;

  constructor(readonly path: string) {
    ensureDir(dirname(path));
    try {
      this.fd = openSync(path, 'a', 0o600);
    } catch (e) {
      throw new PoolError('BAD_STATE', `cannot open journal ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    // A fresh journal must survive a crash of the directory entry too.
    const dfd = openSync(dirname(path), 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  }

  append(entry: JournalEntry): void {
    if (this.fd === null) throw new PoolError('CLOSED', `journal ${this.path} is closed`);
    // One write per line: O_APPEND keeps concurrent writers' lines whole.
    writeSync(this.fd, `${JSON.stringify(entry)}\n`);
    fdatasyncSync(this.fd);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

export function readJournal(path: string): JournalEntry[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new PoolError('NOT_FOUND', `journal ${path} does not exist`);
    }
    throw e;
  }
  const out: JournalEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (!line) continue;
    try {
      out.push(JSON.parse(line) as JournalEntry);
    } catch {
      // Only a torn final line (crash mid-write) is tolerable; damage elsewhere is real.
      if (i === lines.length - 1 || (i === lines.length - 2 && lines[lines.length - 1] === '')) continue;
      throw new PoolError('BAD_STATE', `journal ${path} line ${i + 1} is not valid JSON`);
    }
  }
  // Concurrent writers append in completion order; seq is the true order.
  out.sort((a, b) => a.seq - b.seq);
  return out;
}

// Lines come from disk: a field replay depends on is checked, not trusted to the type.
const num = <A extends object>(args: A, key: keyof A & string): number => {
  const v: unknown = args[key];
  if (typeof v !== 'number') throw new PoolError('BAD_STATE', `journal entry lacks numeric "${key}"`);
  return v;
};

/**
 * Rebuilds a private state image from journal entries. Effects are applied
 * per head (set or clear that head's bit), so the result does not depend on
 * the order in which concurrent writers' entries landed.
 */
export function replayJournal(entries: JournalEntry[]): { state: PoolState; lastSeq: number } {
  const create = entries.find((e) => e.op === 'pool-create' && e.result.ok);
  if (create?.op !== 'pool-create') throw new PoolError('BAD_STATE', 'journal has no pool-create entry');
  const g: Geometry = {
    capacityBytes: num(create.args, 'capacityBytes'),
    blockBytes: num(create.args, 'blockBytes'),
    headCount: num(create.args, 'headCount'),
  };
  const state = PoolState.blank(g, num(create.args, 'createdMs'));
  // holders[block] = Map(head → shared?)
  const holders = new Map<number, Map<number, boolean>>();
  const registered = new Map<number, number>(); // head → pid
  let lease: number | null = null;
  let lastSeq = 0;
  for (const e of entries) {
    lastSeq = Math.max(lastSeq, e.seq);
    if (!e.result.ok) continue;
    switch (e.op) {
      case 'head-register':
        registered.set(num(e.args, 'head'), typeof e.args.pid === 'number' ? e.args.pid : 0);
        break;
      case 'head-unregister':
        registered.delete(num(e.args, 'head'));
        break;
      case 'claim': {
        const a = e.args;
        const head = num(a, 'head');
        const first = num(a, 'first');
        for (let b = first; b < first + num(a, 'count'); b++) {
          const m = holders.get(b) ?? new Map<number, boolean>();
          holders.set(b, m);
          m.set(head, a.shared === true);
        }
        break;
      }
      case 'release': {
        const a = e.args;
        const head = num(a, 'head');
        const first = num(a, 'first');
        for (let b = first; b < first + num(a, 'count'); b++) holders.get(b)?.delete(head);
        break;
      }
      case 'release-all': {
        const head = num(e.args, 'head');
        const sharedOnly = e.args.sharedOnly === true;
        for (const m of holders.values()) if (!sharedOnly || m.get(head) === true) m.delete(head);
        break;
      }
      case 'lease-acquire':
        if (e.result.acquired === true) lease = num(e.args, 'head');
        break;
      case 'lease-release':
        if (e.result.released === true) lease = null;
        break;
      case 'pool-create':
      case 'note':
        break;
    }
  }
  for (const [h, pid] of registered) state.registerHead(h, pid, 0);
  // The lease outlives its owner's detach while other heads remain (DESIGN.md §2.3).
  state.setRawLease(lease);
  for (const [b, m] of holders) {
    let word = 0n;
    for (const [h, shared] of m) word |= (1n << BigInt(h)) | (shared ? 1n << 32n : 0n);
    if (word !== 0n) state.setRawBlockWord(b, word);
  }
  return { state, lastSeq };
}
