// Lease takeover against fake QEMUs (fast): the QMP the backend sends to
// fence the old owner and equip the new one, the events on the bus, the
// journal line, and the control socket's protocol. The real-QEMU proof is
// test/heads/takeover-qemu.test.ts.
import { connect } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Backend, controlRequest, type StampedEvent } from '../../src/heads/index.js';
import { controlSocketPath } from '../../src/pool/index.js';
import type { FakeQemu } from '../helpers/fake-qemu.js';
import { fakeVm } from '../helpers/fake-vm.js';
import { tempDir, uniquePoolName } from '../helpers/pool.js';

const MiB = 2 ** 20;
const POOL_BYTES = 1024 * MiB;
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const commands = (f: FakeQemu) => f.received.map((c) => `${c.execute}${c.arguments?.id ? `:${String(c.arguments.id)}` : ''}`);

describe('lease takeover (fake QEMU)', () => {
  it('fences the owner (device_del + chardev-remove), equips the new one, bumps the epoch, journals and publishes it', async () => {
    const base = tempDir();
    const pool = uniquePoolName('tk');
    const runDir = join(base, 'run');
    const events: StampedEvent[] = [];
    const b = await Backend.start({
      pool,
      runDir,
      stateDir: join(base, 'state'),
      capacityBytes: POOL_BYTES,
      headCount: 3,
      logger: pino({ level: 'silent' }),
      fmSocket: true,
      onEvent: (e) => events.push(e),
    });
    cleanups.push(() => b.stop());
    const vms: FakeQemu[] = [];
    for (let h = 0; h < 3; h++) {
      const vm = await fakeVm(join(runDir, pool, `head${h}.sock`), pool, POOL_BYTES, h === 2);
      cleanups.push(() => vm.close());
      vms.push(vm);
      await until(() => b.headRecord(h)?.phase === 'attached', `head ${h} attached`);
    }
    expect(b.pool.state.lease()).toEqual({ owner: 0, epoch: 1 });

    expect(await b.takeLease(1, false)).toEqual({
      ok: false,
      error: 'head 0 owns the FM-LD and is attached; add --force to fence it and give the lease to head 1',
    });
    expect(commands(vms[0]!)).not.toContain('device_del:cxl-mhd-fmld-port');
    expect(b.pool.state.lease().owner).toBe(0);

    const before = events.length;
    const r = await b.takeLease(1, true);
    expect(r).toMatchObject({ ok: true, detail: { from: 0, to: 1, epoch: 2, fenced: true, port: true } });
    expect(commands(vms[0]!).slice(-2)).toEqual(['device_del:cxl-mhd-fmld-port', 'chardev-remove:cxl-mhd-fmld']);
    expect(commands(vms[1]!)).toEqual(expect.arrayContaining(['getfd', 'chardev-add:cxl-mhd-fmld', 'device_add:cxl-mhd-fmld-port']));
    expect(events.slice(before).map((e) => [e.kind, 'head' in e ? e.head : null, 'epoch' in e ? e.epoch : null])).toEqual([
      ['lease-released', 0, 1],
      ['lease-acquired', 1, 2],
    ]);
    expect(b.pool.state.lease()).toEqual({ owner: 1, epoch: 2 });
    expect(b.pool.image.lease).toEqual({ owner: 1, epoch: 2 });
    expect(b.live.get(0)?.fmld).toBeNull();
    expect(b.live.get(1)?.fmld).not.toBeNull();

    // The same through the control socket, as `cxl-mhd lease takeover` sends it.
    expect(await controlRequest(runDir, pool, { op: 'lease-takeover', head: 2, force: false })).toMatchObject({
      ok: false,
      error: expect.stringMatching(/head 1 owns the FM-LD and is attached/),
    });
    expect(await controlRequest(runDir, pool, { op: 'lease-takeover', head: 2, force: true })).toMatchObject({
      ok: true,
      message: 'FM-LD lease moved from head 1 (fenced: its FM-LD port was removed) to head 2, epoch 3',
    });
    expect(await controlRequest(runDir, pool, { op: 'lease-takeover', head: 7, force: true })).toMatchObject({
      ok: false,
      error: expect.stringMatching(/head 7 does not exist/),
    });
    // A request that is not ours gets one clear refusal, not a hang.
    const garbage = await new Promise<string>((resolve) => {
      const s = connect(controlSocketPath(runDir, pool));
      let buf = '';
      s.on('data', (d) => {
        buf += d;
      });
      s.on('close', () => resolve(buf));
      s.write('{"op":"format-disk"}\n');
    });
    expect(JSON.parse(garbage)).toEqual({ ok: false, error: 'unknown request "format-disk"' });
  });
});
