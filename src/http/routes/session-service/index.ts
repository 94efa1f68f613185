// The SessionService: log in (open: the body carries the credentials), list,
// read and end sessions.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { SessionInfo } from '../../auth.js';
import type { Context } from '../../context.js';
import { cleanPath, ROOT, SESSIONS } from '../../paths.js';
import { passwordChangeRequired } from '../../plugins/auth.js';
import { type Operation, resource } from '../../plugins/protocol.js';
import { collection, extendedInfo, link, notFound, odata, RedfishError } from '../../redfish.js';
import { type LoginBody, loginSchema } from './schema.js';

function sessionBody(s: { id: string; user: string; created: string }): Record<string, unknown> {
  return {
    ...odata(`${SESSIONS}/${s.id}`, 'Session'),
    Name: `Session of ${s.user}`,
    UserName: s.user,
    CreatedTime: s.created,
  };
}

export const sessionServiceRoutes: FastifyPluginAsync<{ ctx: Context }> = async (app, { ctx }) => {
  resource(app, `${ROOT}/SessionService`, {
    GET: {
      handler: async () => ({
        ...odata(`${ROOT}/SessionService`, 'SessionService'),
        Name: 'Session service',
        ServiceEnabled: true,
        SessionTimeout: Math.round(ctx.auth.sessionTimeoutMs / 1000),
        Sessions: link(SESSIONS),
      }),
    },
  });
  // Users see and end their own sessions; other users' need ConfigureManager.
  const mine = (req: FastifyRequest, s: SessionInfo) =>
    s.user === req.user || ctx.auth.hasPrivilege(req.user as string, 'ConfigureManager');
  const login: Operation = {
    privilege: 'None',
    schema: { body: loginSchema },
    handler: async (req, reply) => {
      const { UserName, Password } = req.body as LoginBody;
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
      // Logged in, but told what it must do first (DSP0266 PasswordChangeRequired).
      if (ctx.auth.passwordChangeRequired(UserName)) return { ...sessionBody(s), ...extendedInfo(passwordChangeRequired(UserName)) };
      return sessionBody(s);
    },
  };
  resource(app, SESSIONS, {
    GET: {
      handler: async (req) =>
        collection(
          SESSIONS,
          'SessionCollection',
          'Sessions',
          ctx.auth
            .listSessions()
            .filter((s) => mine(req, s))
            .map((s) => `${SESSIONS}/${s.id}`),
        ),
    },
    POST: login,
  });
  // DSP0266: a collection also takes a POST to its Members.
  resource(app, `${SESSIONS}/Members`, { POST: login });
  resource(app, `${SESSIONS}/:id`, {
    GET: {
      handler: async (req) => {
        const s = ctx.auth.session((req.params as { id: string }).id);
        if (!s || !mine(req, s)) throw notFound(cleanPath(req.url));
        return sessionBody(s);
      },
    },
    DELETE: {
      duringPasswordChange: true,
      handler: async (req, reply) => {
        const s = ctx.auth.session((req.params as { id: string }).id);
        if (!s || !mine(req, s)) throw notFound(cleanPath(req.url));
        ctx.auth.closeSession(s.id);
        reply.code(204);
      },
    },
  });
};
