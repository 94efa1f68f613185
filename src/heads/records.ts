// Head records: what the backend knows about each head beyond shared
// memory (its session's phase, why it was refused or detached, its windows,
// delivery and grants), kept in memory and in <run-dir>/<pool>/heads.json
// (0600, replaced atomically) for `cxl-mhd status`. The one writer and the
// one reader of that file, and the reader of http.json, the northbound's
// record beside it (written by http/server.ts).
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { GrantView } from '../capacity/index.js';
import { headRecordsPath, httpRecordPath } from '../pool/index.js';

export type HeadPhase = 'attaching' | 'attached' | 'refused' | 'detached';

export interface HeadRecord {
  head: number;
  phase: HeadPhase;
  pid: number | null;
  reason: string | null;
  since: string;
  windows: { offset: number; size: number; exclusive: boolean }[];
  fmld: boolean;
  delivery: string | null;
  grants: GrantView[];
}

/** The part of a record a session decides; the rest is read from the session and capacity. */
export interface RecordState {
  phase: HeadPhase;
  pid: number | null;
  reason: string | null;
}

interface RecordsFile {
  pool: string;
  backendPid: number;
  heads: HeadRecord[];
}

/** The records the last backend of the pool wrote, or null when there are none to read. */
export function readHeadRecords(runDir: string, pool: string): HeadRecord[] | null {
  try {
    const body = JSON.parse(readFileSync(headRecordsPath(runDir, pool), 'utf8')) as Partial<RecordsFile>;
    return Array.isArray(body.heads) ? body.heads : null;
  } catch {
    // Absent (no backend ever served the pool here) or torn: status shows shared memory alone.
    return null;
  }
}

/** What `serve --http` leaves in the run dir: where it listens and a token for local clients (mode 0600). */
export interface HttpRecord {
  url: string;
  redfish: string;
  sse: string;
  pid: number;
  usersFile: string;
  stateFile: string;
  fmSocket: string;
  localToken: string;
}

export function readHttpRecord(runDir: string, pool: string): HttpRecord | null {
  try {
    return JSON.parse(readFileSync(httpRecordPath(runDir, pool), 'utf8')) as HttpRecord;
  } catch {
    // Absent (no northbound) or torn.
    return null;
  }
}

export class HeadRecords {
  private readonly records = new Map<number, HeadRecord>();

  constructor(
    private readonly runDir: string,
    private readonly pool: string,
    /** Called with every record set. */
    private readonly onSet: (record: HeadRecord) => void = () => {},
  ) {}

  get(head: number): HeadRecord | undefined {
    return this.records.get(head);
  }

  all(): HeadRecord[] {
    return [...this.records.values()].sort((a, b) => a.head - b.head);
  }

  set(record: HeadRecord): void {
    this.records.set(record.head, record);
    this.write();
    this.onSet(record);
  }

  write(): void {
    const path = headRecordsPath(this.runDir, this.pool);
    const tmp = `${path}.tmp`;
    const body: RecordsFile = { pool: this.pool, backendPid: process.pid, heads: this.all() };
    writeFileSync(tmp, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, path);
  }
}
