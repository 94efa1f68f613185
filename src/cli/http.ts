// The northbound on the command line: `serve --http` (validating the
// address and users file before anything starts, then running the server
// next to the backend), `cxl-mhd events` (the SSE stream on a terminal) and
// `cxl-mhd http-passwd` (a scrypt line for the users file).
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { Logger } from 'pino';
import { UsageError } from '../errors/index.js';
import type { Backend } from '../heads/index.js';
import { hashPassword, isLoopback, loadUsers, Northbound, type NorthboundDeps, parseListen, type RedfishEvent } from '../http/index.js';
import { journalPath, poolRunDir, resolveDirs } from '../pool/index.js';
import { deviceSerial } from '../qemu/index.js';

export interface HttpServeOptions {
  http?: string;
  httpUsers?: string;
  httpAllowRemote?: boolean;
  httpAggregator?: string;
  httpAggregatorUser?: string;
}

export function httpRecordPath(runDir: string, pool: string): string {
  return join(poolRunDir(runDir, pool), 'http.json');
}

export interface HttpRecord {
  url: string;
  redfish: string;
  sse: string;
  pid: number;
  usersFile: string;
  stateFile: string;
  fmSocket: string;
  localToken: string;
}

export function readHttpRecord(runDir: string, pool: string): HttpRecord | null {
  const path = httpRecordPath(runDir, pool);
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as HttpRecord;
  } catch {
    return null;
  }
}

/** Everything about --http that can be wrong is found here, before the backend starts. */
export function checkHttpOptions(o: HttpServeOptions): { host: string; port: number } | null {
  if (o.http === undefined) {
    if (o.httpUsers || o.httpAllowRemote || o.httpAggregator || o.httpAggregatorUser) {
      throw new UsageError('--http-users, --http-allow-remote and --http-aggregator need --http ADDR:PORT');
    }
    return null;
  }
  const where = parseListen(o.http);
  if (!o.httpAllowRemote && !isLoopback(where.host)) {
    throw new UsageError(`--http ${o.http} is not a loopback address; pass --http-allow-remote to listen on it`);
  }
  if (!o.httpUsers) throw new UsageError('--http needs --http-users FILE (user:password lines, mode 0600)');
  const users = loadUsers(o.httpUsers);
  if (o.httpAggregatorUser && !o.httpAggregator) throw new UsageError('--http-aggregator-user needs --http-aggregator URL');
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
  }
  return where;
}

/** The backend as the northbound sees it (CONTRACT.md): snapshots, events, and fm.sock for every capacity move. */
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

export async function startHttp(
  backend: Backend,
  where: { host: string; port: number },
  o: HttpServeOptions & { runDir: string; stateDir: string },
  log: Logger,
): Promise<{ url: string; close: () => Promise<void> }> {
  const pool = backend.opts.pool;
  const deps = backendDeps(backend);
  const stateFile = join(dirname(journalPath(o.stateDir, pool)), 'northbound.json');
  const subscriptionsFile = join(dirname(journalPath(o.stateDir, pool)), 'subscriptions.json');
  const aggregatorUser = o.httpAggregator ? (o.httpAggregatorUser ?? 'aggregator') : null;
  const nb = new Northbound({
    deps,
    users: o.httpUsers as string,
    stateFile,
    subscriptionsFile,
    // The aggregator's account reads and may change only its own subscription's Context.
    ...(aggregatorUser ? { roles: new Map([[aggregatorUser, 'ReadOnly' as const]]) } : {}),
    log: (msg) => log.warn(`northbound: ${msg}`),
  });
  nb.onInternalError = (e, url) => log.error({ url }, `northbound: ${(e as Error).message ?? String(e)}`);
  const url = await nb.listen(where.host, where.port, {
    allowRemote: o.httpAllowRemote === true,
    recordFile: httpRecordPath(o.runDir, pool),
    recordExtra: { usersFile: resolve(o.httpUsers as string), stateFile, subscriptionsFile, fmSocket: deps.fmSocketPath },
  });
  if (o.httpAggregator && aggregatorUser) nb.aggregateInto(o.httpAggregator, aggregatorUser, (msg) => log.warn(`northbound: ${msg}`));
  return { url, close: () => nb.close() };
}

function describeEvent(e: Record<string, unknown>): string[] {
  const events =
    (e.Events as { MessageId: string; Message: string; EventTimestamp: string; OriginOfCondition?: { '@odata.id': string } }[]) ?? [];
  const main = events.filter((r) => !r.MessageId.startsWith('ResourceEvent.'));
  const shown = main.length > 0 ? main : events;
  return shown.map(
    (r) =>
      `${r.EventTimestamp} #${String(e.Id)} ${r.MessageId.split('.').pop()}: ${r.Message} [${r.OriginOfCondition?.['@odata.id'] ?? ''}]`,
  );
}

interface EventsOpts {
  pool: string;
  runDir?: string;
  stateDir?: string;
  json?: boolean;
  url?: string;
  user?: string;
  lastEventId?: string;
  count?: string;
}

/** Follows the stream, reconnecting with Last-Event-ID, until interrupted (or --count events). */
async function followEvents(o: EventsOpts): Promise<void> {
  const dirs = resolveDirs(o);
  const rec = readHttpRecord(dirs.runDir, o.pool);
  const base = o.url ?? rec?.url;
  if (!base) {
    throw new UsageError(
      `pool ${o.pool} has no northbound record in ${poolRunDir(dirs.runDir, o.pool)} (is \`serve --http\` running?); pass --url`,
    );
  }
  let auth: Record<string, string>;
  if (o.user) {
    const pw = process.env.CXL_MHD_PASSWORD;
    if (pw === undefined) throw new UsageError('--user needs the password in the environment variable CXL_MHD_PASSWORD');
    auth = { Authorization: `Basic ${Buffer.from(`${o.user}:${pw}`).toString('base64')}` };
  } else if (rec) {
    auth = { 'X-Auth-Token': rec.localToken };
  } else {
    throw new UsageError('--url without the run dir record needs --user (password in CXL_MHD_PASSWORD)');
  }
  const limit = o.count === undefined ? Number.POSITIVE_INFINITY : Number(o.count);
  let seen = 0;
  let last = o.lastEventId;
  for (let attempt = 0; ; attempt++) {
    const ended = await new Promise<string | null>((resolve, reject) => {
      const req = request(`${base}/redfish/v1/EventService/SSE`, {
        headers: { Accept: 'text/event-stream', ...auth, ...(last ? { 'Last-Event-ID': last } : {}) },
      });
      req.on('response', (res) => {
        if (res.statusCode !== 200) {
          let body = '';
          res.on('data', (d) => {
            body += d;
          });
          res.on('end', () => {
            let why = body;
            try {
              why = JSON.parse(body).error.message;
            } catch {}
            reject(new UsageError(`the event stream answered ${res.statusCode}: ${why}`));
          });
          return;
        }
        attempt = 0;
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
            const frame = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const id = /^id: (.*)$/m.exec(frame)?.[1];
            const data = frame
              .split('\n')
              .filter((l) => l.startsWith('data: '))
              .map((l) => l.slice(6))
              .join('\n');
            if (!data) continue;
            if (id) last = id;
            const e = JSON.parse(data) as Record<string, unknown>;
            for (const line of o.json ? [JSON.stringify(e)] : describeEvent(e)) console.log(line);
            if (++seen >= limit) {
              req.destroy();
              resolve(null);
              return;
            }
          }
        });
        res.on('end', () => resolve('the stream ended'));
        res.on('error', () => resolve('the stream failed'));
      });
      req.on('error', (e) => resolve(e.message));
      req.end();
    });
    if (ended === null) return;
    if (attempt >= 30) throw new UsageError(`cannot reach ${base}: ${ended}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

export function addHttpCommands(program: Command): void {
  program
    .command('events')
    .description("follow a pool's Redfish event stream (SSE), one line per event; reconnects with Last-Event-ID")
    .requiredOption('--pool <name>', 'pool name')
    .option('--run-dir <dir>', 'run dir of the serving backend (its http.json gives the address and a local token)')
    .option('--state-dir <dir>', 'unused; accepted for symmetry with the other commands')
    .option('--json', 'print each Redfish Event as one JSON line')
    .option('--url <url>', 'the northbound, e.g. http://127.0.0.1:8080 (default: from the run dir)')
    .option('--user <name>', 'HTTP Basic user (password from CXL_MHD_PASSWORD) instead of the local token')
    .option('--last-event-id <n>', 'resume after this event id')
    .option('--count <n>', 'exit after this many events')
    .action(async (o: EventsOpts) => {
      if (o.count !== undefined && !/^\d+$/.test(o.count)) throw new UsageError(`--count ${o.count} is not a whole number`);
      if (o.lastEventId !== undefined && !/^\d+$/.test(o.lastEventId))
        throw new UsageError(`--last-event-id ${o.lastEventId} is not a whole number`);
      await followEvents(o);
    });

  program
    .command('http-passwd')
    .description('read a password on stdin and print USER:scrypt$... for the --http-users file')
    .argument('<user>', 'user name')
    .action(async (user: string) => {
      if (!/^[A-Za-z0-9._@-]{1,64}$/.test(user)) throw new UsageError(`user "${user}" must be 1-64 of [A-Za-z0-9._@-]`);
      let input = '';
      for await (const chunk of process.stdin) input += chunk;
      const password = input.split('\n')[0] ?? '';
      if (password === '') throw new UsageError('no password on stdin');
      console.log(`${user}:${hashPassword(password)}`);
    });
}

export type { RedfishEvent };
