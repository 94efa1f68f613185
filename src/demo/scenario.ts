// The three-guest scenario behind `make demo` and the boot tests: a backend
// (in this process), three QEMU heads booting the project's Linux guest
// under TCG, one shared static window, and the owner guest moving 256 MiB
// to head 1 and back with `cxl-mhd fm`. It returns what each guest saw and
// where the time went; it leaves nothing running and no pool behind.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Backend } from '../heads/index.js';
import { dataObjectPath, Pool, poolStatus } from '../pool/index.js';
import { headArgs, headSerial, qemuArgv, resolveQemu } from '../qemu/index.js';
import { guestBootArgs } from './guest.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

export interface ScenarioOptions {
  pool?: string;
  /** Where the guest scenario dir, consoles and logs go (default: a temp dir, removed unless kept). */
  workDir?: string;
  /** Keep consoles and logs (tests keep them on failure). */
  keep?: boolean;
  narrate?: (line: string) => void;
  /** Guest RAM per head. */
  memory?: string;
  timeoutMs?: number;
}

export interface HeadOutcome {
  head: number;
  serial: string | null;
  expectedSerial: string;
  sizeBytes: number | null;
  fmld: string | null;
  p1: string | null;
  fmRc: number | null;
  fmOutput: string;
  exitCode: number | null;
}

export interface ScenarioResult {
  pool: string;
  workDir: string;
  heads: HeadOutcome[];
  owner: number | null;
  add: { rc: number | null; output: string };
  release: { rc: number | null; output: string };
  mem1: string | null;
  mem1Bytes: number | null;
  p2: string | null;
  mem1After: string | null;
  /** Status right after the release took effect. */
  afterRelease: { head1GrantedBytes: number; freeBytes: number } | null;
  timings: { toFirstSharedReadMs: number | null; totalMs: number; backendMs: number };
  failures: string[];
}

function projectRoot(): string {
  // src/demo or dist/src/demo → the checkout.
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}

/**
 * This checkout's guest image (scripts/build-guest.sh): one per checkout,
 * since the image names the checkout whose CLI its guests run. A checkout
 * that has none yet gets it here (a copy of the shared base when that is
 * current; `[guest]` progress lines go to stderr).
 */
export function guestImage(root: string = projectRoot()): { kernel: string; initrd: string } {
  const script = join(root, 'scripts', 'build-guest.sh');
  const dir = execFileSync(script, ['--print-dir'], { encoding: 'utf8' }).trim();
  const kernel = join(dir, 'vmlinuz');
  const initrd = join(dir, 'initramfs.cpio.gz');
  if (!existsSync(kernel) || !existsSync(initrd)) {
    try {
      execFileSync(script, [], { stdio: ['ignore', 2, 2] });
    } catch {
      throw new Error(`no guest image for this checkout in ${dir}, and building it failed (above): run \`make setup\``);
    }
  }
  return { kernel, initrd };
}

/** daxpoke built for the host, to write pattern 2 into the pool with the guests' own generator. */
function hostDaxpoke(root: string): string {
  const out = join(root, 'native', 'build', 'daxpoke');
  if (!existsSync(out)) {
    mkdirSync(dirname(out), { recursive: true });
    execFileSync('gcc', ['-O2', '-o', out, join(root, 'guest', 'daxpoke.c')]);
  }
  return out;
}

const read = (path: string): string | null => (existsSync(path) ? readFileSync(path, 'utf8').trim() : null);
const readNum = (path: string): number | null => {
  const v = read(path);
  return v === null || v === '' ? null : Number(v);
};

export async function runThreeHeadScenario(opts: ScenarioOptions = {}): Promise<ScenarioResult> {
  const say = opts.narrate ?? (() => {});
  const root = projectRoot();
  guestImage(root); // found or built before any QEMU starts
  const qemu = resolveQemu();
  const pool = opts.pool ?? `demo-${process.pid}`;
  const work = opts.workDir ?? mkdtempSync(join(tmpdir(), 'cxl-mhd-scenario-'));
  const runDir = join(work, 'run');
  const stateDir = join(work, 'state');
  const shared = join(work, 'scenario');
  mkdirSync(shared, { recursive: true });
  copyFileSync(join(root, 'guest', 'scenario-3head.sh'), join(shared, 'run.sh'));
  const P1 = 0x5eed1;
  const P2 = 0x5eed2;
  const t0 = performance.now();
  let backendMs = 0;
  const failures: string[] = [];
  const children: ChildProcess[] = [];
  const logFile = join(work, 'backend.log');
  let backend: Backend | null = null;
  let afterRelease: ScenarioResult['afterRelease'] = null;
  const exits: Promise<number | null>[] = [];
  let owner: number | null = null;

  try {
    say(`creating pool ${pool}: 2 GiB, 3 heads; backend listening in ${runDir}`);
    const b0 = performance.now();
    backend = await Backend.start({
      pool,
      runDir,
      stateDir,
      capacityBytes: 2 * GiB,
      headCount: 3,
      logger: pino({ base: undefined }, pino.destination({ dest: logFile, sync: true })),
    });
    backendMs += performance.now() - b0;
    const be = backend;

    say('host writes pattern 2 at pool offset 1 GiB (outside the shared window)');
    execFileSync(hostDaxpoke(root), ['fill', dataObjectPath(pool), '1G', '2M', String(P2)]);

    // Attach time counts as the backend's: from the VM's connection to `cont`.
    const attachStart = new Map<number, number>();
    const attached = new Map<number, () => void>();
    be.onChange = (head, rec) => {
      if (rec.phase === 'attaching') attachStart.set(head, performance.now());
      const started = attachStart.get(head);
      if (rec.phase === 'attached' && started !== undefined) {
        backendMs += performance.now() - started;
        attachStart.delete(head);
        attached.get(head)?.();
      }
    };

    for (let head = 0; head < 3; head++) {
      const args = headArgs({
        pool,
        head,
        runDir,
        capacityBytes: 2 * GiB,
        static: { offset: 0, size: 256 * MiB, exclusive: false },
        sparePorts: 2,
        memory: opts.memory ?? '768M',
      });
      const append = [
        'console=ttyS0',
        'quiet',
        `cxlmhd.head=${head}`,
        `cxlmhd.p1seed=${P1}`,
        `cxlmhd.p2seed=${P2}`,
        'cxlmhd.timeout=400',
      ].join(' ');
      const argv = qemuArgv(qemu, [
        ...args,
        '-display',
        'none',
        '-nodefaults',
        '-serial',
        `file:${join(work, `head${head}-console.log`)}`,
        // Only /usr and the checkout are shared read-only, never the host's / (its /dev/shm holds the pool).
        '-fsdev',
        'local,id=hostusr,path=/usr,security_model=none,readonly=on',
        '-device',
        'virtio-9p-pci,bus=pcie.0,fsdev=hostusr,mount_tag=hostusr',
        '-fsdev',
        `local,id=hostproject,path=${root},security_model=none,readonly=on`,
        '-device',
        'virtio-9p-pci,bus=pcie.0,fsdev=hostproject,mount_tag=hostproject',
        ...guestBootArgs(shared, append),
      ]);
      const isAttached = new Promise<void>((r) => attached.set(head, r));
      const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr?.on('data', (d) => {
        stderr += d;
      });
      children.push(child);
      exits.push(
        new Promise((r) =>
          child.once('exit', (code) => {
            writeFileSync(join(work, `head${head}-qemu.stderr`), stderr);
            r(code);
          }),
        ),
      );
      say(`head ${head}: QEMU started (pid ${child.pid}), waiting for the backend to attach it`);
      // Start the next head only once this one is attached: "first started" is the FM-LD owner.
      await Promise.race([isAttached, exits[head]?.then(() => Promise.reject(new Error(`head ${head}'s QEMU exited before attaching`)))]);
      const lease = be.pool.state.lease().owner;
      if (lease !== null) owner = lease;
      say(`head ${head}: attached${lease === head ? ' — it owns the FM-LD' : ''}; its guest boots`);
    }

    say('guests: region over the shared window, head 0 writes pattern 1, heads 1 and 2 read it');
    let firstShared: number | null = null;
    let released = false;
    const deadline = Date.now() + (opts.timeoutMs ?? 420_000);
    const done = Promise.all(exits);
    let finished = false;
    void done.then(() => {
      finished = true;
    });
    const seen = new Set<string>();
    const milestones: [string, string][] = [
      ['p1-written', 'head 0 wrote pattern 1'],
      ['h1.p1-done', 'head 1 read pattern 1 from the shared window'],
      ['h2.p1-done', 'head 2 read pattern 1 from the shared window'],
      ['added', 'head 0 ran `cxl-mhd fm add --host 1 --extent 1G:256M`'],
      ['h1.p2-done', 'head 1 saw /dev/cxl/mem1 appear and read pattern 2 through it'],
      ['released', 'head 0 ran `cxl-mhd fm release --host 1 --extent 1G:256M`'],
      ['h1.mem1-gone', 'head 1 saw mem1 go away'],
    ];
    while (!finished) {
      if (Date.now() > deadline) {
        failures.push('the scenario did not finish in time');
        break;
      }
      for (const [file, line] of milestones) {
        if (!seen.has(file) && existsSync(join(shared, file))) {
          seen.add(file);
          say(line);
          if ((file === 'h1.p1-done' || file === 'h2.p1-done') && firstShared === null) firstShared = performance.now() - t0;
        }
      }
      if (!released && seen.has('released')) {
        // The blocks are free once QEMU has dropped the LD (after the guest's unplug).
        const st = poolStatus(be.pool);
        if (st.heads[1]?.grantedBytes === 256 * MiB) {
          released = true;
          afterRelease = { head1GrantedBytes: st.heads[1].grantedBytes, freeBytes: st.freeBytes };
          say(`status: head 1 holds ${st.heads[1].grantedBytes / MiB} MiB again; ${st.freeBytes / MiB} MiB of the pool are free`);
        }
      }
      // Head 1 keeps its VM up until the host has seen the blocks come back (or given up).
      if (seen.has('h1.mem1-gone') && !existsSync(join(shared, 'host-checked')) && (released || Date.now() > deadline - 60_000)) {
        writeFileSync(join(shared, 'host-checked'), '');
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    const codes = await Promise.race([done, new Promise<null>((r) => setTimeout(() => r(null), 1000))]);

    const headOut = (head: number): HeadOutcome => ({
      head,
      serial: read(join(shared, `h${head}.serial`)),
      expectedSerial: `0x${headSerial(pool, head).toString(16)}`,
      sizeBytes: readNum(join(shared, `h${head}.size`)),
      fmld: read(join(shared, `h${head}.fmld`)),
      p1: read(join(shared, `h${head}.p1`)),
      fmRc: readNum(join(shared, `h${head}.fm.rc`)),
      fmOutput: read(join(shared, `h${head}.fm.out`)) ?? '',
      exitCode: codes ? (codes[head] ?? null) : null,
    });
    for (let h = 0; h < 3; h++) {
      const failed = read(join(shared, `h${h}.failed`));
      if (failed) failures.push(`head ${h}: ${failed}`);
    }
    return {
      pool,
      workDir: work,
      heads: [0, 1, 2].map(headOut),
      owner,
      add: { rc: readNum(join(shared, 'h0.add.rc')), output: read(join(shared, 'h0.add.out')) ?? '' },
      release: { rc: readNum(join(shared, 'h0.release.rc')), output: read(join(shared, 'h0.release.out')) ?? '' },
      mem1: read(join(shared, 'h1.mem1')),
      mem1Bytes: readNum(join(shared, 'h1.mem1.size')),
      p2: read(join(shared, 'h1.p2')),
      mem1After: read(join(shared, 'h1.mem1.after')),
      afterRelease,
      timings: { toFirstSharedReadMs: firstShared, totalMs: performance.now() - t0, backendMs: backendMs + be.capacity.busyMs },
      failures,
    };
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.all(exits.map((e) => e.catch(() => null)));
    await backend?.stop();
    if (Pool.exists(pool)) Pool.destroy({ name: pool, stateDir, force: true });
    rmSync(runDir, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
    if (!opts.keep && !opts.workDir) rmSync(work, { recursive: true, force: true });
  }
}

/** Copies a scenario's consoles and logs somewhere that survives (failed tests). */
export function keepArtifacts(workDir: string, dest: string): void {
  mkdirSync(dest, { recursive: true });
  cpSync(workDir, resolve(dest), { recursive: true });
}
