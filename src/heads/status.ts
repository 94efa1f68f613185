// The one status of a pool, the `status --json` contract (README, CLI
// reference): what shared memory says (pool/status.ts), with what the
// backend recorded per head (phase, refusal reason, delivery, grants), the
// tagged allocations those grants make, and where its northbound listens.
// Read from the run dir, so it works from any process, backend running or not.
import { type AllocationView, allocationsOf } from '../capacity/index.js';
import { type Pool, type PoolStatus, poolStatus } from '../pool/index.js';
import { type HeadRecord, type HttpRecord, readHeadRecords, readHttpRecord } from './records.js';

export type HeadReport = PoolStatus['heads'][number] & {
  phase?: HeadRecord['phase'];
  reason?: HeadRecord['reason'];
  delivery?: HeadRecord['delivery'];
  grants?: HeadRecord['grants'];
};

export type Status = Omit<PoolStatus, 'heads'> & {
  /** The running northbound (`serve --http`), without its local token. */
  http?: Omit<HttpRecord, 'localToken'>;
  /** Tagged allocations and the heads holding them (with a running backend's records). */
  allocations?: AllocationView[];
  heads: HeadReport[];
};

export function statusOf(pool: Pool, runDir: string): Status {
  const s: Status = poolStatus(pool);
  const rec = s.backend.running ? readHttpRecord(runDir, s.pool) : null;
  const withHttp: Status = rec
    ? {
        ...s,
        http: {
          url: rec.url,
          redfish: rec.redfish,
          sse: rec.sse,
          pid: rec.pid,
          usersFile: rec.usersFile,
          stateFile: rec.stateFile,
          fmSocket: rec.fmSocket,
        },
      }
    : s;
  const records = readHeadRecords(runDir, s.pool);
  if (!records) return withHttp;
  const heads = withHttp.heads.map((h) => {
    const r = records.find((x) => x.head === h.id);
    return r ? { ...h, phase: r.phase, reason: r.reason, delivery: r.delivery ?? null, grants: r.grants ?? [] } : h;
  });
  return { ...withHttp, heads, allocations: allocationsOf(heads) };
}
