import { closeSync, fdatasyncSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { FmClient, openPort } from '../src/fmapi/index.js';
import { Backend } from '../src/heads/index.js';
import { dataObjectPath } from '../src/pool/index.js';
import { ldSerial, peripheralPath, STATIC_DEVICE_ID } from '../src/qemu/names.js';
import { Leftovers } from './cleanup.js';
import { benchHeadArgs, pct, type Report, startHeadQemu } from './common.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

/** `hotplug: false` runs only the DCD half (`--only dcd`). */
export async function benchFmApi(report: Report, o: { hotplug: boolean } = { hotplug: true }): Promise<void> {
  const left = new Leftovers();
  const { base, runDir, stateDir, pool } = left.workspace('fm');
  const capacityBytes = 4 * GiB;
  try {
    const backend = await Backend.start({
      pool,
      runDir,
      stateDir,
      capacityBytes,
      headCount: 5,
      logger: pino({ level: 'silent' }),
      fmSocket: true,
    });
    left.stop(() => backend.stop());
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
      const s = await startHeadQemu(mon, args, left);
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
    const journalFd = openSync(join(base, 'bare-journal.jsonl'), 'a', 0o600);
    const durable = (op: string, i: number) => {
      writeSync(
        journalFd,
        `${JSON.stringify({ seq: i, time: new Date().toISOString(), op, args: { head: 3, offset: i }, result: { ok: true } })}\n`,
      );
      fdatasyncSync(journalFd);
    };
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
          await bareHp.execute('object-add', {
            'qom-type': 'memory-backend-file',
            id: `bench-bare-mem${i}`,
            'mem-path': dataObjectPath(pool),
            offset,
            size: 256 * MiB,
            share: true,
          });
          await bareHp.execute('device_add', {
            driver: 'cxl-type3',
            bus: port,
            'volatile-memdev': `bench-bare-mem${i}`,
            id: bareId,
            sn: Number(ldSerial(pool, port)),
          });
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
          await bareDcd.execute('cxl-add-dynamic-capacity', {
            path: peripheralPath(STATIC_DEVICE_ID),
            'host-id': 0,
            'selection-policy': 'prescriptive',
            region: 0,
            extents: [{ offset: 2 * GiB + i * 2 * MiB, len: 2 * MiB }],
          });
          durable('fm-add', i);
        }),
      );
    }
    // The transport any FM-API backend adds to the bare operation: one no-op request (Identify) over the same socket.
    const fmRtt: number[] = [];
    for (let i = 0; i < 200; i++) fmRtt.push(await time(() => client.identify()));
    client.close();
    closeSync(journalFd);

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
    await left.clean();
  }
}
