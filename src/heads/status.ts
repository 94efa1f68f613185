// The one status of a pool, the `status --json` contract (README, CLI
// reference): what shared memory says (pool/status.ts), with what the
// backend recorded per head (phase, refusal reason, delivery, grants), the
// tagged allocations those grants make, and where its northbound listens.
// Put together in one function (composeStatus) for `status` and the running
// backend's snapshot alike.
import { type AllocationView, allocationsOf } from '../capacity/lite.js';
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

/** The status of a pool from the run dir: any process, backend running or not. */
export function statusOf(pool: Pool, runDir: string): Status {
  const s = poolStatus(pool);
  return composeStatus(s, readHeadRecords(runDir, s.pool), s.backend.running ? readHttpRecord(runDir, s.pool) : null);
}

/**
 * The one place a status is put together: shared memory's view, the
 * backend's head records (read from heads.json, or the running backend's own,
 * with live grants) and the northbound's record.
 */
export function composeStatus(s: PoolStatus, records: HeadRecord[] | null, rec: HttpRecord | null): Status {
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
  if (!records) return withHttp;
  const heads = withHttp.heads.map((h) => {
    const r = records.find((x) => x.head === h.id);
    return r ? { ...h, phase: r.phase, reason: r.reason, delivery: r.delivery ?? null, grants: r.grants ?? [] } : h;
  });
  return { ...withHttp, heads, allocations: allocationsOf(heads) };
}
