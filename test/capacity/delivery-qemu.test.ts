// Moving capacity with the FM-API against real paused QEMU heads: the FM
// client (the built CLI) adds and releases through the backend's FM-API, and
// the test checks through its own QMP monitor what QEMU really has.
import { describe, expect, it } from 'vitest';
import { cli, eventually, type HeadVm, journal, makeTestPool, startBackend, startHead, status, type TestPool } from '../helpers/qemu.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

function fm(pool: TestPool, ...args: string[]) {
  return cli(['fm', '--port', `${pool.runDir}/${pool.name}/fm.sock`, ...args]);
}

async function running(vm: HeadVm): Promise<boolean> {
  return (await vm.monitor.execute<{ running: boolean }>('query-status')).running;
}

async function ldDevices(vm: HeadVm): Promise<{ id: string; offset: number; size: number; memPath: string }[]> {
  const list = await vm.monitor.execute<{ name: string; type: string }[]>('qom-list', { path: '/machine/peripheral' });
  const out = [];
  for (const p of list.filter((x) => x.name.startsWith('cxl-mhd-ld-'))) {
    const backend = await vm.monitor.execute<string>('qom-get', { path: `/machine/peripheral/${p.name}`, property: 'volatile-memdev' });
    const get = (property: string) => vm.monitor.execute<unknown>('qom-get', { path: backend, property });
    out.push({ id: p.name, offset: Number(await get('offset')), size: Number(await get('size')), memPath: String(await get('mem-path')) });
  }
  return out;
}

async function threeHeads(pool: TestPool): Promise<HeadVm[]> {
  const vms: HeadVm[] = [];
  const shapes = [{ static: '256M@0' }, { static: '256M@0', sparePorts: 2 }, { delivery: 'dcd' as const, extra: [] }];
  for (const [h, shape] of shapes.entries()) {
    const vm = await startHead(pool, h, shape);
    vms.push(vm);
    await eventually(() => running(vm), `head ${h} running`);
  }
  return vms;
}

describe('FM-API capacity moves between real QEMU heads', () => {
  it('adds 256 MiB to head 1 as a hot-added cxl-type3 over the right pool range, and releases it', async () => {
    const pool = makeTestPool('cap');
    const backend = await startBackend(pool, ['--capacity', '2G', '--heads', '3', '--fm-socket']);
    const vms = await threeHeads(pool);

    const ident = fm(pool, 'identify', '--json');
    expect(ident.stderr).toBe('');
    expect(JSON.parse(ident.stdout)).toMatchObject({ componentType: 3 });
    const dcd = JSON.parse(fm(pool, 'dcd-info', '--json').stdout);
    expect(dcd).toMatchObject({ numHosts: 3, totalCapacityBytes: 2 * GiB });

    const add = fm(pool, 'add', '--host', '1', '--extent', '1G:256M');
    expect(add.stderr).toBe('');
    expect(add.code).toBe(0);
    const lds = await ldDevices(vms[1]!);
    expect(lds).toEqual([
      { id: expect.stringMatching(/^cxl-mhd-ld-cxl-mhd-rp1$/), offset: GiB, size: 256 * MiB, memPath: `/dev/shm/cxl-mhd.${pool.name}.mem` },
    ]);
    expect(await ldDevices(vms[0]!)).toEqual([]);
    let s = status(pool);
    expect(s.heads[1]).toMatchObject({ grantedBytes: 512 * MiB });
    expect(s.freeBytes).toBe(2 * GiB - 512 * MiB);
    const ext = JSON.parse(fm(pool, 'extents', '--host', '1', '--json').stdout);
    expect(ext.extents).toEqual([expect.objectContaining({ startDpa: GiB, len: 256 * MiB })]);

    const rel = fm(pool, 'release', '--host', '1', '--extent', '1G:256M');
    expect(rel.stderr).toBe('');
    expect(rel.code).toBe(0);
    await eventually(async () => (await ldDevices(vms[1]!)).length === 0, 'the hot-added device to leave QEMU');
    s = await eventually(() => {
      const st = status(pool);
      return st.heads[1]?.grantedBytes === 256 * MiB ? st : null;
    }, 'the released blocks to be free');
    expect(s.freeBytes).toBe(2 * GiB - 256 * MiB);
    // One line for the add (claims + device), one for the answered release, one when QEMU dropped the device.
    const ops = journal(pool).filter((e) => e.op.startsWith('fm-') || e.args.kind === 'dynamic');
    expect(ops.map((e) => e.op)).toEqual(['fm-add', 'fm-release', 'release']);
    expect(cli(['fsck', '--pool', pool.name, ...pool.dirArgs]).code).toBe(0);
    await backend.stop();
  });

  it("a dcd head's add is accepted by QEMU; an overlapping exclusive add to another head is refused without side effects", async () => {
    const pool = makeTestPool('cap');
    const backend = await startBackend(pool, ['--capacity', '2G', '--heads', '3', '--fm-socket']);
    const vms = await threeHeads(pool);
    const cfg = JSON.parse(fm(pool, 'region-config', '--host', '2', '--json').stdout);
    expect(cfg.regions[0]).toMatchObject({ base: 0, blockSize: 2 * MiB, length: 2 * GiB });

    expect(fm(pool, 'add', '--host', '2', '--extent', '1536M:4M').code).toBe(0);
    expect(status(pool).heads[2]).toMatchObject({ grantedBytes: 4 * MiB });
    // QEMU keeps the extent pending (no DCD guest accepts it): adding it again is refused by QEMU itself.
    const again = await vms[2]!.monitor
      .execute('cxl-add-dynamic-capacity', {
        path: '/machine/peripheral/cxl-mhd-mem0',
        'host-id': 0,
        'selection-policy': 'prescriptive',
        region: 0,
        extents: [{ offset: 1536 * MiB, len: 2 * MiB }],
      })
      .then(
        () => 'accepted',
        (e: Error) => e.message,
      );
    expect(again).toMatch(/pending/);

    expect(fm(pool, 'add', '--host', '1', '--extent', '1G:256M').code).toBe(0);
    const before = status(pool);
    const lenBefore = journal(pool).length;
    const clash = fm(pool, 'add', '--host', '2', '--extent', '1026M:2M');
    expect(clash.code).toBe(1);
    expect(clash.stderr).toMatch(/Resources ?Exhausted \(0x1d\)/i);
    // The wire carries only the return code; the reason is in the backend's log and journal.
    await eventually(() => /5604h.*held exclusively by head 1/.test(backend.stderr()), 'the refusal reason in the log');
    const after = status(pool);
    expect(after.heads.map((h) => h.grantedBytes)).toEqual(before.heads.map((h) => h.grantedBytes));
    expect(after.freeBytes).toBe(before.freeBytes);
    const newOps = journal(pool).slice(lenBefore) as { op: string; args: Record<string, unknown>; result: { ok: boolean } }[];
    // A refused add leaves nothing durable but the refusal and its reason (an add is journaled once, whole, when it succeeds).
    expect(newOps.map((e) => (e.op === 'note' ? `note:${e.args.event}` : `${e.op}:${e.result.ok}`))).toEqual(['note:fm-refused']);
    expect(newOps[0]?.args).toMatchObject({ event: 'fm-refused', code: 0x1d });
    expect(cli(['fsck', '--pool', pool.name, ...pool.dirArgs]).code).toBe(0);
    await backend.stop();
  });

  it('bad requests get clear errors: unknown head, misaligned hot-add, unattached head', async () => {
    const pool = makeTestPool('cap');
    const backend = await startBackend(pool, ['--capacity', '2G', '--heads', '4', '--fm-socket']);
    await threeHeads(pool);
    // The wire carries only the return code; each reason is in the backend's log (and journal).
    expect(fm(pool, 'add', '--host', '9', '--extent', '1G:256M').stderr).toMatch(/Invalid ?Input \(0x02\)/i);
    expect(fm(pool, 'add', '--host', '1', '--extent', '1G:2M').stderr).toMatch(/Invalid ?Input \(0x02\)/i);
    expect(fm(pool, 'add', '--host', '3', '--extent', '1G:256M').stderr).toMatch(/Invalid ?Input \(0x02\)/i);
    expect(fm(pool, 'release', '--host', '1', '--extent', '1G:256M').stderr).toMatch(/Invalid ?Input \(0x02\)/i);
    expect(fm(pool, 'add', '--host', '1').stderr).toMatch(/give at least one --extent/);
    expect(fm(pool, 'add', '--host', '1', '--extent', '1G').stderr).toMatch(/must be OFFSET:LEN/);
    await eventually(() => {
      const log = backend.stderr();
      return (
        /host 9 does not exist/.test(log) &&
        /not aligned to this head's 268435456-byte hotplug granularity/.test(log) &&
        /head 3 is not attached/.test(log) &&
        /holds no extent/.test(log)
      );
    }, 'every refusal reason in the backend log');
    expect(status(pool).freeBytes).toBe(2 * GiB - 256 * MiB);
    await backend.stop();
  });
});
