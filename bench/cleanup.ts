// What a benchmark leaves on the machine, taken back in its `finally`
// whatever failed, even a backend that never started: its QMP sessions and
// guest agents closed, its child processes (QEMUs, `serve`) signalled by pid
// and waited for, its backends stopped, its pools' shm objects and LSA files
// removed, its temp dirs deleted. Each step runs even when an earlier one
// throws; what could not be cleaned is printed, never thrown over the
// benchmark's own error.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from '../src/pool/index.js';

/** How long a signalled child may take to exit before it gets SIGKILL. */
const EXIT_WAIT_MS = 10_000;

export class Leftovers {
  /** QEMUs and other children; killed with SIGKILL unless `child()` named another signal. */
  readonly children: ChildProcess[] = [];
  private readonly signals = new Map<ChildProcess, NodeJS.Signals>();
  private readonly stoppers: (() => Promise<unknown>)[] = [];
  private readonly pools: { name: string; stateDir: string }[] = [];
  private readonly dirs: string[] = [];
  private readonly lists: { close(): unknown }[][] = [];

  /** A list (QMP sessions, guest agents) whose items are closed first at the end; returned for the caller to fill. */
  closing<T extends { close(): unknown }>(list: T[] = []): T[] {
    this.lists.push(list);
    return list;
  }

  /** A fresh temp dir (`cxl-mhd-bench-<tag>-…`), removed at the end. */
  tempDir(tag: string): string {
    const dir = mkdtempSync(join(tmpdir(), `cxl-mhd-bench-${tag}-`));
    this.dirs.push(dir);
    return dir;
  }

  /**
   * A temp dir with the backend's run/ and state/ dirs under it, and the
   * pool name `bench-<tag>-<pid>`; the dir is removed and the pool destroyed
   * at the end.
   */
  workspace(tag: string): { base: string; runDir: string; stateDir: string; pool: string } {
    const base = this.tempDir(tag);
    const stateDir = join(base, 'state');
    const pool = `bench-${tag}-${process.pid}`;
    this.pool(pool, stateDir);
    return { base, runDir: join(base, 'run'), stateDir, pool };
  }

  /** A child to end with `signal` (a backend `serve` wants SIGTERM to stop cleanly); SIGKILL follows if it lingers. */
  child<C extends ChildProcess>(c: C, signal: NodeJS.Signals = 'SIGKILL'): C {
    this.children.push(c);
    this.signals.set(c, signal);
    return c;
  }

  /** Something with an async stop (an in-process Backend, a Northbound): stopped after the children. */
  stop(fn: () => Promise<unknown>): void {
    this.stoppers.push(fn);
  }

  /** A pool to destroy (forced) at the end, whether or not it was ever created. */
  pool(name: string, stateDir: string): void {
    if (!this.pools.some((p) => p.name === name)) this.pools.push({ name, stateDir });
  }

  async clean(): Promise<void> {
    const step = async (what: string, fn: () => unknown) => {
      try {
        await fn();
      } catch (e) {
        process.stderr.write(`bench cleanup: ${what}: ${(e as Error).message}\n`);
      }
    };
    for (const s of this.lists
      .splice(0)
      .flatMap((l) => l.splice(0))
      .reverse())
      await step('close', () => s.close());
    // QEMUs (SIGKILL) before the backends they dial (SIGTERM), so a backend stops with its heads gone.
    const children = this.children.splice(0);
    for (const hard of [true, false]) {
      const now = children.filter((c) => ((this.signals.get(c) ?? 'SIGKILL') === 'SIGKILL') === hard);
      await Promise.all(now.map((c) => step(`pid ${c.pid}`, () => endChild(c, this.signals.get(c)))));
    }
    for (const fn of this.stoppers.splice(0).reverse()) await step('stop', fn);
    for (const p of this.pools.splice(0)) {
      await step(`pool ${p.name}`, () => {
        if (Pool.exists(p.name)) Pool.destroy({ name: p.name, stateDir: p.stateDir, force: true });
      });
    }
    for (const d of this.dirs.splice(0)) await step(d, () => rmSync(d, { recursive: true, force: true }));
  }
}

/** Signals the child by its pid and waits for its exit; SIGKILL if it has not gone after EXIT_WAIT_MS. */
async function endChild(c: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (c.pid === undefined || c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  try {
    process.kill(c.pid, signal);
  } catch (e) {
    // Gone between the check and the signal.
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return;
    throw e;
  }
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((r) => {
    timer = setTimeout(() => r(true), EXIT_WAIT_MS);
  });
  if (await Promise.race([exited.then(() => false), late])) {
    process.kill(c.pid, 'SIGKILL');
    await exited;
  }
  clearTimeout(timer);
}
