// The EventService's subscriptions (EventDestination resources): push
// destinations made by POST, which persist in a 0600 file of the state dir so
// they survive a backend restart, and SSE streams, which exist only while the
// stream is open. The same file keeps the service's delivery settings, the
// metric report schedule an operator set, and the UUIDs that ServiceRoot,
// Fabric and Chassis show, so an aggregator sees the same service after a
// restart.
import { randomUUID } from 'node:crypto';
import type { EventRecord } from './events.js';
import { JsonFile } from './jsonfile.js';

export type SubscriptionKind = 'RedfishEvent' | 'SSE';
/** EventDestination.EventFormatType: a push destination gets one of the two; an SSE stream carries both. */
export type EventFormat = 'Event' | 'MetricReport';
export type RetryPolicy = 'SuspendRetries' | 'TerminateAfterRetries' | 'RetryForever';

export interface Subscription {
  id: string;
  kind: SubscriptionKind;
  /** The URL events are POSTed to (push), or the stream's URI (SSE). */
  destination: string;
  context: string;
  registryPrefixes: string[];
  resourceTypes: string[];
  originResources: string[];
  subordinateResources: boolean;
  /** Sent with every POST; never shown (DSP0266: HttpHeaders reads back empty). */
  headers: Record<string, string>;
  retryPolicy: RetryPolicy;
  /** What a push destination receives: Events (absent: files written before metric reports) or MetricReports. */
  format?: EventFormat;
  /** MetricReportDefinitions filter: only reports of these definitions (URIs); absent or empty, every report. */
  reportDefinitions?: string[];
  state: 'Enabled' | 'Disabled';
  /** Who made it: the owner may change its Context even with a ReadOnly role (ConfigureSelf). */
  owner: string;
  created: string;
}

export interface DeliverySettings {
  retryAttempts: number;
  retryIntervalSeconds: number;
}

export interface ServiceIdentity {
  service: string;
  fabric: string;
  chassis: string;
  /** The Manager (this service as a manager); files from before it had none, and get one. */
  manager: string;
}

/** The PoolUsage metric report definition's PATCHable state. */
export interface ReportSchedule {
  enabled: boolean;
  intervalS: number;
}

interface FileBody {
  version: 1;
  nextId: number;
  settings: DeliverySettings;
  /** Absent until the schedule is first changed. */
  schedule?: ReportSchedule;
  identity: ServiceIdentity;
  subscriptions: Record<string, Subscription>;
}

/** A subscription that filters nothing and sends no extra headers. */
export const NO_FILTERS: Pick<Subscription, 'registryPrefixes' | 'resourceTypes' | 'originResources' | 'subordinateResources' | 'headers'> =
  Object.freeze({ registryPrefixes: [], resourceTypes: [], originResources: [], subordinateResources: false, headers: {} });

export const DEFAULT_DELIVERY: DeliverySettings = { retryAttempts: 3, retryIntervalSeconds: 5 };

/** At most this many subscriptions of each kind (push subscriptions and SSE streams are capped apart). */
export const MAX_PUSH_SUBSCRIPTIONS = 64;

export class SubscriptionStore {
  private body: FileBody;
  private readonly file: JsonFile<FileBody>;
  /** SSE streams: never written, gone with the process. */
  private readonly streams = new Map<string, Subscription>();
  private nextStream = 1;

  constructor(path: string | null) {
    this.file = new JsonFile(path, 'subscription store');
    const b = this.file.read();
    const fresh: FileBody = {
      version: 1,
      nextId: 1,
      settings: { ...DEFAULT_DELIVERY },
      identity: { service: randomUUID(), fabric: randomUUID(), chassis: randomUUID(), manager: randomUUID() },
      subscriptions: {},
    };
    const known = b?.version === 1 && b.subscriptions && b.identity ? b : null;
    this.body = known ? { ...fresh, ...known, identity: { ...fresh.identity, ...known.identity } } : fresh;
    // The UUIDs must outlive this run even when nobody subscribes.
    if (!b || (known && !known.identity.manager)) this.save();
  }

  get identity(): ServiceIdentity {
    return this.body.identity;
  }

  get settings(): DeliverySettings {
    return this.body.settings;
  }

  setSettings(s: Partial<DeliverySettings>): void {
    this.body.settings = { ...this.body.settings, ...s };
    this.save();
  }

  get schedule(): ReportSchedule | undefined {
    return this.body.schedule;
  }

  setSchedule(s: ReportSchedule): void {
    this.body.schedule = { ...s };
    this.save();
  }

  list(): Subscription[] {
    return [...Object.values(this.body.subscriptions), ...this.streams.values()];
  }

  get pushCount(): number {
    return Object.keys(this.body.subscriptions).length;
  }

  get(id: string): Subscription | undefined {
    return Object.hasOwn(this.body.subscriptions, id) ? this.body.subscriptions[id] : this.streams.get(id);
  }

  /** A new push subscription; `id` names a well-known one (the aggregator's SunfishServer), else the next number. */
  add(s: Omit<Subscription, 'id' | 'created' | 'kind' | 'state'> & { id?: string }): Subscription {
    const id = s.id ?? String(this.body.nextId++);
    const sub: Subscription = { ...s, id, kind: 'RedfishEvent', state: 'Enabled', created: new Date().toISOString() };
    this.body.subscriptions[id] = sub;
    this.save();
    return sub;
  }

  addStream(s: Pick<Subscription, 'destination' | 'owner'> & Partial<Subscription>): Subscription {
    const id = `SSE-${this.nextStream++}`;
    const sub: Subscription = {
      context: '',
      ...NO_FILTERS,
      retryPolicy: 'RetryForever',
      ...s,
      id,
      kind: 'SSE',
      state: 'Enabled',
      created: new Date().toISOString(),
    };
    this.streams.set(id, sub);
    return sub;
  }

  update(id: string, change: Partial<Pick<Subscription, 'context' | 'state' | 'retryPolicy'>>): Subscription | undefined {
    const s = this.get(id);
    if (!s) return undefined;
    Object.assign(s, change);
    if (s.kind === 'RedfishEvent') this.save();
    return s;
  }

  remove(id: string): Subscription | undefined {
    const s = this.get(id);
    if (!s) return undefined;
    if (s.kind === 'SSE') this.streams.delete(id);
    else {
      delete this.body.subscriptions[id];
      this.save();
    }
    return s;
  }

  get lastError(): Error | null {
    return this.file.lastError;
  }

  flush(): Promise<void> {
    return this.file.flush();
  }

  private save(): void {
    this.file.save(() => this.body);
  }
}

/** The Redfish resource type of a URI of this service, from its path (what ResourceTypes filters on). */
export function resourceTypeOf(uri: string): string {
  const seg = uri.replace(/\/$/, '').split('/').slice(3);
  const TYPES: Record<string, string> = {
    Chassis: 'Chassis',
    MemoryDomains: 'MemoryDomain',
    MemoryChunks: 'MemoryChunks',
    PCIeDevices: 'PCIeDevice',
    CXLLogicalDevices: 'CXLLogicalDevice',
    MemoryRegions: 'MemoryRegion',
    Fabrics: 'Fabric',
    Endpoints: 'Endpoint',
    Connections: 'Connection',
    MetricDefinitions: 'MetricDefinition',
    MetricReportDefinitions: 'MetricReportDefinition',
    MetricReports: 'MetricReport',
    Subscriptions: 'EventDestination',
    Sessions: 'Session',
    Accounts: 'ManagerAccount',
    Roles: 'Role',
    Registries: 'MessageRegistryFile',
    ConnectionMethods: 'ConnectionMethod',
  };
  if (seg.length === 0) return 'ServiceRoot';
  const last = seg[seg.length - 1] as string;
  const parent = seg[seg.length - 2];
  if (parent !== undefined && TYPES[parent]) return TYPES[parent] as string;
  if (TYPES[last]) return `${TYPES[last]}Collection`;
  return last;
}

/** Whether a metric report of `definition` (its MetricReportDefinition URI; none for a test report) goes to this subscription. */
export function wantsReport(s: Subscription, definition: string | undefined): boolean {
  const only = s.reportDefinitions ?? [];
  return only.length === 0 || (definition !== undefined && only.includes(definition));
}

/** The records of one event this subscription asks for (DSP0266 filters: RegistryPrefixes, ResourceTypes, OriginResources). */
export function matches(s: Subscription, r: Pick<EventRecord, 'MessageId' | 'OriginOfCondition'>): boolean {
  if (s.registryPrefixes.length > 0 && !s.registryPrefixes.includes(r.MessageId.split('.')[0] as string)) return false;
  const origin = r.OriginOfCondition['@odata.id'];
  if (s.resourceTypes.length > 0 && !s.resourceTypes.includes(resourceTypeOf(origin))) return false;
  if (s.originResources.length > 0) {
    const hit = s.originResources.some((o) => origin === o || (s.subordinateResources && origin.startsWith(`${o.replace(/\/$/, '')}/`)));
    if (!hit) return false;
  }
  return true;
}
