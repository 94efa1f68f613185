// ServiceRoot, the OData service document and the metadata document: open
// to all (DSP0266), the entry points a client starts from. The OEM schema
// they reference is served by ../schemas.
import type { FastifyPluginAsync } from 'fastify';
import type { Context } from '../../context.js';
import { metadataDocument, typeOf } from '../../dmtf.js';
import { ROOT } from '../../paths.js';
import { PROTOCOL_FEATURES, resource } from '../../plugins/protocol.js';
import { link } from '../../redfish.js';

const SERVICES = [
  'Chassis',
  'Fabrics',
  'EventService',
  'TelemetryService',
  'AggregationService',
  'SessionService',
  'AccountService',
  'Registries',
  'JsonSchemas',
  'Managers',
  'CertificateService',
] as const;

export function serviceRoot(uuid: string): Record<string, unknown> {
  return {
    '@odata.id': `${ROOT}/`,
    '@odata.type': typeOf('ServiceRoot'),
    Id: 'RootService',
    Name: 'cxl-mhd fabric manager',
    RedfishVersion: '1.20.0',
    UUID: uuid,
    ...Object.fromEntries(SERVICES.map((s) => [s, link(`${ROOT}/${s}`)])),
    ProtocolFeaturesSupported: PROTOCOL_FEATURES,
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
        value: SERVICES.map((n) => ({ name: n, kind: 'Singleton', url: `${ROOT}/${n}` })),
      }),
    },
  });
  const metadata = metadataDocument();
  resource(app, `${ROOT}/$metadata`, {
    GET: { privilege: 'None', handler: async (_req, reply) => reply.type('application/xml').send(metadata) },
  });
};
