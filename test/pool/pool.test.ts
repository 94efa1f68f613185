// Pool over real POSIX shm: create/open/destroy, bad input that changes
// nothing, journal and replay, fsck findings, and the writer lock.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fsck, journalPath, Pool, PoolError, poolStatus, readJournal, replayJournal } from '../../src/pool/index.js';
import { H, MAX_HEADS } from '../../src/pool/layout.js';
import { leftoverShm, tempDir, uniquePoolName } from '../helpers/pool.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

function create(overrides: Partial<Parameters<typeof Pool.create>[0]> = {}) {
  const stateDir = tempDir();
  const name = uniquePoolName();
  const pool = Pool.create({ name, stateDir, capacityBytes: GiB, blockBytes: 2 * MiB, headCount: 3, ...overrides });
  return { pool, name, stateDir };
}

function poolErr(fn: () => unknown): PoolError {
  try {
    fn();
  } catch (e) {
    if (e instanceof PoolError) return e;
    throw e;
  }
  throw new Error('expected a PoolError');
}

describe('create and open', () => {
  it('creates both shm objects 0600, sized, with a journal', () => {
    const { pool, name, stateDir } = create();
    try {
      const data = statSync(`/dev/shm/cxl-mhd.${name}.mem`);
      const state = statSync(`/dev/shm/cxl-mhd.${name}.state`);
      expect(data.size).toBe(GiB);
      expect(data.mode & 0o777).toBe(0o600);
      expect(state.mode & 0o777).toBe(0o600);
      expect(state.size).toBe(4096 + 512 * 8); // header page + one 8-byte word per block
      const j = readJournal(journalPath(stateDir, name));
      expect(j[0]).toMatchObject({ seq: 1, op: 'pool-create', args: { capacityBytes: GiB, blockBytes: 2 * MiB, headCount: 3 } });
      expect(statSync(journalPath(stateDir, name)).mode & 0o777).toBe(0o600);
    } finally {
      pool.close();
    }
    const again = Pool.open({ name, stateDir });
    expect(again.state.header).toMatchObject({ capacityBytes: GiB, headCount: 3, blockCount: 512 });
    again.close();
  });

  it.each([
    ['BAD_NAME', { name: 'Upper' }],
    ['BAD_NAME', { name: '-lead' }],
    ['BAD_NAME', { name: 'a'.repeat(33) }],
    ['BAD_NAME', { name: '../etc' }],
    ['BAD_SIZE', { capacityBytes: 300 * MiB }],
    ['BAD_SIZE', { capacityBytes: 0 }],
    ['NO_SPACE', { capacityBytes: 2 ** 50 }],
    ['BAD_BLOCK', { blockBytes: 3 * MiB }],
    ['BAD_BLOCK', { blockBytes: MiB }],
    ['BAD_BLOCK', { blockBytes: 512 * MiB }],
    ['BAD_HEADS', { headCount: 0 }],
    ['BAD_HEADS', { headCount: 33 }],
    ['BAD_HEADS', { headCount: 1.5 }],
  ] as const)('refuses %s %j and leaves nothing behind', (code, over) => {
    const stateDir = tempDir();
    const name = 'name' in over ? over.name : uniquePoolName();
    const err = poolErr(() => Pool.create({ name, stateDir, capacityBytes: GiB, blockBytes: 2 * MiB, headCount: 3, ...over }));
    expect(err.code).toBe(code);
    expect(err.message.length).toBeGreaterThan(20);
    expect(leftoverShm()).toEqual([]);
    expect(existsSync(`/dev/shm/cxl-mhd.${name}.mem`)).toBe(false);
  });

  it('refuses to create a pool that exists, and leaves it intact', () => {
    const { pool, name, stateDir } = create();
    pool.registerHead(0, 1);
    pool.claim(0, { first: 0, count: 8 });
    pool.close();
    expect(poolErr(() => Pool.create({ name, stateDir, capacityBytes: GiB, blockBytes: 2 * MiB, headCount: 3 })).code).toBe('EXISTS');
    const p = Pool.open({ name, stateDir });
    expect(p.state.blocksOf(0)).toHaveLength(8);
    expect(fsck(p).clean).toBe(true);
    p.close();
  });

  it('a pool of MAX_HEADS heads replays (its pool-create line names 32, one more than the last head id)', () => {
    const { pool, name, stateDir } = create({ headCount: MAX_HEADS });
    pool.close();
    const p = Pool.open({ name, stateDir });
    p.lockWriter();
    p.registerHead(MAX_HEADS - 1, 1);
    expect(p.state.isAttached(MAX_HEADS - 1)).toBe(true);
    p.close();
    const path = journalPath(stateDir, name);
    writeFileSync(path, readFileSync(path, 'utf8').replace(`"headCount":${MAX_HEADS}`, `"headCount":${MAX_HEADS + 1}`));
    expect(() => readJournal(path)).toThrow(/headCount must be <= 32/);
  });

  it('refuses to open a missing pool or a state object with a wrong magic, version or size', () => {
    const stateDir = tempDir();
    expect(poolErr(() => Pool.open({ name: uniquePoolName(), stateDir })).code).toBe('NOT_FOUND');
    const { pool, name } = create();
    pool.close();
    const path = `/dev/shm/cxl-mhd.${name}.state`;
    const good = readFileSync(path);
    const put = (mutate: (b: Buffer) => Buffer) => writeFileSync(path, mutate(Buffer.from(good)));
    put((b) => {
      b.write('NOTMAGIC', 0);
      return b;
    });
    expect(poolErr(() => Pool.open({ name, stateDir })).message).toMatch(/wrong magic/);
    put((b) => {
      b.writeUInt32LE(9, 8);
      return b;
    });
    expect(poolErr(() => Pool.open({ name, stateDir })).message).toMatch(/version 9/);
    put((b) => b.subarray(0, 4096));
    expect(poolErr(() => Pool.open({ name, stateDir })).message).toMatch(/needs/);
  });
});

describe('journal and fsck', () => {
  it('journals every operation (refusals too) and replays to the same image', () => {
    const { pool, stateDir, name } = create();
    try {
      pool.registerHead(0, 100);
      pool.registerHead(1, 101);
      expect(pool.acquireLease(0)).toBe(true);
      expect(pool.acquireLease(1)).toBe(false);
      pool.claim(0, { first: 0, count: 128 }, { shared: true });
      pool.claim(1, { first: 0, count: 128 }, { shared: true });
      pool.claim(1, { first: 200, count: 10 });
      expect(() => pool.claim(0, { first: 205, count: 1 })).toThrow(PoolError);
      pool.release(1, { first: 200, count: 5 });
      expect(pool.releaseAll(0, { sharedOnly: true })).toBe(128);
      const entries = readJournal(journalPath(stateDir, name));
      expect(entries.map((e) => e.op)).toEqual([
        'pool-create',
        'head-register',
        'head-register',
        'lease-acquire',
        'lease-acquire',
        'claim',
        'claim',
        'claim',
        'claim',
        'release',
        'release-all',
      ]);
      expect(entries[8]?.result).toMatchObject({ ok: false, code: 'CONFLICT' });
      expect(entries.map((e) => e.seq)).toEqual(entries.map((_, i) => i + 1));
      const { state } = replayJournal(entries);
      for (let b = 0; b < pool.state.blockCount; b++) expect(state.rawBlockWord(b)).toBe(pool.state.rawBlockWord(b));
      expect(state.lease()).toMatchObject({ owner: 0 });
      const report = fsck(pool);
      expect(report).toMatchObject({ clean: true, journalEntries: 11 });
    } finally {
      pool.close();
    }
  });

  it('a 32-head pool (the most a pool has) is opened again from its journal, head 31 included', () => {
    const { pool, name, stateDir } = create({ headCount: 32 });
    pool.registerHead(31, 7);
    pool.close();
    const again = Pool.open({ name, stateDir });
    try {
      expect(again.state.headCount).toBe(32);
      expect(replayJournal(readJournal(journalPath(stateDir, name))).state.heads()[31]?.attached).toBe(true);
    } finally {
      again.close();
    }
  });

  it('replays a lease that outlives its detached owner', () => {
    const { pool } = create();
    try {
      pool.registerHead(0, 1);
      pool.registerHead(1, 2);
      pool.acquireLease(0);
      pool.unregisterHead(0);
      expect(pool.state.lease().owner).toBe(0);
      expect(fsck(pool).findings).toEqual([]);
    } finally {
      pool.close();
    }
  });

  it('reports two exclusive owners, unregistered holders, and shm that differs from the journal', () => {
    const { pool } = create();
    try {
      pool.registerHead(0, 1);
      pool.claim(0, { first: 3, count: 1 });
      pool.state.setRawBlockWord(3, 0b11n); // heads 0 and 1, not shared
      pool.state.setRawBlockWord(9, 0b100n); // head 2, never registered
      const kinds = fsck(pool).findings.map((f) => f.kind);
      expect(kinds).toContain('exclusive-multiple-owners');
      expect(kinds).toContain('unregistered-holder');
      expect(kinds).toContain('journal-block-mismatch');
      expect(fsck(pool).clean).toBe(false);
    } finally {
      pool.close();
    }
  });

  it('detects header damage on open', () => {
    const { pool, name, stateDir } = create();
    pool.close();
    const path = `/dev/shm/cxl-mhd.${name}.state`;
    const b = readFileSync(path);
    b[H.capacityBytes + 4] = b[H.capacityBytes + 4]! ^ 0x10;
    writeFileSync(path, b);
    expect(poolErr(() => Pool.open({ name, stateDir })).message).toMatch(/checksum/);
  });

  it('a torn last journal line (crash mid-append) is tolerated', () => {
    const { pool, stateDir, name } = create();
    pool.registerHead(0, 1);
    pool.close();
    const path = journalPath(stateDir, name);
    writeFileSync(path, `${readFileSync(path, 'utf8')}{"seq":3,"op":"cla`);
    expect(readJournal(path)).toHaveLength(2);
  });
});

describe('writer lock and destroy', () => {
  it('a second writer is refused, naming the first; the lock dies with its process', async () => {
    const { pool, name, stateDir } = create();
    pool.close();
    // A real second process takes the lock through the addon, as `serve` will.
    const holder = spawn(
      process.execPath,
      [
        '-e',
        `const a = require(${JSON.stringify(`${process.cwd()}/native/build/Release/cxl_mhd.node`)});
         const fd = a.shmOpen('/cxl-mhd.${name}.state', 0, 0);
         a.flock(fd, true, true);
         process.stdout.write('locked\\n');
         setInterval(() => {}, 1000);`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
      const p = Pool.open({ name, stateDir });
      expect(p.writerActive()).toBe(true);
      expect(poolErr(() => p.lockWriter()).code).toBe('LOCKED');
      expect(poolStatus(p).backend.running).toBe(true);
      p.close();
      expect(poolErr(() => Pool.destroy({ name, stateDir })).code).toBe('LOCKED');
    } finally {
      holder.kill('SIGKILL');
      await new Promise((r) => holder.once('exit', r));
    }
    const p = Pool.open({ name, stateDir });
    p.lockWriter();
    expect(p.state.writerPid).toBe(process.pid);
    expect(poolStatus(p).backend).toEqual({ running: true, pid: process.pid });
    p.close();
    const q = Pool.open({ name, stateDir, readOnly: true });
    expect(q.writerActive()).toBe(false);
    expect(q.state.writerPid).toBe(0);
    q.close();
  });

  it('destroy refuses while a head is attached, then removes shm objects and journal', () => {
    const { pool, name, stateDir } = create();
    pool.registerHead(1, 5);
    pool.close();
    expect(poolErr(() => Pool.destroy({ name, stateDir })).code).toBe('HEAD_ATTACHED');
    expect(existsSync(`/dev/shm/cxl-mhd.${name}.state`)).toBe(true);
    Pool.destroy({ name, stateDir, force: true });
    expect(existsSync(`/dev/shm/cxl-mhd.${name}.state`)).toBe(false);
    expect(existsSync(`/dev/shm/cxl-mhd.${name}.mem`)).toBe(false);
    expect(existsSync(journalPath(stateDir, name))).toBe(false);
    expect(poolErr(() => Pool.destroy({ name, stateDir })).code).toBe('NOT_FOUND');
  });

  it('operations on a closed pool fail clearly', () => {
    const { pool } = create();
    pool.close();
    expect(poolErr(() => pool.claim(0, { first: 0, count: 1 })).code).toBe('CLOSED');
    expect(poolErr(() => pool.state.lease()).code).toBe('CLOSED');
  });
});

describe('status', () => {
  it('reports heads, grants, lease and free bytes', () => {
    const { pool, name } = create();
    try {
      pool.registerHead(0, 4321);
      pool.acquireLease(0);
      pool.claim(0, { first: 0, count: 128 }, { shared: true });
      pool.registerHead(2, 99);
      pool.claim(2, { first: 0, count: 128 }, { shared: true });
      pool.claim(2, { first: 256, count: 128 });
      const s = poolStatus(pool);
      expect(s).toMatchObject({ pool: name, capacityBytes: GiB, blockBytes: 2 * MiB, fmldOwner: 0, freeBytes: GiB - 512 * MiB });
      expect(s.heads).toEqual([
        expect.objectContaining({ id: 0, attached: true, pid: 4321, grantedBytes: 256 * MiB, sharedBytes: 256 * MiB }),
        expect.objectContaining({ id: 1, attached: false, pid: null, grantedBytes: 0 }),
        expect.objectContaining({ id: 2, attached: true, pid: 99, grantedBytes: 512 * MiB, sharedBytes: 256 * MiB }),
      ]);
    } finally {
      pool.close();
    }
  });
});

describe('recovery from a writer killed mid-operation', () => {
  it('puts shm back to the journal: an unjournaled claim, registration and lease are undone', () => {
    const { pool } = create();
    try {
      pool.lockWriter();
      pool.registerHead(0, 11);
      pool.claim(0, { first: 0, count: 4 });
      // What a crash between the atomic update and the journal append leaves behind:
      pool.state.claim(0, { first: 10, count: 2 });
      pool.state.registerHead(1, 12);
      pool.state.acquireLease(1);
      expect(fsck(pool).clean).toBe(false);
      expect(pool.recoverFromJournal()).toEqual({ blocks: 2, heads: [1], lease: true });
      expect(fsck(pool).findings).toEqual([]);
      expect(pool.state.blocksOf(0)).toEqual([0, 1, 2, 3]);
      expect(pool.state.head(0)).toMatchObject({ attached: true, pid: 11 });
      expect(pool.state.lease().owner).toBe(null);
      expect(pool.recoverFromJournal()).toEqual({ blocks: 0, heads: [], lease: false });
    } finally {
      pool.close();
    }
  });

  it('refuses to recover without the writer lock', () => {
    const { pool } = create();
    try {
      expect(poolErr(() => pool.recoverFromJournal()).code).toBe('LOCKED');
    } finally {
      pool.close();
    }
  });
});
