// The body of POST …/Connections: chunks to connect and the heads (initiator
// endpoints) to connect them to.
import { linkSchema, odataTypeSchema } from '../../schemas.js';

export const connectionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['ConnectionType', 'MemoryChunkInfo', 'Links'],
  properties: {
    ConnectionType: { enum: ['Memory'] },
    Name: { type: 'string', maxLength: 64 },
    '@odata.type': odataTypeSchema,
    MemoryChunkInfo: {
      type: 'array',
      minItems: 1,
      maxItems: 16,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['MemoryChunk'],
        properties: {
          MemoryChunk: linkSchema,
          AccessCapabilities: { type: 'array', maxItems: 2, items: { enum: ['Read', 'Write'] } },
          AccessState: { type: 'string', maxLength: 32 },
        },
      },
    },
    Links: {
      type: 'object',
      additionalProperties: false,
      required: ['InitiatorEndpoints'],
      properties: {
        InitiatorEndpoints: { type: 'array', minItems: 1, maxItems: 64, items: linkSchema },
        'InitiatorEndpoints@odata.count': { type: 'integer' },
      },
    },
  },
} as const;

export interface ConnectionBody {
  MemoryChunkInfo: { MemoryChunk: { '@odata.id': string } }[];
  Links: { InitiatorEndpoints: { '@odata.id': string }[] };
}
