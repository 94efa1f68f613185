// The body of POST …/Connections: the heads (initiator endpoints) to connect
// and what to give them: memory chunks, or an existing memory region of
// another head (its tagged allocation, shared). Exactly one of the two; the
// handler says which is missing or doubled (one line, not an ajv oneOf dump).
import { linkSchema, odataTypeSchema } from '../../schemas.js';

const infoItem = (link: string) =>
  ({
    type: 'object',
    additionalProperties: false,
    required: [link],
    properties: {
      [link]: linkSchema,
      AccessCapabilities: { type: 'array', maxItems: 2, items: { enum: ['Read', 'Write'] } },
      AccessState: { type: 'string', maxLength: 32 },
    },
  }) as const;

export const connectionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['ConnectionType', 'Links'],
  properties: {
    ConnectionType: { enum: ['Memory'] },
    Name: { type: 'string', maxLength: 64 },
    '@odata.type': odataTypeSchema,
    MemoryChunkInfo: { type: 'array', minItems: 1, maxItems: 16, items: infoItem('MemoryChunk') },
    MemoryRegionInfo: { type: 'array', minItems: 1, maxItems: 16, items: infoItem('MemoryRegion') },
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
  MemoryChunkInfo?: { MemoryChunk: { '@odata.id': string } }[];
  MemoryRegionInfo?: { MemoryRegion: { '@odata.id': string } }[];
  Links: { InitiatorEndpoints: { '@odata.id': string }[] };
}
