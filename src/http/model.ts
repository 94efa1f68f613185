// What the pool looks like in Redfish terms, derived on every read from the
// backend's snapshot and the northbound's store: who holds which range
// (static windows and FM-API grants, whoever made them), the memory chunks
// (defined over Redfish, or implied by a holding), the connections, and the
// run-length block map the page draws.
import { ZERO_TAG } from '../pool/index.js';
import { type ChunkDef, type ConnectionDef, chunkId, regionId, type Store } from './store.js';
import type { SnapshotView } from './types.js';

export interface Holding {
  head: number;
  offset: number;
  len: number;
  shared: boolean;
  kind: 'window' | 'grant';
  tag: string | null;
  state: string;
  /** Shared extent sequence number (5603h); 0 for windows and unshared grants. */
  seq: number;
  /** hotplug or dcd for a grant; null for a static window. */
  delivery: string | null;
  /** Why a quarantined grant is still held (capacity/release.ts). */
  reason?: string;
}

/** One MemoryRegion of a head's LD: a static window, or one grant (all extents of a tag are one grant). */
export interface RegionView {
  id: string;
  head: number;
  kind: 'window' | 'grant';
  extents: Holding[];
}

export interface ChunkView {
  id: string;
  offset: number;
  size: number;
  origin: 'defined' | 'static-window' | 'grant';
  def?: ChunkDef;
}

export interface ConnectionView {
  id: string;
  origin: 'redfish' | 'static-window' | 'grant';
  chunks: string[];
  heads: number[];
  shared: boolean;
  state: string;
  def?: ConnectionDef;
}

export interface Segment {
  offset: number;
  len: number;
  holders: number[];
  shared: boolean;
  window: boolean;
  /** Released by the FM but still reachable by the head's guest: held, not free. */
  quarantined: boolean;
}

export function holdings(s: SnapshotView): Holding[] {
  const out: Holding[] = [];
  for (const r of s.heads) {
    if (r.phase !== 'attached' && r.phase !== 'attaching') continue;
    for (const w of r.windows) {
      out.push({
        head: r.head,
        offset: w.offset,
        len: w.size,
        shared: !w.exclusive,
        kind: 'window',
        tag: null,
        state: 'active',
        seq: 0,
        delivery: null,
      });
    }
    for (const g of r.grants) {
      out.push({
        head: r.head,
        offset: g.offset,
        len: g.len,
        shared: g.shared,
        kind: 'grant',
        tag: g.tag === ZERO_TAG ? null : g.tag,
        state: g.state,
        seq: g.seq,
        delivery: g.delivery,
        ...(g.reason ? { reason: g.reason } : {}),
      });
    }
  }
  return out;
}

export class PoolModel {
  readonly holdings: Holding[];
  readonly chunks = new Map<string, ChunkView>();
  readonly connections = new Map<string, ConnectionView>();

  constructor(
    readonly snap: SnapshotView,
    store: Store,
  ) {
    this.holdings = holdings(snap);
    for (const [id, def] of store.chunks) this.chunks.set(id, { id, offset: def.offset, size: def.size, origin: 'defined', def });
    for (const h of this.holdings) {
      const id = chunkId(h.offset, h.len);
      if (!this.chunks.has(id))
        this.chunks.set(id, { id, offset: h.offset, size: h.len, origin: h.kind === 'window' ? 'static-window' : 'grant' });
    }
    const covered = new Set<Holding>();
    // Grants by head and chunk: a pool with many connections stays linear to model.
    const grants = new Map<string, Holding[]>();
    for (const h of this.holdings) {
      if (h.kind !== 'grant') continue;
      const key = `${h.head}/${chunkId(h.offset, h.len)}`;
      const list = grants.get(key);
      if (list) list.push(h);
      else grants.set(key, [h]);
    }
    for (const def of store.connections) {
      const live = def.heads.flatMap((head) => def.chunks.flatMap((c) => grants.get(`${head}/${c}`) ?? []));
      if (live.length === 0) continue;
      for (const h of live) covered.add(h);
      this.connections.set(def.id, {
        id: def.id,
        origin: 'redfish',
        chunks: def.chunks,
        heads: [...new Set(live.map((h) => h.head))].sort((a, b) => a - b),
        shared: def.shared,
        state: live.some((h) => h.state === 'quarantined')
          ? 'quarantined'
          : live.some((h) => h.state !== 'active')
            ? 'releasing'
            : 'active',
        def,
      });
    }
    // Everything else (static windows, grants made over the owner's port or fm.sock): one connection per chunk and kind.
    for (const h of this.holdings) {
      if (covered.has(h)) continue;
      const chunk = chunkId(h.offset, h.len);
      const id = `${h.kind}-${chunk}`;
      const c = this.connections.get(id) ?? {
        id,
        origin: h.kind === 'window' ? ('static-window' as const) : ('grant' as const),
        chunks: [chunk],
        heads: [],
        shared: h.shared,
        state: 'active',
      };
      if (!c.heads.includes(h.head)) c.heads.push(h.head);
      c.heads.sort((a, b) => a - b);
      if (h.state !== 'active' && c.state !== 'quarantined') c.state = h.state;
      this.connections.set(id, c);
    }
  }

  /** The MemoryRegions of one head's LD, by pool offset. */
  regions(head: number): RegionView[] {
    const out = new Map<string, RegionView>();
    for (const h of this.holdings) {
      if (h.head !== head) continue;
      const id = regionId(h.tag, h.offset, h.len, h.kind);
      const r = out.get(id) ?? { id, head, kind: h.kind, extents: [] };
      r.extents.push(h);
      out.set(id, r);
    }
    for (const r of out.values()) r.extents.sort((a, b) => a.offset - b.offset);
    return [...out.values()].sort((a, b) => (a.extents[0]?.offset ?? 0) - (b.extents[0]?.offset ?? 0));
  }

  /** Heads holding any part of [offset, offset+len). */
  holdersOf(offset: number, len: number): number[] {
    const hs = this.holdings.filter((h) => h.offset < offset + len && offset < h.offset + h.len).map((h) => h.head);
    return [...new Set(hs)].sort((a, b) => a - b);
  }

  /** Persisted connections whose grants are gone (head detached, released elsewhere). */
  staleConnections(store: Store, graceMs = 10_000): string[] {
    const now = Date.now();
    return store.connections.filter((c) => !this.connections.has(c.id) && now - Date.parse(c.created) > graceMs).map((c) => c.id);
  }

  /** Bytes of the pool a head still holds after the FM released them (quarantined grants), each byte once. */
  quarantinedBytes(): number {
    return this.segments().reduce((n, s) => n + (s.quarantined ? s.len : 0), 0);
  }

  /** The pool as runs of equal holders, free runs included: a 1 TiB pool is a handful of segments. */
  segments(): Segment[] {
    const cap = this.snap.status.capacityBytes;
    const cuts = new Set<number>([0, cap]);
    for (const h of this.holdings) {
      cuts.add(Math.max(0, Math.min(cap, h.offset)));
      cuts.add(Math.max(0, Math.min(cap, h.offset + h.len)));
    }
    const points = [...cuts].sort((a, b) => a - b);
    const out: Segment[] = [];
    for (let i = 0; i + 1 < points.length; i++) {
      const a = points[i] as number;
      const b = points[i + 1] as number;
      const here = this.holdings.filter((h) => h.offset <= a && a < h.offset + h.len);
      const holders = [...new Set(here.map((h) => h.head))].sort((x, y) => x - y);
      const seg: Segment = {
        offset: a,
        len: b - a,
        holders,
        shared: here.some((h) => h.shared),
        window: here.some((h) => h.kind === 'window'),
        quarantined: here.some((h) => h.state === 'quarantined'),
      };
      const prev = out[out.length - 1];
      if (
        prev &&
        prev.shared === seg.shared &&
        prev.window === seg.window &&
        prev.quarantined === seg.quarantined &&
        prev.holders.length === seg.holders.length &&
        prev.holders.every((x, j) => x === seg.holders[j])
      ) {
        prev.len += seg.len;
      } else {
        out.push(seg);
      }
    }
    return out;
  }
}
