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
  }
  interface FastifyRequest {
    /** The signed-in user, once the auth plugin let the request through; null on open routes. */
    user: string | null;
  }
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
