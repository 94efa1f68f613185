// Request bodies of the TelemetryService: a change to a metric report
// definition (enabled, interval) and SubmitTestMetricReport.
import { linkSchema, odataTypeSchema } from '../schemas.js';

export const definitionPatchSchema = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    '@odata.type': odataTypeSchema,
    MetricReportDefinitionEnabled: { type: 'boolean' },
    Schedule: {
      type: 'object',
      additionalProperties: false,
      required: ['RecurrenceInterval'],
      properties: { RecurrenceInterval: { type: 'string', maxLength: 32 } },
    },
  },
} as const;

export interface DefinitionPatch {
  MetricReportDefinitionEnabled?: boolean;
  Schedule?: { RecurrenceInterval: string };
}

const text = (max: number) => ({ type: 'string', maxLength: max }) as const;

export const testReportSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['MetricReportName', 'GeneratedMetricReportValues'],
  properties: {
    // It names a MetricReports member: a path segment.
    MetricReportName: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' },
    GeneratedMetricReportValues: {
      type: 'array',
      maxItems: 64,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['MetricId', 'MetricValue'],
        properties: {
          MetricId: text(64),
          MetricValue: text(256),
          Timestamp: text(64),
          MetricProperty: text(512),
          MetricDefinition: linkSchema,
        },
      },
    },
  },
} as const;

export interface TestReportBody {
  MetricReportName: string;
  GeneratedMetricReportValues: {
    MetricId: string;
    MetricValue: string;
    Timestamp?: string;
    MetricProperty?: string;
    MetricDefinition?: { '@odata.id': string };
  }[];
}
