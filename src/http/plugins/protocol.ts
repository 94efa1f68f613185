// The Redfish protocol rules every route shares (DSP0266): JSON bodies only,
// OData-Version on every answer, errors as Redfish error bodies, 404 for
// unknown URIs, and one helper through which each resource registers its
// methods, so a method it does not take is 405 with an `Allow` header and
// every answer names the methods it allows.
import type { FastifyError, FastifyInstance, FastifySchema, RouteHandlerMethod } from 'fastify';
import fp from 'fastify-plugin';
import { fastifyErrorToRedfish } from '../errors.js';
import { cleanPath } from '../paths.js';
import { RedfishError } from '../redfish.js';
import type { Privilege } from './auth.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The methods the resource at this URI takes: its `Allow` header. */
    allow?: string;
  }
}

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
export type Method = (typeof METHODS)[number];

export interface Operation {
  handler: RouteHandlerMethod;
  schema?: FastifySchema;
  /** What the caller needs; absent means Login (any signed-in user). */
  privilege?: Privilege;
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
      config: { allow, privilege: op.privilege ?? 'Login' },
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

const malformed = () =>
  new RedfishError(400, 'MalformedJSON', 'The request body submitted was malformed JSON and could not be parsed by the receiving service.');

export interface ProtocolOptions {
  /** Errors our code did not expect, for the service log (the client sees a one-line 500). */
  onInternalError: (e: unknown, url: string) => void;
}

export const protocolPlugin = fp<ProtocolOptions>(
  async (app, opts) => {
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
    app.addHook('onRequest', async (_req, reply) => {
      reply.header('OData-Version', '4.0');
    });
    app.addHook('onSend', async (req, reply) => {
      const allow = req.routeOptions.config.allow;
      if (allow) reply.header('Allow', allow);
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
