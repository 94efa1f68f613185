// The read side and the services: ServiceRoot, the resource tree, the
// SessionService (login/logout), the EventService with its SSE stream, and
// the message registries.
import type { FastifyInstance } from 'fastify';
import type { Context } from './context.js';
import { collection, link, notFound, odata, REGISTRY, RedfishError, ROOT, registryBody } from './redfish.js';
import { serviceRoot, treeGet } from './tree.js';

const SESSIONS = `${ROOT}/SessionService/Sessions`;
const EVENTS = `${ROOT}/EventService`;
export const SSE_PATH = `${EVENTS}/SSE`;

const loginSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['UserName', 'Password'],
  properties: {
    UserName: { type: 'string', maxLength: 64 },
    Password: { type: 'string', maxLength: 1024 },
    '@odata.type': { type: 'string', maxLength: 128 },
  },
} as const;

/** The request path without query string or trailing slash. */
export function cleanPath(url: string): string {
  const p = url.split('?')[0] as string;
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}

function sessionBody(s: { id: string; user: string; created: string }): Record<string, unknown> {
  return {
    ...odata(`${SESSIONS}/${s.id}`, '#Session.v1_7_0.Session'),
    Name: `Session of ${s.user}`,
    UserName: s.user,
    CreatedTime: s.created,
  };
}

export function registerReads(app: FastifyInstance, ctx: Context): void {
  app.get('/redfish', async () => ({ v1: `${ROOT}/` }));
  app.get(ROOT, async () => serviceRoot(ctx.uuid));
  app.get(`${ROOT}/odata`, async () => ({
    '@odata.context': `${ROOT}/$metadata`,
    value: ['Chassis', 'Fabrics', 'EventService', 'SessionService', 'Registries'].map((n) => ({
      name: n,
      kind: 'Singleton',
      url: `${ROOT}/${n}`,
    })),
  }));

  app.get(`${ROOT}/SessionService`, async () => ({
    ...odata(`${ROOT}/SessionService`, '#SessionService.v1_1_9.SessionService'),
    Name: 'Session service',
    ServiceEnabled: true,
    SessionTimeout: Math.round(ctx.auth.sessionTimeoutMs / 1000),
    Sessions: link(SESSIONS),
  }));
  app.get(SESSIONS, async () =>
    collection(
      SESSIONS,
      '#SessionCollection.SessionCollection',
      'Sessions',
      ctx.auth.listSessions().map((s) => `${SESSIONS}/${s.id}`),
    ),
  );
  app.post(SESSIONS, { schema: { body: loginSchema } }, async (req, reply) => {
    const { UserName, Password } = req.body as { UserName: string; Password: string };
    if (!(await ctx.auth.check(UserName, Password))) {
      throw new RedfishError(401, 'NoValidSession', 'The user name or password is not valid.', [], 'Log in with valid credentials.');
    }
    const s = ctx.auth.openSession(UserName);
    if (!s)
      throw new RedfishError(
        503,
        'SessionLimitExceeded',
        `The session limit of ${ctx.auth.maxSessions} is reached.`,
        [],
        'Log out of an old session.',
      );
    reply.code(201).header('X-Auth-Token', s.token).header('Location', `${SESSIONS}/${s.id}`);
    return sessionBody(s);
  });
  app.get(`${SESSIONS}/:id`, async (req) => {
    const s = ctx.auth.session((req.params as { id: string }).id);
    if (!s) throw notFound(cleanPath(req.url));
    return sessionBody(s);
  });
  app.delete(`${SESSIONS}/:id`, async (req, reply) => {
    if (!ctx.auth.closeSession((req.params as { id: string }).id)) throw notFound(cleanPath(req.url));
    reply.code(204);
  });

  app.get(EVENTS, async () => ({
    ...odata(EVENTS, '#EventService.v1_10_0.EventService'),
    Name: 'Event service',
    ServiceEnabled: true,
    ServerSentEventUri: SSE_PATH,
    EventFormatTypes: ['Event'],
    RegistryPrefixes: ['CxlMhd', 'ResourceEvent'],
    Subscriptions: link(`${EVENTS}/Subscriptions`),
    Oem: { CxlMhd: { RingSize: ctx.hub.ringSize, MaxSseClients: ctx.hub.maxClients, LastEventId: ctx.hub.lastId } },
  }));
  app.get(`${EVENTS}/Subscriptions`, async () =>
    collection(`${EVENTS}/Subscriptions`, '#EventDestinationCollection.EventDestinationCollection', 'Subscriptions (SSE only)', []),
  );
  app.get(SSE_PATH, (req, reply) => {
    // HEAD (which fastify routes here too) learns the type; it never becomes a stream.
    if (req.method === 'HEAD') return reply.type('text/event-stream').send();
    const last = req.headers['last-event-id'];
    const fromQuery = (req.query as Record<string, unknown>).lastEventId;
    const id = typeof last === 'string' ? last : typeof fromQuery === 'string' ? fromQuery : undefined;
    if (ctx.hub.clientCount >= ctx.hub.maxClients) {
      reply.header('Connection', 'close');
      throw new RedfishError(
        503,
        'EventSubscriptionLimitExceeded',
        `The limit of ${ctx.hub.maxClients} event stream clients is reached.`,
        [],
        'Close another event stream or retry later.',
      );
    }
    reply.hijack();
    ctx.hub.attach(reply.raw, id);
  });

  app.get(`${ROOT}/Registries`, async () =>
    collection(`${ROOT}/Registries`, '#MessageRegistryFileCollection.MessageRegistryFileCollection', 'Registries', [
      `${ROOT}/Registries/${REGISTRY}`,
    ]),
  );
  app.get(`${ROOT}/Registries/${REGISTRY}`, async () => ({
    ...odata(`${ROOT}/Registries/${REGISTRY}`, '#MessageRegistryFile.v1_1_3.MessageRegistryFile'),
    Name: 'cxl-mhd message registry file',
    Languages: ['en'],
    Registry: `${REGISTRY}.0`,
    Location: [{ Language: 'en', Uri: `${ROOT}/Registries/${REGISTRY}/Registry` }],
  }));
  app.get(`${ROOT}/Registries/${REGISTRY}/Registry`, async () => registryBody());

  app.get(`${ROOT}/*`, async (req) => treeGet(cleanPath(req.url), ctx.model(), ctx.pool, ctx.serial));
}
