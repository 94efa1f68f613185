// A tampered state: shm objects someone made before the backend did, and
// journals or snapshots that are damaged, misspelt, another pool's, or
// missing lines already answered. Each must be refused by `serve` (the
// writer lock) and reported by `fsck`, naming the file and line; nothing is
// dropped silently. The uid-switching form of the pre-created objects is
// hostile-state-root.test.ts.
import { appendFileSync, chmodSync, copyFileSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { native } from '../../src/native/index.js';
import { fsck, type JournalEntry, Pool, type PoolError, readJournal } from '../../src/pool/index.js';
import { tempDir, uniquePoolName } from '../helpers/pool.js';
import { cli, makeTestPool, startBackend } from '../helpers/qemu.js';

const MiB = 2 ** 20;
const geometry = { capacityBytes: 256 * MiB, blockBytes: 2 * MiB, headCount: 2 };

function made(name = uniquePoolName('hs'), stateDir = tempDir()): { name: string; stateDir: string; journal: string } {
  Pool.create({ name, stateDir, ...geometry }).close();
  return { name, stateDir, journal: join(stateDir, name, 'journal.jsonl') };
}

/** A pool whose heads hold answered grants, left as a crashed backend would leave it (no clean close needed). */
function withGrants(): ReturnType<typeof made> {
  const p = made();
  const pool = Pool.open(p);
  pool.lockWriter();
  pool.registerHead(0, process.pid);
  pool.registerHead(1, process.pid);
  pool.claim(0, { first: 0, count: 4 });
  pool.claim(1, { first: 8, count: 2 });
  pool.claim(0, { first: 20, count: 1 });
  pool.close();
  return p;
}

function refusal(p: { name: string; stateDir: string }, opts: { acceptJournalLoss?: boolean } = {}): string {
  const pool = Pool.open(p);
  try {
    pool.lockWriter(opts);
    return '';
  } catch (e) {
    return (e as Error).message;
  } finally {
    pool.close();
  }
}

function fsckMessages(p: { name: string; stateDir: string }): string[] {
  const pool = Pool.open({ ...p, readOnly: true });
  try {
    return fsck(pool).findings.map((f) => `${f.kind}: ${f.message}`);
  } finally {
    pool.close();
  }
}

/** What a reboot does to a pool: /dev/shm empties, the journal stays. */
function reboot(name: string): void {
  for (const s of ['mem', 'state']) native.shmUnlink(`/cxl-mhd.${name}.${s}`);
}

describe('shm objects made before the backend', () => {
  it('objects more open than the pool (0666) are refused, by serve and fsck, saying whose they are', () => {
    // The pool existed with its journal; /dev/shm emptied at reboot; someone recreated the objects wide open.
    const p = made();
    reboot(p.name);
    Pool.create({ name: p.name, stateDir: tempDir(), ...geometry, mode: 0o666 }).close();
    let msg = '';
    try {
      Pool.open(p).close();
    } catch (e) {
      msg = (e as Error).message;
      expect((e as PoolError).code).toBe('NOT_OWNED');
    }
    expect(msg).toMatch(
      new RegExp(
        `shm object /dev/shm/cxl-mhd\\.${p.name}\\.state \\(uid ${process.getuid?.()}\\) has mode 0666, more open than the pool's 0600`,
      ),
    );
    const served = cli(['serve', '--pool', p.name, '--state-dir', p.stateDir, '--run-dir', tempDir()]);
    expect([served.code, served.stderr.trim().split('\n').length]).toEqual([1, 1]);
    expect(served.stderr).toMatch(/has mode 0666, more open than the pool's 0600/);
    const checked = cli(['fsck', '--pool', p.name, '--state-dir', p.stateDir]);
    expect(checked.code).not.toBe(0);
    expect(checked.stderr + checked.stdout).toMatch(/more open than the pool's 0600/);
  });

  it('objects of another pool under the same name (right owner and mode) are refused as not matching the journal', () => {
    const p = withGrants();
    reboot(p.name);
    Pool.create({ name: p.name, stateDir: tempDir(), ...geometry }).close();
    expect(refusal(p)).toMatch(/journal .*journal\.jsonl belongs to another pool: .* shared memory says .*; refusing to recover from it/);
    expect(fsckMessages(p).join('\n')).toMatch(/^journal-foreign: /);
  });

  it('on a first start without a journal the refusal says what is wrong', () => {
    const p = made();
    const other = tempDir();
    expect(refusal({ name: p.name, stateDir: other })).toMatch(
      /journal .* is empty and there is no snapshot .*: the pool's shared-memory objects were not made with this state directory/,
    );
  });
});

describe('journal faults', () => {
  it('a garbage line ending in a newline is damage, not a torn write: fsck, serve and the next start all refuse it with file:line', () => {
    const p = withGrants();
    const lines = readFileSync(p.journal, 'utf8').split('\n').length - 1;
    appendFileSync(p.journal, 'garbage}\n');
    const where = `${p.journal}:${lines + 1}: not valid JSON`;
    expect(refusal(p)).toContain(where);
    expect(fsckMessages(p).join('\n')).toContain(where);
    const served = cli(['serve', '--pool', p.name, '--state-dir', p.stateDir, '--run-dir', tempDir()]);
    expect(served.code).toBe(1);
    expect(served.stderr).toContain(where);
  });

  it('a valid-JSON line with a misspelt field is refused with file:line (never replayed into NaN)', () => {
    const p = withGrants();
    const lines = readFileSync(p.journal, 'utf8').split('\n').length - 1;
    appendFileSync(
      p.journal,
      `${JSON.stringify({ seq: 99, time: 'x', op: 'claim', args: { head: 0, frist: 30, count: 1, shared: false }, result: { ok: true } })}\n`,
    );
    expect(refusal(p)).toMatch(new RegExp(`${p.journal}:${lines + 1}: /args (lacks "first"|has a field replay does not know: "frist")`));
    expect(fsckMessages(p).join('\n')).toContain(`${p.journal}:${lines + 1}:`);
    const served = cli(['serve', '--pool', p.name, '--state-dir', p.stateDir, '--run-dir', tempDir()]);
    expect(served.stderr).not.toMatch(/NaN|BigInt/);
    expect(served.stderr).toContain(`${p.journal}:${lines + 1}:`);
  });

  it('a line naming a head the pool does not have is refused with file:line', () => {
    const p = withGrants();
    const lines = readFileSync(p.journal, 'utf8').split('\n').length - 1;
    appendFileSync(
      p.journal,
      `${JSON.stringify({ seq: 99, time: 'x', op: 'claim', args: { head: 7, first: 30, count: 1, shared: false }, result: { ok: true } })}\n`,
    );
    expect(refusal(p)).toContain(`${p.journal}:${lines + 1}: journal names head 7, outside the pool's 2 heads`);
  });

  it("another pool's journal (other capacity) is refused by serve and fsck; no grant is dropped", () => {
    const p = withGrants();
    const q = uniquePoolName('hs');
    const qDir = tempDir();
    Pool.create({ name: q, stateDir: qDir, ...geometry, capacityBytes: 512 * MiB }).close();
    copyFileSync(join(qDir, q, 'journal.jsonl'), p.journal);
    expect(refusal(p)).toMatch(/belongs to another pool: it says capacity 536870912.*shared memory says capacity 268435456/);
    expect(fsckMessages(p)).toEqual([expect.stringMatching(/^journal-foreign: /)]);
    const pool = Pool.open({ ...p, readOnly: true });
    expect(pool.state.block(0).holders).toEqual([0]);
    pool.close();
  });

  it("another pool's snapshot is refused the same way", () => {
    const p = withGrants();
    const q = uniquePoolName('hs');
    const qDir = tempDir();
    const other = Pool.create({ name: q, stateDir: qDir, ...geometry, headCount: 3 });
    other.lockWriter();
    other.compact();
    other.close();
    copyFileSync(join(qDir, q, 'snapshot.json'), join(p.stateDir, p.name, 'snapshot.json'));
    expect(refusal(p)).toMatch(/\(with snapshot .*snapshot\.json\) belongs to another pool: it says capacity 268435456, 3 heads/);
  });

  it('a journal whose seqs run past what shared memory handed out is foreign', () => {
    const p = withGrants();
    const renumbered = readJournal(p.journal).map((e: JournalEntry) => JSON.stringify({ ...e, seq: e.seq + 1000 }));
    writeFileSync(p.journal, `${renumbered.join('\n')}\n`);
    expect(refusal(p)).toMatch(
      /goes up to seq 10\d\d but shared memory has handed out seqs up to \d+ only: the journal is not this pool's/,
    );
  });

  it('a snapshot with a misspelt field is refused with its file', () => {
    const p = withGrants();
    const pool = Pool.open(p);
    pool.lockWriter();
    pool.compact();
    pool.close();
    const snap = join(p.stateDir, p.name, 'snapshot.json');
    writeFileSync(snap, readFileSync(snap, 'utf8').replace('"lastSeq"', '"lastSeg"'));
    expect(refusal(p)).toContain(`snapshot ${snap}:1: (the line) lacks "lastSeq"`);
    expect(fsckMessages(p).join('\n')).toContain(`snapshot ${snap}:1:`);
  });

  it('a journal missing answered lines is refused; --accept-journal-loss starts, and journals and logs what it dropped', () => {
    const p = withGrants();
    const all = readFileSync(p.journal, 'utf8').split('\n').filter(Boolean);
    // Keep pool-create and the registrations: the three answered claims are lost.
    writeFileSync(p.journal, `${all.slice(0, 3).join('\n')}\n`);
    expect(refusal(p)).toMatch(
      /ends at seq 3 but shared memory has handed out seqs up to 6: 3 journaled operations .* are missing; refusing to start/,
    );
    expect(fsckMessages(p).join('\n')).toMatch(/^journal-lost-lines: /m);
    const served = cli(['serve', '--pool', p.name, '--state-dir', p.stateDir, '--run-dir', tempDir()]);
    expect([served.code, served.stderr]).toEqual([1, expect.stringMatching(/--accept-journal-loss accepts that/)]);

    const pool = Pool.open(p);
    pool.lockWriter({ acceptJournalLoss: true });
    const fixed = pool.recoverFromJournal();
    pool.close();
    const dropped = [
      { head: 0, first: 0, count: 4 },
      { head: 0, first: 20, count: 1 },
      { head: 1, first: 8, count: 2 },
    ];
    expect(fixed.dropped).toEqual(dropped);
    const note = readJournal(p.journal).find((e) => e.op === 'note' && e.args.event === 'journal-loss-accepted');
    expect(note?.args).toEqual({ event: 'journal-loss-accepted', lostSeqs: { from: 4, to: 6 }, dropped });
    expect(fsckMessages(p)).toEqual([]);
  });
});

describe('serve with --accept-journal-loss', () => {
  it('logs what it dropped', async () => {
    const t = makeTestPool('hs');
    Pool.create({ name: t.name, stateDir: t.stateDir, ...geometry }).close();
    const pool = Pool.open({ name: t.name, stateDir: t.stateDir });
    pool.lockWriter();
    pool.registerHead(0, 4_194_303); // no such pid: recovery reclaims the head rather than wait for it
    pool.claim(0, { first: 2, count: 3 });
    pool.claim(0, { first: 9, count: 1 });
    pool.close();
    const j = join(t.stateDir, t.name, 'journal.jsonl');
    writeFileSync(j, `${readFileSync(j, 'utf8').split('\n').slice(0, 2).join('\n')}\n`);
    chmodSync(j, 0o600);
    const b = await startBackend(t, ['--accept-journal-loss']);
    // Read once the backend is gone and its stderr closed: `ready` arrives on stdout, and under load
    // stderr's line written before it may not have been read yet.
    expect(await b.stop()).toBe(0);
    expect(b.stderr()).toMatch(
      /--accept-journal-loss: dropped 2 grant run\(s\) the journal lacks \(head 0 blocks 2\+3, head 0 blocks 9\+1\)/,
    );
  });
});

describe('pool destroy --force', () => {
  it('removes only the files the journal layout names and refuses a directory holding anything else', () => {
    // --state-dir X --pool projects: X/projects is somebody's project tree, not a pool.
    const x = tempDir();
    const name = uniquePoolName('hs');
    const dir = join(x, name);
    mkdirSync(join(dir, 'src'), { recursive: true });
    writeFileSync(join(dir, 'README'), 'mine');
    writeFileSync(join(dir, 'journal.jsonl'), '');
    const r = cli(['pool', 'destroy', '--pool', name, '--state-dir', x, '--force']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/holds files that are not this pool's journal \(README, src\); refusing to remove it/);
    expect(readdirSync(dir).sort()).toEqual(['README', 'journal.jsonl', 'src']);

    // A real pool's directory goes, with everything in it and nothing else.
    const p = withGrants();
    const pool = Pool.open(p);
    pool.lockWriter();
    pool.compact();
    pool.close();
    writeFileSync(join(p.stateDir, 'neighbour'), 'kept');
    expect(cli(['pool', 'destroy', '--pool', p.name, '--state-dir', p.stateDir, '--force']).code).toBe(0);
    expect(readdirSync(p.stateDir)).toEqual(['neighbour']);
  });

  it('refuses a pool directory that is a symbolic link', () => {
    const x = tempDir();
    const elsewhere = tempDir();
    writeFileSync(join(elsewhere, 'journal.jsonl'), '');
    const name = uniquePoolName('hs');
    symlinkSync(elsewhere, join(x, name));
    const r = cli(['pool', 'destroy', '--pool', name, '--state-dir', x, '--force']);
    expect([r.code, r.stderr]).toEqual([1, expect.stringMatching(/is not a directory \(a symbolic link\); refusing to remove it/)]);
    expect(readdirSync(elsewhere)).toEqual(['journal.jsonl']);
  });
});
