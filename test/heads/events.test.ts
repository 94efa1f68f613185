// The backend's event bus against fake QEMUs: every path that changes a
// head, the lease or capacity (attach, refusal, fm.sock adds and releases,
// a guest reset, a QEMU exit, recovery after a restart) emits the right
// events, stamped in order, and snapshot() agrees with them; and what a
// 5604h meets when its head is not attached or leaves while it runs.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { FmClient, FmError, openPort, ReturnCode, SelectionPolicy } from '../../src/fmapi/index.js';
import { Backend, readHeadRecords, type StampedEvent } from '../../src/heads/index.js';
import { dataObjectPath, Pool, readJournal } from '../../src/pool/index.js';
import { Deferred, FakeQemu, NO_REPLY, ok } from '../helpers/fake-qemu.js';
import { fakeVm } from '../helpers/fake-vm.js';
import { tempDir, uniquePoolName } from '../helpers/pool.js';

const MiB = 2 ** 20;
const POOL_BYTES = 1024 * MiB;
const GREETING = '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 0, "major": 10}, "package": ""}, "capabilities": []}}\r\n';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Setup {
  base: string;
  pool: string;
  sock: (h: number) => string;
}

function setup(): Setup {
  const base = tempDir();
  const pool = uniquePoolName('ev');
  return { base, pool, sock: (h) => join(base, 'run', pool, `head${h}.sock`) };
}

async function start(s: Setup, onEvent?: (e: StampedEvent) => void): Promise<{ b: Backend; events: StampedEvent[] }> {
  const events: StampedEvent[] = [];
  const b = await Backend.start({
    pool: s.pool,
    runDir: join(s.base, 'run'),
    stateDir: join(s.base, 'state'),
    capacityBytes: POOL_BYTES,
    headCount: 2,
    logger: pino({ level: 'silent' }),
    fmSocket: true,
    onEvent: (e) => {
      events.push(e);
      onEvent?.(e);
    },
  });
  cleanups.push(() => b.stop());
  return { b, events };
}

/** A VM paused at -S with no static window; `dcd` gives it a DC region over the whole pool. */
async function vm(path: string, pool: string, dcd: boolean): Promise<FakeQemu> {
  const fake = await fakeVm(path, pool, POOL_BYTES, dcd, { running: false });
  cleanups.push(() => fake.close());
  return fake;
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const kinds = (events: StampedEvent[]) => events.map((e) => e.kind);

/** The CXL return code a request was answered with ('ok' for Success). */
const codeOf = (p: Promise<unknown>): Promise<number | string> =>
  p.then(
    () => 'ok',
    (e: unknown) => (e instanceof FmError ? e.code : String(e)),
  );

async function fmClient(b: Backend): Promise<FmClient> {
  const stream = await openPort(b.fmSocketPath as string);
  const c = new FmClient(stream, { timeoutMs: 10_000 });
  cleanups.push(() => {
    c.close();
    stream.destroy();
  });
  return c;
}

describe('backend events (fake QEMU)', () => {
  it('attach, fm.sock add/release, guest reset, QEMU exit: each emits its events, in order, with seq and time', async () => {
    const s = setup();
    const { b, events } = await start(s);
    const seen: StampedEvent[] = [];
    const unsubscribe = b.subscribe((e) => seen.push(e));
    expect(b.fmSocketPath).toBe(join(s.base, 'run', s.pool, 'fm.sock'));

    const owner = await vm(s.sock(0), s.pool, false);
    await until(() => events.some((e) => e.kind === 'head-attached' && e.head === 0), 'head 0 attached');
    expect(events).toEqual([
      expect.objectContaining({ kind: 'lease-acquired', head: 0, epoch: b.pool.state.lease().epoch }),
      expect.objectContaining({ kind: 'head-attached', head: 0, pid: process.pid, fmld: true, delivery: 'hotplug' }),
    ]);
    const dcdHead = await vm(s.sock(1), s.pool, true);
    await until(() => events.some((e) => e.kind === 'head-attached' && e.head === 1), 'head 1 attached');
    expect(events.at(-1)).toMatchObject({ kind: 'head-attached', head: 1, fmld: false, delivery: 'dcd' });

    const fm = await fmClient(b);
    const tag = '6f1d0e4a-2b6c-4d1e-9a0b-3c5d7e9f1a2b';
    await fm.add({ host: 1, extents: [{ startDpa: 256 * MiB, len: 64 * MiB }], tag });
    await fm.add({ host: 1, selectionPolicy: SelectionPolicy.EnableSharedAccess, extents: [{ startDpa: 512 * MiB, len: 32 * MiB }] });
    expect(events.slice(-2)).toEqual([
      expect.objectContaining({ kind: 'capacity-added', head: 1, offset: 256 * MiB, len: 64 * MiB, shared: false, tag, via: 'fm.sock' }),
      expect.objectContaining({
        kind: 'capacity-added',
        head: 1,
        offset: 512 * MiB,
        len: 32 * MiB,
        shared: true,
        tag: null,
        via: 'fm.sock',
      }),
    ]);
    // snapshot() is what status shows: grants and the pool's bytes agree with the events.
    await new Promise((r) => setImmediate(r));
    const snap = b.snapshot();
    expect(snap.status.heads[1]?.grantedBytes).toBe(96 * MiB);
    expect(snap.heads.find((h) => h.head === 1)?.grants.map((g) => g.len)).toEqual([64 * MiB, 32 * MiB]);
    // heads.json (what `status` reads) follows a little later, once capacity reported the change.
    const filed = () =>
      readHeadRecords(join(s.base, 'run'), s.pool)
        ?.find((h) => h.head === 1)
        ?.grants.map((g) => g.len);
    await until(() => filed()?.length === 2, 'heads.json to list both grants');
    expect(filed()).toEqual([64 * MiB, 32 * MiB]);

    await fm.release({ host: 1, extents: [{ startDpa: 256 * MiB, len: 64 * MiB }] });
    await until(() => events.at(-1)?.kind === 'capacity-released', 'release');
    expect(events.at(-1)).toMatchObject({ kind: 'capacity-released', head: 1, offset: 256 * MiB, len: 64 * MiB, tag, via: 'fm.sock' });

    // A guest reset drops shared capacity (CXL r3.1 §9.13.3).
    const released = events.length;
    await dcdHead.emitEvent('RESET', { guest: true, reason: 'guest-reset' });
    await until(() => events.length > released, 'reset release');
    expect(events.at(-1)).toMatchObject({ kind: 'capacity-released', head: 1, offset: 512 * MiB, len: 32 * MiB, via: 'guest-reset' });
    await until(() => filed()?.length === 0, 'heads.json to drop what the reset released');

    // QEMU exits holding capacity: it is released with the head.
    await fm.add({ host: 1, extents: [{ startDpa: 0, len: 16 * MiB }] });
    const before = events.length;
    dcdHead.disconnect();
    await until(() => events.some((e, i) => i >= before && e.kind === 'head-detached'), 'head 1 detached');
    expect(kinds(events.slice(before))).toEqual(['capacity-released', 'head-detached']);
    expect(events[before]).toMatchObject({ head: 1, offset: 0, len: 16 * MiB, via: 'qemu-exit' });
    expect(events[before + 1]).toMatchObject({ head: 1, pid: process.pid, reason: expect.stringMatching(/QEMU disconnected/) });

    // The last head leaves: the lease goes with it.
    unsubscribe();
    const n = seen.length;
    owner.disconnect();
    await until(() => events.at(-1)?.kind === 'lease-released', 'lease released');
    expect(kinds(events).slice(-2)).toEqual(['head-detached', 'lease-released']);
    expect(events.at(-1)).toMatchObject({ head: 0, epoch: events[0]?.kind === 'lease-acquired' ? events[0].epoch : -1 });
    expect(seen.length).toBe(n); // unsubscribed: nothing more arrived
    expect(seen).toEqual(events.slice(0, n));
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    for (const e of events) expect(Number.isNaN(Date.parse(e.at))).toBe(false);
  });

  it('a refused attach emits head-refused and nothing else', async () => {
    const s = setup();
    const { events } = await start(s);
    const fake = await FakeQemu.dial(s.sock(1), { greeting: false });
    cleanups.push(() => fake.close());
    const props: Record<string, unknown> = { 'mem-path': dataObjectPath(s.pool), offset: 0, size: 256 * MiB, share: false };
    fake
      .handle('query-status', () => ok({ running: false, status: 'prelaunch' }))
      .handle('qom-list', () => ok([{ name: 'cxl-mhd-mem0', type: 'child<cxl-type3>' }]))
      .handle('qom-get', (cmd) => {
        const { path, property } = cmd.arguments as { path: string; property: string };
        if (path === '/machine/peripheral/cxl-mhd-mem0' && property === 'volatile-memdev') return ok('/objects/cxl-mhd-static');
        if (path === '/objects/cxl-mhd-static' && property === 'type') return ok('memory-backend-file');
        if (path === '/objects/cxl-mhd-static' && property in props) return ok(props[property]);
        return { error: { class: 'GenericError', desc: 'no such property' } };
      })
      .handle('quit', () => ok());
    await fake.sendRaw(GREETING);
    await fake.waitForCommand('quit');
    expect(events).toEqual([
      expect.objectContaining({ kind: 'head-refused', head: 1, pid: process.pid, reason: expect.stringMatching(/without share=on/) }),
    ]);
  });

  it('recovery: a head whose QEMU died while no backend ran is announced detached; a live one is re-adopted with its grants', async () => {
    const s = setup();
    // First run: head 1 (DCD) takes capacity, then the backend stops; QEMU (this process) lives on.
    const first = await start(s);
    await vm(s.sock(0), s.pool, false);
    const h1 = await vm(s.sock(1), s.pool, true);
    await until(() => first.events.filter((e) => e.kind === 'head-attached').length === 2, 'both attached');
    const fm = await fmClient(first.b);
    await fm.add({ host: 1, extents: [{ startDpa: 128 * MiB, len: 8 * MiB }] });
    await first.b.stop();
    h1.close();
    // Meanwhile head 0's QEMU "died": its registration now names a pid that is gone.
    const dead = spawnSync(process.execPath, ['-e', 'process.pid']).pid;
    const p = Pool.open({ name: s.pool, stateDir: join(s.base, 'state') });
    p.lockWriter();
    p.unregisterHead(0);
    p.registerHead(0, dead);
    p.close();

    const second = await start(s);
    expect(second.events).toEqual([
      expect.objectContaining({ kind: 'head-detached', head: 0, pid: dead, reason: expect.stringMatching(/gone/) }),
    ]);
    // Head 1's QEMU redials (same pid): re-adopted, its grant announced by recovery.
    await vm(s.sock(1), s.pool, true);
    await until(() => second.events.some((e) => e.kind === 'head-attached'), 're-adoption');
    expect(kinds(second.events)).toEqual(['head-detached', 'capacity-added', 'head-attached']);
    expect(second.events[1]).toMatchObject({ head: 1, offset: 128 * MiB, len: 8 * MiB, via: 'recovery' });
  });

  it('a 5604h for a head that is not attached is Invalid Input; one whose QEMU leaves mid-add is Internal Error, the next is Invalid Input', async () => {
    const s = setup();
    const { b, events } = await start(s);
    await vm(s.sock(0), s.pool, false);
    await until(() => events.some((e) => e.kind === 'head-attached'), 'head 0 attached');
    const fm = await fmClient(b);
    const refusals = () =>
      readJournal(b.pool.journalFile)
        .filter((e) => e.op === 'note' && e.args.event === 'fm-refused')
        .map((e) => (e.args as { code?: number }).code);

    // Never attached: adds and 5601h are refused, 5603h lists nothing; nothing is claimed or announced.
    expect(await codeOf(fm.add({ host: 1, extents: [{ startDpa: 0, len: 16 * MiB }] }))).toBe(ReturnCode.InvalidInput);
    expect(await codeOf(fm.regionConfig(1))).toBe(ReturnCode.InvalidInput);
    expect(await fm.extents(1)).toMatchObject({ totalExtents: 0, generation: 0 });
    expect(refusals()).toEqual([ReturnCode.InvalidInput, ReturnCode.InvalidInput]);
    expect(kinds(events)).toEqual(['lease-acquired', 'head-attached']);

    // Head 1 attaches (DCD); its QEMU takes an add and dies before answering, with a second add queued behind it.
    const h1 = await vm(s.sock(1), s.pool, true);
    await until(() => events.filter((e) => e.kind === 'head-attached').length === 2, 'head 1 attached');
    const taken = new Deferred<void>();
    h1.handle('cxl-add-dynamic-capacity', () => {
      taken.resolve();
      return NO_REPLY;
    });
    const first = codeOf(fm.add({ host: 1, extents: [{ startDpa: 0, len: 16 * MiB }] }));
    const second = codeOf(fm.add({ host: 1, extents: [{ startDpa: 32 * MiB, len: 16 * MiB }] }));
    await taken.promise;
    h1.disconnect();
    expect([await first, await second]).toEqual([ReturnCode.InternalError, ReturnCode.InvalidInput]);
    expect(kinds(events).slice(2)).toEqual(['head-attached', 'head-detached']);
    expect(b.pool.state.blocksOf(1)).toEqual([]);
    expect(await fm.extents(1)).toMatchObject({ totalExtents: 0, generation: 0 });
    expect(refusals()).toEqual([ReturnCode.InvalidInput, ReturnCode.InvalidInput, ReturnCode.InternalError, ReturnCode.InvalidInput]);

    // A new QEMU on head 1 gets its own delivery: the add reaches it, not the one that left.
    const again = await vm(s.sock(1), s.pool, true);
    await until(() => events.filter((e) => e.kind === 'head-attached').length === 3, 'head 1 attached again');
    await fm.add({ host: 1, extents: [{ startDpa: 0, len: 16 * MiB }] });
    expect(again.received.filter((c) => c.execute === 'cxl-add-dynamic-capacity')).toHaveLength(1);
    expect(events.at(-1)).toMatchObject({ kind: 'capacity-added', head: 1, offset: 0, len: 16 * MiB, via: 'fm.sock' });
    expect(await fm.extents(1)).toMatchObject({ totalExtents: 1, generation: 1 });
  });

  it('a release under way when the QEMU leaves: Busy, and the grant goes with the head (qemu-exit)', async () => {
    const s = setup();
    const { b, events } = await start(s);
    await vm(s.sock(0), s.pool, false);
    const h1 = await vm(s.sock(1), s.pool, true);
    await until(() => events.filter((e) => e.kind === 'head-attached').length === 2, 'both attached');
    const fm = await fmClient(b);
    await fm.add({ host: 1, extents: [{ startDpa: 64 * MiB, len: 8 * MiB }] });
    const taken = new Deferred<void>();
    h1.handle('cxl-release-dynamic-capacity', () => {
      taken.resolve();
      return NO_REPLY;
    });
    const before = events.length;
    const release = codeOf(fm.release({ host: 1, extents: [{ startDpa: 64 * MiB, len: 8 * MiB }] }));
    await taken.promise;
    h1.disconnect();
    expect(await release).toBe(ReturnCode.Busy);
    await until(() => events.some((e, i) => i >= before && e.kind === 'head-detached'), 'head 1 detached');
    expect(kinds(events.slice(before))).toEqual(['capacity-released', 'head-detached']);
    expect(events[before]).toMatchObject({ head: 1, offset: 64 * MiB, len: 8 * MiB, via: 'qemu-exit' });
    expect(b.pool.state.blocksOf(1)).toEqual([]);
    expect(b.snapshot().heads.find((h) => h.head === 1)).toMatchObject({ phase: 'detached', delivery: null, grants: [] });
  });
});
