// The EventService: its description and delivery settings, SubmitTestEvent,
// the subscriptions (push EventDestinations made by POST, and one per open
// SSE stream) with GET/PATCH/DELETE of each, and the SSE stream itself.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { Context } from '../../context.js';
import { oem } from '../../oem.js';
import { cleanPath, EVENTS, METRIC_REPORT_DEFINITIONS, SSE_PATH, SUBSCRIPTIONS } from '../../paths.js';
import { resource } from '../../plugins/protocol.js';
import { collection, link, notFound, odata, RedfishError } from '../../redfish.js';
import { MAX_PUSH_SUBSCRIPTIONS, type Subscription } from '../../subscriptions.js';
import {
  type SubscriptionBody,
  type SubscriptionPatch,
  servicePatchSchema,
  subscriptionPatchSchema,
  subscriptionSchema,
  type TestEventBody,
  testEventSchema,
} from './schema.js';

/** Whether an Accept header lets the answer be text/event-stream (none, or one naming it, text/* or any type). */
export function acceptsEventStream(accept: string | undefined): boolean {
  if (accept === undefined || accept.trim() === '') return true;
  return accept.split(',').some((part) => {
    const [type, ...params] = part.split(';').map((x) => x.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    if (q && Number(q.slice(2)) === 0) return false;
    return type === 'text/event-stream' || type === 'text/*' || type === '*/*';
  });
}

const TEST_EVENT = `${EVENTS}/Actions/EventService.SubmitTestEvent`;
/** The registries events come from: what RegistryPrefixes may name. */
export const EVENT_REGISTRIES = ['CxlMhd', 'ResourceEvent', 'Fabric'];

export function subscriptionBody(s: Subscription): Record<string, unknown> {
  const id = `${SUBSCRIPTIONS}/${s.id}`;
  return {
    ...odata(id, 'EventDestination'),
    Name: s.kind === 'SSE' ? `Event stream ${s.id}` : `Event subscription ${s.id}`,
    Destination: s.destination,
    Context: s.context,
    Protocol: 'Redfish',
    SubscriptionType: s.kind,
    // A stream carries both; a push destination gets the one it asked for.
    EventFormatType: s.kind === 'SSE' ? 'Event' : (s.format ?? 'Event'),
    RegistryPrefixes: s.registryPrefixes,
    ResourceTypes: s.resourceTypes,
    OriginResources: s.originResources.map(link),
    SubordinateResources: s.subordinateResources,
    // DSP0266: the headers a subscription sends are never read back.
    HttpHeaders: [],
    ...(s.kind === 'RedfishEvent' ? { DeliveryRetryPolicy: s.retryPolicy } : {}),
    ...(s.format === 'MetricReport' ? { MetricReportDefinitions: (s.reportDefinitions ?? []).map(link) } : {}),
    Status: { State: s.state, Health: s.state === 'Enabled' ? 'OK' : 'Warning' },
    Actions: {
      '#EventDestination.ResumeSubscription': { target: `${id}/Actions/EventDestination.ResumeSubscription` },
      '#EventDestination.SuspendSubscription': { target: `${id}/Actions/EventDestination.SuspendSubscription` },
    },
  };
}

const badValue = (prop: string, value: string, why: string) =>
  new RedfishError(
    400,
    'PropertyValueFormatError',
    `The value '${value}' of ${prop} is not valid: ${why}.`,
    [value, prop],
    'Correct the value.',
  );

/** An http(s) URL with a host and no credentials in it (they would be shown to every reader of the subscription). */
function checkDestination(d: string): string {
  let u: URL;
  try {
    u = new URL(d);
  } catch {
    throw badValue('Destination', d, 'it is not a URL');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw badValue('Destination', d, 'only http and https destinations are served');
  if (u.username || u.password) throw badValue('Destination', d, 'put credentials in HttpHeaders, not in the URL');
  return u.href;
}

/** MetricReportDefinitions of a new subscription: each must name one this service has. */
function reportDefinitions(ctx: Context, links: { '@odata.id': string }[]): string[] {
  const known = ctx.telemetry.definitionUris();
  for (const l of links) {
    const uri = l['@odata.id'].replace(/\/$/, '');
    if (!known.includes(uri)) {
      throw new RedfishError(
        400,
        'PropertyValueNotInList',
        `The value '${l['@odata.id']}' of MetricReportDefinitions is not in the list of acceptable values.`,
        [l['@odata.id'], 'MetricReportDefinitions'],
        `Name a member of ${METRIC_REPORT_DEFINITIONS}.`,
      );
    }
  }
  return links.map((l) => l['@odata.id'].replace(/\/$/, ''));
}

function subscriptionOf(ctx: Context, req: FastifyRequest): Subscription {
  const s = ctx.events.subs.get((req.params as { id: string }).id);
  if (!s) throw notFound(cleanPath(req.url));
  return s;
}

/** ConfigureSelf lets a user change what it owns; everything else needs ConfigureManager. */
function mayChange(ctx: Context, req: FastifyRequest, s: Subscription): void {
  if (req.user !== null && (req.user === s.owner || ctx.auth.hasPrivilege(req.user, 'ConfigureManager'))) return;
  throw new RedfishError(
    403,
    'InsufficientPrivilege',
    'There are insufficient privileges for the account or credentials associated with the current session to perform the requested operation.',
    [],
    'Use an account with ConfigureManager, or the one that owns this subscription.',
  );
}

export const eventServiceRoutes: FastifyPluginAsync<{ ctx: Context }> = async (app, { ctx }) => {
  const { events, hub } = ctx;
  resource(app, EVENTS, {
    GET: {
      handler: async () => ({
        ...odata(EVENTS, 'EventService'),
        Name: 'Event service',
        ServiceEnabled: true,
        Status: { State: 'Enabled', Health: 'OK' },
        DeliveryRetryAttempts: events.subs.settings.retryAttempts,
        DeliveryRetryIntervalSeconds: events.subs.settings.retryIntervalSeconds,
        ServerSentEventUri: SSE_PATH,
        EventFormatTypes: ['Event', 'MetricReport'],
        RegistryPrefixes: EVENT_REGISTRIES,
        SubordinateResourcesSupported: true,
        Subscriptions: link(SUBSCRIPTIONS),
        Actions: { '#EventService.SubmitTestEvent': { target: TEST_EVENT } },
        Oem: oem('EventService', { RingSize: hub.ringSize, MaxSseClients: hub.maxClients, LastEventId: hub.lastId }),
      }),
    },
    PATCH: {
      privilege: 'ConfigureManager',
      schema: { body: servicePatchSchema },
      handler: async (req, reply) => {
        const b = req.body as { DeliveryRetryAttempts?: number; DeliveryRetryIntervalSeconds?: number };
        events.subs.setSettings({
          ...(b.DeliveryRetryAttempts === undefined ? {} : { retryAttempts: b.DeliveryRetryAttempts }),
          ...(b.DeliveryRetryIntervalSeconds === undefined ? {} : { retryIntervalSeconds: b.DeliveryRetryIntervalSeconds }),
        });
        reply.code(204);
      },
    },
  });

  resource(app, TEST_EVENT, {
    POST: {
      privilege: 'ConfigureManager',
      schema: { body: testEventSchema },
      handler: async (req, reply) => {
        const b = req.body as TestEventBody;
        hub.publish([
          {
            EventType: 'Other',
            MessageId: b.MessageId,
            Message: b.Message ?? `Test event ${b.MessageId}.`,
            MessageArgs: b.MessageArgs ?? [],
            MessageSeverity: b.MessageSeverity ?? b.Severity ?? 'OK',
            OriginOfCondition: link(b.OriginOfCondition ?? EVENTS),
          },
        ]);
        reply.code(204);
      },
    },
  });

  resource(app, SUBSCRIPTIONS, {
    GET: {
      handler: async () =>
        collection(
          SUBSCRIPTIONS,
          'EventDestinationCollection',
          'Event subscriptions',
          events.subs.list().map((s) => `${SUBSCRIPTIONS}/${s.id}`),
        ),
    },
    POST: {
      privilege: 'ConfigureManager',
      schema: { body: subscriptionSchema },
      handler: async (req, reply) => {
        const b = req.body as SubscriptionBody;
        const destination = checkDestination(b.Destination);
        for (const p of b.RegistryPrefixes ?? []) {
          if (!EVENT_REGISTRIES.includes(p)) {
            throw new RedfishError(
              400,
              'PropertyValueNotInList',
              `The value '${p}' of RegistryPrefixes is not in the list of acceptable values.`,
              [p, 'RegistryPrefixes'],
            );
          }
        }
        if (events.subs.pushCount >= MAX_PUSH_SUBSCRIPTIONS) {
          throw new RedfishError(
            503,
            'EventSubscriptionLimitExceeded',
            `The limit of ${MAX_PUSH_SUBSCRIPTIONS} event subscriptions is reached.`,
            [],
            'Delete a subscription first.',
          );
        }
        const s = events.subs.add({
          destination,
          context: b.Context ?? '',
          registryPrefixes: b.RegistryPrefixes ?? [],
          resourceTypes: b.ResourceTypes ?? [],
          originResources: (b.OriginResources ?? []).map((o) => o['@odata.id']),
          subordinateResources: b.SubordinateResources ?? false,
          headers: Object.assign({}, ...(b.HttpHeaders ?? [])),
          retryPolicy: b.DeliveryRetryPolicy ?? 'SuspendRetries',
          ...(b.EventFormatType === 'MetricReport' ? { format: 'MetricReport' as const } : {}),
          ...(b.MetricReportDefinitions ? { reportDefinitions: reportDefinitions(ctx, b.MetricReportDefinitions) } : {}),
          owner: req.user ?? '',
        });
        reply.code(201).header('Location', `${SUBSCRIPTIONS}/${s.id}`);
        return subscriptionBody(s);
      },
    },
  });

  resource(app, `${SUBSCRIPTIONS}/:id`, {
    GET: { handler: async (req) => subscriptionBody(subscriptionOf(ctx, req)) },
    PATCH: {
      privilege: 'ConfigureSelf',
      schema: { body: subscriptionPatchSchema },
      handler: async (req) => {
        const s = subscriptionOf(ctx, req);
        mayChange(ctx, req, s);
        const b = req.body as SubscriptionPatch;
        if (b.DeliveryRetryPolicy !== undefined) events.subs.update(s.id, { retryPolicy: b.DeliveryRetryPolicy });
        if (b.Status) events.setState(s.id, b.Status.State);
        if (b.Context !== undefined) events.setContext(s.id, b.Context);
        return subscriptionBody(s);
      },
    },
    DELETE: {
      privilege: 'ConfigureSelf',
      handler: async (req, reply) => {
        const s = subscriptionOf(ctx, req);
        mayChange(ctx, req, s);
        events.remove(s.id);
        reply.code(204);
      },
    },
  });
  for (const [action, state] of [
    ['ResumeSubscription', 'Enabled'],
    ['SuspendSubscription', 'Disabled'],
  ] as const) {
    resource(app, `${SUBSCRIPTIONS}/:id/Actions/EventDestination.${action}`, {
      POST: {
        privilege: 'ConfigureSelf',
        handler: async (req, reply) => {
          const s = subscriptionOf(ctx, req);
          mayChange(ctx, req, s);
          events.setState(s.id, state);
          reply.code(204);
        },
      },
    });
  }

  resource(app, SSE_PATH, {
    GET: {
      handler: (req, reply) => {
        // HEAD (which fastify routes here too) learns the type; it never becomes a stream.
        if (req.method === 'HEAD') return reply.type('text/event-stream').send();
        const last = req.headers['last-event-id'];
        const fromQuery = (req.query as Record<string, unknown>).lastEventId;
        const id = typeof last === 'string' ? last : typeof fromQuery === 'string' ? fromQuery : undefined;
        if (!acceptsEventStream(req.headers.accept)) {
          throw new RedfishError(
            406,
            'GeneralError',
            `${SSE_PATH} is an event stream (text/event-stream); the request accepts only ${String(req.headers.accept)}.`,
            [],
            'Send Accept: text/event-stream (or leave Accept out).',
          );
        }
        if (hub.clientCount >= hub.maxClients) {
          reply.header('Connection', 'close');
          throw new RedfishError(
            503,
            'EventSubscriptionLimitExceeded',
            `The limit of ${hub.maxClients} event stream clients is reached.`,
            [],
            'Close another event stream or retry later.',
          );
        }
        reply.hijack();
        events.openStream(reply.raw, id, req.user ?? '', SSE_PATH);
      },
    },
  });
};
