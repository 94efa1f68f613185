// Where a pool's pieces live: shm object names, every file of the run
// directory (head sockets, fm.sock, control.sock, heads.json, http.json) and
// of the state directory (journal snapshot and tail, northbound.json), and
// the rule for pool names. No other module names a file in those directories.
import { lstatSync, mkdirSync, readdirSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { PoolError } from './errors.js';
import { checkSafeDir } from './safedir.js';

const POOL_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;

export function validatePoolName(name: string): string {
  if (typeof name !== 'string' || !POOL_NAME.test(name)) {
    throw new PoolError(
      'BAD_NAME',
      `pool name ${JSON.stringify(name)} is not allowed: use 1-32 characters of a-z, 0-9, '_' and '-', starting with a letter or digit`,
    );
  }
  return name;
}

/** POSIX shm names (leading slash, as shm_open wants). */
export function shmDataName(pool: string): string {
  return `/cxl-mhd.${validatePoolName(pool)}.mem`;
}
export function shmStateName(pool: string): string {
  return `/cxl-mhd.${validatePoolName(pool)}.state`;
}
/** The path QEMU's memory-backend-file uses for the pool's bytes. */
export function dataObjectPath(pool: string): string {
  return `/dev/shm${shmDataName(pool)}`;
}

/** A hot-added LD's label storage area (its tag), one file per hot-add: /dev/shm/cxl-mhd.POOL.lsa.HEAD.N. */
export function lsaObjectPath(pool: string, head: number, n: number): string {
  return `/dev/shm/cxl-mhd.${validatePoolName(pool)}.lsa.${head}.${n}`;
}

/** The label area files of a pool (of one head when given), for cleanup. */
export function lsaObjectsOf(pool: string, head?: number): string[] {
  const prefix = `cxl-mhd.${validatePoolName(pool)}.lsa.${head === undefined ? '' : `${head}.`}`;
  try {
    return readdirSync('/dev/shm')
      .filter((f) => f.startsWith(prefix))
      .map((f) => `/dev/shm/${f}`);
  } catch {
    return [];
  }
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

export function defaultRunDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'cxl-mhd');
  return isRoot() ? '/run/cxl-mhd' : join('/tmp', `cxl-mhd-${process.getuid?.() ?? 'user'}`);
}

export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.XDG_STATE_HOME) return join(env.XDG_STATE_HOME, 'cxl-mhd');
  return isRoot() ? '/var/lib/cxl-mhd' : join(homedir(), '.local', 'state', 'cxl-mhd');
}

export interface PoolDirs {
  runDir: string;
  stateDir: string;
}

export function resolveDirs(opts: Partial<PoolDirs> = {}): PoolDirs {
  return { runDir: opts.runDir ?? defaultRunDir(), stateDir: opts.stateDir ?? defaultStateDir() };
}

export function poolRunDir(runDir: string, pool: string): string {
  return join(runDir, validatePoolName(pool));
}
/** The Unix socket head N's QEMU dials (its monitor chardev). */
export function headSocketPath(runDir: string, pool: string, head: number): string {
  return join(poolRunDir(runDir, pool), `head${head}.sock`);
}
/** The host-side FM-API socket (`serve --fm-socket`). */
export function fmSocketPath(runDir: string, pool: string): string {
  return join(poolRunDir(runDir, pool), 'fm.sock');
}
/** The backend's control socket (`lease takeover`): 0600, the backend's own uid only. */
export function controlSocketPath(runDir: string, pool: string): string {
  return join(poolRunDir(runDir, pool), 'control.sock');
}
/** The backend's head records (heads/records.ts): phase, refusal reason, windows, grants per head, for `status`. */
export function headRecordsPath(runDir: string, pool: string): string {
  return join(poolRunDir(runDir, pool), 'heads.json');
}
/** Where `serve --http` listens and its local token (written by http/server.ts, read by `status` and `events`). */
export function httpRecordPath(runDir: string, pool: string): string {
  return join(poolRunDir(runDir, pool), 'http.json');
}
export function poolStateDir(stateDir: string, pool: string): string {
  return join(stateDir, validatePoolName(pool));
}
/** The journal's tail: lines appended since the snapshot. */
export function journalPath(stateDir: string, pool: string): string {
  return join(poolStateDir(stateDir, pool), 'journal.jsonl');
}
/** The journal's snapshot: the image as of a seq (pool/image.ts). */
export function snapshotPath(stateDir: string, pool: string): string {
  return join(poolStateDir(stateDir, pool), 'snapshot.json');
}

/** The northbound's chunks and connections (http/store.ts), kept across restarts beside the journal. */
export function northboundStatePath(stateDir: string, pool: string): string {
  return join(poolStateDir(stateDir, pool), 'northbound.json');
}

/** The northbound's push subscriptions and stable UUIDs (http/subscriptions.ts), kept across restarts. */
export function subscriptionsStatePath(stateDir: string, pool: string): string {
  return join(poolStateDir(stateDir, pool), 'subscriptions.json');
}

/**
 * Creates `dir` (mode 0700 for what it creates) one level at a time. Node's
 * recursive mkdir can spin forever under /proc, and its errors name no
 * culprit; this refuses a file, a dangling link or an unwritable parent in
 * words, before anything else of a pool is made.
 */
export function ensureDir(dir: string, what = 'state directory'): void {
  checkSafeDir(dir, what);
  const target = resolve(dir);
  const missing: string[] = [];
  let p = target;
  for (;;) {
    let st: ReturnType<typeof statSync> | undefined;
    try {
      st = statSync(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') throw new PoolError('BAD_STATE', `${what} ${dir}: cannot use ${p} (${code})`);
    }
    if (st) {
      if (!st.isDirectory()) throw new PoolError('BAD_STATE', `${what} ${dir}: ${p} is not a directory`);
      break;
    }
    missing.unshift(p);
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  for (const m of missing) {
    try {
      mkdirSync(m, { mode: 0o700 });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') throw new PoolError('BAD_STATE', `${what} ${dir}: cannot create ${m} (${code ?? (e as Error).message})`);
    }
  }
  // Again: a component someone else made meanwhile is refused, not used.
  if (missing.length > 0) checkSafeDir(dir, what);
}

/** The only files a pool's state directory may hold (the journal's, journal.ts; the northbound's, http/store.ts): what destroy removes. */
export const STATE_FILES = ['journal.jsonl', 'snapshot.json', 'snapshot.json.tmp', 'northbound.json', 'northbound.json.tmp'] as const;

/**
 * Removes a pool's state directory, or says in words why it cannot. Only
 * the files the journal layout names go, and only from a real directory
 * that holds nothing else: `--state-dir` may point anywhere, and a pool
 * name that happens to be a directory of other things is not ours to empty.
 */
export function removePoolStateDir(stateDir: string, pool: string): void {
  const dir = poolStateDir(stateDir, pool);
  const fail = (why: string): never => {
    throw new PoolError('BAD_STATE', why);
  };
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    throw new PoolError('BAD_STATE', `cannot use ${dir}: ${code ?? (e as Error).message}`);
  }
  if (!st.isDirectory()) fail(`${dir} is not a directory (${st.isSymbolicLink() ? 'a symbolic link' : 'a file'}); refusing to remove it`);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    throw new PoolError('BAD_STATE', `cannot read ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const strangers = names.filter((n) => !(STATE_FILES as readonly string[]).includes(n));
  if (strangers.length > 0) {
    const shown = strangers.slice(0, 3).join(', ') + (strangers.length > 3 ? ` and ${strangers.length - 3} more` : '');
    fail(`${dir} holds files that are not this pool's journal (${shown}); refusing to remove it (move them away first)`);
  }
  try {
    for (const n of names) {
      if (!lstatSync(join(dir, n)).isFile()) fail(`${join(dir, n)} is not a regular file; refusing to remove ${dir}`);
    }
    for (const n of names) unlinkSync(join(dir, n));
    rmdirSync(dir);
  } catch (e) {
    if (e instanceof PoolError) throw e;
    fail(`cannot remove ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}
