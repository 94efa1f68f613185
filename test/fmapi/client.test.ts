// FmClient against the real server over a Unix socket, and against scripted
// peers for the failure paths: timeouts, strays, bad responses, closing.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ClientOptions, FmClient, FmClientError } from '../../src/fmapi/client.js';
import { COMMANDS, Opcode, RemovalPolicy, SelectionPolicy, ZERO_TAG } from '../../src/fmapi/commands.js';
import { FmError } from '../../src/fmapi/errors.js';
import { Framer } from '../../src/fmapi/framer.js';
import { Category, decodeHeader, encodeMessage, ReturnCode } from '../../src/fmapi/message.js';
import { FdStream, openPort } from '../../src/fmapi/port.js';
import { type ChannelOptions, FmApiServer, type ServerOptions, serveChannel } from '../../src/fmapi/server.js';
import { FakeBackend, REGION_BASE } from '../helpers/fmapi-backend.js';

const MiB = 2 ** 20;
let dir: string;
let servers: Server[] = [];
let clients: FmClient[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'fmapi-client-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  for (const c of clients) c.close();
  for (const s of servers) await new Promise((r) => s.close(r));
  clients = [];
  servers = [];
});

let n = 0;
async function listen(onConnection: (sock: Socket) => void): Promise<string> {
  const path = join(dir, `s${n++}.sock`);
  const server = createServer(onConnection);
  servers.push(server);
  await new Promise<void>((r) => server.listen(path, r));
  return path;
}

async function connect(path: string, opts: ClientOptions = {}): Promise<FmClient> {
  const c = new FmClient(await openPort(path), opts);
  clients.push(c);
  return c;
}

async function served(backend = new FakeBackend(), serverOpts: ServerOptions = {}, channelOpts: ChannelOptions = {}) {
  const server = new FmApiServer(backend, serverOpts);
  const sockets: Socket[] = [];
  const path = await listen((sock) => {
    sockets.push(sock);
    serveChannel(sock, server, channelOpts);
  });
  return { client: await connect(path), backend, sockets };
}

describe('FmClient ↔ FmApiServer over a Unix socket', () => {
  it('runs every command', async () => {
    const { client, backend } = await served();
    expect(await client.identify()).toMatchObject({
      vendorId: 0x1b36,
      serialNumber: 0xfeed_0000_0000_0001n,
      maxMessageSizeLog2: 16,
      componentType: 3,
    });
    expect(await client.mhdInfo()).toEqual({ numLds: 4, numHeads: 4, startLd: 0, ldMap: [0, 1, 2, 3] });
    expect(await client.mhdInfo({ startLd: 2, limit: 1 })).toEqual({ numLds: 4, numHeads: 4, startLd: 2, ldMap: [2] });
    expect((await client.headInfo({ start: 1, count: 2 })).heads.map((h) => h.port)).toEqual([1, 2]);
    expect(await client.dcdInfo()).toMatchObject({ numHosts: 4, totalCapacityBytes: 4 * 2 ** 30, regionBlockSizeMasks: [2n ** 21n] });
    const rc = await client.regionConfig(2);
    expect(rc).toMatchObject({ hostId: 2, numRegions: 1, regions: [{ base: REGION_BASE, blockSize: 2 * MiB }] });

    const base = rc.regions[0]!.base;
    await client.add({
      host: 2,
      extents: [
        { startDpa: base, len: 2 * MiB },
        { startDpa: base + 4 * MiB, len: 2 * MiB },
      ],
    });
    expect(backend.calls.at(-1)).toEqual({
      method: 'initiateAdd',
      req: {
        hostId: 2,
        selectionPolicy: SelectionPolicy.Prescriptive,
        region: 0,
        length: 4 * MiB,
        tag: ZERO_TAG,
        extents: [
          { startDpa: base, len: 2 * MiB, tag: ZERO_TAG, sharedSeq: 0 },
          { startDpa: base + 4 * MiB, len: 2 * MiB, tag: ZERO_TAG, sharedSeq: 0 },
        ],
      },
    });
    expect((await client.extents(2)).extents.map((e) => e.startDpa)).toEqual([base, base + 4 * MiB]);

    await client.release({ host: 2, forced: true, extents: [{ startDpa: base, len: 2 * MiB }] });
    expect(backend.calls.at(-1)?.req).toMatchObject({ removalPolicy: RemovalPolicy.Prescriptive, forced: true, length: 2 * MiB });
    expect(await client.extents(2)).toMatchObject({ totalExtents: 1, extents: [{ startDpa: base + 4 * MiB }] });
  });

  it('raises FmError with the code and words for a failed command', async () => {
    const backend = new FakeBackend();
    const { client } = await served(backend);
    backend.failNext.set('initiateAdd', new FmError(ReturnCode.ResourcesExhausted, 'pool full'));
    const e = await client.add({ host: 0, extents: [{ startDpa: REGION_BASE, len: 2 * MiB }] }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FmError);
    expect((e as FmError).code).toBe(ReturnCode.ResourcesExhausted);
    expect((e as FmError).opcode).toBe(Opcode.InitiateDcAdd);
    expect((e as FmError).message).toBe(
      'command 5604h: the device cannot perform the operation: resources are exhausted (ResourcesExhausted)',
    );
    await expect(client.dcdInfo()).resolves.toBeDefined();
  });

  it('is refused with Unsupported Mailbox once the channel is unbound', async () => {
    let bound = true;
    const { client } = await served(new FakeBackend(), {}, { isBound: () => bound });
    await client.identify();
    bound = false;
    await expect(client.identify()).rejects.toMatchObject({ code: ReturnCode.UnsupportedMailbox });
  });

  it('refuses to send what it cannot encode', async () => {
    const { client, backend } = await served();
    await expect(client.add({ host: 0, region: 9, extents: [] })).rejects.toMatchObject({ code: ReturnCode.InvalidInput });
    await expect(client.add({ host: 0x10000, extents: [] })).rejects.toMatchObject({ code: ReturnCode.InvalidInput });
    expect(backend.calls).toEqual([]);
  });

  it('runs many requests at once, each matched to its answer', async () => {
    const backend = new FakeBackend();
    backend.delay.set('mhdInfo', 1);
    const { client } = await served(backend);
    const answers = await Promise.all(Array.from({ length: 300 }, (_, i) => client.mhdInfo({ startLd: i % 4, limit: 1 })));
    expect(answers.map((a) => a.ldMap[0])).toEqual(Array.from({ length: 300 }, (_, i) => i % 4));
  });

  it('pages through a long extent list', async () => {
    const backend = new FakeBackend();
    backend.extents.set(
      1,
      Array.from({ length: 77 }, (_, i) => ({ startDpa: REGION_BASE + i * 2 * MiB, len: 2 * MiB, tag: ZERO_TAG, sharedSeq: 0 })),
    );
    const { client } = await served(backend, { maxMessageSizeLog2: 9 }); // 500-byte payloads: 11 extents a page
    expect((await client.extents(1)).extents).toHaveLength(11);
    const all = await client.allExtents(1);
    expect(all.extents.map((e) => e.startDpa)).toEqual(backend.extents.get(1)!.map((e) => e.startDpa));
    expect(backend.calls.filter((c) => c.method === 'extentList')).toHaveLength(1 + 7);
  });

  it('starts the extent walk over when the list changes under it', async () => {
    const backend = new FakeBackend();
    backend.extents.set(
      1,
      Array.from({ length: 30 }, (_, i) => ({ startDpa: REGION_BASE + i * 2 * MiB, len: 2 * MiB, tag: ZERO_TAG, sharedSeq: 0 })),
    );
    let calls = 0;
    const orig = backend.extentList.bind(backend);
    backend.extentList = async (req) => {
      if (++calls === 2) backend.generation++;
      return orig(req);
    };
    const { client } = await served(backend, { maxMessageSizeLog2: 9 });
    expect((await client.allExtents(1)).extents).toHaveLength(30);
    expect(calls).toBe(2 + 3);
  });
});

describe('FmClient tag list (5608h)', () => {
  it('pages through the tags (5 records of 84 bytes a 500-byte page) and starts over when the generation moves', async () => {
    const backend = new FakeBackend();
    const tags = Array.from({ length: 13 }, (_, i) => `${String(i % 10).repeat(8)}-0000-4000-8000-${String(i).padStart(12, '0')}`);
    backend.extents.set(
      1,
      tags.map((tag, i) => ({ startDpa: REGION_BASE + i * 2 * MiB, len: 2 * MiB, tag, sharedSeq: 0 })),
    );
    let calls = 0;
    const orig = backend.listTags.bind(backend);
    backend.listTags = async (req) => {
      if (++calls === 2) backend.generation++;
      return orig(req);
    };
    const { client } = await served(backend, { maxMessageSizeLog2: 9 });
    const all = await client.allTags();
    expect(all.tags.map((t) => t.tag)).toEqual([...tags].sort());
    expect(all.tags.every((t) => t.references.join() === '1')).toBe(true);
    // 13 tags at 5 a page: 3 pages, after one walk abandoned at its second page.
    expect(calls).toBe(2 + 3);
  });
});

describe('FmClient failure paths', () => {
  /** A peer that records requests and answers through `reply`. */
  async function scripted(reply: (req: Uint8Array, sock: Socket) => void, opts: ClientOptions = {}) {
    const seen: Uint8Array[] = [];
    const path = await listen((sock) => {
      const f = new Framer({ expect: Category.Request });
      sock.on('data', (chunk) => {
        for (const m of f.push(chunk)) {
          if (m instanceof Uint8Array) {
            seen.push(m);
            reply(m, sock);
          }
        }
      });
      sock.on('error', () => {});
    });
    return { client: await connect(path, opts), seen };
  }
  const answer = (req: Uint8Array, over: Partial<Parameters<typeof encodeMessage>[0]> = {}) => {
    const h = decodeHeader(req);
    return encodeMessage({ category: Category.Response, tag: h.tag, opcode: h.opcode, ...over });
  };

  it('increments the tag per request and wraps after 255', async () => {
    const { client, seen } = await scripted((req, sock) => sock.write(answer(req, { payload: COMMANDS.dcdInfo.response.encode(dcd()) })));
    for (let i = 0; i < 260; i++) await client.dcdInfo();
    expect(seen.map((m) => decodeHeader(m).tag)).toEqual(Array.from({ length: 260 }, (_, i) => i % 256));
  });

  it('times out, and ignores the late answer', async () => {
    const strays: Uint8Array[] = [];
    let held: (() => void) | undefined;
    const { client } = await scripted(
      (req, sock) => {
        held = () => sock.write(answer(req, { payload: COMMANDS.dcdInfo.response.encode(dcd()) }));
      },
      { timeoutMs: 50, onStray: (f) => strays.push(f) },
    );
    const e = await client.dcdInfo().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FmClientError);
    expect((e as FmClientError).kind).toBe('timeout');
    expect((e as FmClientError).message).toContain('5600h');
    held!();
    await new Promise((r) => setTimeout(r, 30));
    expect(strays).toHaveLength(1);
  });

  it('skips answers whose tag or opcode do not match', async () => {
    const { client } = await scripted((req, sock) => {
      const h = decodeHeader(req);
      sock.write(encodeMessage({ category: Category.Response, tag: (h.tag + 1) & 0xff, opcode: h.opcode }));
      sock.write(encodeMessage({ category: Category.Response, tag: h.tag, opcode: 0x5601 }));
      sock.write(answer(req, { payload: COMMANDS.dcdInfo.response.encode(dcd()) }));
    });
    await expect(client.dcdInfo()).resolves.toMatchObject({ numHosts: 2 });
  });

  it('raises a protocol error for a success answer that does not parse', async () => {
    const { client } = await scripted((req, sock) => sock.write(answer(req, { payload: new Uint8Array(3) })));
    await expect(client.dcdInfo()).rejects.toMatchObject({ name: 'FmClientError', kind: 'protocol' });
  });

  it('fails everything waiting when the peer sends a request', async () => {
    const { client } = await scripted((req, sock) =>
      sock.write(encodeMessage({ category: Category.Request, tag: decodeHeader(req).tag, opcode: 1 })),
    );
    await expect(client.identify()).rejects.toMatchObject({ kind: 'protocol' });
  });

  it('fails what is waiting when the channel closes, and everything after', async () => {
    const { client } = await scripted((_req, sock) => sock.end());
    await expect(client.identify()).rejects.toMatchObject({ kind: 'closed' });
    await expect(client.identify()).rejects.toMatchObject({ kind: 'closed' });
  });

  it('fails what is waiting on close()', async () => {
    const { client } = await scripted(() => {});
    const p = client.identify();
    client.close();
    await expect(p).rejects.toMatchObject({ kind: 'closed', message: 'the client was closed' });
  });
});

function dcd() {
  return {
    numHosts: 2,
    addPolicyMask: 4,
    removalPolicyMask: 2,
    sanitizeMask: 0,
    totalCapacityBytes: 2 ** 28,
    regionBlockSizeMasks: [1n << 21n],
  };
}

describe('openPort', () => {
  it('opens a FIFO as a non-blocking stream and moves messages through it', async () => {
    const fifo = join(dir, 'loop.fifo');
    execFileSync('mkfifo', [fifo]);
    const port = await openPort(fifo);
    expect(port).toBeInstanceOf(FdStream);
    // A FIFO loops back: the client reads its own request, which is no response.
    const received: Buffer[] = [];
    port.on('data', (c: Buffer) => received.push(c));
    const msg = encodeMessage({ category: Category.Request, tag: 1, opcode: 1, payload: new Uint8Array(70_000).fill(7) });
    port.write(msg);
    const deadline = Date.now() + 5000;
    while (Buffer.concat(received).length < msg.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(Buffer.concat(received).equals(Buffer.from(msg))).toBe(true);
    port.destroy();
    await new Promise((r) => port.once('close', r));
  });

  it('refuses a regular file and reports a missing path', async () => {
    const file = join(dir, 'plain');
    writeFileSync(file, '');
    await expect(openPort(file)).rejects.toThrow(/neither a socket nor a character device/);
    await expect(openPort(join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
