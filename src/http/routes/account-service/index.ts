// The AccountService: the users file's users as ManagerAccounts, and the
// three predefined, unmodifiable Roles. Administrators (ConfigureUsers)
// create, change and delete accounts; every user may read its own account
// and change its own password (ConfigureSelf), nothing else.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { ROLE_PRIVILEGES, ROLES, type Role } from '../../auth.js';
import type { Context } from '../../context.js';
import { cleanPath, ROOT } from '../../paths.js';
import { resource } from '../../plugins/protocol.js';
import { collection, extendedInfo, link, notFound, odata, RedfishError } from '../../redfish.js';
import { type AccountCreate, accountCreateSchema, MAX_PASSWORD, MIN_PASSWORD, READ_ONLY, WRITABLE } from './schema.js';

const SERVICE = `${ROOT}/AccountService`;
const ACCOUNTS = `${SERVICE}/Accounts`;
const ROLES_URI = `${SERVICE}/Roles`;

function accountBody(ctx: Context, user: string): Record<string, unknown> {
  const role = ctx.auth.role(user);
  return {
    ...odata(`${ACCOUNTS}/${user}`, 'ManagerAccount'),
    Name: `Account ${user}`,
    UserName: user,
    RoleId: role,
    Enabled: true,
    Locked: false,
    // DSP0266: a password is never read back.
    Password: null,
    PasswordChangeRequired: ctx.auth.passwordChangeRequired(user),
    AccountTypes: ['Redfish'],
    Links: { Role: link(`${ROLES_URI}/${role}`) },
  };
}

function roleBody(role: Role): Record<string, unknown> {
  return {
    ...odata(`${ROLES_URI}/${role}`, 'Role'),
    Name: `${role} role`,
    RoleId: role,
    IsPredefined: true,
    AssignedPrivileges: [...ROLE_PRIVILEGES[role]],
    OemPrivileges: [],
  };
}

const denied = (what: string) =>
  new RedfishError(
    403,
    'InsufficientPrivilege',
    `There are insufficient privileges for the account or credentials associated with the current session to ${what}.`,
    [],
    'Use an account whose role has the ConfigureUsers privilege.',
  );

/** The account a request names, or 404; reading or changing another's account needs ConfigureUsers. */
function target(ctx: Context, req: FastifyRequest, what: string): string {
  const user = (req.params as { user: string }).user;
  if (!ctx.auth.hasUser(user)) throw notFound(cleanPath(req.url));
  if (user !== req.user && !ctx.auth.hasPrivilege(req.user as string, 'ConfigureUsers')) throw denied(what);
  return user;
}

function checkPassword(p: unknown): string {
  if (typeof p !== 'string' || p.length < MIN_PASSWORD || p.length > MAX_PASSWORD) {
    throw new RedfishError(
      400,
      'PropertyValueFormatError',
      `The password must be a string of ${MIN_PASSWORD} to ${MAX_PASSWORD} characters.`,
      ['******', 'Password'],
      'Choose a longer password.',
    );
  }
  return p;
}

function checkRole(r: unknown): Role {
  if (!ROLES.includes(r as Role)) {
    throw new RedfishError(400, 'PropertyValueNotInList', `RoleId must be one of ${ROLES.join(', ')}.`, [String(r), 'RoleId']);
  }
  return r as Role;
}

const adminsBesides = (ctx: Context, user: string) =>
  ctx.auth.userNames().filter((u) => u !== user && ctx.auth.role(u) === 'Administrator').length;

export const accountServiceRoutes: FastifyPluginAsync<{ ctx: Context }> = async (app, { ctx }) => {
  resource(app, SERVICE, {
    GET: {
      handler: async () => ({
        ...odata(SERVICE, 'AccountService'),
        Name: 'Account service',
        ServiceEnabled: true,
        LocalAccountAuth: 'Enabled',
        MinPasswordLength: MIN_PASSWORD,
        MaxPasswordLength: MAX_PASSWORD,
        Accounts: link(ACCOUNTS),
        Roles: link(ROLES_URI),
      }),
    },
  });
  resource(app, ACCOUNTS, {
    GET: {
      handler: async (req) => {
        const all = ctx.auth.hasPrivilege(req.user as string, 'ConfigureUsers');
        const users = ctx.auth.userNames().filter((u) => all || u === req.user);
        return collection(
          ACCOUNTS,
          'ManagerAccountCollection',
          'Accounts',
          users.map((u) => `${ACCOUNTS}/${u}`),
        );
      },
    },
    POST: {
      privilege: 'ConfigureUsers',
      schema: { body: accountCreateSchema },
      handler: async (req, reply) => {
        const b = req.body as AccountCreate;
        if (ctx.auth.hasUser(b.UserName)) {
          throw new RedfishError(409, 'ResourceAlreadyExists', `The account ${b.UserName} already exists.`, [
            'ManagerAccount',
            'UserName',
            b.UserName,
          ]);
        }
        await ctx.accounts.set(b.UserName, {
          password: b.Password,
          role: b.RoleId ?? 'ReadOnly',
          changeRequired: b.PasswordChangeRequired ?? false,
        });
        reply.code(201).header('Location', `${ACCOUNTS}/${b.UserName}`);
        return accountBody(ctx, b.UserName);
      },
    },
  });
  resource(app, `${ACCOUNTS}/:user`, {
    GET: { duringPasswordChange: true, handler: async (req) => accountBody(ctx, target(ctx, req, 'read another account')) },
    PATCH: {
      privilege: 'ConfigureSelf',
      duringPasswordChange: true,
      handler: async (req) => {
        const user = target(ctx, req, 'change another account');
        const body = req.body;
        if (typeof body !== 'object' || body === null || Array.isArray(body)) {
          throw new RedfishError(400, 'MalformedJSON', 'The request body must be a JSON object.');
        }
        const keys = Object.keys(body).filter((k) => !k.startsWith('@odata.'));
        if (keys.length === 0) {
          throw new RedfishError(
            400,
            'NoOperation',
            'The request body submitted contain no data to act upon and no changes to the resource took place.',
          );
        }
        const b = body as Record<string, unknown>;
        const change: { password?: string; role?: Role; changeRequired?: boolean } = {};
        if ('Password' in b) {
          change.password = checkPassword(b.Password);
          // The user chose its own password: the one an administrator set is no longer in use.
          if (user === req.user) change.changeRequired = false;
        }
        if ('PasswordChangeRequired' in b) {
          if (typeof b.PasswordChangeRequired !== 'boolean') {
            throw new RedfishError(400, 'PropertyValueTypeError', 'PasswordChangeRequired must be true or false.', [
              String(b.PasswordChangeRequired),
              'PasswordChangeRequired',
            ]);
          }
          if (!ctx.auth.hasPrivilege(req.user as string, 'ConfigureUsers')) throw denied('require a password change');
          change.changeRequired = b.PasswordChangeRequired;
        }
        if ('RoleId' in b) {
          change.role = checkRole(b.RoleId);
          if (!ctx.auth.hasPrivilege(req.user as string, 'ConfigureUsers')) throw denied('change a role');
          if (change.role !== 'Administrator' && ctx.auth.role(user) === 'Administrator' && adminsBesides(ctx, user) === 0) {
            throw new RedfishError(409, 'ResourceInUse', `${user} is the last Administrator.`, [user]);
          }
        }
        const refused = keys.filter((k) => !(WRITABLE as readonly string[]).includes(k));
        const messages = refused.map((k) =>
          (READ_ONLY as readonly string[]).includes(k)
            ? new RedfishError(400, 'PropertyNotWritable', `The property ${k} is a read only property and cannot be assigned a value.`, [k])
            : new RedfishError(400, 'PropertyUnknown', `The property ${k} is not in the list of valid properties for the resource.`, [k]),
        );
        if (change.password === undefined && change.role === undefined && change.changeRequired === undefined) {
          const first = messages[0] as RedfishError;
          throw first;
        }
        await ctx.accounts.set(user, change);
        const out = accountBody(ctx, user);
        return messages.length > 0 ? { ...out, ...extendedInfo(...messages) } : out;
      },
    },
    DELETE: {
      privilege: 'ConfigureUsers',
      handler: async (req, reply) => {
        const user = target(ctx, req, 'delete an account');
        if (ctx.auth.role(user) === 'Administrator' && adminsBesides(ctx, user) === 0) {
          throw new RedfishError(409, 'ResourceInUse', `${user} is the last Administrator; it cannot be deleted.`, [user]);
        }
        await ctx.accounts.remove(user);
        reply.code(204);
      },
    },
  });
  resource(app, ROLES_URI, {
    GET: {
      handler: async () =>
        collection(
          ROLES_URI,
          'RoleCollection',
          'Roles',
          ROLES.map((r) => `${ROLES_URI}/${r}`),
        ),
    },
  });
  resource(app, `${ROLES_URI}/:role`, {
    GET: {
      handler: async (req) => {
        const role = (req.params as { role: string }).role;
        if (!ROLES.includes(role as Role)) throw notFound(cleanPath(req.url));
        return roleBody(role as Role);
      },
    },
  });
};
