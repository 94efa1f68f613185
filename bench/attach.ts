// Attach benchmarks with real QEMU: per-head attach latency (QEMU spawn →
// backend sent `cont`) against QEMU's own spawn → QMP greeting time, sampled
// right before each attach in the same conditions (on each QEMU series set
// up; goal ≤ 1.2×; docs/performance.md), and 32 paused heads attaching at
// once (total time, backend RSS).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Backend } from '../src/heads/index.js';
import { Pool } from '../src/pool/index.js';
import { qemuArgv, resolveQemu } from '../src/qemu/binary.js';
import { benchHeadArgs } from './common.js';

const MiB = 2 ** 20;
const silent = pino({ level: 'silent' });

function launch(args: string[]): ChildProcess {
  const argv = qemuArgv(resolveQemu(), [...args, '-display', 'none', '-nodefaults']);
  return spawn(argv[0] as string, argv.slice(1), { stdio: 'ignore' });
}

function killAll(children: ChildProcess[]): Promise<unknown> {
  return Promise.all(
    children.map((c) => {
      if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
      const done = new Promise((r) => c.once('exit', r));
      c.kill('SIGKILL');
      return done;
    }),
  );
}

/** QEMU spawn → greeting on a bare listener: QEMU's own start cost, no backend involved. */
async function greetingMs(pool: string, runDir: string, stateDir: string, extra: string[] = []): Promise<number> {
  // A real pool, so QEMU maps an existing object (it would create a stray file otherwise).
  Pool.create({ name: pool, stateDir, capacityBytes: 1024 * MiB, blockBytes: 2 * MiB, headCount: 1 }).close();
  const args = benchHeadArgs({
    pool,
    head: 0,
    runDir,
    capacityBytes: 1024 * MiB,
    static: { offset: 0, size: 256 * MiB, exclusive: false },
    memory: '128M',
  });
  const sockPath = join(runDir, pool, 'head0.sock');
  execFileSync('mkdir', ['-p', join(runDir, pool)]);
  const server = createServer();
  await new Promise<void>((r) => server.listen(sockPath, r));
  const t0 = performance.now();
  const child = launch([...args, ...extra]);
  try {
    return await new Promise<number>((resolve) => {
      server.once('connection', (s) => s.once('data', () => resolve(performance.now() - t0)));
    });
  } finally {
    await killAll([child]);
    await new Promise((r) => server.close(r));
    Pool.destroy({ name: pool, stateDir, force: true });
  }
}

async function attachOnce(backend: Backend, pool: string, runDir: string, head: number): Promise<{ ms: number; child: ChildProcess }> {
  const args = benchHeadArgs({
    pool,
    head,
    runDir,
    capacityBytes: 1024 * MiB,
    static: { offset: 0, size: 256 * MiB, exclusive: false },
    memory: '128M',
  });
  const attached = new Promise<number>((resolve) => {
    backend.onChange = (h, rec) => {
      if (h === head && rec.phase === 'attached') resolve(performance.now());
    };
  });
  const t0 = performance.now();
  const child = launch(args);
  return { ms: (await attached) - t0, child };
}

/** CPU ticks (user + system) a process has used so far. */
function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name: state is [0], utime [11], stime [12].
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

/**
 * Waits until an attached head's QEMU is idle: after `cont` its firmware runs
 * under TCG for a second or so at a full core, and the next head's start
 * would compete with it, which the greeting baseline (one QEMU alone) never does.
 */
async function settled(pid: number | undefined): Promise<void> {
  if (pid === undefined) return;
  let last = cpuTicks(pid);
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const now = cpuTicks(pid);
    if (now - last <= 1) return;
    last = now;
  }
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

/** Per-head attach on one QEMU (`qemu`: its version, for the label); with `perHeadOnly`, without the 32-head part. */
export async function benchAttach(
  report: (name: string, value: number, unit: string, baseName: string, base: number, higherIsBetter: boolean) => void,
  opts: { qemu?: string; perHeadOnly?: boolean } = {},
): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), 'cxl-mhd-bench-attach-'));
  const runDir = join(base, 'run');
  const stateDir = join(base, 'state');
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
  try {
    // Per-head latency, one head at a time, 7 rounds of 3 heads (the first takes the lease and the FM-LD port).
    const pool = `bench-attach-${process.pid}`;
    const greet: number[] = [];
    const backend = await Backend.start({ pool, runDir, stateDir, capacityBytes: 1024 * MiB, headCount: 3, logger: silent });
    const lat: number[] = [];
    try {
      // The baseline is sampled right before each attach, with the same QEMUs of the round alive beside it: on a
      // shared host the load moves within seconds, and a round's earlier heads cost the next start a little.
      for (let round = 0; round < 7; round++) {
        const children: ChildProcess[] = [];
        for (let h = 0; h < 3; h++) {
          greet.push(await greetingMs(`${pool}-g`, runDir, stateDir));
          const r = await attachOnce(backend, pool, runDir, h);
          lat.push(r.ms);
          children.push(r.child);
          await settled(r.child.pid);
        }
        await killAll(children);
        // Let the backend see the disconnects before the next round re-attaches.
        for (let i = 0; i < 100 && backend.pool.state.heads().some((h) => h.attached); i++) await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      await backend.stop();
      Pool.destroy({ name: pool, stateDir, force: true });
    }
    const on = opts.qemu ? `, QEMU ${opts.qemu}` : '';
    report(`attach: spawn → cont (per head, median${on})`, median(lat), 'ms', 'QEMU spawn → QMP greeting', median(greet), false);
    if (opts.perHeadOnly) return;

    // The concurrent figure is the attaches, not the guests: once a head is attached the backend lets it run, and
    // 32 SeaBIOS POSTs under TCG then share the 2 CPUs with the heads still starting (docs/performance.md). Guests
    // whose firmware halts at the reset vector run nothing, as in the serial baseline, where no guest runs either.
    // The same storm with SeaBIOS is printed after it.
    const idle = idleFirmware(base);
    await storm(report, { runDir, stateDir, median, extra: ['-bios', idle], label: 'guests halted at reset' });
    await storm(report, { runDir, stateDir, median, extra: [], label: 'SeaBIOS running in attached guests' });
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

/** A 64 KiB firmware image of `hlt` bytes: the vCPU halts at the reset vector with interrupts off and stays idle. */
function idleFirmware(dir: string): string {
  const path = join(dir, 'halt.bin');
  writeFileSync(path, Buffer.alloc(64 * 1024, 0xf4));
  return path;
}

/** 32 paused heads started at once against one backend process, next to 32 serial spawn → greeting, with `extra` QEMU args on both. */
async function storm(
  report: (name: string, value: number, unit: string, baseName: string, base: number, higherIsBetter: boolean) => void,
  o: { runDir: string; stateDir: string; median: (xs: number[]) => number; extra: string[]; label: string },
): Promise<void> {
  const { runDir, stateDir, median } = o;
  // The serial baseline again, right before the concurrent run: the host's load moves within minutes.
  const greetNow: number[] = [];
  for (let i = 0; i < 5; i++) greetNow.push(await greetingMs(`bench-attach-${process.pid}-g`, runDir, stateDir, o.extra));

  // 32 heads at once, backend as its own process so its RSS is its own.
  const big = `bench-32-${process.pid}`;
  const serve = spawn(
    process.execPath,
    ['dist/src/cli/main.js', 'serve', '--pool', big, '--capacity', '1G', '--heads', '32', '--run-dir', runDir, '--state-dir', stateDir],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  await new Promise<void>((r) => serve.stdout?.on('data', (d) => String(d).includes('ready') && r()));
  const rssIdle = rssMiB(serve.pid ?? 0);
  const children: ChildProcess[] = [];
  try {
    const t0 = performance.now();
    for (let h = 0; h < 32; h++) {
      const args = benchHeadArgs({
        pool: big,
        head: h,
        runDir,
        capacityBytes: 1024 * MiB,
        static: { offset: 0, size: 256 * MiB, exclusive: false },
        memory: '64M',
      });
      children.push(launch([...args, ...o.extra]));
    }
    const probe = Pool.open({ name: big, stateDir, readOnly: true });
    let attached = 0;
    try {
      for (let i = 0; i < 3000 && attached < 32; i++) {
        attached = probe.state.heads().filter((h) => h.attached).length;
        if (attached < 32) await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      probe.close();
    }
    const total = performance.now() - t0;
    if (attached < 32) throw new Error(`only ${attached} of 32 heads attached`);
    const rss = rssMiB(serve.pid ?? 0);
    report(
      `32 paused heads attached concurrently, total (${o.label})`,
      total,
      'ms',
      '32 × QEMU spawn → greeting (serial)',
      32 * median(greetNow),
      false,
    );
    report(`backend RSS with 32 heads attached (${o.label})`, rss, 'MiB', 'backend RSS idle (0 heads)', rssIdle, false);
  } finally {
    await killAll(children);
    serve.kill('SIGTERM');
    await new Promise((r) => serve.once('exit', r));
    Pool.destroy({ name: big, stateDir, force: true });
  }
}
