// What each Redfish resource type this service serves may and must hold,
// as lists of property names read from DSP8010 2025.4 (no npm package
// carries DMTF's JSON Schemas, so the tests state the lists and ajv checks
// every GET payload against them). Oem.CxlMhd objects are checked against
// the JSON Schema the service itself publishes.
import { Ajv, type ValidateFunction } from 'ajv';

const COMMON = ['@odata.id', '@odata.type', '@odata.etag', 'Id', 'Name', 'Description', 'Oem', 'Status', 'Links', 'Actions'];

interface TypeProps {
  required: string[];
  props: string[];
}

const t = (required: string[], props: string[]): TypeProps => ({ required: ['@odata.id', '@odata.type', ...required], props });

/** Per resource type (the namespace of `@odata.type`). */
export const RESOURCE_PROPS: Record<string, TypeProps> = {
  ServiceRoot: t(
    ['Id', 'Name', 'Links'],
    [
      'RedfishVersion',
      'UUID',
      'Chassis',
      'Fabrics',
      'EventService',
      'TelemetryService',
      'AggregationService',
      'SessionService',
      'AccountService',
      'Registries',
      'JsonSchemas',
      'Managers',
      'CertificateService',
      'Product',
      'Vendor',
      'ProtocolFeaturesSupported',
    ],
  ),
  Chassis: t(
    ['Id', 'Name', 'ChassisType'],
    ['ChassisType', 'Manufacturer', 'Model', 'SerialNumber', 'UUID', 'MemoryDomains', 'PCIeDevices'],
  ),
  MemoryDomain: t(['Id', 'Name'], ['AllowsMemoryChunkCreation', 'AllowsBlockProvisioning', 'MemoryChunks']),
  MemoryChunks: t(['Id', 'Name'], ['MemoryChunkSizeMiB', 'AddressRangeOffsetMiB', 'AddressRangeType']),
  PCIeDevice: t(['Id', 'Name'], ['DeviceType', 'SerialNumber', 'CXLDevice', 'CXLLogicalDevices']),
  CXLLogicalDevice: t(['Id', 'Name'], ['SemanticsSupported', 'MemorySizeMiB', 'MemoryRegions', 'Identifiers']),
  MemoryRegion: t(
    ['Id', 'Name', 'RegionType', 'RegionNumber', 'BlockSizeMiB', 'RegionSizeMiB', 'RegionBaseOffsetMiB'],
    [
      'RegionType',
      'RegionNumber',
      'BlockSizeMiB',
      'RegionSizeMiB',
      'RegionBaseOffsetMiB',
      'ShareableRegion',
      'NonVolatileRegion',
      'HardwareManagedCoherencyRegion',
      'SanitizeOnRelease',
      'ExtentsCount',
      'MemoryExtents',
      'MemoryChunks',
    ],
  ),
  Fabric: t(['Id', 'Name'], ['FabricType', 'UUID', 'Endpoints', 'Connections', 'MaxZones', 'Zones', 'Switches']),
  Endpoint: t(['Id', 'Name'], ['EndpointProtocol', 'ConnectedEntities']),
  Connection: t(['Id', 'Name'], ['ConnectionType', 'MemoryChunkInfo', 'MemoryRegionInfo', 'AccessCapabilities', 'AccessState']),
  EventService: t(
    ['Id', 'Name'],
    [
      'ServiceEnabled',
      'ServerSentEventUri',
      'EventFormatTypes',
      'RegistryPrefixes',
      'ResourceTypes',
      'Subscriptions',
      'DeliveryRetryAttempts',
      'DeliveryRetryIntervalSeconds',
      'SubordinateResourcesSupported',
      'SSEFilterPropertiesSupported',
    ],
  ),
  EventDestination: t(
    ['Id', 'Name'],
    [
      'Destination',
      'Context',
      'Protocol',
      'SubscriptionType',
      'EventFormatType',
      'RegistryPrefixes',
      'ResourceTypes',
      'OriginResources',
      'SubordinateResources',
      'HttpHeaders',
      'DeliveryRetryPolicy',
      'MessageIds',
      'EventTypes',
      'MetricReportDefinitions',
    ],
  ),
  TelemetryService: t(
    ['Id', 'Name'],
    ['ServiceEnabled', 'MaxReports', 'MinCollectionInterval', 'MetricDefinitions', 'MetricReportDefinitions', 'MetricReports', 'Triggers'],
  ),
  MetricDefinition: t(
    ['Id', 'Name'],
    [
      'MetricType',
      'MetricDataType',
      'Units',
      'Implementation',
      'IsLinear',
      'MinReadingRange',
      'MaxReadingRange',
      'MetricProperties',
      'Wildcards',
      'SensingInterval',
      'Calculable',
    ],
  ),
  MetricReportDefinition: t(
    ['Id', 'Name'],
    [
      'MetricReportDefinitionType',
      'MetricReportDefinitionEnabled',
      'Schedule',
      'ReportActions',
      'ReportUpdates',
      'Metrics',
      'MetricProperties',
      'Wildcards',
      'MetricReport',
      'AppendLimit',
      'ReportTimespan',
    ],
  ),
  MetricReport: t(['Id', 'Name'], ['MetricReportDefinition', 'MetricValues', 'Timestamp', 'Context']),
  SessionService: t(['Id', 'Name'], ['ServiceEnabled', 'SessionTimeout', 'Sessions']),
  Session: t(['Id', 'Name'], ['UserName', 'CreatedTime', 'Password', 'SessionType']),
  AccountService: t(['Id', 'Name'], ['ServiceEnabled', 'LocalAccountAuth', 'MinPasswordLength', 'MaxPasswordLength', 'Accounts', 'Roles']),
  ManagerAccount: t(
    ['Id', 'Name', 'UserName', 'RoleId'],
    ['UserName', 'RoleId', 'Enabled', 'Locked', 'Password', 'PasswordChangeRequired', 'AccountTypes'],
  ),
  Role: t(['Id', 'Name', 'RoleId'], ['RoleId', 'IsPredefined', 'AssignedPrivileges', 'OemPrivileges']),
  MessageRegistryFile: t(['Id', 'Name', 'Languages', 'Registry', 'Location'], ['Languages', 'Registry', 'Location']),
  MessageRegistry: t(
    ['Id', 'Name', 'Language', 'RegistryPrefix', 'RegistryVersion', 'OwningEntity', 'Messages'],
    ['Language', 'RegistryPrefix', 'RegistryVersion', 'OwningEntity', 'Messages'],
  ),
  JsonSchemaFile: t(['Id', 'Name', 'Languages', 'Schema', 'Location'], ['Languages', 'Schema', 'Location']),
  AggregationService: t(['Id', 'Name'], ['ServiceEnabled', 'ConnectionMethods', 'AggregationSources', 'Aggregates']),
  ConnectionMethod: t(['Id', 'Name'], ['ConnectionMethodType', 'ConnectionMethodVariant', 'TunnelingProtocol']),
  Manager: t(['Id', 'Name'], ['ManagerType', 'UUID', 'ServiceEntryPointUUID', 'NetworkProtocol', 'FirmwareVersion']),
  ManagerNetworkProtocol: t(['Id', 'Name'], ['HTTP', 'HTTPS', 'SSDP', 'HostName', 'FQDN']),
  Certificate: t(
    ['Id', 'Name'],
    [
      'CertificateString',
      'CertificateType',
      'CertificateUsageTypes',
      'Issuer',
      'Subject',
      'ValidNotBefore',
      'ValidNotAfter',
      'SerialNumber',
      'Fingerprint',
      'FingerprintHashAlgorithm',
      'SignatureAlgorithm',
      'KeyUsage',
    ],
  ),
  CertificateService: t(['Id', 'Name'], ['CertificateLocations']),
  CertificateLocations: t(['Id', 'Name'], []),
};

/** Every collection: Members and their count, and nothing a collection does not have. */
const COLLECTION: TypeProps = t(['Name', 'Members', 'Members@odata.count'], ['Members', 'Members@odata.count']);

const ajv = new Ajv({ allErrors: true, strict: false });
const validators = new Map<string, ValidateFunction>();

function schemaFor(p: TypeProps): Record<string, unknown> {
  return {
    type: 'object',
    required: p.required,
    properties: Object.fromEntries([...COMMON, ...p.props].map((k) => [k, {}])),
    // Annotations such as Members@odata.count or @Message.ExtendedInfo are allowed; other names are not.
    patternProperties: { '@': {} },
    additionalProperties: false,
  };
}

/** The errors of one GET payload against its type's property list; throws for a type the lists do not know. */
export function checkPayload(body: Record<string, unknown>): string[] {
  const type = String(body['@odata.type'] ?? '');
  const m = /^#([A-Za-z]+)\./.exec(type);
  const ns = m?.[1] ?? '';
  const props = ns.endsWith('Collection') ? COLLECTION : RESOURCE_PROPS[ns];
  if (!props) throw new Error(`no property list for ${type} (${String(body['@odata.id'])})`);
  let v = validators.get(ns);
  if (!v) {
    v = ajv.compile(schemaFor(props));
    validators.set(ns, v);
  }
  return v(body) ? [] : (v.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`);
}

/** A validator of Oem.CxlMhd objects against the OEM JSON Schema the service serves. */
export function oemValidator(schema: Record<string, unknown>): (oem: Record<string, unknown>) => string[] {
  const defs = schema.definitions as Record<string, unknown>;
  const checks = new Map(Object.keys(defs).map((k) => [k, ajv.compile({ ...(defs[k] as object), definitions: defs })]));
  return (oem) => {
    const type = /^#CxlMhd\.v\d+_\d+_\d+\.([A-Za-z]+)$/.exec(String(oem['@odata.type']))?.[1];
    const v = type ? checks.get(type) : undefined;
    if (!v) return [`Oem.CxlMhd has no known @odata.type: ${String(oem['@odata.type'])}`];
    return v(oem) ? [] : (v.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`);
  };
}
