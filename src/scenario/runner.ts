// Owns one scenario run from start to finish: a fresh pool and backend,
// the heads started in order (the first owns the FM-LD), every guest's
// agent awaited with progress, the steps in order, and the teardown that
// leaves no QEMU, socket, shm object or directory behind, also when the
// run is interrupted. The first failing step stops the run; the rest are
// reported as skipped.
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Backend, type HeadPhase } from '../heads/index.js';
import { Pool } from '../pool/index.js';
import { type QemuBinary, resolveQemu } from '../qemu/index.js';
import { type BootImage, bootImage } from './image.js';
import { type HeadSpec, qemuConditionHolds, type Scenario } from './load.js';
import { passed, type RunReport, type StepResult } from './report.js';
import { projectRoot } from './schema.js';
import { runStep, type StepContext } from './steps.js';
import { HeadVm } from './vm.js';

export interface RunOptions {
  /** Keep consoles and logs even when every step passed. */
  keep?: boolean;
  /** Progress while heads start and guests boot. */
  progress?: (line: string) => void;
  /** Each step's result as soon as it is known. */
  onStep?: (r: StepResult) => void;
  /** Aborting it stops the run and tears everything down (SIGINT). */
  signal?: AbortSignal;
  /** Where consoles and logs go; never removed when given. Default: a temp dir, removed unless kept. */
  workDir?: string;
  /** Pool name (default run-PID). */
  pool?: string;
}

export interface RunOutcome {
  report: RunReport;
  /** Where consoles and logs are, or null when they were removed. */
  keptIn: string | null;
}

class Interrupted extends Error {}
class BootFailed extends Error {}

export async function runScenario(scn: Scenario, opts: RunOptions = {}): Promise<RunOutcome> {
  const t0 = performance.now();
  const startedAt = new Date();
  const since = () => `${((performance.now() - t0) / 1000).toFixed(1).padStart(5)}s`;
  const say = (line: string) => opts.progress?.(`[${since()}] ${line}`);
  const root = projectRoot();
  const pool = opts.pool ?? `run-${process.pid}`;
  const work = opts.workDir ?? mkdtempSync(join(tmpdir(), 'cxl-mhd-run-'));
  mkdirSync(work, { recursive: true });
  chmodSync(work, 0o700);
  // XDG-shaped, so `cxl-mhd status --pool $CXLMHD_POOL` in a host step finds this run's pool.
  const runBase = join(work, 'xdg-run');
  const stateBase = join(work, 'xdg-state');
  const runDir = join(runBase, 'cxl-mhd');
  const stateDir = join(stateBase, 'cxl-mhd');
  const bin = join(work, 'bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'cxl-mhd'), `#!/bin/sh\nexec '${process.execPath}' '${join(root, 'dist', 'src', 'cli', 'main.js')}' "$@"\n`, {
    mode: 0o700,
  });

  const vms = new Map<number, HeadVm>();
  const phases = new Map<number, HeadPhase>();
  const phaseWaiters = new Set<() => void>();
  const results: StepResult[] = [];
  let bootError: RunReport['bootError'] = null;
  let interrupted = false;
  let backend: Backend | null = null;
  const logger = pino({ base: undefined }, pino.destination({ dest: join(work, 'backend.log'), sync: true }));

  const aborted = new Promise<never>((_, reject) => {
    const fire = () => reject(new Interrupted('interrupted'));
    if (opts.signal?.aborted) fire();
    opts.signal?.addEventListener('abort', fire, { once: true });
  });
  aborted.catch(() => {});
  const guard = <T>(p: Promise<T>): Promise<T> => Promise.race([p, aborted]);

  const startBackend = async (create: boolean): Promise<Backend> => {
    const be = await Backend.start({
      pool,
      runDir,
      stateDir,
      ...(create ? { capacityBytes: scn.pool.capacityBytes, headCount: scn.pool.headCount, blockBytes: scn.pool.blockBytes } : {}),
      logger,
    });
    be.onChange = (head, rec) => {
      phases.set(head, rec.phase);
      for (const w of [...phaseWaiters]) w();
    };
    return be;
  };
  const waitPhase = (head: number, want: HeadPhase[], timeoutMs: number, what: string): Promise<HeadPhase> =>
    new Promise((resolve, reject) => {
      const check = () => {
        const p = phases.get(head);
        if (p !== undefined && want.includes(p)) {
          finish();
          resolve(p);
        }
      };
      const t = setTimeout(() => {
        finish();
        reject(new BootFailed(`head ${head} was not ${what} within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(t);
        phaseWaiters.delete(check);
      };
      phaseWaiters.add(check);
      check();
    });
  const owner = (): number | null => backend?.pool.state.lease().owner ?? null;
  const consoles = (heads: number[]) => heads.flatMap((h) => (vms.get(h) ? [{ head: h, tail: vms.get(h)?.consoleTail() ?? '' }] : []));

  let qemu: QemuBinary | null = null;
  const images = new Map<number, BootImage>();
  /** Starts head's QEMU and waits until the backend attached it (heads start one after the other: the first takes the FM-LD). */
  const launch = async (head: HeadSpec): Promise<HeadVm> => {
    const image = images.get(head.id) ?? bootImage(head.guest, work, head.id);
    images.set(head.id, image);
    const vm = new HeadVm({ head, pool, runDir, capacityBytes: scn.pool.capacityBytes, work, root, qemu: qemu as QemuBinary, image });
    vms.set(head.id, vm);
    const what = image.disk ? `disk ${image.disk}` : image.kernel;
    say(`head ${head.id}: QEMU started (pid ${vm.pid}) booting ${what}`);
    const exited = vm.exited.then((e) => {
      throw new BootFailed(
        `head ${head.id}'s QEMU exited before attaching (${e.code ?? e.signal}): ${vm.qemuStderr.trim().split('\n').pop() ?? ''}`,
      );
    });
    exited.catch(() => {});
    const phase = await guard(Promise.race([waitPhase(head.id, ['attached', 'refused'], 120_000, 'attached'), exited]));
    if (phase === 'refused') throw new BootFailed(`the backend refused head ${head.id} (see ${join(work, 'backend.log')})`);
    say(`head ${head.id}: attached${owner() === head.id ? '; it owns the FM-LD' : ''}; its guest boots`);
    return vm;
  };

  const ctx: StepContext = {
    pool,
    vms,
    owner,
    fmCommand: (head) => scn.heads.find((h) => h.id === head)?.guest.fmCommand ?? 'cxl-mhd-fm',
    hostEnv: {
      ...process.env,
      PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      XDG_RUNTIME_DIR: runBase,
      XDG_STATE_HOME: stateBase,
      CXLMHD_POOL: pool,
      CXLMHD_WORK: work,
    },
    killHead: async (head) => {
      const vm = vms.get(head);
      if (vm?.alive !== true) throw new Error(`head ${head} is not running`);
      vm.killedBy = 'a kill step';
      await vm.kill();
      await waitPhase(head, ['detached'], 30_000, 'seen detached by the backend');
    },
    restartBackend: async () => {
      await backend?.stop();
      backend = null;
      for (const [h, vm] of vms) if (vm.alive) phases.set(h, 'detached');
      backend = await startBackend(false);
      for (const [h, vm] of vms) if (vm.alive) await waitPhase(h, ['attached'], 60_000, 're-attached to the new backend');
    },
    restartHead: async (head) => {
      const old = vms.get(head);
      const spec = scn.heads.find((h) => h.id === head) as HeadSpec;
      if (old?.alive) {
        old.killedBy = 'a restart step';
        await old.kill();
        await waitPhase(head, ['detached'], 30_000, 'seen detached by the backend');
      }
      // The first boot's console stays for the report; the new QEMU writes a fresh one.
      if (old) renameSync(old.consolePath, join(work, `head${head}-console.before-restart.log`));
      const vm = await launch(spec);
      await vm.agent.waitReady(Date.now() + scn.bootTimeoutMs, () => vm.alive);
      say(`head ${head}: guest agent answers again`);
    },
  };

  try {
    if (Pool.exists(pool)) throw new BootFailed(`a pool named ${pool} exists already`);
    say(`pool ${pool}: ${scn.pool.capacityBytes / 2 ** 30} GiB, ${scn.pool.headCount} heads; backend in this process; consoles in ${work}`);
    backend = await guard(startBackend(true));

    qemu = resolveQemu();
    for (const head of scn.heads) await launch(head);

    const deadline = Date.now() + scn.bootTimeoutMs;
    const ready = new Set<number>();
    const ticker = setInterval(() => {
      const waiting = [...vms.values()].filter((v) => !ready.has(v.id));
      say(`booting: ${waiting.map((v) => `head ${v.id} ${v.lastMarker() ?? 'firmware/kernel'}`).join(', ')}`);
    }, 15_000);
    try {
      await guard(
        Promise.all(
          [...vms.values()].map(async (vm) => {
            try {
              await vm.agent.waitReady(deadline, () => vm.alive);
            } catch (e) {
              throw new BootFailed(`head ${vm.id}: ${(e as Error).message}`);
            }
            ready.add(vm.id);
            say(`head ${vm.id}: guest agent answers`);
          }),
        ),
      );
    } finally {
      clearInterval(ticker);
    }

    let failed = false;
    for (const step of scn.steps) {
      if (opts.signal?.aborted) throw new Interrupted('interrupted');
      let r: StepResult;
      const version = (qemu as QemuBinary).version;
      if (!failed && step.qemu && !qemuConditionHolds(step.qemu, version)) {
        // A step for other QEMU versions: said so, and not a failure.
        r = {
          step,
          status: 'skipped',
          message: `not for QEMU ${version} (this step is for QEMU ${step.qemu.text})`,
          forOtherQemu: true,
          stdout: '',
          stderr: '',
          consoles: [],
          durationMs: 0,
          attempts: 0,
        };
      } else if (failed) {
        r = {
          step,
          status: 'skipped',
          message: 'not run: an earlier step failed',
          stdout: '',
          stderr: '',
          consoles: [],
          durationMs: 0,
          attempts: 0,
        };
      } else {
        const s0 = performance.now();
        const o = await guard(runStep(ctx, step));
        r = {
          step,
          status: o.ok ? 'passed' : 'failed',
          message: o.message,
          stdout: o.stdout,
          stderr: o.stderr,
          consoles: o.ok ? [] : consoles(o.heads.length ? o.heads : [...vms.keys()]),
          durationMs: performance.now() - s0,
          attempts: o.attempts,
        };
        failed = !o.ok;
      }
      results.push(r);
      opts.onStep?.(r);
    }
  } catch (e) {
    if (e instanceof Interrupted) interrupted = true;
    else bootError = { message: (e as Error).message, consoles: consoles([...vms.keys()]) };
    for (const step of scn.steps.slice(results.length)) {
      const r: StepResult = {
        step,
        status: 'skipped',
        message: interrupted ? 'not run: interrupted' : 'not run: the heads did not come up',
        stdout: '',
        stderr: '',
        consoles: [],
        durationMs: 0,
        attempts: 0,
      };
      results.push(r);
      opts.onStep?.(r);
    }
  } finally {
    await Promise.all([...vms.values()].map((vm) => vm.kill()));
    await backend?.stop().catch(() => {});
    if (Pool.exists(pool)) Pool.destroy({ name: pool, stateDir, force: true });
    rmSync(runBase, { recursive: true, force: true });
    rmSync(stateBase, { recursive: true, force: true });
    rmSync(bin, { recursive: true, force: true });
    for (const f of readdirSync(work)) if (f.endsWith('.sock') || f.endsWith('-initramfs.cpio.gz')) rmSync(join(work, f), { force: true });
  }

  const report: RunReport = {
    name: scn.name,
    file: scn.file,
    pool,
    startedAt,
    durationMs: performance.now() - t0,
    bootError,
    interrupted,
    results,
  };
  const ok = passed(report);
  let keptIn: string | null = work;
  if (!opts.workDir && !opts.keep && ok) {
    rmSync(work, { recursive: true, force: true });
    keptIn = null;
  }
  return { report, keptIn };
}
