// The Redfish protocol rules every route shares (DSP0266): JSON bodies only,
// OData-Version on every answer (and 412 for a client asking for another),
// Cache-Control, `Link: rel=describedby` naming the body's schema, ETags on
// GET and If-Match on writes (412 on a mismatch), errors as Redfish error
// bodies, 404 for unknown URIs, and one helper through which each resource
// registers its methods, so a method it does not take is 405 with an
// `Allow` header and every answer names the methods it allows.
import { createHash } from 'node:crypto';
import type { FastifyError, FastifyInstance, FastifyRequest, FastifySchema, RouteHandlerMethod } from 'fastify';
import fp from 'fastify-plugin';
import { describedBy } from '../dmtf.js';
import { fastifyErrorToRedfish } from '../errors.js';
import { cleanPath } from '../paths.js';
import { RedfishError } from '../redfish.js';
import type { Privilege } from './auth.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The methods the resource at this URI takes: its `Allow` header. */
    allow?: string;
  }
  interface FastifyInstance {
    /** Every route with the privilege it needs, in registration order (what the tests try every write route from). */
    redfishRoutes: { method: string; url: string; privilege: string; allowed: boolean; body?: unknown }[];
  }
}

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
export type Method = (typeof METHODS)[number];

export interface Operation {
  handler: RouteHandlerMethod;
  schema?: FastifySchema;
  /** What the caller needs; absent means Login (any signed-in user). */
  privilege?: Privilege;
  /** Open to a user who must change its password first (its own account, its session): DSP0266 PasswordChangeRequired. */
  duringPasswordChange?: true;
}

/** Registers one resource: the methods it takes, and 405 (with `Allow`) for the others. */
export function resource(app: FastifyInstance, url: string, ops: Partial<Record<Method, Operation>>): void {
  const methods = METHODS.filter((m) => ops[m]);
  const allow = methods.flatMap((m) => (m === 'GET' ? ['GET', 'HEAD'] : [m])).join(', ');
  for (const m of methods) {
    const op = ops[m] as Operation;
    app.route({
      method: m,
      url,
      handler: op.handler,
      config: { allow, privilege: op.privilege ?? 'Login', ...(op.duringPasswordChange ? { duringPasswordChange: true } : {}) },
      ...(op.schema ? { schema: op.schema } : {}),
    });
  }
  const others = METHODS.filter((m) => !ops[m]);
  if (others.length === 0) return;
  // Asking an open resource for a method it lacks is 405 for anyone; a closed one asks for credentials first.
  const privilege = ops.GET?.privilege ?? 'Login';
  app.route({
    method: others,
    url,
    config: { allow, privilege },
    handler: async (req) => {
      const path = cleanPath(req.url);
      throw new RedfishError(405, 'OperationNotAllowed', `The ${req.method} method is not allowed on ${path}.`, [req.method, path]);
    },
  });
}

/**
 * What ServiceRoot's ProtocolFeaturesSupported says: of DSP0266's query
 * parameters the service takes `only`; every other `$` parameter is 501,
 * other unknown ones are ignored (DSP0266 "Query parameters").
 */
export const PROTOCOL_FEATURES = {
  OnlyMemberQuery: true,
  ExcerptQuery: false,
  FilterQuery: false,
  SelectQuery: false,
  TopSkipQuery: false,
  ExpandQuery: { ExpandAll: false, Levels: false, Links: false, NoLinks: false },
} as const;

function checkQuery(query: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(query)) {
    if (k.startsWith('$')) {
      throw new RedfishError(
        501,
        'QueryNotSupported',
        `The query parameter ${k} is not supported by this service (see ProtocolFeaturesSupported in the service root).`,
        [],
        'Leave the query parameter out.',
      );
    }
    if (k === 'only' && v !== '') {
      throw new RedfishError(
        400,
        'QueryParameterValueFormatError',
        `The value ${String(v)} for the query parameter only takes no value.`,
        [String(v), 'only'],
        'Send ?only without a value.',
      );
    }
  }
}

/** `?only` on a collection of exactly one member answers that member (DSP0266); otherwise the collection as it is. */
async function onlyMember(app: FastifyInstance, req: FastifyRequest, payload: unknown): Promise<unknown> {
  const members = (payload as { Members?: { '@odata.id'?: unknown }[] } | null)?.Members;
  const id = Array.isArray(members) && members.length === 1 ? members[0]?.['@odata.id'] : undefined;
  if (typeof id !== 'string') return payload;
  const r = await app.inject({
    method: 'GET',
    url: id,
    headers: {
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
      ...(req.headers['x-auth-token'] ? { 'x-auth-token': req.headers['x-auth-token'] } : {}),
    },
  });
  return r.statusCode === 200 ? r.json() : payload;
}

const malformed = () =>
  new RedfishError(400, 'MalformedJSON', 'The request body submitted was malformed JSON and could not be parsed by the receiving service.');

export interface ProtocolOptions {
  /** Errors our code did not expect, for the service log (the client sees a one-line 500). */
  onInternalError: (e: unknown, url: string) => void;
}

export const protocolPlugin = fp<ProtocolOptions>(
  async (app, opts) => {
    app.decorate('redfishRoutes', []);
    app.addHook('onRoute', (r) => {
      const allow = r.config?.allow;
      if (allow === undefined) return;
      for (const m of [r.method].flat()) {
        const allowed = allow.split(', ').includes(m);
        const body = r.schema?.body;
        app.redfishRoutes.push({ method: m, url: r.url, privilege: r.config?.privilege ?? 'Login', allowed, ...(body ? { body } : {}) });
      }
    });
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
        done(malformed(), undefined);
      }
    });
    app.addHook('onRequest', async (req, reply) => {
      reply.header('OData-Version', '4.0');
      checkQuery(req.query as Record<string, unknown>);
      const asked = req.headers['odata-version'];
      if (asked !== undefined && asked !== '4.0') {
        throw new RedfishError(
          412,
          'PreconditionFailed',
          `This service speaks OData-Version 4.0, not ${String(asked)}.`,
          [],
          'Send OData-Version: 4.0 or leave the header out.',
        );
      }
    });
    // A write naming the representation it expects (If-Match) is refused when the resource has changed since.
    app.addHook('preHandler', async (req) => {
      const want = req.headers['if-match'];
      if (typeof want !== 'string' || !['PATCH', 'PUT', 'DELETE', 'POST'].includes(req.method)) return;
      const cur = await app.inject({
        method: 'GET',
        url: req.url,
        headers: {
          ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
          ...(req.headers['x-auth-token'] ? { 'x-auth-token': req.headers['x-auth-token'] } : {}),
        },
      });
      if (cur.statusCode !== 200) return;
      const tags = want.split(',').map((t) => t.trim());
      if (tags.includes('*') || tags.includes(String(cur.headers.etag))) return;
      const path = cleanPath(req.url);
      throw new RedfishError(
        412,
        'PreconditionFailed',
        `The resource at ${path} has changed: its ETag is ${String(cur.headers.etag)}, not ${want}.`,
        [],
        'GET the resource again and retry with its current ETag.',
      );
    });
    app.addHook('preSerialization', async (req, reply, payload: unknown) => {
      if (req.method === 'GET' && Object.hasOwn(req.query as object, 'only')) payload = await onlyMember(app, req, payload);
      const type = (payload as Record<string, unknown> | null)?.['@odata.type'];
      const schema = typeof type === 'string' ? describedBy(type) : null;
      if (schema && (req.method === 'GET' || req.method === 'HEAD')) reply.header('Link', `<${schema}>; rel=describedby`);
      return payload;
    });
    app.addHook('onSend', async (req, reply, payload) => {
      const allow = req.routeOptions.config.allow;
      if (allow) reply.header('Allow', allow);
      if (!reply.hasHeader('Cache-Control')) reply.header('Cache-Control', 'no-cache');
      const method = req.method;
      if ((method === 'GET' || method === 'HEAD') && reply.statusCode === 200 && typeof payload === 'string') {
        reply.header('ETag', `W/"${createHash('sha256').update(payload).digest('base64url').slice(0, 22)}"`);
      }
      return payload;
    });
    app.setErrorHandler((e: FastifyError, req, reply) => {
      const r = fastifyErrorToRedfish(e);
      if (r.status === 500) opts.onInternalError(e, req.url);
      if (r.status === 413) reply.header('Connection', 'close');
      void reply.code(r.status).type('application/json').send(r.body());
    });
    app.setNotFoundHandler((req, reply) => {
      const path = cleanPath(req.url);
      const r = new RedfishError(404, 'ResourceMissingAtURI', `The resource at the URI ${path} was not found.`, [path]);
      void reply.code(r.status).type('application/json').send(r.body());
    });
  },
  { name: 'redfish-protocol' },
);
