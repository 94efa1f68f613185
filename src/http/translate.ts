// Backend events as Redfish event records: one CxlMhd.1.0 message per
// event, plus the standard registries' records (ResourceEvent
// ResourceCreated/Removed/Changed, Fabric ConnectionCreated/Removed) for
// every resource it touched (endpoints, LDs and their memory regions,
// connections, chunks), each with its OriginOfCondition, so that an
// aggregator that follows them keeps a mirror equal to a fresh crawl.
import type { RedfishEvent } from './events.js';
import type { PoolModel } from './model.js';
import { oem } from './oem.js';
import { paths } from './paths.js';
import { formatMessage, link, REGISTRY } from './redfish.js';
import { connectionRecord, resourceRecord } from './registries.js';
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

export { resourceRecord };

export function translate(e: StampedEvent, pool: string, m: PoolModel, store: Store): Rec[] {
  const ep = paths.endpoint(e.head);
  const oem = { BackendSeq: e.seq, Kind: e.kind };
  // A head's state shows on its endpoint, its LD and the Chassis (attached heads, FM-LD owner, free bytes).
  const touched = [
    resourceRecord('ResourceChanged', ep),
    resourceRecord('ResourceChanged', paths.ld(pool, e.head)),
    resourceRecord('ResourceChanged', paths.chassis(pool)),
  ];
  switch (e.kind) {
    case 'head-attached':
      return [cxl('HeadAttached', [e.head, e.pid, e.delivery ?? 'none'], ep, 'OK', { ...oem, FmldOwner: e.fmld }), ...touched];
    case 'head-detached':
      return [cxl('HeadDetached', [e.head, e.reason], ep, 'Warning', oem), ...touched];
    case 'head-refused':
      return [cxl('HeadRefused', [e.head, e.reason], ep, 'Warning', oem), ...touched];
    case 'lease-acquired':
      return [cxl('LeaseAcquired', [e.head, e.epoch], paths.chassis(pool), 'OK', oem), ...touched];
    case 'lease-released':
      return [cxl('LeaseReleased', [e.head, e.epoch], paths.chassis(pool), 'OK', oem), ...touched];
    case 'capacity-added': {
      const chunk = chunkId(e.offset, e.len);
      const conn = connectionOf(store, e.head, chunk);
      const origin = paths.connection(conn);
      // Created with its first head; another head joining a shared connection changes it.
      const created = !(m.connections.get(conn)?.heads ?? []).some((h) => h !== e.head);
      const out = [
        cxl('CapacityAdded', [e.len, e.offset, e.head, e.shared ? 'shared' : 'exclusive', e.via], origin, 'OK', { ...oem, Tag: e.tag }),
        resourceRecord(created ? 'ResourceCreated' : 'ResourceChanged', origin),
      ];
      if (created) out.push(connectionRecord('ConnectionCreated', conn, origin));
      // The model may already show this extent: the region exists before it only if another extent of the tag is there.
      const regionKnown = e.tag !== null && m.holdings.some((h) => h.head === e.head && h.tag === e.tag && h.offset !== e.offset);
      out.push(
        resourceRecord(regionKnown ? 'ResourceChanged' : 'ResourceCreated', paths.region(pool, e.head, regionId(e.tag, e.offset, e.len))),
      );
      out.push(resourceRecord(m.chunks.has(chunk) ? 'ResourceChanged' : 'ResourceCreated', paths.chunk(pool, chunk)));
      out.push(...touched);
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
      if (others.length === 0) out.push(connectionRecord('ConnectionRemoved', conn, origin));
      const regionLeft = e.tag !== null && m.holdings.some((h) => h.head === e.head && h.tag === e.tag && h.offset !== e.offset);
      out.push(
        resourceRecord(regionLeft ? 'ResourceChanged' : 'ResourceRemoved', paths.region(pool, e.head, regionId(e.tag, e.offset, e.len))),
      );
      const chunkLeft =
        m.chunks.get(chunk)?.origin === 'defined' || m.holdings.some((h) => h.head !== e.head && chunkId(h.offset, h.len) === chunk);
      out.push(resourceRecord(chunkLeft ? 'ResourceChanged' : 'ResourceRemoved', paths.chunk(pool, chunk)));
      out.push(...touched);
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

/**
 * Static windows come and go with their heads, not through FM operations:
 * on every head event, what the windows' connections, chunks and memory
 * regions became
 * since the last one (created, changed, removed), so a mirror of the tree
 * follows them too.
 */
export class WindowTracker {
  private last = new Set<string>();

  /** What the windows are when the service starts: the first head event is told against it. */
  prime(pool: string, m: PoolModel): void {
    this.last = this.current(pool, m);
  }

  records(e: StampedEvent, pool: string, m: PoolModel): Rec[] {
    if (!e.kind.startsWith('head-')) return [];
    const now = this.current(pool, m);
    const out = [...now].map((uri) => resourceRecord(this.last.has(uri) ? 'ResourceChanged' : 'ResourceCreated', uri));
    for (const uri of this.last) if (!now.has(uri)) out.push(resourceRecord('ResourceRemoved', uri));
    this.last = now;
    return out;
  }

  private current(pool: string, m: PoolModel): Set<string> {
    const now = new Set<string>();
    for (const c of m.connections.values()) if (c.origin === 'static-window') now.add(paths.connection(c.id));
    for (const c of m.chunks.values()) if (c.origin === 'static-window') now.add(paths.chunk(pool, c.id));
    for (const h of m.holdings) if (h.kind === 'window') now.add(paths.region(pool, h.head, regionId(null, h.offset, h.len, 'window')));
    return now;
  }
}
