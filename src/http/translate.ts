// Backend events as Redfish event records: one CxlMhd.1.0 message per
// event, plus the ResourceEvent.1.0 ResourceCreated/Removed/Changed records
// for the endpoints, connections and chunks it touched, each with its
// OriginOfCondition.
import type { RedfishEvent } from './events.js';
import type { PoolModel } from './model.js';
import { formatMessage, link, REGISTRY, RESOURCE_EVENT } from './redfish.js';
import { chunkId, type Store } from './store.js';
import { paths } from './tree.js';
import type { StampedEvent } from './types.js';

type Rec = RedfishEvent['records'][number];

function cxl(key: string, args: (string | number)[], origin: string, severity: Rec['MessageSeverity'] = 'OK', oem?: unknown): Rec {
  return {
    EventType: 'Other',
    MessageId: `${REGISTRY}.${key}`,
    Message: formatMessage(key, args),
    MessageArgs: args.map(String),
    MessageSeverity: severity,
    OriginOfCondition: link(origin),
    ...(oem ? { Oem: { CxlMhd: oem } } : {}),
  };
}

export function resourceRecord(kind: 'ResourceCreated' | 'ResourceRemoved' | 'ResourceChanged', origin: string): Rec {
  const text = { ResourceCreated: 'created', ResourceRemoved: 'removed', ResourceChanged: 'changed' }[kind];
  return {
    EventType: 'Other',
    MessageId: `${RESOURCE_EVENT}.${kind}`,
    Message: `The resource has been ${text} successfully.`,
    MessageArgs: [],
    MessageSeverity: 'OK',
    OriginOfCondition: link(origin),
  };
}

/**
 * The connection a grant of (head, chunk) belongs to, as the model will show
 * it: a connection made here (even one still being made: the event comes
 * before the POST answers), else the per-chunk `grant-…` connection. Asked at
 * event time, when the head records may not show the grant yet.
 */
export function connectionOf(store: Store, head: number, chunk: string): string {
  const def = store.connections.find((c) => c.heads.includes(head) && c.chunks.includes(chunk));
  return def ? def.id : `grant-${chunk}`;
}

export function translate(e: StampedEvent, pool: string, m: PoolModel, store: Store): Rec[] {
  const ep = paths.endpoint(e.head);
  const oem = { BackendSeq: e.seq, Kind: e.kind };
  switch (e.kind) {
    case 'head-attached':
      return [
        cxl('HeadAttached', [e.head, e.pid, e.delivery ?? 'none'], ep, 'OK', { ...oem, FmldOwner: e.fmld }),
        resourceRecord('ResourceChanged', ep),
      ];
    case 'head-detached':
      return [cxl('HeadDetached', [e.head, e.reason], ep, 'Warning', oem), resourceRecord('ResourceChanged', ep)];
    case 'head-refused':
      return [cxl('HeadRefused', [e.head, e.reason], ep, 'Warning', oem), resourceRecord('ResourceChanged', ep)];
    case 'lease-acquired':
      return [cxl('LeaseAcquired', [e.head, e.epoch], paths.chassis(pool), 'OK', oem), resourceRecord('ResourceChanged', ep)];
    case 'lease-released':
      return [cxl('LeaseReleased', [e.head, e.epoch], paths.chassis(pool), 'OK', oem), resourceRecord('ResourceChanged', ep)];
    case 'capacity-added': {
      const chunk = chunkId(e.offset, e.len);
      const conn = connectionOf(store, e.head, chunk);
      const origin = paths.connection(conn);
      const out = [
        cxl('CapacityAdded', [e.len, e.offset, e.head, e.shared ? 'shared' : 'exclusive', e.via], origin, 'OK', { ...oem, Tag: e.tag }),
        // Created with its first head; another head joining a shared connection changes it.
        resourceRecord((m.connections.get(conn)?.heads ?? []).some((h) => h !== e.head) ? 'ResourceChanged' : 'ResourceCreated', origin),
      ];
      if (!m.chunks.has(chunk)) out.push(resourceRecord('ResourceCreated', paths.chunk(pool, chunk)));
      out.push(resourceRecord('ResourceChanged', ep));
      return out;
    }
    case 'capacity-released': {
      const chunk = chunkId(e.offset, e.len);
      const conn = connectionOf(store, e.head, chunk);
      const origin = paths.connection(conn);
      // The records may still show this grant: what is left is every other head's holding of the chunk.
      const others = m.holdings.filter((h) => h.kind === 'grant' && h.head !== e.head && chunkId(h.offset, h.len) === chunk);
      const out = [
        cxl('CapacityReleased', [e.len, e.offset, e.head, e.via], origin, 'OK', { ...oem, Tag: e.tag }),
        resourceRecord(others.length > 0 ? 'ResourceChanged' : 'ResourceRemoved', origin),
      ];
      const chunkLeft =
        m.chunks.get(chunk)?.origin === 'defined' || m.holdings.some((h) => h.head !== e.head && chunkId(h.offset, h.len) === chunk);
      if (!chunkLeft) out.push(resourceRecord('ResourceRemoved', paths.chunk(pool, chunk)));
      out.push(resourceRecord('ResourceChanged', ep));
      return out;
    }
    case 'capacity-quarantined': {
      // Still held by the head: the connection stays, its state says why.
      const origin = paths.connection(connectionOf(store, e.head, chunkId(e.offset, e.len)));
      return [
        cxl('CapacityQuarantined', [e.len, e.offset, e.head, e.reason], origin, 'Warning', { ...oem, Tag: e.tag }),
        resourceRecord('ResourceChanged', origin),
        resourceRecord('ResourceChanged', ep),
      ];
    }
  }
}
