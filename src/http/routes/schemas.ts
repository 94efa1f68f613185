// Schema pieces more than one resource's request bodies use.
export const linkSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['@odata.id'],
  properties: { '@odata.id': { type: 'string', maxLength: 512 } },
} as const;

export const odataTypeSchema = { type: 'string', maxLength: 128 } as const;
