// The AggregationService as an agent shows it: the one ConnectionMethod by
// which an aggregator (a fabric manager above this one, such as OFA Sunfish)
// reaches this service, named in the agent's AggregationSourceDiscovered
// announcement.
import type { FastifyPluginAsync } from 'fastify';
import { AGGREGATION, CONNECTION_METHOD, CONNECTION_METHODS } from '../../paths.js';
import { resource } from '../../plugins/protocol.js';
import { collection, link, odata } from '../../redfish.js';

export const aggregationServiceRoutes: FastifyPluginAsync = async (app) => {
  resource(app, AGGREGATION, {
    GET: {
      handler: async () => ({
        ...odata(AGGREGATION, 'AggregationService'),
        Name: 'Aggregation service',
        Description: 'How an aggregator reaches this fabric manager as one of its sources.',
        ServiceEnabled: true,
        Status: { State: 'Enabled', Health: 'OK' },
        ConnectionMethods: link(CONNECTION_METHODS),
      }),
    },
  });
  resource(app, CONNECTION_METHODS, {
    GET: {
      handler: async () => collection(CONNECTION_METHODS, 'ConnectionMethodCollection', 'Connection methods', [CONNECTION_METHOD]),
    },
  });
  resource(app, CONNECTION_METHOD, {
    GET: {
      handler: async () => ({
        ...odata(CONNECTION_METHOD, 'ConnectionMethod'),
        Name: 'Redfish over HTTP',
        Description: 'This service is a Redfish service; an aggregator subscribes to its events and reads it with a ReadOnly account.',
        ConnectionMethodType: 'Redfish',
        ConnectionMethodVariant: 'cxl-mhd',
      }),
    },
  });
};
