// The CXL fabric: one initiator Endpoint per head. Its Connections live in
// ./connections.
import type { FastifyPluginAsync } from 'fastify';
import type { Context } from '../../context.js';
import type { PoolModel } from '../../model.js';
import { oem } from '../../oem.js';
import { cleanPath, FABRIC, paths, ROOT } from '../../paths.js';
import { resource } from '../../plugins/protocol.js';
import { collection, link, notFound, odata } from '../../redfish.js';
import { connectionRoutes } from './connections/index.js';

export function endpointBody(m: PoolModel, head: number): Record<string, unknown> {
  const r = m.snap.heads.find((x) => x.head === head);
  const st = m.snap.status.heads.find((x) => x.id === head);
  const attached = st?.attached === true;
  const conns = [...m.connections.values()].filter((c) => c.heads.includes(head)).map((c) => paths.connection(c.id));
  return {
    ...odata(paths.endpoint(head), 'Endpoint'),
    Name: `Head ${head}`,
    EndpointProtocol: 'CXL',
    ConnectedEntities: [{ EntityRole: 'Initiator', EntityType: 'RootComplex' }],
    Status: { State: attached ? 'Enabled' : 'Absent', Health: r?.phase === 'refused' ? 'Warning' : 'OK' },
    Links: { Connections: conns.map(link), 'Connections@odata.count': conns.length },
    Oem: oem('Endpoint', {
      Head: head,
      Attached: attached,
      Phase: r?.phase ?? 'detached',
      Reason: r?.reason ?? null,
      QemuPid: st?.pid ?? r?.pid ?? null,
      Delivery: r?.delivery ?? null,
      FmldOwner: m.snap.status.fmldOwner === head,
      GrantedBytes: st?.grantedBytes ?? 0,
      SharedBytes: st?.sharedBytes ?? 0,
    }),
  };
}

export const fabricRoutes: FastifyPluginAsync<{ ctx: Context }> = async (app, { ctx }) => {
  const { pool } = ctx;
  resource(app, `${ROOT}/Fabrics`, {
    GET: { handler: async () => collection(`${ROOT}/Fabrics`, 'FabricCollection', 'Fabrics', [FABRIC]) },
  });
  resource(app, FABRIC, {
    GET: {
      handler: async () => ({
        ...odata(FABRIC, 'Fabric'),
        Name: `CXL fabric of pool ${pool}`,
        FabricType: 'CXL',
        UUID: ctx.events.subs.identity.fabric,
        Status: { State: 'Enabled', Health: 'OK' },
        Endpoints: link(`${FABRIC}/Endpoints`),
        Connections: link(`${FABRIC}/Connections`),
      }),
    },
  });
  resource(app, `${FABRIC}/Endpoints`, {
    GET: {
      handler: async () => {
        const heads = Array.from({ length: ctx.model().snap.status.headCount }, (_, h) => paths.endpoint(h));
        return collection(`${FABRIC}/Endpoints`, 'EndpointCollection', 'Endpoints', heads);
      },
    },
  });
  resource(app, `${FABRIC}/Endpoints/:id`, {
    GET: {
      handler: async (req) => {
        const m = ctx.model();
        const r = /^head(\d{1,3})$/.exec((req.params as { id: string }).id);
        const head = r ? Number(r[1]) : -1;
        if (head < 0 || head >= m.snap.status.headCount) throw notFound(cleanPath(req.url));
        return endpointBody(m, head);
      },
    },
  });
  await app.register(connectionRoutes, { ctx });
};
