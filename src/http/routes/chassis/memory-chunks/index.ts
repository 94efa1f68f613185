// MemoryChunks: every pool range in use or defined. Defining a chunk is the
// northbound's own state (no FM operation); it can be deleted once nothing
// holds it.
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import type { Context } from '../../../context.js';
import type { ChunkView, PoolModel } from '../../../model.js';
import { oem } from '../../../oem.js';
import { paths } from '../../../paths.js';
import { resource } from '../../../plugins/protocol.js';
import { collection, notFound, odata, RedfishError } from '../../../redfish.js';
import { chunkId } from '../../../store.js';
import { resourceRecord } from '../../../translate.js';
import { type ChunkBody, chunkSchema } from './schema.js';

const MiB = 2 ** 20;

export function chunkBody(m: PoolModel, pool: string, c: ChunkView): Record<string, unknown> {
  const holders = m.holdersOf(c.offset, c.size);
  return {
    ...odata(paths.chunk(pool, c.id), 'MemoryChunks'),
    Name: `Pool range ${c.id}`,
    MemoryChunkSizeMiB: c.size / MiB,
    AddressRangeOffsetMiB: c.offset / MiB,
    AddressRangeType: 'Volatile',
    Status: { State: 'Enabled', Health: 'OK' },
    Oem: oem('MemoryChunk', { Origin: c.origin, Tag: c.def?.tag ?? null, OffsetBytes: c.offset, SizeBytes: c.size, Holders: holders }),
  };
}

const bad = (message: string, args: string[] = []) =>
  new RedfishError(400, 'PropertyValueIncorrect', message, args, 'Correct the request body and resubmit.');

function defineChunk(ctx: Context, body: ChunkBody): { id: string; status: number } {
  const m = ctx.model();
  const { capacityBytes, blockBytes } = m.snap.status;
  const offset = body.AddressRangeOffsetMiB * MiB;
  const size = body.MemoryChunkSizeMiB * MiB;
  if (size % blockBytes !== 0 || offset % blockBytes !== 0) {
    throw bad(`MemoryChunkSizeMiB and AddressRangeOffsetMiB must be multiples of the pool's ${blockBytes / MiB} MiB block.`, [
      String(body.MemoryChunkSizeMiB),
      String(body.AddressRangeOffsetMiB),
    ]);
  }
  if (offset + size > capacityBytes) {
    throw new RedfishError(
      400,
      'PropertyValueOutOfRange',
      `The chunk ${offset / MiB}..${(offset + size) / MiB} MiB lies outside the ${capacityBytes / MiB} MiB pool.`,
      [String(body.AddressRangeOffsetMiB)],
      'Choose a range inside the pool.',
    );
  }
  for (const [id, c] of ctx.store.chunks) {
    if (c.offset < offset + size && offset < c.offset + c.size && !(c.offset === offset && c.size === size)) {
      throw new RedfishError(
        409,
        'ResourceInUse',
        `The chunk overlaps memory chunk ${id}; chunks do not overlap.`,
        [id],
        'Choose a free range.',
      );
    }
  }
  const id = chunkId(offset, size);
  if (ctx.store.chunk(id)) return { id, status: 200 };
  // A range some head already holds keeps its tag, so a shared add to another head joins it.
  const held = m.holdings.find((h) => h.offset === offset && h.len === size && h.tag);
  ctx.store.addChunk(offset, size, held?.tag ?? randomUUID());
  if (!m.chunks.has(id)) ctx.hub.publish([resourceRecord('ResourceCreated', paths.chunk(ctx.pool, id))]);
  return { id, status: 201 };
}

export const memoryChunkRoutes: FastifyPluginAsync<{ ctx: Context }> = async (app, { ctx }) => {
  const { pool } = ctx;
  const chunks = paths.chunks(pool);
  resource(app, chunks, {
    GET: {
      handler: async () => {
        const m = ctx.model();
        const members = [...m.chunks.values()].sort((a, b) => a.offset - b.offset || a.size - b.size).map((c) => paths.chunk(pool, c.id));
        return collection(chunks, 'MemoryChunksCollection', 'Memory chunks', members);
      },
    },
    POST: {
      privilege: 'ConfigureComponents',
      schema: { body: chunkSchema },
      handler: async (req, reply) => {
        const { id, status } = defineChunk(ctx, req.body as ChunkBody);
        const m = ctx.model();
        const c = m.chunks.get(id);
        if (!c) throw notFound(paths.chunk(pool, id));
        reply.code(status).header('Location', paths.chunk(pool, id));
        return chunkBody(m, pool, c);
      },
    },
  });
  resource(app, `${chunks}/:id`, {
    GET: {
      handler: async (req) => {
        const id = (req.params as { id: string }).id;
        const m = ctx.model();
        const c = m.chunks.get(id);
        if (!c) throw notFound(paths.chunk(pool, id));
        return chunkBody(m, pool, c);
      },
    },
    DELETE: {
      privilege: 'ConfigureComponents',
      handler: async (req, reply) => {
        const id = (req.params as { id: string }).id;
        const m = ctx.model();
        const c = m.chunks.get(id);
        if (!c) throw notFound(paths.chunk(pool, id));
        if (c.origin !== 'defined' || m.holdersOf(c.offset, c.size).length > 0) {
          throw new RedfishError(
            409,
            'ResourceInUse',
            `Memory chunk ${id} is held by a head${c.origin === 'defined' ? '' : ' (it exists because of that holding)'}; delete its connections first.`,
            [id],
            'DELETE the connections that use it.',
          );
        }
        ctx.store.removeChunk(id);
        ctx.hub.publish([resourceRecord('ResourceRemoved', paths.chunk(pool, id))]);
        reply.code(204);
      },
    },
  });
};
