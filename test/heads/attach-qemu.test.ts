// Real QEMU heads (paused by -S, no guest OS) against the real backend:
// attach, FM-LD ownership, status, backend restart with re-adoption, QEMU
// death, and refusals. Each test checks through its own QMP monitor on the
// VM, never through the backend's.
import { describe, expect, it } from 'vitest';
import { cli, eventually, journal, makeTestPool, peripherals, startBackend, startHead, status } from '../helpers/qemu.js';

const MiB = 2 ** 20;
const SHARED_WINDOW = '256M@0';

async function running(vm: { monitor: { execute<T>(c: string): Promise<T> } }): Promise<boolean> {
  return (await vm.monitor.execute<{ running: boolean }>('query-status')).running;
}

describe('QEMU heads attach to the backend', () => {
  it('three heads attach, the first owns the FM-LD, only it has the cxl-mhd.fmld port, status matches', async () => {
    const pool = makeTestPool();
    expect(cli(['pool', 'create', '--pool', pool.name, '--capacity', '1G', '--heads', '3', ...pool.dirArgs]).code).toBe(0);
    const backend = await startBackend(pool);
    const vms = [];
    for (let h = 0; h < 3; h++) {
      const vm = await startHead(pool, h, { static: SHARED_WINDOW });
      vms.push(vm);
      // Heads are started one after another: "first-started" must mean head 0.
      await eventually(() => running(vm), `head ${h} to be continued by the backend`);
    }
    const s = status(pool);
    expect(s.fmldOwner).toBe(0);
    expect(s.backend).toEqual({ running: true, pid: backend.pid });
    expect(s.heads.map((h) => [h.id, h.attached, h.pid, h.grantedBytes, h.sharedBytes])).toEqual(
      vms.map((vm) => [vm.head, true, vm.pid, 256 * MiB, 256 * MiB]),
    );
    expect(s.freeBytes).toBe(768 * MiB);
    expect(await peripherals(vms[0]!)).toContain('cxl-mhd-fmld-port');
    expect(await peripherals(vms[1]!)).not.toContain('cxl-mhd-fmld-port');
    expect(await peripherals(vms[2]!)).not.toContain('cxl-mhd-fmld-port');
    const port = await vms[0]!.monitor.execute<string>('qom-get', { path: '/machine/peripheral/cxl-mhd-fmld-port', property: 'name' });
    expect(port).toBe('cxl-mhd.fmld');
    for (const vm of vms.slice(1)) {
      const chardevs = await vm.monitor.execute<{ label: string }[]>('query-chardev');
      expect(chardevs.map((c) => c.label)).not.toContain('cxl-mhd-fmld');
    }
    expect(await backend.stop()).toBe(0);
    expect(cli(['fsck', '--pool', pool.name, ...pool.dirArgs]).code).toBe(0);
  });

  it('a killed backend is restarted: heads re-adopted, lease and FM-LD port kept, VMs never paused', async () => {
    const pool = makeTestPool();
    const b1 = await startBackend(pool, ['--capacity', '1G', '--heads', '3']);
    const vms = [];
    for (let h = 0; h < 3; h++) {
      const vm = await startHead(pool, h, { static: SHARED_WINDOW });
      vms.push(vm);
      await eventually(() => running(vm), `head ${h} running`);
    }
    const resets: string[] = [];
    for (const vm of vms) vm.monitor.on('*', (e) => resets.push(`${vm.head}:${e.event}`));
    await b1.stop('SIGKILL');
    // With no backend at all, the VMs keep running.
    for (const vm of vms) expect(await running(vm)).toBe(true);
    const b2 = await startBackend(pool);
    const s = await eventually(() => {
      const st = status(pool);
      return st.heads.every((h) => h.phase === 'attached') ? st : null;
    }, 'all heads re-adopted');
    expect(s.fmldOwner).toBe(0);
    expect(s.heads.map((h) => h.pid)).toEqual(vms.map((v) => v.pid));
    for (const vm of vms) expect(await running(vm)).toBe(true);
    expect(resets.filter((e) => /RESET|STOP|SHUTDOWN/.test(e))).toEqual([]);
    expect(await peripherals(vms[0]!)).toContain('cxl-mhd-fmld-port');
    const readopted = journal(pool).filter((e) => e.op === 'note' && e.args.event === 'head-readopted');
    expect(readopted.map((e) => e.args.head).sort()).toEqual([0, 1, 2]);
    expect(cli(['fsck', '--pool', pool.name, ...pool.dirArgs]).code).toBe(0);
    await b2.stop();
  });

  it("killing the owner's QEMU keeps the lease; the other heads are unaffected", async () => {
    const pool = makeTestPool();
    const backend = await startBackend(pool, ['--capacity', '1G', '--heads', '3']);
    const vms = [];
    for (let h = 0; h < 3; h++) {
      const vm = await startHead(pool, h, { static: SHARED_WINDOW });
      vms.push(vm);
      await eventually(() => running(vm), `head ${h} running`);
    }
    await vms[0]!.kill();
    const s = await eventually(() => {
      const st = status(pool);
      return st.heads[0]?.attached === false ? st : null;
    }, 'head 0 detached');
    expect(s.fmldOwner).toBe(0);
    expect(s.heads[0]).toMatchObject({ attached: false, grantedBytes: 0 });
    expect(s.heads.slice(1).map((h) => [h.attached, h.grantedBytes])).toEqual([
      [true, 256 * MiB],
      [true, 256 * MiB],
    ]);
    for (const vm of vms.slice(1)) expect(await running(vm)).toBe(true);
    const ops = journal(pool).map((e) => e.op);
    expect(ops).toContain('head-unregister');
    expect(ops).toContain('release-all');
    expect(cli(['fsck', '--pool', pool.name, ...pool.dirArgs]).code).toBe(0);
    await backend.stop();
  });

  it('a conflicting exclusive window is refused with its reason; its QEMU quits, nothing is claimed', async () => {
    const pool = makeTestPool();
    const backend = await startBackend(pool, ['--capacity', '1G', '--heads', '3']);
    const owner = await startHead(pool, 0, { static: '512M@0' });
    await eventually(() => running(owner), 'head 0 running');
    const intruder = await startHead(pool, 1, { static: '256M@256M,exclusive', noMonitor: true });
    expect(await intruder.exited).not.toBeNull();
    const s = await eventually(() => {
      const st = status(pool);
      return st.heads[1]?.phase === 'refused' ? st : null;
    }, 'head 1 refused');
    expect(s.heads[1]).toMatchObject({ attached: false, grantedBytes: 0 });
    expect(s.heads[1]?.reason).toMatch(/exclusive window at pool offset 268435456 .* conflicts with a shared grant of head 0/);
    expect(s.heads[0]).toMatchObject({ attached: true, grantedBytes: 512 * MiB });
    const text = cli(['status', '--pool', pool.name, ...pool.dirArgs]).stdout;
    expect(text).toMatch(/refused: .*conflicts/);
    const refusal = journal(pool).find((e) => e.op === 'note' && e.args.event === 'attach-refused');
    expect(refusal?.args.reason).toMatch(/conflicts/);
    // The log line is written off the answer path: waited for, not assumed there with the journal note.
    await eventually(() => /head 1: refused/.test(backend.stderr()), 'the refusal in the log');
    expect(cli(['fsck', '--pool', pool.name, ...pool.dirArgs]).code).toBe(0);
    await backend.stop();
  });

  it('a window without share=on is refused before the guest runs', async () => {
    const pool = makeTestPool();
    const backend = await startBackend(pool, ['--capacity', '1G', '--heads', '2']);
    const vm = await startHead(pool, 0, {
      static: SHARED_WINDOW,
      noMonitor: true,
      mutate: (a) => a.map((w) => w.replace('share=on', 'share=off')),
    });
    expect(await vm.exited).not.toBeNull();
    const s = await eventually(() => {
      const st = status(pool);
      return st.heads[0]?.phase === 'refused' ? st : null;
    }, 'head 0 refused');
    expect(s.heads[0]?.reason).toMatch(/without share=on/);
    expect(s.fmldOwner).toBeNull();
    expect(s.freeBytes).toBe(1024 * MiB);
    await backend.stop();
  });

  it('a second backend on the same pool is refused', async () => {
    const pool = makeTestPool();
    const b1 = await startBackend(pool, ['--capacity', '512M', '--heads', '2']);
    const r = cli(['serve', '--pool', pool.name, ...pool.dirArgs]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`in use by another writer \\(pid ${b1.pid}\\)`));
    await b1.stop();
  });
});
