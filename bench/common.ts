// What every benchmark shares: the report callback bench/run.ts passes in,
// percentiles, and a QMP monitor of a QEMU the benchmark started itself.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { Backend } from '../src/heads/index.js';
import { poolStatus } from '../src/pool/index.js';
import { ROOT_DIR_NAMES, ROOT_STAMP_NAME } from '../src/qemu/binary.js';
import { cacheDir, type HeadArgsOptions, headArgs, qemuArgv, resolveQemu } from '../src/qemu/index.js';
import { QmpSession } from '../src/qmp/index.js';
import { GuestAgent, projectGuest, projectRoot, vmArgv } from '../src/scenario/index.js';
import { Leftovers } from './cleanup.js';

/** One figure next to its baseline from the same run; run.ts prints the ratio. */
export type Report = (name: string, value: number, unit: string, baseName: string, base: number, higherIsBetter: boolean) => void;

export function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
}

/** The benchmark's own QMP monitor socket of a QEMU it spawned, once QEMU listens. */
export async function monitor(path: string): Promise<QmpSession> {
  for (let i = 0; i < 400; i++) {
    if (existsSync(path)) {
      const s = await new Promise<Socket | null>((resolve) => {
        const c = connect(path);
        c.once('connect', () => resolve(c));
        c.once('error', () => resolve(null));
      });
      if (s) return QmpSession.open(s);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`monitor ${path} never came up`);
}

/**
 * Starts the project's QEMU with `args` (a head's, from headArgs) and a QMP
 * monitor of the benchmark's own at `mon`; returns once the backend has let it
 * run. The child and the session are the caller's leftovers.
 */
export async function startHeadQemu(mon: string, args: string[], left: Leftovers): Promise<QmpSession> {
  const argv = qemuArgv(resolveQemu(), [...args, '-display', 'none', '-nodefaults', '-qmp', `unix:${mon},server=on,wait=off`]);
  left.child(spawn(argv[0] as string, argv.slice(1), { stdio: 'ignore' }));
  const s = await monitor(mon);
  left.closing().push(s);
  for (let i = 0; i < 400 && !(await s.execute<{ running: boolean }>('query-status')).running; i++)
    await new Promise((r) => setTimeout(r, 25));
  return s;
}

/** A head's arguments for the QEMU the benches run (its monitor spelled for that version). */
export function benchHeadArgs(opts: Omit<HeadArgsOptions, 'qemuVersion'>): string[] {
  return headArgs({ ...opts, qemuVersion: resolveQemu().version });
}

/**
 * Runs `fn` once per QEMU series whose root `make setup` built (11, then 10),
 * with CXL_MHD_QEMU_SERIES set so everything resolves that QEMU; once with
 * the QEMU CXL_MHD_QEMU names when it is set.
 */
export async function onEachQemu(fn: (version: string) => Promise<void>): Promise<void> {
  const saved = process.env.CXL_MHD_QEMU_SERIES;
  const series = process.env.CXL_MHD_QEMU
    ? [saved]
    : (['11', '10'] as const).filter((s) => existsSync(join(cacheDir(), ROOT_DIR_NAMES[s], ROOT_STAMP_NAME)));
  try {
    for (const s of series.length > 0 ? series : [saved]) {
      if (s === undefined) delete process.env.CXL_MHD_QEMU_SERIES;
      else process.env.CXL_MHD_QEMU_SERIES = s;
      await fn(resolveQemu().version);
    }
  } finally {
    if (saved === undefined) delete process.env.CXL_MHD_QEMU_SERIES;
    else process.env.CXL_MHD_QEMU_SERIES = saved;
  }
}

/**
 * A running backend (fm.sock on) in a fresh work dir, for guests booted with
 * bootGuestHead; `left` takes back everything (agents, QEMUs, the backend,
 * the pool, the work dir): stop it with stopGuestRig.
 */
export async function startGuestRig(tag: string, o: { capacityBytes: number; headCount: number }) {
  const left = new Leftovers();
  const { base: work, runDir, stateDir, pool } = left.workspace(tag);
  try {
    const backend = await Backend.start({ pool, runDir, stateDir, ...o, logger: pino({ level: 'silent' }), fmSocket: true });
    left.stop(() => backend.stop());
    return { work, runDir, stateDir, pool, backend, procs: left.children, agents: left.closing<GuestAgent>(), left };
  } catch (e) {
    await left.clean();
    throw e;
  }
}

export async function stopGuestRig(rig: { left: Leftovers }): Promise<void> {
  await rig.left.clean();
}

/**
 * Boots head `id` of a running backend's pool with the project's guest and
 * waits for its attach (so heads started in order keep head 0 the FM-LD
 * owner); its QEMU goes to `procs`, its agent is returned.
 */
export async function bootGuestHead(o: {
  backend: { pool: Parameters<typeof poolStatus>[0] };
  id: number;
  staticOffset: number;
  sparePorts: number;
  memory: string;
  pool: string;
  runDir: string;
  capacityBytes: number;
  work: string;
  procs: ChildProcess[];
}): Promise<GuestAgent> {
  const head = {
    id: o.id,
    static: { offset: o.staticOffset, size: 256 * 2 ** 20, exclusive: false },
    sparePorts: o.sparePorts,
    delivery: 'hotplug' as const,
  };
  const argv = vmArgv(
    {
      head: { ...head, guest: { append: '', memory: o.memory, fmCommand: 'cxl-mhd fm' } },
      pool: o.pool,
      runDir: o.runDir,
      capacityBytes: o.capacityBytes,
      work: o.work,
      root: projectRoot(),
      qemu: resolveQemu(),
      image: projectGuest(),
    },
    { console: join(o.work, `c${o.id}.log`), agent: join(o.work, `a${o.id}.sock`) },
  );
  o.procs.push(spawn(argv[0] as string, argv.slice(1), { stdio: 'ignore' }));
  while (!poolStatus(o.backend.pool).heads[o.id]?.attached) await new Promise((r) => setTimeout(r, 100));
  return new GuestAgent(join(o.work, `a${o.id}.sock`));
}
