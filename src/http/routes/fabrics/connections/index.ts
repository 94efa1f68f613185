// Connections: every holding of the pool as Redfish sees it (made here,
// over the FM-LD port or fm.sock, or a static window); POST connects chunks
// to heads, DELETE disconnects.
import type { FastifyPluginAsync } from 'fastify';
import type { Context } from '../../../context.js';
import type { ConnectionView } from '../../../model.js';
import { cleanPath, FABRIC, paths } from '../../../paths.js';
import { resource } from '../../../plugins/protocol.js';
import { collection, link, notFound, odata } from '../../../redfish.js';
import { connect, disconnect } from './connect.js';
import { type ConnectionBody, connectionSchema } from './schema.js';

export function connectionBody(pool: string, c: ConnectionView): Record<string, unknown> {
  return {
    ...odata(paths.connection(c.id), '#Connection.v1_3_0.Connection'),
    Name: `Memory connection ${c.id}`,
    ConnectionType: 'Memory',
    Status: { State: c.state === 'active' ? 'Enabled' : 'Disabled', Health: 'OK' },
    MemoryChunkInfo: c.chunks.map((id) => ({ MemoryChunk: link(paths.chunk(pool, id)), AccessCapabilities: ['Read', 'Write'] })),
    Links: { InitiatorEndpoints: c.heads.map((h) => link(paths.endpoint(h))), 'InitiatorEndpoints@odata.count': c.heads.length },
    Oem: { CxlMhd: { Origin: c.origin, Shared: c.shared, State: c.state } },
  };
}

export const connectionRoutes: FastifyPluginAsync<{ ctx: Context }> = async (app, { ctx }) => {
  const { pool } = ctx;
  const conns = `${FABRIC}/Connections`;
  resource(app, conns, {
    GET: {
      handler: async () =>
        collection(
          conns,
          '#ConnectionCollection.ConnectionCollection',
          'Connections',
          [...ctx.model().connections.keys()].map(paths.connection),
        ),
    },
    POST: {
      privilege: 'ConfigureComponents',
      schema: { body: connectionSchema },
      handler: async (req, reply) => {
        const def = await connect(ctx, req.body as ConnectionBody);
        reply.code(201).header('Location', paths.connection(def.id));
        // From what was just made: every add answered Success, so it is active on all its heads.
        return connectionBody(pool, {
          id: def.id,
          origin: 'redfish',
          chunks: def.chunks,
          heads: def.heads,
          shared: def.shared,
          state: 'active',
          def,
        });
      },
    },
  });
  resource(app, `${conns}/:id`, {
    GET: {
      handler: async (req) => {
        const c = ctx.model().connections.get((req.params as { id: string }).id);
        if (!c) throw notFound(cleanPath(req.url));
        return connectionBody(pool, c);
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
