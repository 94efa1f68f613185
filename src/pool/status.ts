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
  };
}
