// Request bodies the SessionService accepts.
export const loginSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['UserName', 'Password'],
  properties: {
    UserName: { type: 'string', maxLength: 64 },
    Password: { type: 'string', maxLength: 1024 },
    '@odata.type': { type: 'string', maxLength: 128 },
  },
} as const;

export interface LoginBody {
  UserName: string;
  Password: string;
}
