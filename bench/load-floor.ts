// The load's floor: what the same mix of operations costs when each one is
// only what any backend must do for it — QEMU's own commands sent straight
// to an identical head, plus one fdatasync'd append where the operation
// changes state. The load's p99 is printed next to this floor's p99, so the
// tail that is ours is told apart from QEMU's and the disk's on this host.
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { pino } from 'pino';
import type { FmClient } from '../src/fmapi/index.js';
import { Backend } from '../src/heads/index.js';
import { Pool } from '../src/pool/index.js';
import { peripheralPath } from '../src/qemu/names.js';
import type { QmpSession } from '../src/qmp/index.js';
import { bareDcdAdd, bareHotplugAdd, bareJournal } from './bare.js';
import { benchHeadArgs, pct, startHeadQemu } from './common.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

export type LoadKind = 'extent list' | 'region config' | 'hotplug add' | 'hotplug release' | 'dcd add';

export interface FloorRig {
  /** A directory of the bench's own; the floor's pool lives under it. */
  base: string;
  /** The load's FM client: the transport alone is the floor of a read. */
  client: FmClient;
}

/**
 * Samples each kind's bare cost (`samples` times each, capped by how often the
 * mix had it) and returns the mix's floor: op i of the run replaced by a bare
 * sample of its kind, so the floor has the run's proportions exactly.
 */
export async function loadFloor(
  rig: FloorRig,
  kinds: LoadKind[],
  samples = 200,
): Promise<{ p50: number; p99: number; byKind: Map<LoadKind, number[]> }> {
  // Heads of a pool of their own (the load's has all 32 heads in the mix), configured as the load's are.
  const pool = `bench-floor-${process.pid}`;
  const runDir = join(rig.base, 'floor-run');
  const stateDir = join(rig.base, 'floor-state');
  const capacityBytes = 16 * GiB;
  const children: ChildProcess[] = [];
  const sessions: QmpSession[] = [];
  const journal = bareJournal(join(rig.base, 'floor-journal.jsonl'), 1);
  let backend: Backend | undefined;
  try {
    backend = await Backend.start({ pool, runDir, stateDir, capacityBytes, headCount: 3, logger: pino({ level: 'silent' }) });
    const start = (head: number, delivery: 'hotplug' | 'dcd') =>
      startHeadQemu(
        join(rig.base, `floor-mon${head}.sock`),
        benchHeadArgs({ pool, head, runDir, capacityBytes, delivery, sparePorts: delivery === 'hotplug' ? 2 : 0, memory: '64M' }),
        children,
        sessions,
      );
    await start(0, 'hotplug'); // the FM-LD owner
    const hp = await start(1, 'hotplug');
    const dcd = await start(2, 'dcd');
    const durable = journal.append;
    const time = async (fn: () => Promise<unknown>) => {
      const t0 = performance.now();
      await fn();
      return performance.now() - t0;
    };
    const count = (k: LoadKind) => Math.max(1, Math.min(samples, kinds.filter((x) => x === k).length));
    const byKind = new Map<LoadKind, number[]>();
    const put = (k: LoadKind, ms: number) => byKind.set(k, [...(byKind.get(k) ?? []), ms]);

    // Reads served from the pool's shared state: the transport is all any backend must spend.
    for (const k of ['extent list', 'region config'] as const)
      for (let i = 0; i < count(k); i++) put(k, await time(() => rig.client.identify()));

    const port = (await hp.execute<{ name: string; type: string }[]>('qom-list', { path: '/machine/peripheral' }))
      .filter((p) => p.type === 'child<cxl-rp>')
      .map((p) => p.name)
      .sort()[0] as string;
    const id = 'bench-floor-ld';
    const cycles = Math.max(count('hotplug add'), count('hotplug release'));
    for (let i = 0; i < cycles; i++) {
      const offset = 4 * GiB + (i % 4) * 256 * MiB;
      put(
        'hotplug add',
        await time(async () => {
          await bareHotplugAdd(hp, { pool, port, id, memId: `bench-floor-mem${i}`, offset, len: 256 * MiB });
          durable('fm-add', i);
        }),
      );
      // A release is answered once QEMU has dropped the device (docs/security.md): device_del, DEVICE_DELETED, one append.
      put(
        'hotplug release',
        await time(async () => {
          // 11.1 sends DEVICE_DELETED, 10.0 does not: the event or QOM asked back to back, whichever says it first.
          let deleted = false;
          hp.waitForEvent('DEVICE_DELETED', (e) => e.data.device === id, 30_000).then(
            () => {
              deleted = true;
            },
            () => undefined,
          );
          await hp.execute('device_del', { id });
          const present = () =>
            hp.execute('qom-get', { path: peripheralPath(id), property: 'type' }).then(
              () => true,
              () => false,
            );
          for (let j = 0; j < 100_000 && !deleted && (await present()); j++);
          durable('fm-release', i);
        }),
      );
    }
    for (let i = 0; i < count('dcd add'); i++)
      put(
        'dcd add',
        await time(async () => {
          await bareDcdAdd(dcd, 12 * GiB + i * 2 * MiB, 2 * MiB);
          durable('fm-add', i);
        }),
      );

    const floor = kinds.map((k, i) => {
      const xs = byKind.get(k) ?? [];
      return xs[i % xs.length] ?? 0;
    });
    return { p50: pct(floor, 50), p99: pct(floor, 99), byKind };
  } finally {
    journal.close();
    for (const s of sessions) s.close();
    await Promise.all(
      children.map((c) => {
        const done = new Promise((r) => c.once('exit', r));
        c.kill('SIGKILL');
        return done;
      }),
    );
    await backend?.stop();
    Pool.destroy({ name: pool, stateDir, force: true });
  }
}
