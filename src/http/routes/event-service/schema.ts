// Request bodies of the EventService: a new push subscription, a change to
// one, the service's delivery settings, and SubmitTestEvent.
import { linkSchema, odataTypeSchema } from '../schemas.js';

const names = (max: number) => ({ type: 'array', maxItems: max, items: { type: 'string', minLength: 1, maxLength: 64 } }) as const;

export const subscriptionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['Destination', 'Protocol'],
  properties: {
    '@odata.type': odataTypeSchema,
    Name: { type: 'string', maxLength: 64 },
    Destination: { type: 'string', minLength: 1, maxLength: 1024 },
    Context: { type: 'string', maxLength: 256 },
    Protocol: { enum: ['Redfish'] },
    SubscriptionType: { enum: ['RedfishEvent'] },
    EventFormatType: { enum: ['Event', 'MetricReport'] },
    MetricReportDefinitions: { type: 'array', maxItems: 8, items: linkSchema },
    RegistryPrefixes: names(8),
    ResourceTypes: names(32),
    OriginResources: { type: 'array', maxItems: 32, items: linkSchema },
    SubordinateResources: { type: 'boolean' },
    DeliveryRetryPolicy: { enum: ['SuspendRetries', 'TerminateAfterRetries', 'RetryForever'] },
    HttpHeaders: {
      type: 'array',
      maxItems: 8,
      items: { type: 'object', maxProperties: 1, additionalProperties: { type: 'string', maxLength: 1024 } },
    },
  },
} as const;

export interface SubscriptionBody {
  Destination: string;
  Context?: string;
  RegistryPrefixes?: string[];
  ResourceTypes?: string[];
  OriginResources?: { '@odata.id': string }[];
  SubordinateResources?: boolean;
  DeliveryRetryPolicy?: 'SuspendRetries' | 'TerminateAfterRetries' | 'RetryForever';
  EventFormatType?: 'Event' | 'MetricReport';
  MetricReportDefinitions?: { '@odata.id': string }[];
  HttpHeaders?: Record<string, string>[];
}

export const subscriptionPatchSchema = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    '@odata.type': odataTypeSchema,
    Context: { type: 'string', maxLength: 256 },
    DeliveryRetryPolicy: subscriptionSchema.properties.DeliveryRetryPolicy,
    Status: {
      type: 'object',
      additionalProperties: false,
      required: ['State'],
      properties: { State: { enum: ['Enabled', 'Disabled'] } },
    },
  },
} as const;

export interface SubscriptionPatch {
  Context?: string;
  DeliveryRetryPolicy?: SubscriptionBody['DeliveryRetryPolicy'];
  Status?: { State: 'Enabled' | 'Disabled' };
}

export const servicePatchSchema = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    '@odata.type': odataTypeSchema,
    DeliveryRetryAttempts: { type: 'integer', minimum: 0, maximum: 20 },
    DeliveryRetryIntervalSeconds: { type: 'integer', minimum: 0, maximum: 3600 },
  },
} as const;

export const testEventSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['MessageId'],
  properties: {
    EventType: { enum: ['Other', 'Alert', 'ResourceAdded', 'ResourceRemoved', 'ResourceUpdated', 'StatusChange'] },
    EventId: { type: 'string', maxLength: 64 },
    EventTimestamp: { type: 'string', maxLength: 64 },
    EventGroupId: { type: 'integer' },
    Message: { type: 'string', maxLength: 1024 },
    MessageArgs: { type: 'array', maxItems: 16, items: { type: 'string', maxLength: 256 } },
    MessageId: { type: 'string', pattern: '^[A-Za-z0-9]+\\.\\d+\\.\\d+(\\.\\d+)?\\.[A-Za-z0-9]+$', maxLength: 128 },
    MessageSeverity: { enum: ['OK', 'Warning', 'Critical'] },
    Severity: { enum: ['OK', 'Warning', 'Critical'] },
    OriginOfCondition: { type: 'string', maxLength: 512 },
    Context: { type: 'string', maxLength: 256 },
  },
} as const;

export interface TestEventBody {
  MessageId: string;
  Message?: string;
  MessageArgs?: string[];
  MessageSeverity?: 'OK' | 'Warning' | 'Critical';
  Severity?: 'OK' | 'Warning' | 'Critical';
  OriginOfCondition?: string;
}
