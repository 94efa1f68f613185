// The DMTF schemas (DSP8010 2025.4) the service uses, each at the newest
// version of that bundle: bodies take their `@odata.type` from here and
// `$metadata` references exactly this list (plus the CxlMhd OEM schema),
// so the two cannot drift apart. The standard message registries (DSP8011)
// the service's messages come from are listed here too.
import { OEM_CSDL_URI, OEM_NAMESPACE, OEM_VERSION } from './oem.js';

/** Versioned resources: namespace → the version every body of that type claims. */
export const VERSIONS = {
  ServiceRoot: 'v1_20_0',
  Chassis: 'v1_28_0',
  MemoryDomain: 'v1_5_1',
  MemoryChunks: 'v1_6_2',
  PCIeDevice: 'v1_21_0',
  CXLLogicalDevice: 'v1_3_0',
  MemoryRegion: 'v1_0_3',
  Fabric: 'v1_4_0',
  Endpoint: 'v1_8_2',
  Connection: 'v1_4_0',
  EventService: 'v1_12_0',
  EventDestination: 'v1_16_0',
  Event: 'v1_13_0',
  TelemetryService: 'v1_4_1',
  MetricDefinition: 'v1_3_5',
  MetricReportDefinition: 'v1_4_7',
  MetricReport: 'v1_5_2',
  SessionService: 'v1_2_0',
  Session: 'v1_8_0',
  AccountService: 'v1_18_1',
  ManagerAccount: 'v1_14_1',
  Role: 'v1_3_3',
  MessageRegistryFile: 'v1_1_5',
  MessageRegistry: 'v1_7_0',
  JsonSchemaFile: 'v1_1_5',
  Message: 'v1_3_0',
  AggregationService: 'v1_0_3',
  ConnectionMethod: 'v1_2_0',
  Manager: 'v1_24_0',
  ManagerNetworkProtocol: 'v1_12_0',
  Certificate: 'v1_11_0',
  CertificateService: 'v1_2_1',
  CertificateLocations: 'v1_0_4',
} as const;

export type Versioned = keyof typeof VERSIONS;

const COLLECTIONS = [
  'ChassisCollection',
  'MemoryDomainCollection',
  'MemoryChunksCollection',
  'PCIeDeviceCollection',
  'CXLLogicalDeviceCollection',
  'MemoryRegionCollection',
  'FabricCollection',
  'EndpointCollection',
  'ConnectionCollection',
  'EventDestinationCollection',
  'MetricDefinitionCollection',
  'MetricReportDefinitionCollection',
  'MetricReportCollection',
  'SessionCollection',
  'ManagerAccountCollection',
  'RoleCollection',
  'MessageRegistryFileCollection',
  'JsonSchemaFileCollection',
  'ConnectionMethodCollection',
  'ManagerCollection',
  'CertificateCollection',
] as const;

export type Collection = (typeof COLLECTIONS)[number];

/** `#Chassis.v1_28_0.Chassis`. */
export function typeOf(name: Versioned): string {
  return `#${name}.${VERSIONS[name]}.${name}`;
}

/** `#ChassisCollection.ChassisCollection`. */
export function collectionType(name: Collection): string {
  return `#${name}.${name}`;
}

/** The standard registries (DSP8011) beside CxlMhd: prefix → the version this service's messages follow. */
export const STANDARD_REGISTRIES = {
  Base: '1.22.1',
  ResourceEvent: '1.4.3',
  Fabric: '1.0.3',
} as const;

/** `Base.1.22.NoValidSession`: DSP0266 message ids name the registry's major and minor version. */
export function messageId(prefix: keyof typeof STANDARD_REGISTRIES, key: string): string {
  const [major, minor] = STANDARD_REGISTRIES[prefix].split('.');
  return `${prefix}.${major}.${minor}.${key}`;
}

const DMTF = 'http://redfish.dmtf.org/schemas/v1';

/** The DMTF JSON Schema a body's `@odata.type` names: what `Link: <…>; rel=describedby` points at. */
export function describedBy(odataType: string): string | null {
  const m = /^#([A-Za-z]+)(?:\.(v\d+_\d+_\d+))?\.([A-Za-z]+)$/.exec(odataType);
  if (!m) return null;
  const [, ns, version] = m;
  if (ns === OEM_NAMESPACE) return null;
  return version ? `${DMTF}/${ns}.${version}.json` : `${DMTF}/${ns}.json`;
}

function reference(uri: string, namespaces: string[]): string {
  return `  <edmx:Reference Uri="${uri}">\n${namespaces.map((n) => `    <edmx:Include Namespace="${n}"/>`).join('\n')}\n  </edmx:Reference>`;
}

/** The OData metadata document (DSP0266 "Service metadata"). */
export function metadataDocument(): string {
  const refs = [
    reference(`${DMTF}/RedfishExtensions_v1.xml`, ['RedfishExtensions.v1_0_0']),
    reference(`${DMTF}/Resource_v1.xml`, ['Resource', 'Resource.v1_0_0']),
    ...Object.entries(VERSIONS).map(([ns, v]) => reference(`${DMTF}/${ns}_v1.xml`, [ns, `${ns}.${v}`])),
    ...COLLECTIONS.map((c) => reference(`${DMTF}/${c}_v1.xml`, [c])),
    reference(OEM_CSDL_URI, [OEM_NAMESPACE, `${OEM_NAMESPACE}.${OEM_VERSION}`]),
  ];
  return `<?xml version="1.0" encoding="UTF-8"?>
<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">
${refs.join('\n')}
  <edmx:DataServices>
    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Service">
      <EntityContainer Name="Service" Extends="ServiceRoot.${VERSIONS.ServiceRoot}.ServiceContainer"/>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>
`;
}
