// Lease takeover against real QEMU heads (paused by -S, no guest OS):
// refused while the owner is attached, forced, and taken from a detached
// owner. Each VM's FM-LD port is checked through the test's own monitor;
// fm.sock must answer for whoever owns the lease.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FmClient, openPort } from '../../src/fmapi/index.js';
import {
  cli,
  eventually,
  type HeadVm,
  journal,
  makeTestPool,
  peripherals,
  startBackend,
  startHead,
  status,
  type TestPool,
} from '../helpers/qemu.js';

async function hasPort(vm: HeadVm): Promise<boolean> {
  const chardevs = await vm.monitor.execute<{ label: string }[]>('query-chardev');
  const hasChardev = chardevs.some((c) => c.label === 'cxl-mhd-fmld');
  const hasDevice = (await peripherals(vm)).includes('cxl-mhd-fmld-port');
  // Port and chardev come and go together.
  expect(hasDevice).toBe(hasChardev);
  return hasDevice;
}

/** Identify over fm.sock: resolves with the serial when it answers, rejects when it refuses. */
async function fmIdentify(pool: TestPool): Promise<bigint> {
  const client = new FmClient(await openPort(join(pool.runDir, pool.name, 'fm.sock')), { timeoutMs: 20_000 });
  try {
    return (await client.identify()).serialNumber;
  } finally {
    client.close();
  }
}

const takeover = (pool: TestPool, head: number, force = false) =>
  cli(['lease', 'takeover', '--pool', pool.name, '--head', String(head), '--run-dir', pool.runDir, ...(force ? ['--force'] : [])]);

describe('lease takeover', () => {
  it('is refused while the owner is attached; --force fences the owner, moves the lease and fm.sock with it', async () => {
    const pool = makeTestPool('lease');
    const backend = await startBackend(pool, ['--capacity', '1G', '--heads', '3', '--fm-socket']);
    const vms: HeadVm[] = [];
    for (let h = 0; h < 3; h++) {
      const vm = await startHead(pool, h, { static: '256M@0' });
      vms.push(vm);
      await eventually(async () => (await vm.monitor.execute<{ running: boolean }>('query-status')).running, `head ${h} running`);
    }
    expect(status(pool).fmldOwner).toBe(0);
    const epoch0 = status(pool).leaseEpoch;
    expect(statSync(join(pool.runDir, pool.name, 'control.sock')).mode & 0o777).toBe(0o600);

    const refused = takeover(pool, 1);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toMatch(/head 0 owns the FM-LD and is attached; add --force/);
    expect(status(pool).fmldOwner).toBe(0);
    expect(await hasPort(vms[0]!)).toBe(true);
    expect(await hasPort(vms[1]!)).toBe(false);

    const forced = takeover(pool, 1, true);
    expect(forced.stderr).toBe('');
    expect(forced.code).toBe(0);
    expect(forced.stdout).toMatch(new RegExp(`moved from head 0 \\(fenced.*\\) to head 1, epoch ${epoch0 + 1}`));
    expect(await hasPort(vms[0]!)).toBe(false);
    expect(await hasPort(vms[1]!)).toBe(true);
    expect(await hasPort(vms[2]!)).toBe(false);
    const s = status(pool);
    expect(s.fmldOwner).toBe(1);
    expect(s.leaseEpoch).toBe(epoch0 + 1);
    expect(
      journal(pool)
        .filter((e) => e.op === 'lease-takeover')
        .map((e) => e.args),
    ).toEqual([{ from: 0, to: 1, forced: true }]);
    // fm.sock answers for the new owner, even once the old owner's VM is gone.
    expect(await fmIdentify(pool)).toBeGreaterThan(0n);
    await vms[0]!.kill();
    await eventually(() => status(pool).heads[0]?.attached === false, 'head 0 detached');
    expect(status(pool).fmldOwner).toBe(1);
    expect(await fmIdentify(pool)).toBeGreaterThan(0n);

    // A backend restart keeps the new owner and its port.
    await backend.stop('SIGKILL');
    const b2 = await startBackend(pool, ['--fm-socket']);
    await eventually(
      () =>
        status(pool)
          .heads.slice(1)
          .every((h) => h.phase === 'attached'),
      'heads 1 and 2 re-adopted',
    );
    expect(status(pool)).toMatchObject({ fmldOwner: 1, leaseEpoch: epoch0 + 1 });
    expect(await hasPort(vms[1]!)).toBe(true);
    expect(await hasPort(vms[2]!)).toBe(false);
    expect(await fmIdentify(pool)).toBeGreaterThan(0n);
    expect(cli(['fsck', '--pool', pool.name, ...pool.dirArgs]).stdout).toMatch(/clean/);
    await b2.stop();
  });

  it('from a detached owner it needs no --force; fm.sock, silent while the owner was gone, answers again', async () => {
    const pool = makeTestPool('lease');
    const backend = await startBackend(pool, ['--capacity', '1G', '--heads', '3', '--fm-socket']);
    const vms: HeadVm[] = [];
    for (let h = 0; h < 3; h++) {
      const vm = await startHead(pool, h, { static: '256M@0' });
      vms.push(vm);
      await eventually(async () => (await vm.monitor.execute<{ running: boolean }>('query-status')).running, `head ${h} running`);
    }
    await vms[0]!.kill();
    await eventually(() => status(pool).heads[0]?.attached === false, 'head 0 detached');
    // The lease outlives its owner while other heads remain: nobody can use the FM-API.
    expect(status(pool).fmldOwner).toBe(0);
    await expect(fmIdentify(pool)).rejects.toThrow();

    const unattached = takeover(pool, 0);
    expect(unattached.code).toBe(1);
    expect(unattached.stderr).toMatch(/head 0 already owns|head 0 is not attached/);
    const moved = takeover(pool, 2);
    expect(moved.stderr).toBe('');
    expect(moved.stdout).toMatch(/moved from head 0 \(detached\) to head 2/);
    expect(await hasPort(vms[2]!)).toBe(true);
    expect(await hasPort(vms[1]!)).toBe(false);
    expect(status(pool).fmldOwner).toBe(2);
    expect(await fmIdentify(pool)).toBeGreaterThan(0n);
    expect(cli(['fsck', '--pool', pool.name, ...pool.dirArgs]).stdout).toMatch(/clean/);

    const noBackend = cli(['lease', 'takeover', '--pool', `${pool.name}x`, '--head', '1', '--run-dir', pool.runDir]);
    expect(noBackend.code).toBe(1);
    expect(noBackend.stderr).toMatch(/^cxl-mhd: no backend serves pool .* \(no control socket at .*\)\n$/);
    await backend.stop();
  });
});
