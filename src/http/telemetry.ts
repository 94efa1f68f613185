// The TelemetryService's engine: the metrics this device has (pool
// capacity, free, quarantined and FM-referenced bytes; per head granted and
// shared bytes), each read from the same pool model the Chassis, MemoryDomain
// and Endpoint bodies show, so a metric's MetricProperty names the property
// it equals. One predefined periodic MetricReportDefinition (PoolUsage)
// makes a MetricReport on its schedule, keeps it as MetricReports/PoolUsage
// and publishes it on the EventHub, which carries it to SSE streams and to
// push destinations of EventFormatType MetricReport (notifier.ts).
// SubmitTestMetricReport takes the same way.
import { typeOf } from './dmtf.js';
import type { EventHub } from './events.js';
import type { PoolModel } from './model.js';
import { METRIC_REPORT_DEFINITIONS, METRIC_REPORTS, paths } from './paths.js';
import { link } from './redfish.js';
import type { ReportSchedule } from './subscriptions.js';

/** How a head's metrics name the head in their MetricProperties (a Wildcard). */
export const HEAD_WILDCARD = '{HeadId}';

interface MetricDef {
  id: string;
  name: string;
  description: string;
  units: 'By' | 'MiBy';
  /** One value per head (the property's URI holds HEAD_WILDCARD), or one for the pool. */
  perHead: boolean;
  /** The Redfish property the value equals: a URI with a JSON pointer. */
  property: (pool: string, head: string) => string;
  value: (m: PoolModel, head: number) => number;
}

const chassisOem = (prop: string) => (pool: string) => `${paths.chassis(pool)}#/Oem/CxlMhd/${prop}`;
const endpointOem = (prop: string) => (_pool: string, head: string) => `${paths.endpoint(head)}#/Oem/CxlMhd/${prop}`;
const headStatus = (m: PoolModel, head: number) => m.snap.status.heads.find((h) => h.id === head);

export const METRICS: readonly MetricDef[] = [
  {
    id: 'PoolCapacityBytes',
    name: 'Pool capacity',
    description: 'The size of the pool.',
    units: 'By',
    perHead: false,
    property: chassisOem('CapacityBytes'),
    value: (m) => m.snap.status.capacityBytes,
  },
  {
    id: 'PoolFreeBytes',
    name: 'Pool free capacity',
    description: 'The part of the pool no head holds.',
    units: 'By',
    perHead: false,
    property: chassisOem('FreeBytes'),
    value: (m) => m.snap.status.freeBytes,
  },
  {
    id: 'PoolQuarantinedBytes',
    name: 'Pool quarantined capacity',
    description: 'Released capacity its head still holds because QEMU does not show that the guest can no longer reach it.',
    units: 'By',
    perHead: false,
    property: chassisOem('QuarantinedBytes'),
    value: (m) => m.quarantinedBytes(),
  },
  {
    id: 'PoolReferencedBytes',
    name: 'Pool capacity kept by FM tag references',
    description: 'The bytes FM tag references (5606h) keep allocated, whether a head holds them or not.',
    units: 'By',
    perHead: false,
    property: (pool) => `${paths.domain(pool)}#/Oem/CxlMhd/ReferencedBytes`,
    value: (m) => m.snap.status.referencedBytes ?? 0,
  },
  {
    id: 'HeadGrantedBytes',
    name: 'Capacity a head holds',
    description: 'The capacity the head holds: static windows and FM-API grants.',
    units: 'By',
    perHead: true,
    property: endpointOem('GrantedBytes'),
    value: (m, h) => headStatus(m, h)?.grantedBytes ?? 0,
  },
  {
    id: 'HeadSharedBytes',
    name: 'Shared capacity a head holds',
    description: 'The part of the capacity a head holds that it shares with other heads.',
    units: 'By',
    perHead: true,
    property: endpointOem('SharedBytes'),
    value: (m, h) => headStatus(m, h)?.sharedBytes ?? 0,
  },
];

export const POOL_USAGE = 'PoolUsage';
export const DEFAULT_INTERVAL_S = 60;
export const MIN_INTERVAL_S = 1;
export const MAX_INTERVAL_S = 24 * 3600;
/** Reports kept in MetricReports: PoolUsage and the newest test reports. */
export const MAX_REPORTS = 16;

/** `PT60S`, `PT1M30S`, `P1D`: an ISO 8601 duration of whole days, hours, minutes and seconds, in seconds; null if it is not one. */
export function parseDuration(text: string): number | null {
  const m = /^P(?:(\d{1,5})D)?(?:T(?:(\d{1,5})H)?(?:(\d{1,5})M)?(?:(\d{1,6})S)?)?$/.exec(text);
  if (!m || text === 'P' || text.endsWith('T')) return null;
  const [d, h, min, s] = m.slice(1).map((x) => Number(x ?? 0)) as [number, number, number, number];
  return ((d * 24 + h) * 60 + min) * 60 + s;
}

/** Seconds as `PT…S` (what Schedule.RecurrenceInterval shows). */
export const duration = (seconds: number) => `PT${seconds}S`;

/** One MetricValue (MetricReport 1.5 deprecates its MetricDefinition link: MetricId names the definition). */
export interface ReportValue {
  MetricId: string;
  MetricValue: string;
  Timestamp: string;
  MetricProperty?: string;
}

export interface TelemetryOptions {
  pool: string;
  model: () => PoolModel;
  /** The schedule as last PATCHed (persisted by the caller); the default otherwise. */
  schedule?: ReportSchedule;
  /** The schedule was PATCHed: persist it. */
  onSchedule?: (s: ReportSchedule) => void;
  /** A report that could not be made (the backend's snapshot failed), for the service log. */
  onError?: (e: unknown) => void;
}

export class Telemetry {
  readonly definition: ReportSchedule;
  /** MetricReports by Id, oldest first. */
  private readonly reports = new Map<string, Record<string, unknown>>();
  private timer: NodeJS.Timeout | null = null;
  private readonly pool: string;
  private readonly model: () => PoolModel;

  constructor(
    private readonly hub: EventHub,
    private readonly opts: TelemetryOptions,
  ) {
    this.pool = opts.pool;
    this.model = opts.model;
    this.definition = { enabled: true, intervalS: DEFAULT_INTERVAL_S, ...opts.schedule };
    this.schedule();
  }

  /** The heads a per-head metric has values for. */
  heads(m: PoolModel): number[] {
    return Array.from({ length: m.snap.status.headCount }, (_, h) => h);
  }

  /** The values of every metric now, per head where the metric is per head. */
  values(m: PoolModel, at: string): ReportValue[] {
    return METRICS.flatMap((d) =>
      (d.perHead ? this.heads(m) : [0]).map((h) => ({
        MetricId: d.id,
        MetricValue: String(d.value(m, h)),
        Timestamp: at,
        MetricProperty: d.property(this.pool, String(h)),
      })),
    );
  }

  /** Makes the PoolUsage report from the pool as it is, keeps it in MetricReports and sends it as an event. */
  generate(): Record<string, unknown> {
    const at = new Date().toISOString();
    const report = {
      ...reportHead(POOL_USAGE, 'Pool usage'),
      MetricReportDefinition: link(`${METRIC_REPORT_DEFINITIONS}/${POOL_USAGE}`),
      Timestamp: at,
      MetricValues: this.values(this.model(), at),
    };
    this.keep(POOL_USAGE, report);
    this.hub.publishReport(report, at);
    return report;
  }

  /** SubmitTestMetricReport: a report with the given name and values, kept and sent like a generated one. */
  submitTest(name: string, values: (Omit<ReportValue, 'Timestamp'> & { Timestamp?: string })[]): Record<string, unknown> {
    const at = new Date().toISOString();
    const report = {
      ...reportHead(name, `Test metric report ${name}`),
      Timestamp: at,
      MetricValues: values.map(
        (v): ReportValue => ({
          MetricId: v.MetricId,
          MetricValue: v.MetricValue,
          Timestamp: v.Timestamp ?? at,
          ...(v.MetricProperty === undefined ? {} : { MetricProperty: v.MetricProperty }),
        }),
      ),
    };
    this.keep(name, report);
    this.hub.publishReport(report, at);
    return report;
  }

  /** The MetricReportDefinitions this service has (what a subscription's filter may name). */
  definitionUris(): string[] {
    return [`${METRIC_REPORT_DEFINITIONS}/${POOL_USAGE}`];
  }

  report(id: string): Record<string, unknown> | undefined {
    return this.reports.get(id);
  }

  reportIds(): string[] {
    return [...this.reports.keys()];
  }

  /** PATCH of the definition: the next report comes one (new) interval from now. */
  configure(change: { enabled?: boolean; intervalS?: number }): void {
    if (change.enabled !== undefined) this.definition.enabled = change.enabled;
    if (change.intervalS !== undefined) this.definition.intervalS = change.intervalS;
    this.opts.onSchedule?.({ enabled: this.definition.enabled, intervalS: this.definition.intervalS });
    this.schedule();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private keep(id: string, report: Record<string, unknown>): void {
    this.reports.delete(id);
    this.reports.set(id, report);
    // The oldest test report goes first; PoolUsage stays.
    for (const old of this.reports.keys()) {
      if (this.reports.size <= MAX_REPORTS) break;
      if (old !== POOL_USAGE) this.reports.delete(old);
    }
  }

  private schedule(): void {
    this.close();
    if (!this.definition.enabled) return;
    this.timer = setInterval(() => {
      try {
        this.generate();
      } catch (e) {
        this.opts.onError?.(e);
      }
    }, this.definition.intervalS * 1000);
    this.timer.unref();
  }
}

function reportHead(id: string, name: string): Record<string, unknown> {
  return { '@odata.id': `${METRIC_REPORTS}/${id}`, '@odata.type': typeOf('MetricReport'), Id: id, Name: name };
}
