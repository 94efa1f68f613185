// /redfish/v1/openapi.yaml (DSP0266 "OpenAPI"): an OpenAPI 3.0 document of
// this service's own URIs, built from the routes as registered (each URI,
// the methods it takes, the privilege each needs, the request body schemas
// the routes validate with), so it cannot drift from what is served. Open
// to all, like $metadata.
import type { FastifyPluginAsync } from 'fastify';
import { stringify } from 'yaml';
import { ROOT } from '../../paths.js';
import { resource } from '../../plugins/protocol.js';

const SUMMARY: Record<string, string> = {
  GET: 'Read the resource',
  POST: 'Create a member or run the action',
  PATCH: 'Change the resource',
  DELETE: 'Delete the resource',
};

function document(routes: { method: string; url: string; privilege: string; allowed: boolean; body?: unknown }[]): string {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    if (!r.allowed || !r.url.startsWith(ROOT) || r.method === 'HEAD') continue;
    const path = r.url.replace(/:([A-Za-z]+)/g, '{$1}');
    const params = [...r.url.matchAll(/:([A-Za-z]+)/g)].map((m) => ({
      name: m[1],
      in: 'path',
      required: true,
      schema: { type: 'string' },
    }));
    const op: Record<string, unknown> = {
      summary: SUMMARY[r.method] ?? r.method,
      description: r.privilege === 'None' ? 'Open to all.' : `Needs the ${r.privilege} privilege.`,
      ...(params.length ? { parameters: params } : {}),
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: r.body } } } } : {}),
      responses: {
        [r.method === 'POST' ? '201' : r.method === 'DELETE' ? '204' : '200']: { description: 'Success' },
        default: { description: 'A Redfish error (an error object with @Message.ExtendedInfo)' },
      },
      ...(r.privilege === 'None' ? { security: [] } : {}),
    };
    paths[path] = { ...paths[path], [r.method.toLowerCase()]: op };
  }
  return stringify({
    openapi: '3.0.3',
    info: {
      title: 'cxl-mhd fabric manager (Redfish)',
      version: '1.0.0',
      description: 'The URIs this service serves; the resources are DMTF Redfish (DSP8010 2025.4) and the CxlMhd OEM schema.',
    },
    components: {
      securitySchemes: {
        basic: { type: 'http', scheme: 'basic' },
        session: { type: 'apiKey', in: 'header', name: 'X-Auth-Token' },
      },
    },
    security: [{ basic: [] }, { session: [] }],
    paths,
  });
}

export const openapiRoutes: FastifyPluginAsync = async (app) => {
  let text: string | null = null;
  resource(app, `${ROOT}/openapi.yaml`, {
    GET: {
      privilege: 'None',
      // Built on first use: by then every route is registered.
      handler: async (_req, reply) => {
        if (text === null) text = document(app.redfishRoutes);
        return reply.type('application/yaml').send(text);
      },
    },
  });
};
