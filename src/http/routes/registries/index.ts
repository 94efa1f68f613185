// The message registries the service's messages come from: its own
// (CxlMhd, served here) and the DMTF standard ones (Base, ResourceEvent,
// Fabric), whose files are named by their DMTF publication URI.
import type { FastifyPluginAsync } from 'fastify';
import { STANDARD_REGISTRIES } from '../../dmtf.js';
import { ROOT } from '../../paths.js';
import { resource } from '../../plugins/protocol.js';
import { collection, odata, REGISTRY, registryBody } from '../../redfish.js';

const REGISTRIES = `${ROOT}/Registries`;

export const registriesRoutes: FastifyPluginAsync = async (app) => {
  const standard = Object.entries(STANDARD_REGISTRIES).map(([prefix, version]) => `${prefix}.${version}`);
  resource(app, REGISTRIES, {
    GET: {
      handler: async () =>
        collection(
          REGISTRIES,
          'MessageRegistryFileCollection',
          'Registries',
          [REGISTRY, ...standard].map((r) => `${REGISTRIES}/${r}`),
        ),
    },
  });
  resource(app, `${REGISTRIES}/${REGISTRY}`, {
    GET: {
      handler: async () => ({
        ...odata(`${REGISTRIES}/${REGISTRY}`, 'MessageRegistryFile'),
        Name: 'cxl-mhd message registry file',
        Languages: ['en'],
        Registry: `${REGISTRY}.0`,
        Location: [{ Language: 'en', Uri: `${REGISTRIES}/${REGISTRY}/Registry` }],
      }),
    },
  });
  resource(app, `${REGISTRIES}/${REGISTRY}/Registry`, { GET: { handler: async () => registryBody() } });
  for (const id of standard) {
    resource(app, `${REGISTRIES}/${id}`, {
      GET: {
        handler: async () => ({
          ...odata(`${REGISTRIES}/${id}`, 'MessageRegistryFile'),
          Name: `${id.split('.')[0]} message registry file`,
          Languages: ['en'],
          Registry: id,
          Location: [{ Language: 'en', PublicationUri: `https://redfish.dmtf.org/registries/${id}.json` }],
        }),
      },
    });
  }
};
