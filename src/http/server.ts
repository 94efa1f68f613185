// The northbound server: one fastify instance with the Redfish service, the
// SSE stream and the page behind auth; limits against oversized bodies,
// slow clients and connection floods; the bridge from backend events to
// the EventHub; and the 0600 record in the run dir that `status` and
// `cxl-mhd events` read.
import { randomUUID } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import { UsageError } from '../errors/index.js';
import { Auth, loadUsers } from './auth.js';
import { registerCapacity } from './capacity.js';
import { Context } from './context.js';
import { EventHub } from './events.js';
import { FmLink } from './fmlink.js';
import { registerPage } from './page.js';
import { RedfishError, ROOT } from './redfish.js';
import { cleanPath, registerReads, SSE_PATH } from './routes.js';
import { Store } from './store.js';
import { translate } from './translate.js';
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
  /** The users file (checked: 0600) or, for in-process tests, user → password. */
  users: string | Record<string, string>;
  /** Where chunk definitions and connections persist (0600); null keeps them in memory. */
  stateFile: string | null;
  limits?: Partial<Limits>;
}

const OPEN = new Set(['GET /redfish', `GET ${ROOT}`, `GET ${ROOT}/odata`, `POST ${ROOT}/SessionService/Sessions`]);

function fastifyErrorToRedfish(e: FastifyError): RedfishError {
  if (e instanceof RedfishError) return e;
  if (e.validation && e.validation.length > 0) {
    const v = e.validation[0] as { keyword: string; instancePath: string; params: Record<string, unknown>; message?: string };
    const where = v.instancePath.replace(/^\//, '').replaceAll('/', '.') || 'the body';
    if (v.keyword === 'additionalProperties') {
      const prop = String(v.params.additionalProperty);
      return new RedfishError(
        400,
        'PropertyUnknown',
        `The property ${prop} is not in the list of valid properties for ${where}.`,
        [prop],
        'Remove the unknown property.',
      );
    }
    if (v.keyword === 'required') {
      const prop = String(v.params.missingProperty);
      return new RedfishError(400, 'PropertyMissing', `The property ${prop} is a required property and must be included in the request.`, [
        prop,
      ]);
    }
    if (v.keyword === 'type') {
      return new RedfishError(
        400,
        'PropertyValueTypeError',
        `The value of ${where} is of a different type than expected (${String(v.params.type)}).`,
        [where],
      );
    }
    return new RedfishError(400, 'PropertyValueIncorrect', `The value of ${where} is not valid: ${v.message ?? v.keyword}.`, [where]);
  }
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new RedfishError(413, 'GeneralError', 'The request body is larger than this service accepts.', [], 'Send a smaller body.');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new RedfishError(
        415,
        'GeneralError',
        'The request body must be application/json.',
        [],
        'Send Content-Type: application/json.',
      );
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new RedfishError(
        400,
        'MalformedJSON',
        'The request body submitted was malformed JSON and could not be parsed by the receiving service.',
      );
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new RedfishError(400, 'GeneralError', 'The Content-Length does not match the body.');
  }
  if (e instanceof SyntaxError || (e.statusCode === 400 && /JSON/i.test(e.message))) {
    return new RedfishError(
      400,
      'MalformedJSON',
      'The request body submitted was malformed JSON and could not be parsed by the receiving service.',
    );
  }
  const status = e.statusCode && e.statusCode >= 400 && e.statusCode < 500 ? e.statusCode : 500;
  return new RedfishError(
    status,
    status === 500 ? 'InternalError' : 'GeneralError',
    status === 500 ? 'The request failed due to an internal service error; see the service log.' : e.message,
  );
}

export class Northbound {
  readonly app: FastifyInstance;
  readonly ctx: Context;
  readonly limits: Limits;
  private unsubscribe: () => void = () => {};
  private server: Server | null = null;
  private recordFile: string | null = null;
  /** Errors our code did not expect, for the service log (the client sees a one-line 500). */
  onInternalError: (e: unknown, url: string) => void = () => {};

  constructor(opts: NorthboundOptions) {
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    const L = this.limits;
    const users =
      typeof opts.users === 'string'
        ? loadUsers(opts.users)
        : new Map(Object.entries(opts.users).map(([u, p]) => [u, { kind: 'plain' as const, password: Buffer.from(p) }]));
    const auth = new Auth(users, {
      sessionTimeoutMs: L.sessionTimeoutMs,
      maxSessions: L.maxSessions,
      ...(typeof opts.users === 'string' ? { usersFile: opts.users } : {}),
    });
    const hub = new EventHub({ ringSize: L.ringSize, maxClients: L.maxSseClients });
    this.ctx = new Context(opts.deps, new Store(opts.stateFile), auth, hub, new FmLink(opts.deps.fmSocketPath), randomUUID());
    this.app = Fastify({
      logger: false,
      bodyLimit: L.bodyLimit,
      return503OnClosing: true,
      // The router's own refusals (a path parameter too long, a bad URL) get Redfish bodies too.
      frameworkErrors: (e, _req, reply) => {
        const r =
          e.code === 'FST_ERR_MAX_PARAM_LENGTH'
            ? new RedfishError(414, 'GeneralError', 'The request URI is longer than this service accepts.')
            : fastifyErrorToRedfish(e);
        // frameworkErrors is typed for any route's reply; ours all answer JSON.
        void (reply as unknown as FastifyReply).code(r.status).type('application/json').header('OData-Version', '4.0').send(r.body());
      },
      routerOptions: { ignoreTrailingSlash: true, maxParamLength: 128 },
      ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } },
      serverFactory: (handler: (req: IncomingMessage, res: ServerResponse) => void) => {
        const s = createServer(
          {
            headersTimeout: L.headersTimeoutMs,
            requestTimeout: L.requestTimeoutMs,
            keepAliveTimeout: L.keepAliveTimeoutMs,
            // How often Node looks for requests past their timeouts; its default (30 s) would let slowloris clients linger.
            connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(L.headersTimeoutMs / 4))),
          },
          handler,
        );
        s.maxConnections = L.maxConnections;
        s.setTimeout(L.idleTimeoutMs, (sock) => sock.destroy());
        this.server = s;
        return s;
      },
    });
    this.routes();
    // The backend emits inside its own critical path (before the FM-API answers): queue there, translate just after.
    const queue: StampedEvent[] = [];
    const flush = () => {
      const batch = queue.splice(0);
      try {
        const m = this.ctx.model();
        for (const e of batch) this.ctx.hub.publish(translate(e, this.ctx.pool, m, this.ctx.store), e.at);
      } catch (err) {
        this.onInternalError(err, `events ${batch.map((e) => e.kind).join(', ')}`);
      }
    };
    this.unsubscribe = opts.deps.subscribe((e) => {
      if (queue.push(e) === 1) setImmediate(flush);
    });
  }

  private routes(): void {
    const { app, ctx } = this;
    // JSON only: anything else is 415, not a string that fails the schema.
    app.removeContentTypeParser(['text/plain', 'application/json']);
    // An empty JSON body (a DELETE sent with Content-Type: application/json) is no body, not malformed JSON.
    app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
      if (body === '') {
        done(null, undefined);
        return;
      }
      try {
        done(null, JSON.parse(body as string));
      } catch {
        done(
          new RedfishError(
            400,
            'MalformedJSON',
            'The request body submitted was malformed JSON and could not be parsed by the receiving service.',
          ),
          undefined,
        );
      }
    });
    app.addHook('onRequest', async (req, reply) => {
      reply.header('OData-Version', '4.0');
      const key = `${req.method} ${cleanPath(req.url)}`;
      if (OPEN.has(key)) return;
      const user = await ctx.auth.identify(req.headers as Record<string, string | undefined>);
      if (user === null) {
        reply.header('WWW-Authenticate', 'Basic realm="cxl-mhd", charset="UTF-8"');
        throw new RedfishError(
          401,
          'NoValidSession',
          'There is no valid session established with the implementation.',
          [],
          'Log in with HTTP Basic or a session token.',
        );
      }
    });
    app.setErrorHandler((e: FastifyError, req, reply) => {
      const r = fastifyErrorToRedfish(e);
      if (r.status === 500) this.onInternalError(e, req.url);
      if (r.status === 413) reply.header('Connection', 'close');
      void reply.code(r.status).type('application/json').send(r.body());
    });
    app.setNotFoundHandler((req, reply) => {
      const path = cleanPath(req.url);
      const known = req.method !== 'GET' && path.startsWith(ROOT);
      const r = known
        ? new RedfishError(405, 'OperationNotAllowed', `The ${req.method} method is not allowed on ${path}.`, [req.method, path])
        : new RedfishError(404, 'ResourceMissingAtURI', `The resource at the URI ${path} was not found.`, [path]);
      void reply.code(r.status).type('application/json').send(r.body());
    });
    registerReads(app, ctx);
    registerCapacity(app, ctx);
    registerPage(app, ctx);
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
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${actual}`;
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

  async close(): Promise<void> {
    this.unsubscribe();
    this.ctx.hub.close();
    this.ctx.fm.close();
    this.ctx.auth.close();
    if (this.recordFile) rmSync(this.recordFile, { force: true });
    await this.app.close();
    await this.ctx.store.flush();
  }
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
