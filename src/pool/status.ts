// The status snapshot of a pool: the `status --json` contract (README, CLI reference).
import type { Pool } from './pool.js';

export interface HeadStatus {
  id: number;
  attached: boolean;
  pid: number | null;
  grantedBytes: number;
  sharedBytes: number;
  attachedAt: string | null;
}

export interface PoolStatus {
  pool: string;
  capacityBytes: number;
  blockBytes: number;
  blockCount: number;
  headCount: number;
  generation: number;
  fmldOwner: number | null;
  leaseEpoch: number;
  backend: { running: boolean; pid: number | null };
  heads: HeadStatus[];
  freeBytes: number;
  /** Bytes kept by FM tag references (5606h), held by a head or not. */
  referencedBytes: number;
  /** The references the journal holds (empty when it cannot be read). */
  references: { tag: string; count: number; shared: boolean; extents: { offset: number; len: number }[] }[];
}

function referencesOf(pool: Pool): PoolStatus['references'] {
  const bb = pool.state.header.blockBytes;
  try {
    // The writer has the journal's image in memory; anyone else reads it from disk.
    return (pool.hasWriterLock ? pool.image : pool.loadImage().image).references().map((r) => ({
      tag: r.tag,
      count: r.count,
      shared: r.shared,
      extents: r.ranges.map((x) => ({ offset: x.first * bb, len: x.count * bb })),
    }));
  } catch {
    return [];
  }
}

export function poolStatus(pool: Pool): PoolStatus {
  const s = pool.state;
  const { blockBytes } = s.header;
  const usage = s.usage();
  const lease = s.lease();
  const running = pool.writerActive();
  return {
    pool: pool.name,
    capacityBytes: s.header.capacityBytes,
    blockBytes,
    blockCount: s.blockCount,
    headCount: s.headCount,
    generation: s.generation,
    fmldOwner: lease.owner,
    leaseEpoch: lease.epoch,
    backend: { running, pid: running && s.writerPid ? s.writerPid : null },
    heads: s.heads().map((h, i) => ({
      id: h.id,
      attached: h.attached,
      pid: h.attached && h.pid ? h.pid : null,
      grantedBytes: (usage.perHead[i] ?? 0) * blockBytes,
      sharedBytes: (usage.sharedPerHead[i] ?? 0) * blockBytes,
      attachedAt: h.attached && h.attachedMs ? new Date(h.attachedMs).toISOString() : null,
    })),
    freeBytes: usage.free * blockBytes,
    referencedBytes: usage.referenced * blockBytes,
    references: usage.referenced > 0 ? referencesOf(pool) : [],
  };
}
