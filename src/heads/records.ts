// Head records: what the backend knows about each head beyond shared
// memory (its session's phase, why it was refused or detached, its windows,
// delivery and grants), kept in memory and in <run-dir>/<pool>/heads.json
// (0600, replaced atomically) for `cxl-mhd status`. The one writer and the
// one reader of that file, and the reader of http.json, the northbound's
// record beside it (written by http/server.ts). heads.json is a status file,
// not durable state: a burst of record changes (32 heads attaching at once)
// is written once, a few ms later and off the event loop, instead of once
// per change on the attach path (docs/performance.md).
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
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
  /** The certificate an https northbound presents: what `cxl-mhd events` trusts. */
  tlsCert?: string;
}

export function readHttpRecord(runDir: string, pool: string): HttpRecord | null {
  try {
    return JSON.parse(readFileSync(httpRecordPath(runDir, pool), 'utf8')) as HttpRecord;
  } catch {
    // Absent (no northbound) or torn.
    return null;
  }
}

/** How long heads.json may lag the records (one write per burst of changes). */
export const RECORDS_WRITE_DELAY_MS = 20;

export class HeadRecords {
  private readonly records = new Map<number, HeadRecord>();
  private writeTimer: NodeJS.Timeout | null = null;
  private dirty = false;
  private draining: Promise<void> | null = null;

  constructor(
    private readonly runDir: string,
    private readonly pool: string,
    /** Called with every record set. */
    private readonly onSet: (record: HeadRecord) => void = () => {},
    /** Called when writing heads.json failed (the records in memory stay right; the next change writes again). */
    private readonly onWriteError: (e: Error) => void = () => {},
  ) {}

  get(head: number): HeadRecord | undefined {
    return this.records.get(head);
  }

  all(): HeadRecord[] {
    return [...this.records.values()].sort((a, b) => a.head - b.head);
  }

  set(record: HeadRecord): void {
    this.records.set(record.head, record);
    this.dirty = true;
    if (!this.writeTimer && !this.draining) {
      this.writeTimer = setTimeout(() => {
        this.writeTimer = null;
        this.drain();
      }, RECORDS_WRITE_DELAY_MS);
    }
    this.onSet(record);
  }

  /** Resolves once heads.json holds every record set so far. */
  async flush(): Promise<void> {
    if (this.writeTimer) clearTimeout(this.writeTimer);
    this.writeTimer = null;
    if (this.dirty) this.drain();
    await this.draining;
  }

  /**
   * Writes off the event loop, one write at a time; what changed during a
   * write goes out in the next. (A synchronous rename over the old file
   * waits for the new one's data on ext4: tens of ms on a busy disk, on
   * every attach step, was what made concurrent attaches slow.)
   */
  private drain(): void {
    if (this.draining) return;
    this.draining = (async () => {
      while (this.dirty) {
        this.dirty = false;
        try {
          await this.writeAsync();
        } catch (e) {
          this.onWriteError(e as Error);
        }
      }
    })().finally(() => {
      this.draining = null;
    });
  }

  private body(): string {
    const body: RecordsFile = { pool: this.pool, backendPid: process.pid, heads: this.all() };
    return `${JSON.stringify(body, null, 2)}\n`;
  }

  private async writeAsync(): Promise<void> {
    const path = headRecordsPath(this.runDir, this.pool);
    const tmp = `${path}.tmp`;
    await writeFile(tmp, this.body(), { mode: 0o600 });
    await rename(tmp, path);
  }

  /** Writes heads.json now, synchronously (the backend's start, before anything is set). */
  write(): void {
    const path = headRecordsPath(this.runDir, this.pool);
    const tmp = `${path}.tmp`;
    writeFileSync(tmp, this.body(), { mode: 0o600 });
    renameSync(tmp, path);
  }
}
