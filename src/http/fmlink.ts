// The northbound's only way to move capacity: an FmClient over an FM-API
// channel the daemon hands it (in process, no socket), so every add and
// release goes through the same codecs, FmApiServer, lease rule and journal
// as any other FM-API user.
import type { Duplex } from 'node:stream';
import { FmClient, FmClientError, FmError, RemovalPolicy, SelectionPolicy } from '../fmapi/index.js';
import { fmCodeError, RedfishError } from './redfish.js';

export interface Piece {
  head: number;
  offset: number;
  len: number;
}

export class FmLink {
  private client: FmClient | null = null;
  private stream: Duplex | null = null;
  /** Region base per head and QEMU pid: it only changes when a different QEMU attaches. */
  private readonly bases = new Map<number, { pid: number | null; base: number }>();

  constructor(
    /** Opens a channel to the FM-API server (the daemon's `fmChannel`). */
    private readonly open: () => Duplex,
    private readonly timeoutMs = 30_000,
  ) {}

  private async get(): Promise<FmClient> {
    if (this.client) return this.client;
    let s: Duplex;
    try {
      s = this.open();
    } catch (e) {
      throw new RedfishError(503, 'ServiceTemporarilyUnavailable', `The FM-API is not reachable: ${(e as Error).message}.`);
    }
    const c = new FmClient(s, { timeoutMs: this.timeoutMs });
    s.once('close', () => {
      if (this.client === c) this.client = null;
    });
    this.stream = s;
    this.client = c;
    return c;
  }

  private async base(c: FmClient, head: number, pid: number | null): Promise<number> {
    const known = this.bases.get(head);
    if (known && known.pid === pid && pid !== null) return known.base;
    const base = (await c.regionConfig(head)).regions[0]?.base ?? 0;
    this.bases.set(head, { pid, base });
    return base;
  }

  /** One 5604h to one head: every piece an extent of it, all under `tag`. */
  async add(head: number, pieces: { offset: number; len: number }[], pid: number | null, shared: boolean, tag: string): Promise<void> {
    const bytes = pieces.reduce((s, p) => s + p.len, 0);
    const at = pieces.map((p) => p.offset).join(', ');
    await this.run(`5604h add of ${bytes} bytes at pool offset ${at} to head ${head}`, async (c) => {
      const base = await this.base(c, head, pid);
      await c.add({
        host: head,
        selectionPolicy: shared ? SelectionPolicy.EnableSharedAccess : SelectionPolicy.Prescriptive,
        extents: pieces.map((p) => ({ startDpa: base + p.offset, len: p.len, tag })),
        tag,
      });
    });
  }

  /** 5605h for one head's extent. */
  async release(p: Piece, pid: number | null): Promise<void> {
    await this.run(`5605h release of ${p.len} bytes at pool offset ${p.offset} from head ${p.head}`, async (c) => {
      const base = await this.base(c, p.head, pid);
      await c.release({ host: p.head, removalPolicy: RemovalPolicy.Prescriptive, extents: [{ startDpa: base + p.offset, len: p.len }] });
    });
  }

  private async run(what: string, fn: (c: FmClient) => Promise<void>): Promise<void> {
    try {
      await fn(await this.get());
    } catch (e) {
      if (e instanceof RedfishError) throw e;
      if (e instanceof FmError) throw fmCodeError(Number(e.code), what);
      if (e instanceof FmClientError)
        throw new RedfishError(503, 'ServiceTemporarilyUnavailable', `${what}: the FM-API channel failed: ${e.message}.`);
      throw e;
    }
  }

  close(): void {
    this.client?.close();
    this.stream?.destroy();
    this.client = null;
  }
}
