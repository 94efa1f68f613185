// The SessionService: log in (open: the body carries the credentials), list,
// read and end sessions.
import type { FastifyPluginAsync } from 'fastify';
import type { Context } from '../../context.js';
import { cleanPath, ROOT, SESSIONS } from '../../paths.js';
import { resource } from '../../plugins/protocol.js';
import { collection, link, notFound, odata, RedfishError } from '../../redfish.js';
import { type LoginBody, loginSchema } from './schema.js';

function sessionBody(s: { id: string; user: string; created: string }): Record<string, unknown> {
  return {
    ...odata(`${SESSIONS}/${s.id}`, '#Session.v1_7_0.Session'),
    Name: `Session of ${s.user}`,
    UserName: s.user,
    CreatedTime: s.created,
  };
}

export const sessionServiceRoutes: FastifyPluginAsync<{ ctx: Context }> = async (app, { ctx }) => {
  resource(app, `${ROOT}/SessionService`, {
    GET: {
      handler: async () => ({
        ...odata(`${ROOT}/SessionService`, '#SessionService.v1_1_9.SessionService'),
        Name: 'Session service',
        ServiceEnabled: true,
        SessionTimeout: Math.round(ctx.auth.sessionTimeoutMs / 1000),
        Sessions: link(SESSIONS),
      }),
    },
  });
  resource(app, SESSIONS, {
    GET: {
      handler: async () =>
        collection(
          SESSIONS,
          '#SessionCollection.SessionCollection',
          'Sessions',
          ctx.auth.listSessions().map((s) => `${SESSIONS}/${s.id}`),
        ),
    },
    POST: {
      privilege: 'None',
      schema: { body: loginSchema },
      handler: async (req, reply) => {
        const { UserName, Password } = req.body as LoginBody;
        if (!ctx.auth.check(UserName, Password)) {
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
      },
    },
  });
  resource(app, `${SESSIONS}/:id`, {
    GET: {
      handler: async (req) => {
        const s = ctx.auth.session((req.params as { id: string }).id);
        if (!s) throw notFound(cleanPath(req.url));
        return sessionBody(s);
      },
    },
    DELETE: {
      handler: async (req, reply) => {
        if (!ctx.auth.closeSession((req.params as { id: string }).id)) throw notFound(cleanPath(req.url));
        reply.code(204);
      },
    },
  });
};
