// Authentication and privileges as one plugin: every route states the
// Redfish privilege it needs in its config (`privilege`, DSP0266 §
// "Privilege model"); `None` opens it to all, anything else needs HTTP
// Basic or a session token. There is no list of open paths.
import fp from 'fastify-plugin';
import type { Auth } from '../auth.js';
import { RedfishError } from '../redfish.js';

/** The Redfish privileges a route can ask for, and `None` for open routes. */
export type Privilege = 'None' | 'Login' | 'ConfigureComponents' | 'ConfigureManager' | 'ConfigureUsers' | 'ConfigureSelf';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The privilege this route needs; routes without one (the 404 handler) need Login. */
    privilege?: Privilege;
    /** Open to a user whose password must be changed first; a `:user` in its URL must be that user. */
    duringPasswordChange?: boolean;
  }
  interface FastifyRequest {
    /** The signed-in user, once the auth plugin let the request through; null on open routes. */
    user: string | null;
  }
}

/** DSP0266: until its password is changed, an account may only read its own account, change the password, and log out. */
export function passwordChangeRequired(user: string): RedfishError {
  return new RedfishError(
    403,
    'PasswordChangeRequired',
    'The password provided for this account must be changed before access is granted.',
    [`/redfish/v1/AccountService/Accounts/${user}`],
    `Change the password of this account: PATCH {"Password": …} to /redfish/v1/AccountService/Accounts/${user}.`,
  );
}

export const authPlugin = fp<{ auth: Auth }>(
  async (app, { auth }) => {
    app.decorateRequest('user', null);
    app.addHook('onRequest', async (req, reply) => {
      const need = req.routeOptions.config.privilege ?? 'Login';
      if (need === 'None') return;
      const user = await auth.identify(req.headers as Record<string, string | undefined>);
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
      if (auth.passwordChangeRequired(user)) {
        const own = (req.params as { user?: string }).user;
        if (!req.routeOptions.config.duringPasswordChange || (own !== undefined && own !== user)) throw passwordChangeRequired(user);
      }
      if (!auth.hasPrivilege(user, need)) {
        throw new RedfishError(
          403,
          'InsufficientPrivilege',
          'There are insufficient privileges for the account or credentials associated with the current session to perform the requested operation.',
          [],
          `Use an account whose role has the ${need} privilege.`,
        );
      }
      req.user = user;
    });
  },
  { name: 'redfish-auth', dependencies: ['redfish-protocol'] },
);
