// An in-process northbound for fast tests: the real Northbound (fastify,
// auth, store, SSE) whose FM-API link reaches a real FmApiServer over an
// in-process channel (as the daemon gives it), backed by the scripted FakeBackend; the snapshot follows the
// extents the fake holds, so a connection made over Redfish shows up as a
// grant. Real QEMU heads are in test/http/clients-qemu.test.ts.
import { spawnSync } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { FmApiServer, inProcessChannel } from '../../src/fmapi/server.js';
import type { HeadRecord } from '../../src/heads/index.js';
import {
  type BackendEvent,
  type Limits,
  Northbound,
  type NorthboundOptions,
  type SnapshotView,
  type StampedEvent,
} from '../../src/http/index.js';
import { FakeBackend, REGION_BASE } from './fmapi-backend.js';
import { tempDir } from './pool.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
export const USERS = { admin: 'secret', viewer: 'p@ss:word', reader: 'read only', aggregator: 'agg pass' };
/** Roles of USERS: the rest are Administrators. */
export const ROLES = new Map([
  ['reader', 'ReadOnly' as const],
  ['aggregator', 'ReadOnly' as const],
]);
export const BASIC = `Basic ${Buffer.from('admin:secret').toString('base64')}`;

/** A self-signed certificate for 127.0.0.1 made with openssl, as docs/redfish.md shows; the key 0600. */
export function makeCert(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'tls.crt');
  const key = join(dir, 'tls.key');
  const r = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  chmodSync(key, 0o600);
  return { cert, key };
}

export interface FakeNorthbound {
  nb: Northbound;
  fake: FakeBackend;
  dir: string;
  emit(e: BackendEvent): void;
  /** Heads attached in the snapshot (all by default). */
  attached: Set<number>;
  capacityBytes: number;
  /** While false, fm.sock answers like a backend whose lease owner is detached. */
  bound: { value: boolean };
}

const open: { close(): Promise<void> | void }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

export async function fakeNorthbound(
  opts: {
    heads?: number;
    limits?: Partial<Limits>;
    capacityBytes?: number;
    users?: NorthboundOptions['users'];
    tls?: NorthboundOptions['tls'];
    /** A test that restarts the service passes the first one's dir: its state files are read again. */
    dir?: string;
  } = {},
): Promise<FakeNorthbound> {
  const dir = opts.dir ?? tempDir('cxl-mhd-nb-');
  const heads = opts.heads ?? 3;
  const capacityBytes = opts.capacityBytes ?? 4 * GiB;
  const fake = new FakeBackend();
  const fmServer = new FmApiServer(fake);
  const bound = { value: true };
  const attached = new Set(Array.from({ length: heads }, (_, i) => i));
  let seq = 0;
  /** `head/startDpa` of extents added with Enable Shared Access (5604h policy 3): the snapshot shows them shared. */
  const sharedAdds = new Set<string>();
  const listeners = new Set<(e: StampedEvent) => void>();
  const emit = (e: BackendEvent) => {
    const stamped = { ...e, seq: ++seq, at: new Date().toISOString() } as StampedEvent;
    for (const l of listeners) l(stamped);
  };
  // The shared extent sequence number as CapacityManager numbers it: the extent's place, by pool offset, in its tag's allocation.
  const seqOf = (tag: string, dpa: number): number => {
    if (/^[0-]+$/.test(tag)) return 0;
    const offsets = [...fake.extents.values()]
      .flat()
      .filter((e) => e.tag === tag)
      .map((e) => e.startDpa);
    return [...new Set(offsets)].sort((a, b) => a - b).indexOf(dpa);
  };
  const snapshot = (): SnapshotView => {
    const records = Array.from({ length: heads }, (_, h): HeadRecord => {
      const grants = (fake.extents.get(h) ?? []).map((e) => ({
        offset: e.startDpa - REGION_BASE,
        len: e.len,
        tag: e.tag,
        shared: sharedAdds.has(`${h}/${e.startDpa}`),
        state: 'active' as const,
        delivery: 'dcd',
        seq: seqOf(e.tag, e.startDpa),
      }));
      return {
        head: h,
        phase: attached.has(h) ? 'attached' : 'detached',
        pid: attached.has(h) ? 1000 + h : null,
        reason: null,
        since: new Date(0).toISOString(),
        windows: h < 2 ? [{ offset: 0, size: 256 * MiB, exclusive: false }] : [],
        fmld: h === 0,
        delivery: 'dcd',
        grants,
      };
    });
    const granted = records.map((r) => r.grants.reduce((s, g) => s + g.len, 0) + r.windows.reduce((s, w) => s + w.size, 0));
    return {
      status: {
        pool: 'fakepool',
        capacityBytes,
        blockBytes: 2 * MiB,
        blockCount: capacityBytes / (2 * MiB),
        headCount: heads,
        fmldOwner: 0,
        leaseEpoch: 1,
        generation: 1,
        backend: { running: true, pid: process.pid },
        freeBytes: capacityBytes - 256 * MiB,
        referencedBytes: 0,
        references: [],
        heads: records.map((r, i) => ({
          id: i,
          attached: attached.has(i),
          pid: r.pid,
          grantedBytes: granted[i] ?? 0,
          sharedBytes: 0,
          attachedAt: null,
        })),
      },
      heads: records,
    };
  };
  // Like the real backend: an event per extent, emitted before the FM-API answers.
  const add = fake.initiateAdd.bind(fake);
  fake.initiateAdd = async (req) => {
    await add(req);
    for (const x of req.extents) {
      if (req.selectionPolicy === 3) sharedAdds.add(`${req.hostId}/${x.startDpa}`);
      emit({
        kind: 'capacity-added',
        head: req.hostId,
        offset: x.startDpa - REGION_BASE,
        len: x.len,
        shared: req.selectionPolicy === 3,
        tag: req.tag,
        via: 'fm.sock',
      });
    }
  };
  const release = fake.initiateRelease.bind(fake);
  fake.initiateRelease = async (req) => {
    // Like the real backend, a release names the tag the extent was added with.
    const held = fake.extents.get(req.hostId) ?? [];
    const tags = req.extents.map((x) => held.find((e) => e.startDpa === x.startDpa)?.tag ?? null);
    await release(req);
    for (const [i, x] of req.extents.entries())
      emit({
        kind: 'capacity-released',
        head: req.hostId,
        offset: x.startDpa - REGION_BASE,
        len: x.len,
        tag: tags[i] ?? null,
        via: 'fm.sock',
      });
  };
  const nb = new Northbound({
    deps: {
      pool: 'fakepool',
      fmChannel: () => inProcessChannel(fmServer, { isBound: () => bound.value }).client,
      snapshot,
      subscribe: (fn) => {
        listeners.add(fn);
        return () => listeners.delete(fn);
      },
    },
    users: opts.users ?? USERS,
    ...(opts.tls ? { tls: opts.tls } : {}),
    stateFile: join(dir, 'northbound.json'),
    subscriptionsFile: join(dir, 'subscriptions.json'),
    roles: ROLES,
    limits: opts.limits,
  });
  open.push({ close: () => nb.close() });
  return {
    nb,
    fake,
    dir,
    attached,
    capacityBytes,
    bound,
    emit,
  };
}

/** An SSE client on a real socket: frames with data, the next n of them, and whether the server ended the stream. */
export function sse(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; frames: string[]; close: () => void; next: (n: number) => Promise<string[]>; ended: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      const frames: string[] = [];
      let buf = '';
      const waiters: (() => void)[] = [];
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
          const f = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (f.includes('data: ')) frames.push(f);
        }
        for (const w of waiters.splice(0)) w();
      });
      const ended = new Promise<void>((r) => res.on('close', r));
      resolve({
        ended,
        status: res.statusCode ?? 0,
        frames,
        close: () => req.destroy(),
        next: async (n) => {
          while (frames.length < n) await new Promise<void>((r) => waiters.push(r));
          return frames.slice(0, n);
        },
      });
    });
    req.on('error', reject);
  });
}

/** A 256 MiB chunk at `offsetMiB` of the fake pool, made over Redfish. */
export function makeChunk(nb: Northbound, offsetMiB: number) {
  return nb.app.inject({
    method: 'POST',
    url: '/redfish/v1/Chassis/fakepool/MemoryDomains/fakepool/MemoryChunks',
    headers: { authorization: BASIC },
    payload: { MemoryChunkSizeMiB: 256, AddressRangeOffsetMiB: offsetMiB },
  });
}

/** POSTs a Connection of the chunk at `chunk` (its URI) to `heads`, as an Administrator. */
export function connect(nb: Northbound, chunk: string, heads: number[]) {
  const base = '/redfish/v1';
  return nb.app.inject({
    method: 'POST',
    url: `${base}/Fabrics/CXL/Connections`,
    headers: { authorization: BASIC },
    payload: {
      ConnectionType: 'Memory',
      MemoryChunkInfo: [{ MemoryChunk: { '@odata.id': chunk } }],
      Links: { InitiatorEndpoints: heads.map((h) => ({ '@odata.id': `${base}/Fabrics/CXL/Endpoints/head${h}` })) },
    },
  });
}

/** Defines a 256 MiB chunk at `offsetMiB` and connects it to `heads` over Redfish, as an Administrator. */
export async function connectChunk(
  nb: Northbound,
  offsetMiB: number,
  heads: number[],
): Promise<{ chunk: string; status: number; location: string }> {
  const chunk = await makeChunk(nb, offsetMiB);
  const made = await connect(nb, chunk.headers.location as string, heads);
  return { chunk: chunk.headers.location as string, status: made.statusCode, location: made.headers.location as string };
}
