// What a short command and an idle backend cost, next to bare Node: `cxl-mhd
// fm identify` over fm.sock against `node -e 0` (goal ≤ 1.5×; the status
// command's figure is in run.ts), and the resident memory of an idle `serve`
// with one attached QEMU head against `node -e 'setInterval(()=>{},1e9)'`.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fmSocketPath } from '../src/pool/index.js';
import { headArgs, qemuArgv, resolveQemu } from '../src/qemu/index.js';
import { Leftovers } from './cleanup.js';
import type { Report } from './common.js';
import { startServe } from './serve.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

/** Wall time of one whole process, in ms; it must exit 0. */
function wall(args: string[]): Promise<number> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr?.on('data', (d) => {
      err += d;
    });
    c.once('exit', (code) =>
      code === 0 ? resolve(Number(process.hrtime.bigint() - t0) / 1e6) : reject(new Error(`${args.join(' ')}: exit ${code}: ${err}`)),
    );
  });
}

function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) / 1024;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function benchCli(report: Report): Promise<void> {
  const left = new Leftovers();
  const { runDir, stateDir, pool } = left.workspace('cli');
  try {
    const serve = await startServe({ pool, capacity: '1G', heads: 2, runDir, stateDir, left });
    // One QEMU head with a static window: the first to attach owns the FM-LD, so fm.sock answers.
    const args = headArgs({
      pool,
      head: 0,
      runDir,
      capacityBytes: GiB,
      static: { offset: 0, size: 256 * MiB, exclusive: false },
      memory: '128M',
    });
    const argv = qemuArgv(resolveQemu(), [...args, '-display', 'none', '-nodefaults']);
    left.child(spawn(argv[0] as string, argv.slice(1), { stdio: 'ignore' }));
    const identify = ['dist/src/cli/main.js', 'fm', 'identify', '--port', fmSocketPath(runDir, pool)];
    for (let i = 0; ; i++) {
      if (
        await wall(identify).then(
          () => true,
          () => false,
        )
      )
        break;
      if (i > 200) throw new Error('fm.sock never answered identify (head 0 did not attach)');
      await sleep(100);
    }
    const cli: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < 9; i++) {
      cli.push(await wall(identify));
      bare.push(await wall(['-e', '0']));
    }
    report('`cxl-mhd fm identify` over fm.sock, wall', median(cli), 'ms', 'bare `node -e 0` start', median(bare), false);

    // Idle: a few seconds after the last request, with the head attached.
    await sleep(3000);
    const idle = left.child(spawn(process.execPath, ['-e', 'setInterval(()=>{},1e9)'], { stdio: 'ignore' }));
    await sleep(1000);
    report(
      'backend idle RSS (serve, 1 head attached)',
      rssMiB(serve.pid as number),
      'MiB',
      "bare `node -e 'setInterval(…)'`",
      rssMiB(idle.pid as number),
      false,
    );
  } finally {
    await left.clean();
  }
}
