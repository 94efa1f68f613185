// LD hot-add to a usable devdax in a real guest: 16 tagged LDs go to one
// head (`--spare-ports 16`), one at a time; for each, the time from the
// 5604h Success the host FM client gets to the guest having found the LD by
// its tag (`cxl-mhd-devdax --tag`), made its region and written through
// /dev/daxN.M. Baseline from the same run: a guest no-op round trip over
// the same marker-file channel right before each add.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FmClient, openPort } from '../src/fmapi/index.js';
import { fmSocketPath } from '../src/pool/index.js';
import { qemuArgv, resolveQemu } from '../src/qemu/binary.js';
import { guestBootArgs } from '../src/scenario/index.js';
import { Leftovers } from './cleanup.js';
import { benchHeadArgs, type Report } from './common.js';
import { startServe } from './serve.js';

const MiB = 2 ** 20;
const LDS = 16;

const GUEST = `#!/bin/sh
cd /scenario
touch ready
i=1
while [ $i -le ${LDS} ]; do
  while [ ! -e ping-$i ]; do sleep 0.02; done
  touch pong-$i
  while [ ! -e add-$i ]; do sleep 0.02; done
  dax=$(CXLMHD_DEVDAX_TIMES=1 cxl-mhd-devdax --tag "$(cat add-$i)" --wait 120 2>times-$i) && daxpoke write "$dax" 0 "ld-$i" >/dev/null && touch ok-$i || { touch fail-$i; exit 1; }
  i=$((i + 1))
done
`;

async function waitFile(path: string, failPath: string, limitMs = 600_000): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (existsSync(path)) return performance.now();
    if (existsSync(failPath)) throw new Error(`guest reported ${failPath}`);
    if (performance.now() - t0 > limitMs) throw new Error(`no ${path} after ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The guest helper's "time STAGE MS" lines (CXLMHD_DEVDAX_TIMES=1) as "stage ms, …". */
function stages(path: string): string {
  if (!existsSync(path)) return '(no stage times)';
  return readFileSync(path, 'utf8')
    .split('\n')
    .map((l) => /time (\S+) (\d+)$/.exec(l))
    .filter((m) => m !== null)
    .map((m) => `${m[1]} ${m[2]}`)
    .join(', ');
}

export async function benchLdHotAdd(report: Report): Promise<void> {
  const left = new Leftovers();
  const { base: work, runDir, stateDir, pool } = left.workspace('ld');
  const scen = join(work, 'scenario');
  const capacityBytes = LDS * 256 * MiB;
  try {
    mkdirSync(scen);
    writeFileSync(join(scen, 'run.sh'), GUEST);
    await startServe({ pool, capacity: String(capacityBytes), heads: 1, runDir, stateDir, left });
    const args = benchHeadArgs({ pool, head: 0, runDir, capacityBytes, sparePorts: LDS, memory: '512M' });
    const argv = qemuArgv(resolveQemu(), [
      ...args,
      '-display',
      'none',
      '-nodefaults',
      '-serial',
      `file:${join(work, 'console.log')}`,
      ...guestBootArgs(scen, 'console=ttyS0 quiet cxlmhd.timeout=1200'),
    ]);
    left.child(spawn(argv[0] as string, argv.slice(1), { stdio: 'ignore' }));
    await waitFile(join(scen, 'ready'), join(scen, 'fail-0'));
    const fm = new FmClient(await openPort(fmSocketPath(runDir, pool)));
    const usable: number[] = [];
    const roundTrip: number[] = [];
    const fmMs: number[] = [];
    for (let i = 1; i <= LDS; i++) {
      const p0 = performance.now();
      writeFileSync(join(scen, `ping-${i}`), '');
      roundTrip.push((await waitFile(join(scen, `pong-${i}`), join(scen, `fail-${i}`))) - p0);
      const tag = `${i.toString(16).padStart(8, '0')}-0000-4000-8000-00000000b0b0`;
      const a0 = performance.now();
      await fm.add({ host: 0, extents: [{ startDpa: (i - 1) * 256 * MiB, len: 256 * MiB }], tag });
      const t0 = performance.now();
      fmMs.push(t0 - a0);
      writeFileSync(join(scen, `add-${i}`), tag);
      usable.push((await waitFile(join(scen, `ok-${i}`), join(scen, `fail-${i}`))) - t0);
      process.stdout.write(
        `  LD ${i}: 5604h ${(t0 - a0).toFixed(0)} ms, then devdax usable after ${(usable.at(-1) as number).toFixed(0)} ms; guest helper: ${stages(join(scen, `times-${i}`))}\n`,
      );
    }
    fm.stream.destroy();
    report(
      'LD hot-add: 5604h Success → devdax usable, 1st LD',
      usable[0] as number,
      'ms',
      'guest no-op round trip before it',
      roundTrip[0] as number,
      false,
    );
    report(
      `LD hot-add: 5604h Success → devdax usable, ${LDS}th LD`,
      usable[LDS - 1] as number,
      'ms',
      'guest no-op round trip before it',
      roundTrip[LDS - 1] as number,
      false,
    );
    // One LD's figure swings with the host's load; the middle of three neighbours is steadier.
    const mid3 = (xs: number[]) => [...xs].sort((a, b) => a - b)[1] as number;
    report(
      `LD hot-add: Success → usable, median of LDs ${LDS - 2}–${LDS}`,
      mid3(usable.slice(-3)),
      'ms',
      'median of LDs 1–3',
      mid3(usable.slice(0, 3)),
      false,
    );
    report(
      `LD hot-add: 5604h itself (object-add + device_add), ${LDS}th LD`,
      fmMs[LDS - 1] as number,
      'ms',
      '1st LD',
      fmMs[0] as number,
      false,
    );
  } finally {
    await left.clean();
  }
}
