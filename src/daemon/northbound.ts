// The northbound beside the backend (`serve --http`): its options checked
// before anything starts, then the server started on the running backend.
// http/ (and with it fastify) is loaded only here, only when asked for.
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { UsageError } from '../errors/index.js';
import type { Backend } from '../heads/index.js';
import type { NorthboundDeps } from '../http/index.js';
import { httpRecordPath, northboundStatePath } from '../pool/index.js';
import { deviceSerial } from '../qemu/index.js';

export interface HttpServeOptions {
  http?: string;
  httpUsers?: string;
  httpAllowRemote?: boolean;
}

/** Where and for whom the northbound listens, once checked. */
export interface NorthboundAt {
  host: string;
  port: number;
  usersFile: string;
  allowRemote: boolean;
}

/** Everything about --http that can be wrong is found here, before the backend starts; null without --http. */
export async function checkNorthbound(o: HttpServeOptions): Promise<NorthboundAt | null> {
  if (o.http === undefined) {
    if (o.httpUsers || o.httpAllowRemote) throw new UsageError('--http-users and --http-allow-remote need --http ADDR:PORT');
    return null;
  }
  const { isLoopback, loadUsers, parseListen } = await import('../http/index.js');
  const where = parseListen(o.http);
  if (!o.httpAllowRemote && !isLoopback(where.host)) {
    throw new UsageError(`--http ${o.http} is not a loopback address; pass --http-allow-remote to listen on it`);
  }
  if (!o.httpUsers) throw new UsageError('--http needs --http-users FILE (user:password lines, mode 0600)');
  loadUsers(o.httpUsers);
  return { ...where, usersFile: o.httpUsers, allowRemote: o.httpAllowRemote === true };
}

/** The backend as the northbound sees it (http/types.ts): snapshots, events, and fm.sock for every capacity move. */
function backendDeps(backend: Backend): NorthboundDeps {
  const fmSocketPath = backend.fmSocketPath;
  if (fmSocketPath === null) throw new Error('the backend serves no fm.sock; the northbound moves capacity only through it');
  return {
    pool: backend.opts.pool,
    serial: `0x${deviceSerial(backend.opts.pool).toString(16)}`,
    fmSocketPath,
    snapshot: () => backend.snapshot(),
    subscribe: (fn) => backend.subscribe(fn),
  };
}

export async function startNorthbound(
  backend: Backend,
  at: NorthboundAt,
  dirs: { runDir: string; stateDir: string },
  log: Logger,
): Promise<{ url: string; close: () => Promise<void> }> {
  const { Northbound } = await import('../http/index.js');
  const pool = backend.opts.pool;
  const deps = backendDeps(backend);
  const stateFile = northboundStatePath(dirs.stateDir, pool);
  const nb = new Northbound({ deps, users: at.usersFile, stateFile });
  nb.onInternalError = (e, url) => log.error({ url }, `northbound: ${(e as Error).message ?? String(e)}`);
  const url = await nb.listen(at.host, at.port, {
    allowRemote: at.allowRemote,
    recordFile: httpRecordPath(dirs.runDir, pool),
    recordExtra: { usersFile: resolve(at.usersFile), stateFile, fmSocket: deps.fmSocketPath },
  });
  return { url, close: () => nb.close() };
}
