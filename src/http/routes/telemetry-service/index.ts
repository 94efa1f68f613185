// The TelemetryService: its description and SubmitTestMetricReport, the
// metric definitions, the predefined metric report definition (PoolUsage,
// whose interval and enabled state an Administrator may PATCH) and the
// metric reports kept. The reports themselves are made in ../../telemetry.ts.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { Context } from '../../context.js';
import { cleanPath, METRIC_DEFINITIONS, METRIC_REPORT_DEFINITIONS, METRIC_REPORTS, TELEMETRY } from '../../paths.js';
import { resource } from '../../plugins/protocol.js';
import { collection, link, notFound, odata, RedfishError } from '../../redfish.js';
import {
  DEFAULT_INTERVAL_S,
  duration,
  HEAD_WILDCARD,
  MAX_INTERVAL_S,
  MAX_REPORTS,
  METRICS,
  MIN_INTERVAL_S,
  POOL_USAGE,
  parseDuration,
  type Telemetry,
} from '../../telemetry.js';
import { type DefinitionPatch, definitionPatchSchema, type TestReportBody, testReportSchema } from './schema.js';

const TEST_REPORT = `${TELEMETRY}/Actions/TelemetryService.SubmitTestMetricReport`;
const wildcards = (heads: number[]) => [{ Name: HEAD_WILDCARD.slice(1, -1), Values: heads.map(String) }];

function metricDefinition(t: Telemetry, ctx: Context, id: string): Record<string, unknown> | null {
  const d = METRICS.find((x) => x.id === id);
  if (!d) return null;
  const heads = t.heads(ctx.model());
  return {
    ...odata(`${METRIC_DEFINITIONS}/${d.id}`, 'MetricDefinition'),
    Name: d.name,
    Description: d.description,
    MetricType: 'Gauge',
    MetricDataType: 'Integer',
    Units: d.units,
    // Counted from the pool's block map, exactly.
    Implementation: 'DigitalMeter',
    IsLinear: true,
    MinReadingRange: 0,
    MetricProperties: [d.property(ctx.pool, HEAD_WILDCARD)],
    ...(d.perHead ? { Wildcards: wildcards(heads) } : {}),
  };
}

function reportDefinition(t: Telemetry, ctx: Context): Record<string, unknown> {
  const { enabled, intervalS } = t.definition;
  return {
    ...odata(`${METRIC_REPORT_DEFINITIONS}/${POOL_USAGE}`, 'MetricReportDefinition'),
    Name: 'Pool usage',
    Description: 'Every metric of the pool and its heads, read on a schedule from the pool the service shows.',
    MetricReportDefinitionType: 'Periodic',
    MetricReportDefinitionEnabled: enabled,
    Schedule: { RecurrenceInterval: duration(intervalS) },
    ReportActions: ['RedfishEvent', 'LogToMetricReportsCollection'],
    ReportUpdates: 'Overwrite',
    Metrics: METRICS.map((d) => ({ MetricId: d.id, MetricProperties: [d.property(ctx.pool, HEAD_WILDCARD)] })),
    MetricProperties: METRICS.map((d) => d.property(ctx.pool, HEAD_WILDCARD)),
    Wildcards: wildcards(t.heads(ctx.model())),
    // Linked once its first report exists: a link must resolve (the first comes one interval after start).
    ...(t.report(POOL_USAGE) ? { MetricReport: link(`${METRIC_REPORTS}/${POOL_USAGE}`) } : {}),
    Status: { State: enabled ? 'Enabled' : 'Disabled', Health: 'OK' },
  };
}

function badInterval(value: string): RedfishError {
  return new RedfishError(
    400,
    'PropertyValueFormatError',
    `The value '${value}' of Schedule/RecurrenceInterval is not valid: it must be an ISO 8601 duration from ${duration(MIN_INTERVAL_S)} to ${duration(MAX_INTERVAL_S)}.`,
    [value, 'Schedule/RecurrenceInterval'],
    `Send e.g. ${duration(DEFAULT_INTERVAL_S)}.`,
  );
}

const idOf = (req: FastifyRequest) => (req.params as { id: string }).id;

export const telemetryServiceRoutes: FastifyPluginAsync<{ ctx: Context }> = async (app, { ctx }) => {
  const t = ctx.telemetry;
  resource(app, TELEMETRY, {
    GET: {
      handler: async () => ({
        ...odata(TELEMETRY, 'TelemetryService'),
        Name: 'Telemetry service',
        ServiceEnabled: true,
        Status: { State: 'Enabled', Health: 'OK' },
        MaxReports: MAX_REPORTS,
        MinCollectionInterval: duration(MIN_INTERVAL_S),
        MetricDefinitions: link(METRIC_DEFINITIONS),
        MetricReportDefinitions: link(METRIC_REPORT_DEFINITIONS),
        MetricReports: link(METRIC_REPORTS),
        Actions: { '#TelemetryService.SubmitTestMetricReport': { target: TEST_REPORT } },
      }),
    },
  });
  resource(app, TEST_REPORT, {
    POST: {
      privilege: 'ConfigureManager',
      schema: { body: testReportSchema },
      handler: async (req, reply) => {
        const b = req.body as TestReportBody;
        if (b.MetricReportName === POOL_USAGE) {
          throw new RedfishError(
            400,
            'PropertyValueConflict',
            `The MetricReportName '${POOL_USAGE}' names the report of a metric report definition.`,
            [b.MetricReportName, 'MetricReportName'],
            'Choose another name.',
          );
        }
        t.submitTest(b.MetricReportName, b.GeneratedMetricReportValues);
        reply.code(204);
      },
    },
  });
  resource(app, METRIC_DEFINITIONS, {
    GET: {
      handler: async () =>
        collection(
          METRIC_DEFINITIONS,
          'MetricDefinitionCollection',
          'Metric definitions',
          METRICS.map((d) => `${METRIC_DEFINITIONS}/${d.id}`),
        ),
    },
  });
  resource(app, `${METRIC_DEFINITIONS}/:id`, {
    GET: {
      handler: async (req) => {
        const body = metricDefinition(t, ctx, idOf(req));
        if (!body) throw notFound(cleanPath(req.url));
        return body;
      },
    },
  });
  resource(app, METRIC_REPORT_DEFINITIONS, {
    GET: {
      handler: async () =>
        collection(METRIC_REPORT_DEFINITIONS, 'MetricReportDefinitionCollection', 'Metric report definitions', t.definitionUris()),
    },
  });
  resource(app, `${METRIC_REPORT_DEFINITIONS}/:id`, {
    GET: {
      handler: async (req) => {
        if (idOf(req) !== POOL_USAGE) throw notFound(cleanPath(req.url));
        return reportDefinition(t, ctx);
      },
    },
    PATCH: {
      privilege: 'ConfigureManager',
      schema: { body: definitionPatchSchema },
      handler: async (req) => {
        if (idOf(req) !== POOL_USAGE) throw notFound(cleanPath(req.url));
        const b = req.body as DefinitionPatch;
        let intervalS: number | undefined;
        if (b.Schedule) {
          const s = parseDuration(b.Schedule.RecurrenceInterval);
          if (s === null || s < MIN_INTERVAL_S || s > MAX_INTERVAL_S) throw badInterval(b.Schedule.RecurrenceInterval);
          intervalS = s;
        }
        t.configure({
          ...(b.MetricReportDefinitionEnabled === undefined ? {} : { enabled: b.MetricReportDefinitionEnabled }),
          ...(intervalS === undefined ? {} : { intervalS }),
        });
        return reportDefinition(t, ctx);
      },
    },
  });
  resource(app, METRIC_REPORTS, {
    GET: {
      handler: async () =>
        collection(
          METRIC_REPORTS,
          'MetricReportCollection',
          'Metric reports',
          t.reportIds().map((id) => `${METRIC_REPORTS}/${id}`),
        ),
    },
  });
  resource(app, `${METRIC_REPORTS}/:id`, {
    GET: {
      handler: async (req) => {
        const r = t.report(idOf(req));
        if (!r) throw notFound(cleanPath(req.url));
        return r;
      },
    },
  });
};
