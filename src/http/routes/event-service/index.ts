// The EventService: its description, the subscription collection and the
// SSE stream (ServerSentEventUri) fed by the EventHub.
import type { FastifyPluginAsync } from 'fastify';
import type { Context } from '../../context.js';
import { STANDARD_REGISTRIES } from '../../dmtf.js';
import { oem } from '../../oem.js';
import { EVENTS, SSE_PATH } from '../../paths.js';
import { resource } from '../../plugins/protocol.js';
import { collection, link, odata, RedfishError } from '../../redfish.js';

export const eventServiceRoutes: FastifyPluginAsync<{ ctx: Context }> = async (app, { ctx }) => {
  resource(app, EVENTS, {
    GET: {
      handler: async () => ({
        ...odata(EVENTS, 'EventService'),
        Name: 'Event service',
        ServiceEnabled: true,
        ServerSentEventUri: SSE_PATH,
        EventFormatTypes: ['Event'],
        RegistryPrefixes: ['CxlMhd', ...Object.keys(STANDARD_REGISTRIES).filter((p) => p !== 'Base')],
        Subscriptions: link(`${EVENTS}/Subscriptions`),
        Oem: oem('EventService', { RingSize: ctx.hub.ringSize, MaxSseClients: ctx.hub.maxClients, LastEventId: ctx.hub.lastId }),
      }),
    },
  });
  resource(app, `${EVENTS}/Subscriptions`, {
    GET: {
      handler: async () => collection(`${EVENTS}/Subscriptions`, 'EventDestinationCollection', 'Subscriptions (SSE only)', []),
    },
  });
  resource(app, SSE_PATH, {
    GET: {
      handler: (req, reply) => {
        // HEAD (which fastify routes here too) learns the type; it never becomes a stream.
        if (req.method === 'HEAD') return reply.type('text/event-stream').send();
        const last = req.headers['last-event-id'];
        const fromQuery = (req.query as Record<string, unknown>).lastEventId;
        const id = typeof last === 'string' ? last : typeof fromQuery === 'string' ? fromQuery : undefined;
        if (ctx.hub.clientCount >= ctx.hub.maxClients) {
          reply.header('Connection', 'close');
          throw new RedfishError(
            503,
            'EventSubscriptionLimitExceeded',
            `The limit of ${ctx.hub.maxClients} event stream clients is reached.`,
            [],
            'Close another event stream or retry later.',
          );
        }
        reply.hijack();
        ctx.hub.attach(reply.raw, id);
      },
    },
  });
};
