// Backend events as Redfish event records: one CxlMhd.1.0 message per
// event, plus the standard registries' records for what it touched:
// ResourceEvent ResourceCreated/Removed/Changed for the endpoints,
// connections, memory regions and chunks, and Fabric
// ConnectionCreated/Modified/Removed for connections, each with its
// OriginOfCondition.
import { messageId } from './dmtf.js';
import type { RedfishEvent } from './events.js';
import type { PoolModel } from './model.js';
import { oem } from './oem.js';
import { paths } from './paths.js';
import { formatMessage, link, REGISTRY } from './redfish.js';
import { chunkId, regionId, type Store } from './store.js';
import type { StampedEvent } from './types.js';

type Rec = RedfishEvent['records'][number];

function cxl(
  key: string,
  args: (string | number)[],
  origin: string,
  severity: Rec['MessageSeverity'] = 'OK',
  extra?: Record<string, unknown>,
): Rec {
  return {
    EventType: 'Other',
    MessageId: `${REGISTRY}.${key}`,
    Message: formatMessage(key, args),
    MessageArgs: args.map(String),
    MessageSeverity: severity,
    OriginOfCondition: link(origin),
    ...(extra ? { Oem: oem('EventRecord', extra) } : {}),
  };
}

// The registries' own sentences (ResourceEvent 1.4, Fabric 1.0).
const RESOURCE_TEXT = {
  ResourceCreated: 'The resource was created successfully.',
  ResourceRemoved: 'The resource was removed successfully.',
  ResourceChanged: 'One or more resource properties have changed.',
} as const;

export function resourceRecord(kind: keyof typeof RESOURCE_TEXT, origin: string): Rec {
  return {
    EventType: 'Other',
    MessageId: messageId('ResourceEvent', kind),
    Message: RESOURCE_TEXT[kind],
    MessageArgs: [],
    MessageSeverity: 'OK',
    OriginOfCondition: link(origin),
  };
}

const FABRIC_TEXT = { ConnectionCreated: 'was created in', ConnectionModified: 'in', ConnectionRemoved: 'was removed from' } as const;

/** Fabric registry: a connection of the CXL fabric was created, modified or removed. */
export function fabricRecord(kind: keyof typeof FABRIC_TEXT, conn: string): Rec {
  const text =
    kind === 'ConnectionModified'
      ? `Connection '${conn}' in fabric 'CXL' was modified.`
      : `Connection '${conn}' ${FABRIC_TEXT[kind]} fabric 'CXL'.`;
  return {
    EventType: 'Other',
    MessageId: messageId('Fabric', kind),
    Message: text,
    MessageArgs: [conn, 'CXL'],
    MessageSeverity: 'OK',
    OriginOfCondition: link(paths.connection(conn)),
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
      // Created with its first head; another head joining a shared connection changes it.
      const joined = (m.connections.get(conn)?.heads ?? []).some((h) => h !== e.head);
      const region = paths.region(pool, e.head, regionId(e.tag, e.offset, e.len));
      // The model may already show this extent: the region exists before it only if another extent of the tag is there.
      const regionKnown = e.tag !== null && m.holdings.some((h) => h.head === e.head && h.tag === e.tag && h.offset !== e.offset);
      const out = [
        cxl('CapacityAdded', [e.len, e.offset, e.head, e.shared ? 'shared' : 'exclusive', e.via], origin, 'OK', { ...oem, Tag: e.tag }),
        resourceRecord(joined ? 'ResourceChanged' : 'ResourceCreated', origin),
        fabricRecord(joined ? 'ConnectionModified' : 'ConnectionCreated', conn),
        resourceRecord(regionKnown ? 'ResourceChanged' : 'ResourceCreated', region),
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
      const sameTag = (h: { head: number; tag: string | null; offset: number }) =>
        h.head === e.head && h.tag === e.tag && h.offset !== e.offset;
      const regionLeft = e.tag !== null && m.holdings.some(sameTag);
      const out = [
        cxl('CapacityReleased', [e.len, e.offset, e.head, e.via], origin, 'OK', { ...oem, Tag: e.tag }),
        resourceRecord(others.length > 0 ? 'ResourceChanged' : 'ResourceRemoved', origin),
        fabricRecord(others.length > 0 ? 'ConnectionModified' : 'ConnectionRemoved', conn),
        resourceRecord(regionLeft ? 'ResourceChanged' : 'ResourceRemoved', paths.region(pool, e.head, regionId(e.tag, e.offset, e.len))),
      ];
      const chunkLeft =
        m.chunks.get(chunk)?.origin === 'defined' || m.holdings.some((h) => h.head !== e.head && chunkId(h.offset, h.len) === chunk);
      if (!chunkLeft) out.push(resourceRecord('ResourceRemoved', paths.chunk(pool, chunk)));
      out.push(resourceRecord('ResourceChanged', ep));
      return out;
    }
  }
}
