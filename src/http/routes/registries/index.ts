// The message registries this service's events and errors use.
import type { FastifyPluginAsync } from 'fastify';
import { ROOT } from '../../paths.js';
import { resource } from '../../plugins/protocol.js';
import { collection, odata, REGISTRY, registryBody } from '../../redfish.js';

export const registriesRoutes: FastifyPluginAsync = async (app) => {
  resource(app, `${ROOT}/Registries`, {
    GET: {
      handler: async () =>
        collection(`${ROOT}/Registries`, '#MessageRegistryFileCollection.MessageRegistryFileCollection', 'Registries', [
          `${ROOT}/Registries/${REGISTRY}`,
        ]),
    },
  });
  resource(app, `${ROOT}/Registries/${REGISTRY}`, {
    GET: {
      handler: async () => ({
        ...odata(`${ROOT}/Registries/${REGISTRY}`, '#MessageRegistryFile.v1_1_3.MessageRegistryFile'),
        Name: 'cxl-mhd message registry file',
        Languages: ['en'],
        Registry: `${REGISTRY}.0`,
        Location: [{ Language: 'en', Uri: `${ROOT}/Registries/${REGISTRY}/Registry` }],
      }),
    },
  });
  resource(app, `${ROOT}/Registries/${REGISTRY}/Registry`, { GET: { handler: async () => registryBody() } });
};
