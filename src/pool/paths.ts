// Where a pool's pieces live: shm object names, the run directory (head
// sockets) and the state directory (journal), and the rule for pool names.
import { homedir } from 'node:os';
import { join } from 'node:path';
import { PoolError } from './errors.js';

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
export function poolStateDir(stateDir: string, pool: string): string {
  return join(stateDir, validatePoolName(pool));
}
export function journalPath(stateDir: string, pool: string): string {
  return join(poolStateDir(stateDir, pool), 'journal.jsonl');
}
