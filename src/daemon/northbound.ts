// The northbound beside the backend (`serve --http`): its options checked
// before anything starts, then the server started on the running backend.
// http/ (and with it fastify) is loaded only here, only when asked for.
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { UsageError } from '../errors/index.js';
import type { Backend } from '../heads/index.js';
import type { NorthboundDeps } from '../http/index.js';
import { httpRecordPath, northboundStatePath, subscriptionsStatePath } from '../pool/index.js';
import { deviceSerial } from '../qemu/index.js';

export interface HttpServeOptions {
  http?: string;
  httpUsers?: string;
  httpAllowRemote?: boolean;
  httpTlsCert?: string;
  httpTlsKey?: string;
  httpAggregator?: string;
  httpAggregatorUser?: string;
}

/** Where and for whom the northbound listens, once checked. */
export interface NorthboundAt {
  host: string;
  port: number;
  usersFile: string;
  allowRemote: boolean;
  tls: { cert: string; key: string } | null;
  /** The aggregating FM to announce this service to, and the ReadOnly user it reads with. */
  aggregator: { url: string; user: string } | null;
}

/** Everything about --http that can be wrong is found here, before the backend starts; null without --http. */
export async function checkNorthbound(o: HttpServeOptions): Promise<NorthboundAt | null> {
  if (o.http === undefined) {
    if (o.httpUsers || o.httpAllowRemote || o.httpAggregator || o.httpAggregatorUser || o.httpTlsCert || o.httpTlsKey) {
      throw new UsageError('--http-users, --http-allow-remote, --http-tls-cert/-key and --http-aggregator need --http ADDR:PORT');
    }
    return null;
  }
  const { isLoopback, loadUsers, parseListen, readTls } = await import('../http/index.js');
  const where = parseListen(o.http);
  if (!o.httpAllowRemote && !isLoopback(where.host)) {
    throw new UsageError(`--http ${o.http} is not a loopback address; pass --http-allow-remote to listen on it`);
  }
  if (!o.httpUsers) throw new UsageError('--http needs --http-users FILE (user:password lines, mode 0600)');
  if ((o.httpTlsCert === undefined) !== (o.httpTlsKey === undefined)) {
    throw new UsageError('--http-tls-cert and --http-tls-key go together: the certificate and its private key');
  }
  const tls = o.httpTlsCert && o.httpTlsKey ? { cert: o.httpTlsCert, key: o.httpTlsKey } : null;
  if (tls) readTls(tls);
  const users = loadUsers(o.httpUsers);
  if (o.httpAggregatorUser && !o.httpAggregator) throw new UsageError('--http-aggregator-user needs --http-aggregator URL');
  let aggregator: NorthboundAt['aggregator'] = null;
  if (o.httpAggregator) {
    let u: URL | null = null;
    try {
      u = new URL(o.httpAggregator);
    } catch {}
    if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:') || u.username || u.password) {
      throw new UsageError(`--http-aggregator ${o.httpAggregator} must be an http:// or https:// URL without credentials`);
    }
    const name = o.httpAggregatorUser ?? 'aggregator';
    const secret = users.get(name);
    if (!secret) throw new UsageError(`--http-aggregator reads with the user ${name}, which ${o.httpUsers} does not name`);
    if (secret.kind !== 'plain') {
      throw new UsageError(
        `--http-aggregator hands ${name}'s password to the aggregator: ${o.httpUsers} must keep it in clear, not as a hash`,
      );
    }
    aggregator = { url: o.httpAggregator, user: name };
  }
  return { ...where, usersFile: o.httpUsers, allowRemote: o.httpAllowRemote === true, tls, aggregator };
}

/** The backend as the northbound sees it (http/types.ts): snapshots, events, and an in-process FM-API channel for every capacity move. */
function backendDeps(backend: Backend): NorthboundDeps {
  return {
    pool: backend.opts.pool,
    serial: `0x${deviceSerial(backend.opts.pool).toString(16)}`,
    fmChannel: () => backend.fmChannel('redfish'),
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
  const subscriptionsFile = subscriptionsStatePath(dirs.stateDir, pool);
  const nb = new Northbound({
    deps,
    users: at.usersFile,
    ...(at.tls ? { tls: at.tls } : {}),
    stateFile,
    subscriptionsFile,
    // The aggregator's account reads and may change only its own subscription's Context.
    ...(at.aggregator ? { roles: new Map([[at.aggregator.user, 'ReadOnly' as const]]) } : {}),
    log: (msg) => log.warn(`northbound: ${msg}`),
  });
  nb.onInternalError = (e, url) => log.error({ url }, `northbound: ${(e as Error).message ?? String(e)}`);
  const url = await nb.listen(at.host, at.port, {
    allowRemote: at.allowRemote,
    recordFile: httpRecordPath(dirs.runDir, pool),
    recordExtra: {
      usersFile: resolve(at.usersFile),
      stateFile,
      subscriptionsFile,
      fmSocket: 'in process',
      ...(at.tls ? { tlsCert: resolve(at.tls.cert) } : {}),
    },
  });
  if (at.aggregator) nb.aggregateInto(at.aggregator.url, at.aggregator.user, (msg) => log.warn(`northbound: ${msg}`));
  return { url, close: () => nb.close() };
}
