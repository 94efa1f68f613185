// Request bodies of the AccountService. PATCH bodies are checked by hand
// (not by a schema) because DSP0266 wants a mix of writable and unknown
// properties applied in part, with a message for each one refused.
import { ROLES } from '../../auth.js';

export const MIN_PASSWORD = 8;
export const MAX_PASSWORD = 1024;

export const accountCreateSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['UserName', 'Password'],
  properties: {
    UserName: { type: 'string', pattern: '^[A-Za-z0-9._@-]{1,64}$' },
    Password: { type: 'string', minLength: MIN_PASSWORD, maxLength: MAX_PASSWORD },
    RoleId: { enum: [...ROLES] },
    PasswordChangeRequired: { type: 'boolean' },
    Enabled: { const: true },
    AccountTypes: { type: 'array', maxItems: 1, items: { const: 'Redfish' } },
    '@odata.type': { type: 'string', maxLength: 128 },
  },
} as const;

export interface AccountCreate {
  UserName: string;
  Password: string;
  RoleId?: (typeof ROLES)[number];
  PasswordChangeRequired?: boolean;
}

/** What a PATCH of an account may change. */
export const WRITABLE = ['Password', 'RoleId', 'PasswordChangeRequired'] as const;
/** Properties an account has that a PATCH cannot change. */
export const READ_ONLY = ['UserName', 'Enabled', 'Locked', 'AccountTypes', 'Id', 'Name', 'Links', 'Description'] as const;
