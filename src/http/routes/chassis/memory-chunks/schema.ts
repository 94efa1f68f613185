// The body of POST …/MemoryChunks: a pool range in MiB.
import { odataTypeSchema } from '../../schemas.js';

export const chunkSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['MemoryChunkSizeMiB', 'AddressRangeOffsetMiB'],
  properties: {
    MemoryChunkSizeMiB: { type: 'integer', minimum: 1, maximum: 2 ** 33 },
    AddressRangeOffsetMiB: { type: 'integer', minimum: 0, maximum: 2 ** 33 },
    AddressRangeType: { enum: ['Volatile'] },
    Name: { type: 'string', maxLength: 64 },
    '@odata.type': odataTypeSchema,
  },
} as const;

export interface ChunkBody {
  MemoryChunkSizeMiB: number;
  AddressRangeOffsetMiB: number;
}
