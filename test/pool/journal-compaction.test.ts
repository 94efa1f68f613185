// The journal as snapshot + tail: compaction keeps the state dir small, the
// snapshot carries everything recovery needs, and a writer killed anywhere
// (inside compaction too, or mid-line) recovers to exactly what it
// acknowledged, give or take the one operation it was doing.
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMPACT_FLOOR, fsck, loadImage, Pool, readJournal, type Snapshot } from '../../src/pool/index.js';
import { tempDir, uniquePoolName } from '../helpers/pool.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const KiB = 1024;
const pools: Pool[] = [];

function create(heads = 3): { name: string; stateDir: string; pool: Pool } {
  const name = uniquePoolName('jc');
  const stateDir = tempDir();
  const pool = Pool.create({ name, stateDir, capacityBytes: GiB, blockBytes: 2 * MiB, headCount: heads });
  pools.push(pool);
  return { name, stateDir, pool };
}

function dirBytes(dir: string): number {
  return readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

const tick = () => new Promise((r) => setImmediate(r));

describe('compaction', () => {
  it('a pool with nothing granted keeps its state dir under 64 KiB through 2,500 operations; fsck stays clean', async () => {
    const { name, stateDir, pool } = create();
    pool.lockWriter();
    pool.registerHead(0, 1);
    let maxBytes = 0;
    for (let i = 0; i < 2500; i++) {
      const r = { first: i % 500, count: 1 + (i % 7) };
      pool.claim(0, r, {}, { kind: 'dynamic', tag: 'a', delivery: 'dcd' });
      pool.release(0, r, { kind: 'dynamic', tag: 'a' });
      await tick();
      maxBytes = Math.max(maxBytes, dirBytes(join(stateDir, name)));
    }
    expect(pool.compactions).toBeGreaterThan(10);
    expect(maxBytes).toBeLessThan(64 * KiB);
    const r = fsck(pool);
    expect(r.findings).toEqual([]);
    expect(r.snapshotSeq).not.toBeNull();
    expect(r.journalEntries).toBeLessThan(COMPACT_FLOOR / 100);
    pool.close();
  });

  it('the snapshot carries blocks, heads, lease and epoch, grants (tag, shared, delivery, device, releasing) and unfinished adds', () => {
    const { pool } = create();
    pool.lockWriter();
    pool.registerHead(0, 100);
    pool.registerHead(1, 101);
    pool.registerHead(2, 102);
    pool.acquireLease(0);
    pool.takeLease(0, 2, true);
    pool.claim(0, { first: 0, count: 128 }, { shared: true }, { kind: 'static' });
    pool.claim(1, { first: 0, count: 128 }, { shared: true }, { kind: 'static' });
    pool.stage(1, { first: 128, count: 128 });
    pool.recordAdd({
      head: 1,
      pieces: [{ first: 128, count: 128, device: 'cxl-mhd-ld-rp1' }],
      shared: false,
      tag: 't1',
      delivery: 'hotplug',
    });
    pool.stage(2, { first: 256, count: 64 }, { shared: true });
    pool.recordAdd({ head: 2, pieces: [{ first: 256, count: 64 }], shared: true, tag: 't2', delivery: 'dcd' });
    pool.recordRelease({ head: 2, pieces: [{ first: 256, count: 64 }] });
    // A journal written before one-line adds: begin, a claim, no end.
    const tx = pool.note({
      event: 'fm-add-begin',
      head: 0,
      pieces: [{ offset: 400 * 2 * MiB, len: 2 * MiB }],
      shared: false,
      tag: 'z',
      delivery: 'dcd',
    });
    pool.claim(0, { first: 400, count: 1 }, {}, { kind: 'dynamic', tx });
    const live = pool.image.toSnapshot();
    pool.compact();
    expect(readJournal(pool.journalFile)).toEqual([]);
    const snap = JSON.parse(readFileSync(pool.snapshotFile, 'utf8')) as Snapshot;
    expect(snap).toEqual(live);
    expect(statSync(pool.snapshotFile).mode & 0o777).toBe(0o600);
    expect(snap.lease).toEqual({ owner: 2, epoch: pool.state.lease().epoch });
    expect(snap.heads).toEqual([
      { head: 0, pid: 100 },
      { head: 1, pid: 101 },
      { head: 2, pid: 102 },
    ]);
    const fresh = loadImage(pool.snapshotFile, pool.journalFile).image;
    expect(fresh.grantsOf(1)).toEqual([
      { offset: 256 * MiB, len: 256 * MiB, tag: 't1', shared: false, delivery: 'hotplug', device: 'cxl-mhd-ld-rp1', releasing: false },
    ]);
    expect(fresh.grantsOf(2)).toEqual([
      { offset: 512 * MiB, len: 128 * MiB, tag: 't2', shared: true, delivery: 'dcd', device: null, releasing: true },
    ]);
    expect(fresh.unfinishedAdds()).toEqual([{ tx, head: 0, ranges: [{ first: 400, count: 1 }] }]);
    expect(fsck(pool).findings).toEqual([]);
    pool.close();
  });

  it('tail lines the snapshot already covers are skipped (a crash between rename and truncation)', () => {
    const { name, stateDir, pool } = create();
    pool.lockWriter();
    pool.registerHead(0, 1);
    pool.claim(0, { first: 1, count: 3 });
    const tailBefore = readFileSync(pool.journalFile, 'utf8');
    pool.compact();
    // Put the covered lines back, as if the writer died right after the rename.
    appendFileSync(pool.journalFile, tailBefore);
    pool.release(0, { first: 1, count: 3 });
    pool.close();
    const again = Pool.open({ name, stateDir });
    pools.push(again);
    again.lockWriter();
    expect(again.image.toState().blocksOf(0)).toEqual([]);
    expect(fsck(again).findings).toEqual([]);
    again.close();
  });

  it('a torn last line is cut off when the writer takes the lock, so the next line is not glued to it', () => {
    const { name, stateDir, pool } = create();
    pool.lockWriter();
    pool.registerHead(0, 1);
    pool.claim(0, { first: 0, count: 2 });
    pool.close();
    const path = join(stateDir, name, 'journal.jsonl');
    appendFileSync(path, '{"seq":999,"time":"2026-12-01T00:00:00.000Z","op":"claim","args":{"head":0,"fi');
    const again = Pool.open({ name, stateDir });
    pools.push(again);
    again.lockWriter();
    again.claim(0, { first: 10, count: 1 });
    expect(readFileSync(path, 'utf8').endsWith('\n')).toBe(true);
    expect(readJournal(path).map((e) => e.op)).toEqual(['pool-create', 'head-register', 'claim', 'claim']);
    expect(again.state.blocksOf(0)).toEqual([0, 1, 10]);
    expect(fsck(again).findings).toEqual([]);
    again.close();
  });
});

// ---- a real writer process, killed ---------------------------------------------

interface Run {
  acked: Map<number, boolean>; // block → held, per the acknowledged operations
  pending: { kind: '+' | '-'; block: number } | null;
  code: number | null;
  signal: string | null;
}

/** Runs the worker until it exits or `killAfterMs` passes (then SIGKILL). */
function runWorker(
  name: string,
  stateDir: string,
  opts: { ops: number; seed: number; fault?: string; killAfterMs?: number },
  model: Map<number, boolean>,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['test/workers/journal-worker.mjs', name, stateDir, String(opts.ops), String(opts.seed)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CXL_MHD_FAULT: opts.fault ?? '' },
    });
    const acked = new Map(model);
    let pending: Run['pending'] = null;
    let buf = '';
    let err = '';
    let timer: NodeJS.Timeout | null = null;
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const l of lines) {
        const m = /^(\?)? ?([+-]) (\d+)$/.exec(l);
        if (l === 'ready' && opts.killAfterMs !== undefined) timer = setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs);
        if (!m) continue;
        const kind = m[2] as '+' | '-';
        const block = Number(m[3]);
        if (m[1]) pending = { kind, block };
        else {
          pending = null;
          if (kind === '+') acked.set(block, true);
          else acked.delete(block);
        }
      }
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (code !== 0 && signal === null) reject(new Error(`worker failed (${code}): ${err}`));
      else resolve({ acked, pending, code, signal });
    });
  });
}

/** Recovers as the backend does and checks the pool holds what was acknowledged, ± the operation under way. */
function recoverAndCheck(name: string, stateDir: string, run: Run): Map<number, boolean> {
  const pool = Pool.open({ name, stateDir });
  try {
    pool.lockWriter();
    pool.recoverFromJournal();
    expect(fsck(pool).findings).toEqual([]);
    const got = pool.state.blocksOf(0);
    const known = [...run.acked.keys()].sort((a, b) => a - b);
    const p = run.pending;
    if (p && JSON.stringify(got) !== JSON.stringify(known)) {
      const done = p.kind === '+' ? [...known, p.block].sort((a, b) => a - b) : known.filter((b) => b !== p.block);
      expect(got).toEqual(done);
    } else {
      expect(got).toEqual(known);
    }
    return new Map(got.map((b) => [b, true]));
  } finally {
    pool.close();
  }
}

describe('a writer killed', () => {
  for (const fault of ['compact-snapshot-written', 'compact-snapshot-renamed', 'compact-tail-truncated']) {
    it(`inside compaction (${fault}) recovers to what it acknowledged`, async () => {
      const { name, stateDir, pool } = create(1);
      pool.close();
      const run = await runWorker(name, stateDir, { ops: 20_000, seed: 7, fault }, new Map());
      expect(run.signal).toBe('SIGKILL');
      const dir = join(stateDir, name);
      if (fault === 'compact-snapshot-written') {
        expect(existsSync(join(dir, 'snapshot.json.tmp'))).toBe(true);
        expect(existsSync(join(dir, 'snapshot.json'))).toBe(false);
      } else {
        const snap = JSON.parse(readFileSync(join(dir, 'snapshot.json'), 'utf8')) as Snapshot;
        const tail = readJournal(join(dir, 'journal.jsonl'));
        // Renamed but not truncated: every tail line is one the snapshot covers; truncated: none left.
        if (fault === 'compact-snapshot-renamed') expect(tail.length > 0 && tail.every((e) => e.seq <= snap.lastSeq)).toBe(true);
        else expect(tail).toEqual([]);
      }
      const model = recoverAndCheck(name, stateDir, run);
      // And the next writer carries on (compacting again) from there.
      const next = await runWorker(name, stateDir, { ops: 300, seed: 8 }, model);
      expect(next.code).toBe(0);
      recoverAndCheck(name, stateDir, next);
    });
  }

  it('at 12 random moments of a stream of operations (some inside compaction) recovers to what it acknowledged each time', async () => {
    const { name, stateDir, pool } = create(1);
    pool.close();
    let model = new Map<number, boolean>();
    let kills = 0;
    for (let i = 0; i < 12; i++) {
      const run = await runWorker(name, stateDir, { ops: 1_000_000, seed: 100 + i, killAfterMs: 150 + ((i * 137) % 600) }, model);
      if (run.signal === 'SIGKILL') kills++;
      model = recoverAndCheck(name, stateDir, run);
    }
    expect(kills).toBe(12);
    expect(statSync(join(stateDir, name, 'journal.jsonl')).size).toBeLessThan(4 * COMPACT_FLOOR);
  });
});

process.on('exit', () => {
  for (const p of pools) p.close();
});
