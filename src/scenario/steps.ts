// Owns what each step kind does and when it counts as passed: commands in
// guests (through their agent), FM commands in the owner guest, host
// commands, pattern writes/reads, killing a head, restarting a head or the backend.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { dataObjectPath } from '../pool/index.js';
import { headSerial } from '../qemu/index.js';
import type { ExecResult } from './agent.js';
import type { PatternSpec, StepSpec } from './load.js';
import type { HeadVm } from './vm.js';

export interface StepContext {
  pool: string;
  vms: Map<number, HeadVm>;
  /** The head whose guest has the FM-LD port, or null. */
  owner(): number | null;
  fmCommand(head: number): string;
  hostEnv: NodeJS.ProcessEnv;
  /** Kills head N's QEMU and waits for the backend to see it go. */
  killHead(head: number): Promise<void>;
  /** Stops the backend and starts a new one; resolves once every live head is attached again. */
  restartBackend(): Promise<void>;
  /** Kills head N's QEMU and starts it again; resolves once it is attached and its guest agent answers. */
  restartHead(head: number): Promise<void>;
}

export interface StepOutcome {
  ok: boolean;
  /** Why it failed (one line), or a short summary when it passed. */
  message: string;
  stdout: string;
  stderr: string;
  /** Heads whose console tails belong in a failure report. */
  heads: number[];
  attempts: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The pattern daxpoke writes: the same words, so guest and host agree byte for byte. */
function patword(seed: bigint, k: bigint): bigint {
  const M = (1n << 64n) - 1n;
  const x = (((seed + 1n) * 0x9e3779b97f4a7c15n) & M) ^ ((k * 0xbf58476d1ce4e5b9n) & M);
  return x ^ (x >> 31n);
}

export function patternBytes(seed: bigint, len: number): Buffer {
  const buf = Buffer.alloc(Math.ceil(len / 8) * 8);
  for (let k = 0; k < buf.length / 8; k++) buf.writeBigUInt64LE(patword(seed, BigInt(k)), k * 8);
  return buf.subarray(0, len);
}

/** Host side of write/read: straight into (or out of) the pool's data object. */
function hostPattern(op: 'write' | 'read', pool: string, p: PatternSpec): { ok: boolean; message: string } {
  const want = patternBytes(p.seed, p.size);
  const fd = openSync(dataObjectPath(pool), op === 'write' ? 'r+' : 'r');
  try {
    if (op === 'write') {
      writeSync(fd, want, 0, want.length, p.offset);
      return { ok: true, message: `host wrote ${p.size} bytes of pattern ${p.seed} at pool offset ${p.offset}` };
    }
    const got = Buffer.alloc(p.size);
    readSync(fd, got, 0, p.size, p.offset);
    const i = got.findIndex((b, j) => b !== want[j]);
    return i < 0
      ? { ok: true, message: `host read pattern ${p.seed} back (${p.size} bytes at pool offset ${p.offset})` }
      : { ok: false, message: `pattern ${p.seed} mismatch at pool offset ${p.offset + i}` };
  } finally {
    closeSync(fd);
  }
}

function runHost(command: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', command], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const t = setTimeout(() => {
      timedOut = true;
      // Its own process group: the shell and whatever it started.
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    }, timeoutMs);
    child.once('close', (code, signal) => {
      clearTimeout(t);
      resolve({ exitCode: code, signal: signal ? 9 : null, stdout, stderr, timedOut });
    });
  });
}

function guestEnv(ctx: StepContext, head: number): Record<string, string> {
  return { CXLMHD_HEAD: String(head), CXLMHD_POOL: ctx.pool, CXLMHD_SERIAL: `0x${headSerial(ctx.pool, head).toString(16)}` };
}

function liveVm(ctx: StepContext, head: number): HeadVm {
  const vm = ctx.vms.get(head);
  if (!vm) throw new Error(`head ${head} is not running`);
  if (vm.killedBy) throw new Error(`head ${head} was killed by ${vm.killedBy}`);
  if (!vm.alive) throw new Error(`head ${head}'s QEMU has exited`);
  return vm;
}

async function inGuest(ctx: StepContext, head: number, command: string, timeoutMs: number): Promise<ExecResult> {
  return liveVm(ctx, head).agent.exec(['/bin/sh', '-c', command], { env: guestEnv(ctx, head), timeoutMs });
}

/** The exit status/expect/expect-not verdict on one command's result; null when it holds. */
export function verdict(step: StepSpec, r: ExecResult): string | null {
  if (r.timedOut) return `timed out after ${step.timeoutMs / 1000} s`;
  if (r.exitCode !== step.expectExit)
    return r.exitCode === null ? `killed by signal ${r.signal}` : `exit status ${r.exitCode}, expected ${step.expectExit}`;
  if (step.expect && !step.expect.test(r.stdout)) return `stdout does not contain ${step.expect.text}`;
  if (step.expectNot?.test(r.stdout)) return `stdout contains ${step.expectNot.text}`;
  return null;
}

/** One attempt at a command step on every head it names (the host when none). */
async function commandAttempt(ctx: StepContext, step: StepSpec): Promise<StepOutcome> {
  let targets: (number | null)[];
  let command = step.command;
  if (step.kind === 'fm') {
    const owner = ctx.owner();
    if (owner === null) return { ok: false, message: 'no head owns the FM-LD', stdout: '', stderr: '', heads: [], attempts: 1 };
    targets = [owner];
    command = `${ctx.fmCommand(owner)} ${step.command}`;
  } else targets = step.kind === 'host' ? [null] : step.guests;
  // Each guest has its own agent: a step on several heads runs on all of them at once.
  const runs = await Promise.all(
    targets.map(async (t) => {
      try {
        return { t, r: t === null ? await runHost(command, ctx.hostEnv, step.timeoutMs) : await inGuest(ctx, t, command, step.timeoutMs) };
      } catch (e) {
        return { t, error: (e as Error).message };
      }
    }),
  );
  let stdout = '';
  let stderr = '';
  const problems: string[] = [];
  const heads: number[] = [];
  for (const run of runs) {
    const { t } = run;
    const who = t === null ? 'host' : `head ${t}`;
    if (!('r' in run) || run.r === undefined) {
      problems.push(`${who}: ${run.error}`);
      if (t !== null) heads.push(t);
      continue;
    }
    const r = run.r;
    const label = targets.length > 1 ? `--- head ${t}\n` : '';
    stdout += label + r.stdout;
    stderr += (r.stderr && label) + r.stderr;
    const v = verdict(step, r);
    if (v !== null) {
      problems.push(targets.length > 1 ? `${who}: ${v}` : v);
      if (t !== null) heads.push(t);
    }
  }
  return { ok: problems.length === 0, message: problems.join('; '), stdout, stderr, heads, attempts: 1 };
}

async function patternStep(ctx: StepContext, step: StepSpec): Promise<StepOutcome> {
  const p = step.pattern as PatternSpec;
  const op = step.kind as 'write' | 'read';
  if (p.guests.length === 0) {
    const r = hostPattern(op, ctx.pool, p);
    return { ...r, stdout: '', stderr: '', heads: [], attempts: 1 };
  }
  // The memdev's devdax: made once (cxl-mhd-devdax), remembered in the guest's /run while it exists.
  const memo = `/run/cxlmhd-dax.${p.memdev}`;
  const script = [
    `d=$(cat ${memo} 2>/dev/null)`,
    `if [ -z "$d" ] || [ ! -c "$d" ]; then d=$(cxl-mhd-devdax ${p.memdev}) || exit 2; echo "$d" >${memo}; fi`,
    `exec daxpoke ${op === 'write' ? 'fill' : 'check'} "$d" ${p.offset} ${p.size} ${p.seed}`,
  ].join('\n');
  return commandAttempt(ctx, { ...step, kind: 'run', command: script, guests: p.guests, expectExit: 0 });
}

export async function runStep(ctx: StepContext, step: StepSpec): Promise<StepOutcome> {
  const done = (message: string): StepOutcome => ({ ok: true, message, stdout: '', stderr: '', heads: [], attempts: 1 });
  try {
    switch (step.kind) {
      case 'kill':
        await ctx.killHead(step.killHead as number);
        return done(`head ${step.killHead}'s QEMU killed`);
      case 'restart':
        if (step.restartHead !== undefined) {
          await ctx.restartHead(step.restartHead);
          return done(`head ${step.restartHead}'s QEMU killed and started again; attached, its guest agent answers`);
        }
        await ctx.restartBackend();
        return done('backend restarted; every live head attached again');
      case 'write':
      case 'read':
        return await patternStep(ctx, step);
      default: {
        if (step.retryMs === null) return await commandAttempt(ctx, step);
        const until = Date.now() + step.retryMs;
        for (let attempt = 1; ; attempt++) {
          const r = await commandAttempt(ctx, step);
          if (r.ok || Date.now() >= until) return { ...r, attempts: attempt };
          await sleep(Math.min(500, Math.max(0, until - Date.now())));
        }
      }
    }
  } catch (e) {
    return { ok: false, message: (e as Error).message, stdout: '', stderr: '', heads: [], attempts: 1 };
  }
}
