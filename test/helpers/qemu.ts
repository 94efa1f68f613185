// Real QEMU heads and real backends for tests: the backend runs as the
// built CLI (`cxl-mhd serve`, a separate process so it can be SIGKILLed),
// QEMU from the project's setup with the arguments `cxl-mhd qemu-args`
// prints, plus a second QMP monitor that the test owns. Everything started
// here is killed, and every socket, shm object and directory removed, after
// each test, pass or fail.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { monitorArgs, resolveQemu } from '../../src/qemu/index.js';
import { QmpSession } from '../../src/qmp/index.js';
import { tempDir, uniquePoolName } from './pool.js';

const CLI = 'dist/src/cli/main.js';
const children = new Set<ChildProcess>();
const sessions = new Set<QmpSession>();
const pools: { base: string; logDir: string }[] = [];
const backendLogs = new Set<{ logDir: string; pid: number; stderr: () => string }>();

export function cli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export interface TestPool {
  name: string;
  runDir: string;
  stateDir: string;
  /** Guest consoles and backend logs go here, kept when a test fails. */
  logDir: string;
  dirArgs: string[];
}

export function makeTestPool(tag = 'q'): TestPool {
  const base = tempDir('cxl-mhd-qemu-');
  pools.push({ base, logDir: join(base, 'logs') });
  const runDir = join(base, 'run');
  const stateDir = join(base, 'state');
  const logDir = join(base, 'logs');
  mkdirSync(logDir, { recursive: true });
  return { name: uniquePoolName(tag), runDir, stateDir, logDir, dirArgs: ['--run-dir', runDir, '--state-dir', stateDir] };
}

export interface BackendProcess {
  child: ChildProcess;
  pid: number;
  stderr: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startBackend(pool: TestPool, extra: string[] = []): Promise<BackendProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', '--pool', pool.name, ...pool.dirArgs, ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let err = '';
  let out = '';
  child.stderr?.on('data', (d) => {
    err += d;
  });
  // 'close', not 'exit': stdout and stderr are two pipes, read apart; only once both are closed has
  // stderr() all the backend wrote (a line logged before `ready` can still be in flight when ready is read).
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  backendLogs.add({ logDir: pool.logDir, pid: child.pid ?? -1, stderr: () => err });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d) => {
      out += d;
      if (out.includes('ready')) resolve();
    });
    void exited.then((code) => reject(new Error(`backend exited ${code} before ready: ${err}`)));
  });
  return {
    child,
    pid: child.pid ?? -1,
    stderr: () => err,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const code = await exited;
      writeFileSync(join(pool.logDir, `backend-${child.pid}.log`), err);
      return code;
    },
  };
}

export interface HeadVm {
  head: number;
  child: ChildProcess;
  pid: number;
  /** The test's own QMP monitor on this VM (not the backend's); absent with noMonitor. */
  monitor: QmpSession;
  exited: Promise<number | null>;
  kill(): Promise<void>;
}

export interface HeadOptions {
  static?: string;
  delivery?: 'hotplug' | 'dcd';
  sparePorts?: number;
  /** Guest RAM (default 256M: enough for a paused VM; a booting guest wants more). */
  memory?: string;
  /** Rewrites the arguments before launch (misconfiguration tests). */
  mutate?: (args: string[]) => string[];
  extra?: string[];
  /** Skip the test's monitor: for VMs the backend refuses, which may quit before it could connect. */
  noMonitor?: boolean;
}

export async function startHead(pool: TestPool, head: number, opts: HeadOptions = {}): Promise<HeadVm> {
  const r = cli([
    'qemu-args',
    '--pool',
    pool.name,
    '--head',
    String(head),
    ...pool.dirArgs,
    '--with-binary',
    '--memory',
    opts.memory ?? '256M',
    ...(opts.sparePorts !== undefined ? ['--spare-ports', String(opts.sparePorts)] : []),
    ...(opts.delivery ? ['--delivery', opts.delivery] : []),
    ...(opts.static ? ['--static', opts.static] : []),
  ]);
  if (r.code !== 0) throw new Error(`qemu-args failed: ${r.stderr}`);
  let argv = r.stdout.trim().split('\n');
  if (opts.mutate) argv = opts.mutate(argv);
  const monPath = join(pool.runDir, `test-mon-${head}.sock`);
  const consolePath = join(pool.logDir, `head${head}-console.log`);
  argv.push(
    '-display',
    'none',
    '-nodefaults',
    '-serial',
    `file:${consolePath}`,
    '-chardev',
    `socket,id=testmon,path=${monPath},server=on,wait=off`,
    ...monitorArgs(resolveQemu().version, 'testmon', 'testmon-mon'),
    ...(opts.extra ?? []),
  );
  const [cmd, ...args] = argv;
  const child = spawn(cmd as string, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      writeFileSync(join(pool.logDir, `head${head}-qemu.stderr`), stderr);
      resolve(code);
    }),
  );
  let monitor = undefined as unknown as QmpSession;
  if (!opts.noMonitor) {
    monitor = await QmpSession.open(await waitForSocket(monPath, exited));
    sessions.add(monitor);
  }
  return {
    head,
    child,
    pid: child.pid ?? -1,
    monitor,
    exited,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

async function waitForSocket(path: string, exited: Promise<number | null>): Promise<import('node:net').Socket> {
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  for (let i = 0; i < 600; i++) {
    if (gone) throw new Error(`QEMU exited before its test monitor ${path} came up`);
    if (existsSync(path)) {
      const s = await new Promise<import('node:net').Socket | null>((resolve) => {
        const c = connect(path);
        c.once('connect', () => resolve(c));
        c.once('error', () => resolve(null));
      });
      if (s) return s;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`QEMU's test monitor ${path} never came up`);
}

/** Polls `fn` until it returns a truthy value (or throws after `tries`). No wall-time assertion: only a ceiling. */
export async function eventually<T>(fn: () => T | Promise<T>, what: string, tries = 400, everyMs = 50): Promise<NonNullable<T>> {
  let last: unknown;
  for (let i = 0; i < tries; i++) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

export interface StatusJson {
  pool: string;
  capacityBytes: number;
  blockBytes: number;
  fmldOwner: number | null;
  leaseEpoch: number;
  freeBytes: number;
  backend: { running: boolean; pid: number | null };
  heads: {
    id: number;
    attached: boolean;
    pid: number | null;
    grantedBytes: number;
    sharedBytes: number;
    phase?: string;
    reason?: string | null;
  }[];
}

export function status(pool: TestPool): StatusJson {
  const r = cli(['status', '--pool', pool.name, ...pool.dirArgs, '--json']);
  if (r.code !== 0) throw new Error(`status failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as StatusJson;
}

export async function peripherals(vm: HeadVm): Promise<string[]> {
  const list = await vm.monitor.execute<{ name: string; type: string }[]>('qom-list', { path: '/machine/peripheral' });
  return list.map((p) => p.name).sort();
}

export function journal(pool: TestPool): { op: string; args: Record<string, unknown> }[] {
  return readFileSync(join(pool.stateDir, pool.name, 'journal.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

afterEach(async (ctx) => {
  // A failed test keeps its logs, consoles, journal and head records (this runs before the dirs are removed).
  if (ctx.task.result?.state === 'fail') {
    const dest = join('test-artifacts', `${ctx.task.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}-${Date.now()}`);
    try {
      for (const b of backendLogs) writeFileSync(join(b.logDir, `backend-${b.pid}.log`), b.stderr());
      // Sockets cannot be copied; everything else (logs, consoles, journal, heads.json) is kept.
      for (const [i, p] of pools.entries()) {
        cpSync(p.base, join(dest, `pool${i}`), { recursive: true, filter: (src) => !lstatSync(src).isSocket() });
      }
    } catch (e) {
      console.error(`could not keep test artifacts in ${dest}: ${(e as Error).message}`);
    }
  }
  backendLogs.clear();
  pools.length = 0;
  for (const s of sessions) s.close();
  sessions.clear();
  const waits: Promise<unknown>[] = [];
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      waits.push(new Promise((r) => c.once('exit', r)));
      c.kill('SIGKILL');
    }
  }
  await Promise.all(waits);
  children.clear();
});
