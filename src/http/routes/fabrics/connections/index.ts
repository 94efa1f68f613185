// Connections: every holding of the pool as Redfish sees it (made here,
// over the FM-LD port or fm.sock, or a static window); POST connects chunks
// to heads, DELETE disconnects.
import type { FastifyPluginAsync } from 'fastify';
import type { Context } from '../../../context.js';
import type { ConnectionView, PoolModel } from '../../../model.js';
import { oem } from '../../../oem.js';
import { cleanPath, FABRIC, paths } from '../../../paths.js';
import { resource } from '../../../plugins/protocol.js';
import { collection, link, notFound, odata } from '../../../redfish.js';
import { chunkId, regionId } from '../../../store.js';
import { connect, disconnect } from './connect.js';
import { type ConnectionBody, connectionSchema } from './schema.js';

/** The MemoryRegion each head of the connection holds each of its chunks in. */
function regionsOf(m: PoolModel, pool: string, c: ConnectionView): string[] {
  const out = new Set<string>();
  for (const h of m.holdings) {
    if (c.heads.includes(h.head) && c.chunks.includes(chunkId(h.offset, h.len))) {
      out.add(paths.region(pool, h.head, regionId(h.tag, h.offset, h.len, h.kind)));
    }
  }
  return [...out];
}

export function connectionBody(pool: string, c: ConnectionView, regions: string[]): Record<string, unknown> {
  return {
    ...odata(paths.connection(c.id), 'Connection'),
    Name: `Memory connection ${c.id}`,
    ConnectionType: 'Memory',
    // Quarantined: released, yet the head's guest may still reach it (docs/security.md).
    Status: { State: c.state === 'active' ? 'Enabled' : 'Disabled', Health: c.state === 'quarantined' ? 'Warning' : 'OK' },
    MemoryChunkInfo: c.chunks.map((id) => ({ MemoryChunk: link(paths.chunk(pool, id)), AccessCapabilities: ['Read', 'Write'] })),
    MemoryRegionInfo: regions.map((uri) => ({ MemoryRegion: link(uri), AccessCapabilities: ['Read', 'Write'] })),
    Links: { InitiatorEndpoints: c.heads.map((h) => link(paths.endpoint(h))), 'InitiatorEndpoints@odata.count': c.heads.length },
    Oem: oem('Connection', { Origin: c.origin, Shared: c.shared, State: c.state }),
  };
}

export const connectionRoutes: FastifyPluginAsync<{ ctx: Context }> = async (app, { ctx }) => {
  const { pool } = ctx;
  const conns = `${FABRIC}/Connections`;
  resource(app, conns, {
    GET: {
      handler: async () =>
        collection(conns, 'ConnectionCollection', 'Connections', [...ctx.model().connections.keys()].map(paths.connection)),
    },
    POST: {
      privilege: 'ConfigureComponents',
      schema: { body: connectionSchema },
      handler: async (req, reply) => {
        const { def, tags } = await connect(ctx, req.body as ConnectionBody);
        reply.code(201).header('Location', paths.connection(def.id));
        // From what was just made: every add answered Success, so it is active on all its heads.
        const made = {
          id: def.id,
          origin: 'redfish' as const,
          chunks: def.chunks,
          heads: def.heads,
          shared: def.shared,
          state: 'active',
          def,
        };
        // Every chunk went to every head under its tag: each head's region of it is that tag's.
        const regions = def.heads.flatMap((h) => [...new Set(tags)].map((t) => paths.region(pool, h, regionId(t, 0, 0))));
        return connectionBody(pool, made, regions);
      },
    },
  });
  resource(app, `${conns}/:id`, {
    GET: {
      handler: async (req) => {
        const m = ctx.model();
        const c = m.connections.get((req.params as { id: string }).id);
        if (!c) throw notFound(cleanPath(req.url));
        return connectionBody(pool, c, regionsOf(m, pool, c));
      },
    },
    DELETE: {
      privilege: 'ConfigureComponents',
      handler: async (req, reply) => {
        await disconnect(ctx, (req.params as { id: string }).id);
        reply.code(204);
      },
    },
  });
};
