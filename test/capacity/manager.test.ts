// Capacity without real QEMU: CapacityManager's rules over a real shm pool,
// and the deliveries against a fake QEMU that fails on cue — rollback on
// every failure, nothing claimed or delivered half-way.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DcdDelivery, type Delivered, HotplugDelivery, type RegionLabel, readRegionLabel } from '../../src/capacity/index.js';
import { ReturnCode, SelectionPolicy, ZERO_TAG } from '../../src/fmapi/index.js';
import { grantsFromJournal, unfinishedAdds } from '../../src/heads/index.js';
import { readJournal } from '../../src/pool/index.js';
import { QmpSession } from '../../src/qmp/index.js';
import { add, cleanups, code, GiB, MiB, manager, pool, StubDelivery } from '../helpers/capacity.js';
import { FakeQemu, fail, ok } from '../helpers/fake-qemu.js';
import { tempDir } from '../helpers/pool.js';

describe('CapacityManager', () => {
  it('claims, delivers and lists; release frees the blocks once the delivery is gone', async () => {
    const p = pool();
    const d = new StubDelivery();
    const m = manager(p, { 1: d });
    await m.initiateAdd(add(1, [[GiB, 256 * MiB]]));
    expect(p.state.blocksOf(1)).toHaveLength(128);
    const list = m.extentList({ hostId: 1, extentCount: 10, startIndex: 0 });
    expect(list).toMatchObject({ totalExtents: 1, generation: 1, extents: [{ startDpa: GiB, len: 256 * MiB }] });
    await m.initiateRelease({ hostId: 1, removalPolicy: 1, forced: false, region: 0, length: 0, tag: ZERO_TAG, extents: list.extents });
    await new Promise((r) => setImmediate(r));
    expect(p.state.blocksOf(1)).toHaveLength(0);
    expect(m.extentList({ hostId: 1, extentCount: 10, startIndex: 0 }).generation).toBeGreaterThan(1);
  });

  it('rolls the claim back when QEMU refuses the delivery (Internal Error, nothing held)', async () => {
    const p = pool();
    const d = new StubDelivery();
    d.failAdd = true;
    const m = manager(p, { 1: d });
    const gen = p.state.generation;
    expect(await code(() => m.initiateAdd(add(1, [[0, 256 * MiB]])))).toBe(ReturnCode.InternalError);
    expect(p.state.blocksOf(1)).toEqual([]);
    expect(m.grantsOf(1)).toEqual([]);
    expect(p.state.generation).toBeGreaterThan(gen); // the claim was staged in shm and undone
    // Nothing of a failed add is durable: an add is journaled once, whole, after QEMU has it.
    const ops = readJournal(p.journalFile).filter(
      (e) => e.op === 'fm-add' || ((e.op === 'claim' || e.op === 'release') && e.args.kind === 'dynamic'),
    );
    expect(ops).toEqual([]);
    expect(grantsFromJournal(readJournal(p.journalFile), 1)).toEqual([]);
  });

  it('multi-extent adds are all-or-nothing across a conflict', async () => {
    const p = pool();
    const m = manager(p, { 0: new StubDelivery(), 1: new StubDelivery() });
    await m.initiateAdd(add(0, [[GiB, 256 * MiB]]));
    expect(
      await code(() =>
        m.initiateAdd(
          add(1, [
            [0, 256 * MiB],
            [GiB, 256 * MiB],
          ]),
        ),
      ),
    ).toBe(ReturnCode.ResourcesExhausted);
    expect(p.state.blocksOf(1)).toEqual([]);
  });

  it('validates before touching anything', async () => {
    const p = pool(4);
    const d = new StubDelivery();
    const m = manager(p, { 1: d });
    const cases: [string, ReturnType<typeof add>, number][] = [
      ['unknown host', add(7, [[0, 256 * MiB]]), ReturnCode.InvalidInput],
      ['unattached host', add(3, [[0, 256 * MiB]]), ReturnCode.InvalidInput],
      ['region 1', add(1, [[0, 256 * MiB]], { region: 1 }), ReturnCode.InvalidInput],
      ['misaligned', add(1, [[2 * MiB, 256 * MiB]]), ReturnCode.InvalidInput],
      ['past the end', add(1, [[2 * GiB - 256 * MiB, 512 * MiB]]), ReturnCode.InvalidInput],
      [
        'self-overlap',
        add(1, [
          [0, 512 * MiB],
          [256 * MiB, 256 * MiB],
        ]),
        ReturnCode.InvalidInput,
      ],
      ['length mismatch', add(1, [[0, 256 * MiB]], { length: 512 * MiB }), ReturnCode.InvalidInput],
      ['no extents', add(1, []), ReturnCode.InvalidInput],
      [
        'too many pieces',
        add(1, [
          [0, 256 * MiB],
          [512 * MiB, 256 * MiB],
          [GiB, 256 * MiB],
        ]),
        ReturnCode.ResourcesExhausted,
      ],
    ];
    for (const [what, req, expected] of cases) expect([what, await code(() => m.initiateAdd(req))]).toEqual([what, expected]);
    expect(p.state.usage().free).toBe(1024);
    expect(d.added).toEqual([]);
  });

  it('free and contiguous policies pick first-fit unit-aligned blocks', async () => {
    const p = pool();
    const m = manager(p, { 0: new StubDelivery(), 1: new StubDelivery() });
    await m.initiateAdd(add(0, [[256 * MiB, 256 * MiB]]));
    await m.initiateAdd(add(1, [], { selectionPolicy: SelectionPolicy.Free, length: 512 * MiB }));
    expect(m.grantsOf(1).map((g) => [g.offset, g.len])).toEqual([
      [0, 256 * MiB],
      [512 * MiB, 256 * MiB],
    ]);
    const q = pool();
    const n = manager(q, { 0: new StubDelivery(), 1: new StubDelivery() });
    await n.initiateAdd(add(0, [[256 * MiB, 256 * MiB]]));
    await n.initiateAdd(add(1, [], { selectionPolicy: SelectionPolicy.Contiguous, length: 512 * MiB }));
    expect(n.grantsOf(1).map((g) => [g.offset, g.len])).toEqual([[512 * MiB, 512 * MiB]]);
  });

  it('shared adds, tag-based release, and reset dropping shared capacity only', async () => {
    const p = pool();
    const d0 = new StubDelivery();
    const d1 = new StubDelivery();
    const m = manager(p, { 0: d0, 1: d1 });
    const tag = '6f1d0e4a-2b6c-4d1e-9a0b-3c5d7e9f1a2b';
    await m.initiateAdd(add(0, [[0, 256 * MiB]], { selectionPolicy: SelectionPolicy.EnableSharedAccess, tag }));
    await m.initiateAdd(add(1, [[0, 256 * MiB]], { selectionPolicy: SelectionPolicy.EnableSharedAccess }));
    await m.initiateAdd(add(1, [[GiB, 256 * MiB]]));
    expect(p.state.block(0)).toEqual({ block: 0, holders: [0, 1], shared: true, referenced: false });
    await m.initiateRelease({ hostId: 0, removalPolicy: 0, forced: false, region: 0, length: 0, tag, extents: [] });
    await new Promise((r) => setImmediate(r));
    expect(p.state.block(0).holders).toEqual([1]);
    await m.onReset(1);
    expect(m.grantsOf(1).map((g) => g.offset)).toEqual([GiB]);
    expect(p.state.block(0).holders).toEqual([]);
    expect(
      await code(() => m.initiateRelease({ hostId: 1, removalPolicy: 0, forced: false, region: 0, length: 0, tag, extents: [] })),
    ).toBe(ReturnCode.InvalidInput);
    expect(
      await code(() => m.initiateRelease({ hostId: 1, removalPolicy: 1, forced: true, region: 0, length: 0, tag: ZERO_TAG, extents: [] })),
    ).toBe(ReturnCode.InvalidInput);
  });

  it('a release QEMU refuses keeps the grant and its blocks (Busy)', async () => {
    const p = pool();
    const d = new StubDelivery();
    const m = manager(p, { 1: d });
    await m.initiateAdd(add(1, [[0, 256 * MiB]]));
    d.failRelease = true;
    const ext = m.extentList({ hostId: 1, extentCount: 1, startIndex: 0 }).extents;
    expect(
      await code(() =>
        m.initiateRelease({ hostId: 1, removalPolicy: 1, forced: false, region: 0, length: 0, tag: ZERO_TAG, extents: ext }),
      ),
    ).toBe(ReturnCode.Busy);
    expect(p.state.blocksOf(1)).toHaveLength(128);
    expect(m.grantsOf(1)[0]?.state).toBe('active');
  });
});

describe('deliveries against a fake QEMU', () => {
  async function session(fake: FakeQemu, socket: import('node:net').Socket) {
    const s = await QmpSession.open(socket, { commandTimeoutMs: 2000 });
    cleanups.push(() => {
      s.close();
      fake.close();
    });
    return s;
  }

  it('hot-add: object-add + device_add on a free spare port; a failed device_add deletes the backend and withdraws earlier pieces', async () => {
    const { fake, socket } = FakeQemu.pair();
    const qmp = await session(fake, socket);
    let deviceAdds = 0;
    const present = new Set<string>();
    fake.handle('object-add', () => ok());
    fake.handle('object-del', () => fail('GenericError', 'object is in use'));
    fake.handle('device_add', (cmd) => {
      deviceAdds++;
      if (deviceAdds === 2) return fail('GenericError', 'Bus has no free slot');
      present.add(String(cmd.arguments?.id));
      return ok();
    });
    fake.handle('device_del', (cmd) => {
      present.delete(String(cmd.arguments?.id));
      return ok();
    });
    fake.handle('qom-get', (cmd) =>
      present.has(String(cmd.arguments?.path).split('/').pop() ?? '') ? ok('cxl-type3') : fail('DeviceNotFound', 'Device not found'),
    );
    // No memory backend left over the pool file: nothing maps the withdrawn piece, its port is free again.
    fake.handle('qom-list', () => ok([]));
    const d = new HotplugDelivery(qmp, '/dev/shm/x.mem', ['rp0', 'rp1', 'rp2'], new Map([['rp0', 'cxl-mhd-mem0']]), () => 7n, {
      pollMs: 5,
    });
    expect(d.capacityForPieces()).toBe(2);
    await expect(
      d.add([
        { offset: 0, len: 256 * MiB },
        { offset: 256 * MiB, len: 256 * MiB },
      ]),
    ).rejects.toThrow(/no free slot/);
    // The withdrawn LD's backend is deleted without waiting for QEMU's answer (it cannot be, in 10.0 and 11.1).
    await fake.waitForCommand('object-del', 2);
    // Reads aside (QOM, the memory tree), what changed QEMU, in order.
    const reads = ['qom-get', 'qom-list', 'qmp_capabilities', 'human-monitor-command'];
    const names = fake.received.map((c) => c.execute).filter((n) => !reads.includes(n));
    expect(names).toEqual(['object-add', 'device_add', 'object-add', 'device_add', 'object-del', 'device_del', 'object-del']);
    expect(present.size).toBe(0);
    expect(d.capacityForPieces()).toBe(2);
    const first = fake.received.find((c) => c.execute === 'device_add')?.arguments;
    expect(first).toMatchObject({ driver: 'cxl-type3', bus: 'rp1', id: 'cxl-mhd-ld-rp1', sn: 7 });
    const obj = fake.received.find((c) => c.execute === 'object-add')?.arguments;
    expect(obj).toMatchObject({ 'qom-type': 'memory-backend-file', 'mem-path': '/dev/shm/x.mem', offset: 0, size: 256 * MiB, share: true });
  });

  it('hot-add sends the backend and device_add together: QEMU is waited for once, not once per command', async () => {
    const { fake, socket } = FakeQemu.pair();
    const qmp = await session(fake, socket);
    // object-add answers only once device_add has arrived: a delivery that waited for it first would hang.
    fake.handle('object-add', async () => {
      await fake.waitForCommand('device_add');
      return ok();
    });
    fake.handle('device_add', () => ok());
    const d = new HotplugDelivery(qmp, '/dev/shm/x.mem', ['rp0'], new Map(), () => 7n);
    const [got] = await d.add([{ offset: 0, len: 256 * MiB }]);
    expect(got).toMatchObject({ deviceId: 'cxl-mhd-ld-rp0', port: 'rp0' });
    expect(fake.received.map((c) => c.execute)).toEqual(['qmp_capabilities', 'object-add', 'device_add']);
  });

  it('a tagged hot-add carries its label area: a 0600 file written before device_add, passed as lsa=, removed with the LD and on dispose', async () => {
    const { fake, socket } = FakeQemu.pair();
    const qmp = await session(fake, socket);
    const present = new Set<string>();
    const seenAtDeviceAdd: (RegionLabel | null)[] = [];
    fake.handle('object-add', () => ok());
    fake.handle('object-del', () => ok());
    fake.handle('device_add', (cmd) => {
      const lsaObj = fake.received.find((c) => c.execute === 'object-add' && c.arguments?.id === cmd.arguments?.lsa);
      seenAtDeviceAdd.push(lsaObj ? readRegionLabel(readFileSync(String(lsaObj.arguments?.['mem-path']))) : null);
      present.add(String(cmd.arguments?.id));
      return ok();
    });
    fake.handle('device_del', (cmd) => {
      present.delete(String(cmd.arguments?.id));
      return ok();
    });
    fake.handle('qom-get', (cmd) =>
      present.has(String(cmd.arguments?.path).split('/').pop() ?? '') ? ok('cxl-type3') : fail('DeviceNotFound', 'Device not found'),
    );
    const dir = tempDir();
    const d = new HotplugDelivery(qmp, '/dev/shm/x.mem', ['rp1', 'rp2', 'rp3'], new Map(), () => 7n, {
      pollMs: 5,
      lsaPath: (n) => join(dir, `lsa.${n}`),
      lsaLeftovers: () => readdirSync(dir).map((f) => join(dir, f)),
    });
    const tag = '6f1d0e4a-2b6c-4d1e-9a0b-3c5d7e9f1a2b';
    const [a, b, plain] = await d.add([
      { offset: 0, len: 256 * MiB, label: { uuid: tag, nlabel: 2, position: 1, rawsize: 256 * MiB } },
      { offset: GiB, len: 256 * MiB, label: { uuid: tag, nlabel: 2, position: 0, rawsize: 256 * MiB } },
      { offset: 512 * MiB, len: 256 * MiB },
    ]);
    expect(seenAtDeviceAdd).toEqual([
      { uuid: tag, nlabel: 2, position: 1, rawsize: 256 * MiB },
      { uuid: tag, nlabel: 2, position: 0, rawsize: 256 * MiB },
      null,
    ]);
    const adds = fake.received.filter((c) => c.execute === 'device_add').map((c) => c.arguments);
    expect(adds[0]).toMatchObject({
      lsa: expect.stringMatching(/^cxl-mhd-lsa-\d+$/),
      'volatile-memdev': expect.stringMatching(/^cxl-mhd-ldmem-\d+$/),
    });
    expect(adds[2]).not.toHaveProperty('lsa');
    expect(plain?.lsaPath).toBeUndefined();
    expect(statSync(a?.lsaPath as string).mode & 0o777).toBe(0o600);
    expect(statSync(a?.lsaPath as string).size).toBe(4096);
    await (await d.release(a as Delivered)).gone;
    expect(existsSync(a?.lsaPath as string)).toBe(false);
    expect(existsSync(b?.lsaPath as string)).toBe(true);
    d.dispose(); // the head's QEMU is gone
    expect(readdirSync(dir)).toEqual([]);
  });

  it('hot-remove waits for the device to leave QOM before the port is reused', async () => {
    const { fake, socket } = FakeQemu.pair();
    const qmp = await session(fake, socket);
    let polls = 0;
    fake.handle('object-add', () => ok());
    fake.handle('device_add', () => ok());
    fake.handle('device_del', () => ok());
    fake.handle('object-del', () => ok());
    // The guest takes a few polls to acknowledge the unplug.
    fake.handle('qom-get', () => (++polls < 4 ? ok('cxl-type3') : fail('DeviceNotFound', 'gone')));
    fake.handle('qom-list', () => ok([]));
    const d = new HotplugDelivery(qmp, '/dev/shm/x.mem', ['rp1'], new Map(), () => 1n, { pollMs: 5 });
    const [piece] = await d.add([{ offset: 0, len: 256 * MiB }]);
    expect(d.capacityForPieces()).toBe(0);
    const { gone } = await d.release(piece!);
    expect(d.capacityForPieces()).toBe(0);
    await gone;
    expect(polls).toBe(4);
    expect(d.capacityForPieces()).toBe(1);
  });

  it('on a QEMU that sends DEVICE_DELETED for a cxl-type3 (11.1), hot-remove waits for the event instead of polling QOM', async () => {
    const { fake, socket } = FakeQemu.pair({ version: { major: 11, minor: 1, micro: 3 } });
    const qmp = await session(fake, socket);
    // No pool backend left in QEMU's objects: nothing maps the range, so the port comes back (qemu/reach.ts).
    fake.handle('qom-list', () => ok([]));
    let present = false;
    let qomGets = 0;
    fake.handle('object-add', () => ok());
    fake.handle('device_add', () => {
      present = true;
      return ok();
    });
    fake.handle('object-del', () => fail('GenericError', "Cannot delete host memory backend 'x' which is mapped"));
    // The guest acknowledges the unplug a while after device_del; QEMU then sends the event.
    fake.handle('device_del', (cmd) => {
      setTimeout(() => {
        present = false;
        void fake.emitEvent('DEVICE_DELETED', { device: cmd.arguments?.id, path: `/machine/peripheral/${cmd.arguments?.id}` });
      }, 200);
      return ok();
    });
    fake.handle('qom-get', () => {
      qomGets++;
      return present ? ok('cxl-type3') : fail('DeviceNotFound', 'gone');
    });
    const d = new HotplugDelivery(qmp, '/dev/shm/x.mem', ['rp1'], new Map(), () => 1n, { pollMs: 5 });
    const [piece] = await d.add([{ offset: 0, len: 256 * MiB }]);
    const { gone } = await d.release(piece!);
    await gone;
    // One look right after device_del (had an earlier unplug already finished?), none while waiting: 40 at 5 ms polling.
    expect({ qomGets, free: d.capacityForPieces() }).toEqual({ qomGets: 1, free: 1 });
  });

  it('on 11.1, a hot-remove whose DEVICE_DELETED never comes still ends once the device left QOM (a look each second)', async () => {
    const { fake, socket } = FakeQemu.pair({ version: { major: 11, minor: 1, micro: 3 } });
    const qmp = await session(fake, socket);
    // No pool backend left in QEMU's objects: nothing maps the range, so the port comes back (qemu/reach.ts).
    fake.handle('qom-list', () => ok([]));
    let present = true;
    let qomGets = 0;
    fake.handle('device_del', () => {
      setTimeout(() => {
        present = false;
      }, 1500);
      return ok();
    });
    fake.handle('qom-get', () => {
      qomGets++;
      return present ? ok('cxl-type3') : fail('DeviceNotFound', 'gone');
    });
    fake.handle('object-del', () => ok());
    const d = new HotplugDelivery(qmp, '/dev/shm/x.mem', ['rp1'], new Map([['rp1', 'cxl-mhd-ld-rp1']]), () => 1n, { pollMs: 5 });
    const { gone } = await d.release({ offset: 0, len: 256 * MiB, deviceId: 'cxl-mhd-ld-rp1', port: 'rp1' });
    await gone;
    // Present at 0 s and 1 s, gone at 2 s: three looks, not the 300 that 5 ms polling takes.
    expect({ qomGets, free: d.capacityForPieces() }).toEqual({ qomGets: 3, free: 1 });
  });

  it('an event-driven hot-remove whose device is already gone (an unplug finished unseen) ends without waiting for the event', async () => {
    const { fake, socket } = FakeQemu.pair({ version: { major: 11, minor: 1, micro: 3 } });
    const qmp = await session(fake, socket);
    // No pool backend left in QEMU's objects: nothing maps the range, so the port comes back (qemu/reach.ts).
    fake.handle('qom-list', () => ok([]));
    fake.handle('device_del', () => fail('GenericError', 'Device cxl-mhd-ld-rp1 is already in the process of unplug'));
    fake.handle('qom-get', () => fail('DeviceNotFound', 'gone'));
    fake.handle('object-del', () => ok());
    const d = new HotplugDelivery(qmp, '/dev/shm/x.mem', ['rp1'], new Map([['rp1', 'cxl-mhd-ld-rp1']]), () => 1n, {
      removalTimeoutMs: 60_000,
    });
    const { gone } = await d.release({ offset: 0, len: 256 * MiB, deviceId: 'cxl-mhd-ld-rp1', port: 'rp1' });
    await gone;
    expect(d.capacityForPieces()).toBe(1);
  });

  it('a port whose old LD QEMU still maps (11.x alias) is not reused until the memory tree lets go', async () => {
    const { fake, socket } = FakeQemu.pair();
    const qmp = await session(fake, socket);
    const present = new Set<string>();
    const backends = new Map<string, { offset: number; size: number }>();
    let aliased = true;
    fake.handle('object-add', (cmd) => {
      const a = cmd.arguments as { id: string; offset: number; size: number };
      backends.set(a.id, { offset: a.offset, size: a.size });
      return ok();
    });
    fake.handle('object-del', () => fail('GenericError', 'which is mapped'));
    fake.handle('device_add', (cmd) => {
      present.add(String(cmd.arguments?.id));
      return ok();
    });
    fake.handle('device_del', (cmd) => {
      present.delete(String(cmd.arguments?.id));
      return ok();
    });
    fake.handle('qom-list', () => ok([...backends.keys()].map((name) => ({ name, type: 'child<memory-backend-file>' }))));
    fake.handle('qom-get', (cmd) => {
      const { path, property } = cmd.arguments as { path: string; property: string };
      const id = path.split('/').pop() ?? '';
      const b = backends.get(id);
      if (path.startsWith('/objects/') && b) return ok({ 'mem-path': '/dev/shm/x.mem', offset: b.offset, size: b.size }[property]);
      return present.has(id) ? ok('cxl-type3') : fail('DeviceNotFound', 'Device not found');
    });
    fake.handle('human-monitor-command', () => {
      const id = [...backends.keys()][0];
      return ok(
        aliased
          ? `address-space: memory\n  0000000120000000-000000012fffffff (prio 0, ram): alias cxl-direct-mapping-alias-0 @${id} 0000000000000000-000000000fffffff\n`
          : 'address-space: memory\n',
      );
    });
    const d = new HotplugDelivery(qmp, '/dev/shm/x.mem', ['rp1'], new Map(), () => 1n, { pollMs: 5 });
    const [piece] = await d.add([{ offset: 0, len: 256 * MiB }]);
    await (await d.release(piece as Delivered)).gone;
    expect(present.size).toBe(0);
    expect(d.capacityForPieces()).toBe(0);
    expect(await d.reachable(piece as Delivered)).toEqual([expect.stringMatching(/^alias cxl-direct-mapping-alias-0 of cxl-mhd-ldmem-/)]);
    expect(d.capacityForPieces()).toBe(0);
    aliased = false;
    expect(await d.reachable(piece as Delivered)).toEqual([]);
    expect(d.capacityForPieces()).toBe(1);
  });

  it('DCD: one prescriptive cxl-add-dynamic-capacity per add, at most 8 extents; QEMU errors surface', async () => {
    const { fake, socket } = FakeQemu.pair();
    const qmp = await session(fake, socket);
    fake.handle('cxl-add-dynamic-capacity', (cmd) =>
      (cmd.arguments?.extents as unknown[] | undefined)?.length === 2
        ? ok()
        : fail('GenericError', 'cannot add DPA again while still pending'),
    );
    const d = new DcdDelivery(qmp, '/machine/peripheral/cxl-mhd-mem0', 2 * MiB, 256 * MiB, '/dev/shm/x.mem');
    await d.add([
      { offset: 0, len: 2 * MiB },
      { offset: 8 * MiB, len: 4 * MiB },
    ]);
    expect(fake.received.at(-1)?.arguments).toEqual({
      path: '/machine/peripheral/cxl-mhd-mem0',
      'host-id': 0,
      'selection-policy': 'prescriptive',
      region: 0,
      extents: [
        { offset: 0, len: 2 * MiB },
        { offset: 8 * MiB, len: 4 * MiB },
      ],
    });
    await expect(d.add([{ offset: 0, len: 2 * MiB }])).rejects.toThrow(/pending/);
    await expect(d.add(Array.from({ length: 9 }, (_, i) => ({ offset: i * 2 * MiB, len: 2 * MiB })))).rejects.toThrow(/at most 8/);
  });
});

describe('unfinished FM adds (journals written before one-line adds)', () => {
  it('finds claims of adds that began and never ended', async () => {
    const p = pool();
    const d = new StubDelivery();
    const m = manager(p, { 1: d });
    await m.initiateAdd(add(1, [[0, 256 * MiB]]));
    // A backend killed after claiming, before delivering: begin + claim, no end.
    const tx = p.note({
      event: 'fm-add-begin',
      head: 1,
      pieces: [{ offset: GiB, len: 256 * MiB }],
      shared: false,
      tag: ZERO_TAG,
      delivery: 'dcd',
    });
    p.claim(1, { first: 512, count: 128 }, {}, { kind: 'dynamic', tx });
    expect(unfinishedAdds(readJournal(p.journalFile))).toEqual([{ tx, head: 1, ranges: [{ first: 512, count: 128 }] }]);
  });
});
