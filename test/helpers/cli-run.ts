// The built CLI as a child process, for tests that judge what a user sees:
// exit code, stderr, no stack trace, no hang. Also a private copy of the built
// CLI that another uid can run, so uid-switching tests do not depend on where
// the checkout lives (a clone inside a 0700 `mktemp -d` is unreachable to
// uid 65534).
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, cpSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll } from 'vitest';
import { tempDir } from './pool.js';

export const RUN_TIMEOUT_MS = 20_000;
const PROJECT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = join(PROJECT, 'dist', 'src', 'cli', 'main.js');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  uid?: number;
  gid?: number;
  /** The CLI to run (default: this checkout's dist/); see carryCli. */
  cli?: string;
}

const children = new Set<ChildProcess>();

export function runCli(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [opts.cli ?? CLI, ...argv], {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(opts.uid === undefined ? {} : { uid: opts.uid, gid: opts.gid }),
    });
    children.add(child);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const cap = (s: string, d: string) => (s.length > 1_000_000 ? s : s + d);
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      stdout = cap(stdout, d);
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      stderr = cap(stderr, d);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, RUN_TIMEOUT_MS);
    child.on('error', (e) => {
      stderr += `spawn failed: ${e.message}`;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
});

/** What every run must satisfy; returns the broken rules. */
export function runProblems(r: RunResult, opts: { fsck?: boolean } = {}): string[] {
  const p: string[] = [];
  if (r.timedOut) p.push(`hang: still running after ${RUN_TIMEOUT_MS} ms (killed)`);
  else if (r.code === null) p.push(`died of ${r.signal}`);
  else if (![0, 1, 2].includes(r.code)) p.push(`exit code ${r.code}`);
  // fsck reports its findings on stdout and exits 1: that is its contract.
  const fsckFindings = opts.fsck === true && r.code === 1 && /problem\(s\)|"clean":false/.test(r.stdout);
  if (r.code !== 0 && !r.timedOut && r.stderr.trim() === '' && !fsckFindings) p.push('non-zero exit with nothing on stderr');
  if (/^\s+at /m.test(r.stderr)) p.push('stack trace on stderr');
  const js = /\b(TypeError|RangeError|ReferenceError|SyntaxError)\b/.exec(r.stderr);
  if (js) p.push(`${js[1]} on stderr`);
  return p;
}

/**
 * Copies what the built CLI needs to run (dist/src, package.json, the addon
 * and the production packages named by the lockfile) into a fresh 0755
 * directory under the system temp dir, removed after the test. Returns the
 * copy's main.js: any uid can run it, wherever this checkout lives.
 */
export function carryCli(): string {
  const dest = tempDir('cxl-mhd-cli-copy-');
  chmodSync(dest, 0o755);
  cpSync(join(PROJECT, 'dist', 'src'), join(dest, 'dist', 'src'), { recursive: true });
  cpSync(join(PROJECT, 'package.json'), join(dest, 'package.json'));
  const addon = join('native', 'build', 'Release', 'cxl_mhd.node');
  cpSync(join(PROJECT, addon), join(dest, addon));
  const lock = JSON.parse(readFileSync(join(PROJECT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean; devOptional?: boolean }>;
  };
  for (const [key, pkg] of Object.entries(lock.packages)) {
    // Top-level runtime packages; nested node_modules come along with their parent.
    if (!key.startsWith('node_modules/') || key.slice('node_modules/'.length).includes('node_modules/')) continue;
    // Optional packages for other platforms are in the lockfile but not on disk.
    if (pkg.dev === true || pkg.devOptional === true || !existsSync(join(PROJECT, key))) continue;
    cpSync(join(PROJECT, key), join(dest, key), { recursive: true });
  }
  return join(dest, 'dist', 'src', 'cli', 'main.js');
}
