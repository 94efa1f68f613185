// Backend events as Redfish event records: one CxlMhd.1.0 message per
// event, plus the ResourceEvent.1.0 ResourceCreated/Removed/Changed records
// for the endpoints, connections and chunks it touched, each with its
// OriginOfCondition.
import type { RedfishEvent } from './events.js';
import type { PoolModel } from './model.js';
import { formatMessage, link, REGISTRY, RESOURCE_EVENT } from './redfish.js';
import { chunkId } from './store.js';
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
 * Remembers which connection each (head, chunk) belonged to, so a release
 * names the connection that just went away.
 */
export class ConnectionIndex {
  private readonly byKey = new Map<string, string>();

  update(m: PoolModel): void {
    for (const c of m.connections.values()) for (const chunk of c.chunks) for (const h of c.heads) this.byKey.set(`${h}/${chunk}`, c.id);
  }

  lookup(head: number, chunk: string): string | undefined {
    return this.byKey.get(`${head}/${chunk}`);
  }
}

export function translate(e: StampedEvent, pool: string, m: PoolModel, index: ConnectionIndex): Rec[] {
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
      index.update(m);
      const conn = index.lookup(e.head, chunk);
      const origin = conn ? paths.connection(conn) : paths.chunk(pool, chunk);
      const out = [
        cxl('CapacityAdded', [e.len, e.offset, e.head, e.shared ? 'shared' : 'exclusive', e.via], origin, 'OK', { ...oem, Tag: e.tag }),
      ];
      if (conn) {
        const c = m.connections.get(conn);
        out.push(resourceRecord(c && c.heads.length > 1 ? 'ResourceChanged' : 'ResourceCreated', origin));
      }
      if (m.chunks.get(chunk)?.origin !== 'defined') out.push(resourceRecord('ResourceCreated', paths.chunk(pool, chunk)));
      out.push(resourceRecord('ResourceChanged', ep));
      return out;
    }
    case 'capacity-released': {
      const chunk = chunkId(e.offset, e.len);
      const conn = index.lookup(e.head, chunk);
      index.update(m);
      const origin = conn ? paths.connection(conn) : paths.chunk(pool, chunk);
      const out = [cxl('CapacityReleased', [e.len, e.offset, e.head, e.via], origin, 'OK', { ...oem, Tag: e.tag })];
      if (conn) out.push(resourceRecord(m.connections.has(conn) ? 'ResourceChanged' : 'ResourceRemoved', origin));
      if (!m.chunks.has(chunk)) out.push(resourceRecord('ResourceRemoved', paths.chunk(pool, chunk)));
      out.push(resourceRecord('ResourceChanged', ep));
      return out;
    }
  }
}
