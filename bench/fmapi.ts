// 5604h end-to-end latency (request written → response read) for hotplug
// and DCD heads, through the backend's FM-API, against the bare operation:
// the same QMP command(s) (object-add + device_add, or
// cxl-add-dynamic-capacity) sent straight to an identically configured QEMU
// plus one fdatasync'd journal-sized append — what any backend must spend.
// A bare QMP round trip (query-status) is printed too. Same run, same host.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { FmClient, openPort } from '../src/fmapi/index.js';
import { Backend } from '../src/heads/index.js';
import { Pool } from '../src/pool/index.js';
import { peripheralPath } from '../src/qemu/names.js';
import type { QmpSession } from '../src/qmp/index.js';
import { bareDcdAdd, bareHotplugAdd, bareJournal } from './bare.js';
import { benchHeadArgs, pct, type Report, startHeadQemu } from './common.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

/** `hotplug: false` runs only the DCD half (`--only dcd`). */
export async function benchFmApi(report: Report, o: { hotplug: boolean } = { hotplug: true }): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), 'cxl-mhd-bench-fm-'));
  const runDir = join(base, 'run');
  const stateDir = join(base, 'state');
  const pool = `bench-fm-${process.pid}`;
  const capacityBytes = 4 * GiB;
  const backend = await Backend.start({
    pool,
    runDir,
    stateDir,
    capacityBytes,
    headCount: 5,
    logger: pino({ level: 'silent' }),
    fmSocket: true,
  });
  const children: ChildProcess[] = [];
  const sessions: QmpSession[] = [];
  try {
    const start = async (head: number, delivery: 'hotplug' | 'dcd') => {
      const mon = join(base, `mon${head}.sock`);
      const args = benchHeadArgs({
        pool,
        head,
        runDir,
        capacityBytes,
        static: head === 0 ? { offset: 0, size: 256 * MiB, exclusive: false } : undefined,
        delivery,
        sparePorts: delivery === 'hotplug' ? 2 : 0,
        memory: '128M',
      });
      const s = await startHeadQemu(mon, args, children, sessions);
      return s;
    };
    await start(0, 'hotplug');
    const hp = await start(1, 'hotplug');
    await start(2, 'dcd');
    // Identical VMs for the bare baselines: attached like the others, driven through the bench's own monitor.
    const bareHp = await start(3, 'hotplug');
    const bareDcd = await start(4, 'dcd');

    const client = new FmClient(await openPort(join(runDir, pool, 'fm.sock')), { timeoutMs: 30_000 });
    const time = async (fn: () => Promise<unknown>) => {
      const t0 = performance.now();
      await fn();
      return performance.now() - t0;
    };
    const qmpRtt: number[] = [];
    for (let i = 0; i < 200; i++) qmpRtt.push(await time(() => hp.execute('query-status')));

    // The bare operations: what the QMP commands and one durable append cost without the backend.
    const journal = bareJournal(join(base, 'bare-journal.jsonl'), 3);
    const durable = journal.append;
    const ports = (await bareHp.execute<{ name: string; type: string }[]>('qom-list', { path: '/machine/peripheral' }))
      .filter((p) => p.type === 'child<cxl-rp>')
      .map((p) => p.name)
      .sort();
    const port = ports[0] as string;
    const bareId = 'bench-bare-ld';
    const bareGone = async () => {
      for (let j = 0; j < 400; j++) {
        const present = await bareHp.execute('qom-get', { path: peripheralPath(bareId), property: 'type' }).then(
          () => true,
          () => false,
        );
        if (!present) return;
        await new Promise((r) => setTimeout(r, 5));
      }
    };

    // Backend and bare runs alternate, so load from elsewhere on the host falls on both alike.
    const hotplug: number[] = [];
    const bareHotplug: number[] = [];
    for (let i = 0; i < (o.hotplug ? 40 : 0); i++) {
      const offset = GiB + (i % 4) * 256 * MiB;
      hotplug.push(await time(() => client.add({ host: 1, extents: [{ startDpa: offset, len: 256 * MiB }] })));
      await client.release({ host: 1, extents: [{ startDpa: offset, len: 256 * MiB }] });
      // Blocks and the port come back once QEMU has dropped the device.
      for (let j = 0; j < 400 && backend.capacity.grantsOf(1).length > 0; j++) await new Promise((r) => setTimeout(r, 5));
      bareHotplug.push(
        await time(async () => {
          await bareHotplugAdd(bareHp, { pool, port, id: bareId, memId: `bench-bare-mem${i}`, offset, len: 256 * MiB });
          durable('fm-add', i);
        }),
      );
      await bareHp.execute('device_del', { id: bareId });
      await bareGone();
    }
    const dcd: number[] = [];
    const bareDcdMs: number[] = [];
    // Each add at a fresh offset: QEMU 10.0 keeps a DCD extent pending until a DCD guest accepts it.
    for (let i = 0; i < 100; i++) {
      dcd.push(await time(() => client.add({ host: 2, extents: [{ startDpa: 2 * GiB + i * 2 * MiB, len: 2 * MiB }] })));
      bareDcdMs.push(
        await time(async () => {
          await bareDcdAdd(bareDcd, 2 * GiB + i * 2 * MiB, 2 * MiB);
          durable('fm-add', i);
        }),
      );
    }
    // The transport any FM-API backend adds to the bare operation: one no-op request (Identify) over the same socket.
    const fmRtt: number[] = [];
    for (let i = 0; i < 200; i++) fmRtt.push(await time(() => client.identify()));
    client.close();
    journal.close();

    const q50 = pct(qmpRtt, 50);
    const bareHp50 = pct(bareHotplug, 50);
    const bareDcd50 = pct(bareDcdMs, 50);
    if (o.hotplug) {
      report('5604h add, hotplug head, p50', pct(hotplug, 50), 'ms', 'bare object-add+device_add+fdatasync p50', bareHp50, false);
      report(
        '5604h add, hotplug head, p99',
        pct(hotplug, 99),
        'ms',
        'bare object-add+device_add+fdatasync p99',
        pct(bareHotplug, 99),
        false,
      );
    }
    report('5604h add, dcd head, p50', pct(dcd, 50), 'ms', 'bare cxl-add-dynamic-capacity+fdatasync p50', bareDcd50, false);
    report('5604h add, dcd head, p99', pct(dcd, 99), 'ms', 'bare cxl-add-dynamic-capacity+fdatasync p99', pct(bareDcdMs, 99), false);
    report(
      '5604h add, dcd head, p50 (vs bare + FM-API RTT)',
      pct(dcd, 50),
      'ms',
      'bare DCD add+fdatasync p50 + Identify RTT p50',
      bareDcd50 + pct(fmRtt, 50),
      false,
    );
    report('5604h add, dcd head, p50 (vs QMP RTT)', pct(dcd, 50), 'ms', 'bare QMP round trip (query-status) p50', q50, false);
  } finally {
    for (const s of sessions) s.close();
    await Promise.all(
      children.map((c) => {
        const done = new Promise((r) => c.once('exit', r));
        c.kill('SIGKILL');
        return done;
      }),
    );
    await backend.stop();
    Pool.destroy({ name: pool, stateDir, force: true });
    rmSync(base, { recursive: true, force: true });
  }
}
