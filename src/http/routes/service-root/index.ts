// ServiceRoot and the OData service document: open to all (DSP0266), the
// entry points a client starts from.
import type { FastifyPluginAsync } from 'fastify';
import type { Context } from '../../context.js';
import { ROOT } from '../../paths.js';
import { resource } from '../../plugins/protocol.js';
import { link } from '../../redfish.js';

export function serviceRoot(uuid: string): Record<string, unknown> {
  return {
    '@odata.id': `${ROOT}/`,
    '@odata.type': '#ServiceRoot.v1_17_0.ServiceRoot',
    Id: 'RootService',
    Name: 'cxl-mhd fabric manager',
    RedfishVersion: '1.20.0',
    UUID: uuid,
    Chassis: link(`${ROOT}/Chassis`),
    Fabrics: link(`${ROOT}/Fabrics`),
    EventService: link(`${ROOT}/EventService`),
    AggregationService: link(`${ROOT}/AggregationService`),
    SessionService: link(`${ROOT}/SessionService`),
    Registries: link(`${ROOT}/Registries`),
    Links: { Sessions: link(`${ROOT}/SessionService/Sessions`) },
  };
}

export const serviceRootRoutes: FastifyPluginAsync<{ ctx: Context }> = async (app, { ctx }) => {
  resource(app, '/redfish', { GET: { privilege: 'None', handler: async () => ({ v1: `${ROOT}/` }) } });
  resource(app, ROOT, { GET: { privilege: 'None', handler: async () => serviceRoot(ctx.uuid) } });
  resource(app, `${ROOT}/odata`, {
    GET: {
      privilege: 'None',
      handler: async () => ({
        '@odata.context': `${ROOT}/$metadata`,
        value: ['Chassis', 'Fabrics', 'EventService', 'SessionService', 'Registries', 'AggregationService'].map((n) => ({
          name: n,
          kind: 'Singleton',
          url: `${ROOT}/${n}`,
        })),
      }),
    },
  });
};
