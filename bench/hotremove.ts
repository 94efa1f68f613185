import { join } from 'node:path';
import { FmClient, openPort } from '../src/fmapi/index.js';
import { poolStatus } from '../src/pool/index.js';
import type { GuestAgent } from '../src/scenario/index.js';
import { bootGuestHead, onEachQemu, pct, type Report, startGuestRig, stopGuestRig } from './common.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const ROUNDS = 3;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Median ms from 5605h sent to head 1's mem1 gone, on the QEMU resolved now. */
async function oneQemu(): Promise<number> {
  const rig = await startGuestRig('hr', { capacityBytes: 2 * GiB, headCount: 2 });
  const { runDir, pool, procs, agents, backend: be, work } = rig;
  try {
    for (const h of [0, 1]) {
      agents.push(
        await bootGuestHead({
          backend: be,
          id: h,
          staticOffset: h * 256 * MiB,
          sparePorts: 1,
          memory: '512M',
          pool,
          runDir,
          capacityBytes: 2 * GiB,
          work,
          procs,
        }),
      );
    }
    const guest = agents[1] as GuestAgent;
    await guest.waitReady(Date.now() + 900_000);
    const hasMem1 = async () =>
      (await guest.exec(['/bin/sh', '-c', 'test -e /sys/bus/cxl/devices/mem1'], { timeoutMs: 30_000 })).exitCode === 0;
    const client = new FmClient(await openPort(join(runDir, pool, 'fm.sock')), { timeoutMs: 60_000 });
    const took: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const extents = [{ startDpa: GiB, len: 256 * MiB }];
      await client.add({ host: 1, extents });
      while (!(await hasMem1())) await sleep(100);
      const t0 = performance.now();
      await client.release({ host: 1, extents });
      while (await hasMem1()) await sleep(50);
      took.push(performance.now() - t0);
      // The blocks come back once QEMU dropped the device; the next add needs them.
      while (poolStatus(be.pool).heads[1]?.grantedBytes !== 256 * MiB) await sleep(50);
    }
    client.close();
    return pct(took, 50);
  } finally {
    await stopGuestRig(rig);
  }
}

export async function benchHotRemove(report: Report): Promise<void> {
  const byQemu: [string, number][] = [];
  await onEachQemu(async (v) => {
    byQemu.push([v, await oneQemu()]);
  });
  const [newest, older] = byQemu;
  if (!newest) return;
  // Next to the other QEMU's figure when both are set up; else next to itself (ratio 1).
  const [baseName, base] = older ? [`same on QEMU ${older[0]}`, older[1]] : [`same on QEMU ${newest[0]}`, newest[1]];
  report(`hot-remove 5605h → memdev gone (QEMU ${newest[0]})`, newest[1], 'ms', baseName, base, false);
}
