// The project's own schema, CxlMhd, as CSDL under /redfish/v1/Schemas (what
// $metadata references) and as JSON Schema under /redfish/v1/JsonSchemas
// (a JsonSchemaFile resource per schema, DSP0266 "Schema repository").
// The schema files are open like $metadata; the JsonSchemas resources need
// a login like any other resource.
import type { FastifyPluginAsync } from 'fastify';
import { OEM_CSDL_URI, OEM_JSON_SCHEMA_URI, OEM_NAMESPACE, OEM_VERSION, oemCsdl, oemJsonSchema } from '../../oem.js';
import { ROOT } from '../../paths.js';
import { resource } from '../../plugins/protocol.js';
import { collection, odata } from '../../redfish.js';

export const schemaRoutes: FastifyPluginAsync = async (app) => {
  const csdl = oemCsdl();
  const json = JSON.stringify(oemJsonSchema(), null, 2);
  const file = `${ROOT}/JsonSchemas/${OEM_NAMESPACE}.${OEM_VERSION}`;
  resource(app, OEM_CSDL_URI, { GET: { privilege: 'None', handler: async (_req, reply) => reply.type('application/xml').send(csdl) } });
  resource(app, OEM_JSON_SCHEMA_URI, {
    GET: { privilege: 'None', handler: async (_req, reply) => reply.type('application/json').send(json) },
  });
  resource(app, `${ROOT}/JsonSchemas`, {
    GET: { handler: async () => collection(`${ROOT}/JsonSchemas`, 'JsonSchemaFileCollection', 'JSON schemas', [file]) },
  });
  resource(app, file, {
    GET: {
      handler: async () => ({
        ...odata(file, 'JsonSchemaFile'),
        Name: `${OEM_NAMESPACE} OEM schema`,
        Description: 'The Oem.CxlMhd properties of this service.',
        Languages: ['en'],
        Schema: `#${OEM_NAMESPACE}.${OEM_VERSION}`,
        Location: [{ Language: 'en', Uri: OEM_JSON_SCHEMA_URI }],
      }),
    },
  });
};
