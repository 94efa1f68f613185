// The northbound server: one fastify instance with the Redfish protocol
// plugin, the auth plugin and one plugin per resource (routes/); limits against oversized bodies,
// slow clients and connection floods; the bridge from backend events to
// the EventHub; and the 0600 record in the run dir that `status` and
// `cxl-mhd events` read.
import { rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer, type Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { UsageError } from '../errors/index.js';
import { Accounts } from './accounts.js';
import { Announcer } from './aggregator.js';
import { Auth, type Role, readUsersFile } from './auth.js';
import { TlsIdentity } from './certificate.js';
import { Context } from './context.js';
import { fastifyErrorToRedfish } from './errors.js';
import { EventHub } from './events.js';
import { FmLink } from './fmlink.js';
import { Notifier } from './notifier.js';
import { FABRIC, paths, ROOT, SSE_PATH } from './paths.js';
import { authPlugin } from './plugins/auth.js';
import { protocolPlugin } from './plugins/protocol.js';
import { RedfishError } from './redfish.js';
import { redirectPlainHttp } from './redirect.js';
import { routes } from './routes/index.js';
import { Store } from './store.js';
import { Telemetry } from './telemetry.js';
import { translate, WindowTracker } from './translate.js';
import type { NorthboundDeps, StampedEvent } from './types.js';

export interface Limits {
  bodyLimit: number;
  /** Whole request head must arrive within this (slowloris). */
  headersTimeoutMs: number;
  /** Whole request (head and body) must arrive within this. */
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** An idle socket (no request in flight, not a stream) is closed after this. */
  idleTimeoutMs: number;
  maxConnections: number;
  maxSseClients: number;
  ringSize: number;
  sessionTimeoutMs: number;
  maxSessions: number;
}

export const DEFAULT_LIMITS: Limits = {
  bodyLimit: 64 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  idleTimeoutMs: 60_000,
  maxConnections: 512,
  maxSseClients: 64,
  ringSize: 1024,
  sessionTimeoutMs: 30 * 60_000,
  maxSessions: 64,
};

export interface NorthboundOptions {
  deps: NorthboundDeps;
  /** Serve HTTPS with this certificate and key (PEM files; the key must be 0600); nothing is served over plain HTTP then. */
  tls?: { cert: string; key: string };
  /** The users file (checked: 0600) or, for in-process tests, user → password (and role; Administrator if none). */
  users: string | Record<string, string | { password: string; role: Role }>;
  /** Where chunk definitions and connections persist (0600); null keeps them in memory. */
  stateFile: string | null;
  /** Where event subscriptions persist (0600); absent or null keeps them in memory. */
  subscriptionsFile?: string | null;
  /** Roles of users (default Administrator). */
  roles?: Map<string, Role>;
  limits?: Partial<Limits>;
  /** Lines for the service log (subscriptions suspended, the aggregator unreachable). */
  log?: (msg: string) => void;
}

export class Northbound {
  readonly app: FastifyInstance;
  readonly ctx: Context;
  readonly limits: Limits;
  private unsubscribe: () => void = () => {};
  private server: Server | null = null;
  /** https when --http-tls-cert/--http-tls-key were given. */
  readonly scheme: 'http' | 'https';
  private recordFile: string | null = null;
  private announcer: Announcer | null = null;
  private url: string | null = null;
  /** Errors our code did not expect, for the service log (the client sees a one-line 500). */
  onInternalError: (e: unknown, url: string) => void = () => {};

  constructor(opts: NorthboundOptions) {
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    const L = this.limits;
    const tls = opts.tls ? new TlsIdentity(opts.tls) : null;
    this.scheme = tls ? 'https' : 'http';
    const { users, roles, changeRequired } =
      typeof opts.users === 'string'
        ? readUsersFile(opts.users)
        : {
            users: new Map(
              Object.entries(opts.users).map(([u, p]) => [
                u,
                { kind: 'plain' as const, password: Buffer.from(typeof p === 'string' ? p : p.password) },
              ]),
            ),
            roles: new Map(Object.entries(opts.users).flatMap(([u, p]) => (typeof p === 'string' ? [] : [[u, p.role] as const]))),
            changeRequired: new Set<string>(),
          };
    for (const [u, r] of opts.roles ?? []) roles.set(u, r);
    const auth = new Auth(users, {
      sessionTimeoutMs: L.sessionTimeoutMs,
      maxSessions: L.maxSessions,
      roles,
      changeRequired,
      ...(typeof opts.users === 'string' ? { usersFile: opts.users } : {}),
    });
    const hub = new EventHub({ ringSize: L.ringSize, maxClients: L.maxSseClients });
    const events = new Notifier(hub, { stateFile: opts.subscriptionsFile ?? null, ...(opts.log ? { log: opts.log } : {}) });
    this.ctx = new Context(opts.deps, new Store(opts.stateFile), auth, hub, new FmLink(() => opts.deps.fmChannel()), events);
    this.ctx.accounts = new Accounts(auth, typeof opts.users === 'string' ? opts.users : null);
    this.ctx.tls = tls;
    this.ctx.telemetry = new Telemetry(hub, {
      pool: this.ctx.pool,
      model: () => this.ctx.model(),
      ...(events.subs.schedule ? { schedule: events.subs.schedule } : {}),
      onSchedule: (sched) => events.subs.setSchedule(sched),
      onError: (e) => this.onInternalError(e, 'metric report'),
    });
    this.app = Fastify({
      logger: false,
      bodyLimit: L.bodyLimit,
      return503OnClosing: true,
      // An aggregator joins its agent's address and a URI with a slash between (OFA Sunfish asks for `//redfish/v1/…`).
      rewriteUrl: (req) => (req.url ?? '/').replace(/^\/{2,}/, '/'),
      // The router's own refusals (a path parameter too long, a bad URL) get Redfish bodies too.
      frameworkErrors: (e, _req, reply) => {
        const r =
          e.code === 'FST_ERR_MAX_PARAM_LENGTH'
            ? new RedfishError(414, 'GeneralError', 'The request URI is longer than this service accepts.')
            : fastifyErrorToRedfish(e);
        // frameworkErrors is typed for any route's reply; ours all answer JSON.
        void (reply as unknown as FastifyReply).code(r.status).type('application/json').header('OData-Version', '4.0').send(r.body());
      },
      // Requests Node's parser refuses before any route sees them (an unknown method, a bad head) get Redfish bodies too.
      clientErrorHandler: answerClientError,
      routerOptions: { ignoreTrailingSlash: true, maxParamLength: 128 },
      ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } },
      serverFactory: (handler: (req: IncomingMessage, res: ServerResponse) => void) => {
        const serverOpts = {
          headersTimeout: L.headersTimeoutMs,
          requestTimeout: L.requestTimeoutMs,
          keepAliveTimeout: L.keepAliveTimeoutMs,
          // How often Node looks for requests past their timeouts; its default (30 s) would let slowloris clients linger.
          connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(L.headersTimeoutMs / 4))),
        };
        const s = tls ? createTlsServer({ ...serverOpts, ...tls.options }, handler) : createServer(serverOpts, handler);
        s.maxConnections = L.maxConnections;
        if (tls) {
          tls.attach(s as HttpsServer);
          redirectPlainHttp(s as HttpsServer, () => this.url ?? '', L.headersTimeoutMs);
        }
        s.setTimeout(L.idleTimeoutMs, (sock) => sock.destroy());
        this.server = s;
        return s;
      },
    });
    // Plugins register when the app is first readied (listen or inject), in this order.
    void this.app.register(protocolPlugin, { onInternalError: (e, url) => this.onInternalError(e, url) });
    void this.app.register(authPlugin, { auth });
    void this.app.register(routes, { ctx: this.ctx });
    // The backend emits inside its own critical path (before the FM-API answers): queue there, translate just after.
    const queue: StampedEvent[] = [];
    const windows = new WindowTracker();
    windows.prime(this.ctx.pool, this.ctx.model());
    const flush = () => {
      const batch = queue.splice(0);
      try {
        const m = this.ctx.model();
        for (const e of batch) {
          this.ctx.hub.publish([...translate(e, this.ctx.pool, m, this.ctx.store), ...windows.records(e, this.ctx.pool, m)], e.at);
        }
      } catch (err) {
        this.onInternalError(err, `events ${batch.map((e) => e.kind).join(', ')}`);
      }
    };
    this.unsubscribe = opts.deps.subscribe((e) => {
      // Before anything reads the pool again: the model it is read from has changed.
      this.ctx.invalidate();
      // One loop turn later than the FM-API answer: the answer (and the HTTP response it completes) goes out and its
      // reader runs first; translating the batch and fanning it out follows in the next check phase.
      if (queue.push(e) === 1) setImmediate(() => setImmediate(flush));
    });
  }

  get hub(): EventHub {
    return this.ctx.hub;
  }

  get auth(): Auth {
    return this.ctx.auth;
  }

  /** Listens; `host` must be loopback unless allowRemote. */
  async listen(
    host: string,
    port: number,
    opts: { allowRemote?: boolean; recordFile?: string | null; recordExtra?: Record<string, unknown> } = {},
  ): Promise<string> {
    if (!opts.allowRemote && !isLoopback(host)) {
      throw new UsageError(`--http ${host} is not a loopback address; pass --http-allow-remote to listen on it`);
    }
    await this.app.listen({ host, port });
    const a = this.server?.address();
    const actual = a && typeof a === 'object' ? a.port : port;
    const url = `${this.scheme}://${host.includes(':') ? `[${host}]` : host}:${actual}`;
    this.url = url;
    this.ctx.port = actual;
    if (opts.recordFile) {
      this.recordFile = opts.recordFile;
      const body = {
        url,
        redfish: `${url}${ROOT}`,
        sse: `${url}${SSE_PATH}`,
        pid: process.pid,
        ...opts.recordExtra,
        localToken: this.auth.localToken,
      };
      writeFileSync(opts.recordFile, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600 });
    }
    return url;
  }

  /**
   * Offers this service to an aggregator above it (docs/redfish.md,
   * "Aggregated by a fabric manager"): `user` must be a ReadOnly account
   * whose password the users file keeps in clear. Call after listen().
   */
  aggregateInto(aggregator: string, user: string, log: (msg: string) => void = () => {}): Announcer {
    if (this.url === null) throw new Error('aggregateInto() needs the service listening first');
    const password = this.auth.plainPassword(user);
    if (password === null) throw new UsageError(`--http-aggregator-user ${user} needs its password in clear in the users file`);
    if (this.auth.role(user) !== 'ReadOnly') throw new UsageError(`--http-aggregator-user ${user} must have the ReadOnly role`);
    this.announcer = new Announcer(this.ctx.events, {
      aggregator,
      agentUrl: this.url,
      user,
      password,
      roots: [paths.chassis(this.ctx.pool), FABRIC],
      log,
    });
    this.announcer.start();
    return this.announcer;
  }

  async close(): Promise<void> {
    this.unsubscribe();
    this.announcer?.close();
    this.ctx.telemetry.close();
    await this.ctx.events.close();
    this.ctx.hub.close();
    this.ctx.fm.close();
    this.ctx.auth.close();
    if (this.recordFile) rmSync(this.recordFile, { force: true });
    await this.app.close();
    await this.ctx.store.flush();
  }
}

const CLIENT_ERRORS: Record<string, [number, string, string]> = {
  // DSP0266: a method the service does not know is 405 or 501.
  HPE_INVALID_METHOD: [501, 'Not Implemented', 'This service does not implement that HTTP method.'],
  HPE_HEADER_OVERFLOW: [431, 'Request Header Fields Too Large', 'The request headers are larger than this service accepts.'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'Request Timeout', 'The request did not arrive in time.'],
};

function answerClientError(e: Error & { code?: string }, socket: Duplex): void {
  if (e.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, reason, text] = CLIENT_ERRORS[e.code ?? ''] ?? [400, 'Bad Request', 'The request is not valid HTTP.'];
  const id = status === 501 ? 'OperationNotAllowed' : 'GeneralError';
  const body = JSON.stringify(new RedfishError(status, id, text).body());
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `OData-Version: 4.0\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** ADDR:PORT, [v6]:PORT; one clear line when it is not. */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : -1;
  if (!m || port > 65535)
    throw new UsageError(`--http "${text}" must be ADDR:PORT, e.g. 127.0.0.1:8080 or [::1]:8080 (port 0 picks a free one)`);
  return { host: (m[1] ?? m[2]) as string, port };
}
