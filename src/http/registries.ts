// The standard DMTF message registries this service sends events from,
// beside its own CxlMhd registry: ResourceEvent (a resource was created,
// removed or changed; an aggregation source was discovered) and Fabric (a
// connection was created or removed). Message ids carry the registry's
// major.minor, as DSP0266 asks; the texts are the registries' own.
import type { EventRecord } from './events.js';
import { link } from './redfish.js';

export const RESOURCE_EVENT = 'ResourceEvent.1.4';
export const FABRIC_EVENT = 'Fabric.1.0';

type Rec = Omit<EventRecord, 'EventId' | 'MemberId' | 'EventTimestamp'>;

const TEXT = {
  ResourceCreated: 'The resource was created successfully.',
  ResourceRemoved: 'The resource was removed successfully.',
  ResourceChanged: 'One or more resource properties have changed.',
  AggregationSourceDiscovered: "An aggregation source of connection method '%1' located at '%2' was discovered.",
  ConnectionCreated: "Connection '%1' was created in fabric '%2'.",
  ConnectionRemoved: "Connection '%1' was removed from fabric '%2'.",
} as const;

function record(registry: string, key: keyof typeof TEXT, args: string[], origin: string): Rec {
  return {
    EventType: 'Other',
    MessageId: `${registry}.${key}`,
    Message: TEXT[key].replace(/%(\d)/g, (_, n: string) => args[Number(n) - 1] ?? ''),
    MessageArgs: args,
    MessageSeverity: 'OK',
    OriginOfCondition: link(origin),
  };
}

export type ResourceChange = 'ResourceCreated' | 'ResourceRemoved' | 'ResourceChanged';

export function resourceRecord(kind: ResourceChange, origin: string): Rec {
  return record(RESOURCE_EVENT, kind, [], origin);
}

/** ConnectionCreated / ConnectionRemoved of the Fabric registry: the connection's Id and the fabric's Id. */
export function connectionRecord(kind: 'ConnectionCreated' | 'ConnectionRemoved', connection: string, origin: string): Rec {
  const fabric = origin.split('/')[4] ?? '';
  return record(FABRIC_EVENT, kind, [connection, fabric], origin);
}

/** What an agent announces to an aggregator (`connectionMethod` is the ConnectionMethod it serves). */
export function aggregationSourceDiscovered(agentUrl: string, connectionMethod: string): Rec {
  return record(RESOURCE_EVENT, 'AggregationSourceDiscovered', ['Redfish', agentUrl], connectionMethod);
}
