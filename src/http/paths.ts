// Every URI of the resource tree in one place: the routes register them,
// bodies link to them, events name them as OriginOfCondition.
export const ROOT = '/redfish/v1';
export const FABRIC = `${ROOT}/Fabrics/CXL`;
export const SESSIONS = `${ROOT}/SessionService/Sessions`;
export const EVENTS = `${ROOT}/EventService`;
export const SSE_PATH = `${EVENTS}/SSE`;
export const SUBSCRIPTIONS = `${EVENTS}/Subscriptions`;
export const AGGREGATION = `${ROOT}/AggregationService`;
export const CONNECTION_METHODS = `${AGGREGATION}/ConnectionMethods`;
export const CONNECTION_METHOD = `${CONNECTION_METHODS}/CxlMhd`;
export const MANAGERS = `${ROOT}/Managers`;
/** The one Manager: this service itself. */
export const MANAGER = `${MANAGERS}/cxl-mhd`;
export const NETWORK_PROTOCOL = `${MANAGER}/NetworkProtocol`;
export const HTTPS_CERTIFICATES = `${NETWORK_PROTOCOL}/HTTPS/Certificates`;
/** The certificate being served: replaced in place, so its URI stays. */
export const HTTPS_CERTIFICATE = `${HTTPS_CERTIFICATES}/1`;
export const CERTIFICATE_SERVICE = `${ROOT}/CertificateService`;
export const CERTIFICATE_LOCATIONS = `${CERTIFICATE_SERVICE}/CertificateLocations`;
export const REPLACE_CERTIFICATE = `${CERTIFICATE_SERVICE}/Actions/CertificateService.ReplaceCertificate`;
export const TELEMETRY = `${ROOT}/TelemetryService`;
export const METRIC_DEFINITIONS = `${TELEMETRY}/MetricDefinitions`;
export const METRIC_REPORT_DEFINITIONS = `${TELEMETRY}/MetricReportDefinitions`;
export const METRIC_REPORTS = `${TELEMETRY}/MetricReports`;

export const paths = {
  chassis: (pool: string) => `${ROOT}/Chassis/${pool}`,
  domain: (pool: string) => `${ROOT}/Chassis/${pool}/MemoryDomains/${pool}`,
  chunks: (pool: string) => `${ROOT}/Chassis/${pool}/MemoryDomains/${pool}/MemoryChunks`,
  chunk: (pool: string, id: string) => `${ROOT}/Chassis/${pool}/MemoryDomains/${pool}/MemoryChunks/${id}`,
  pcie: (pool: string) => `${ROOT}/Chassis/${pool}/PCIeDevices/${pool}`,
  lds: (pool: string) => `${ROOT}/Chassis/${pool}/PCIeDevices/${pool}/CXLLogicalDevices`,
  ld: (pool: string, head: number) => `${ROOT}/Chassis/${pool}/PCIeDevices/${pool}/CXLLogicalDevices/${head}`,
  regions: (pool: string, head: number) => `${ROOT}/Chassis/${pool}/PCIeDevices/${pool}/CXLLogicalDevices/${head}/MemoryRegions`,
  region: (pool: string, head: number, id: string) =>
    `${ROOT}/Chassis/${pool}/PCIeDevices/${pool}/CXLLogicalDevices/${head}/MemoryRegions/${id}`,
  /** `head` may be a Wildcard name such as `{HeadId}` (a MetricProperty of the TelemetryService). */
  endpoint: (head: number | string) => `${FABRIC}/Endpoints/head${head}`,
  connection: (id: string) => `${FABRIC}/Connections/${id}`,
};

/** The request path without query string or trailing slash. */
export function cleanPath(url: string): string {
  const p = url.split('?')[0] as string;
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}
