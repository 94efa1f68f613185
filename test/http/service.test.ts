// The Redfish service in process (fastify.inject and a real loopback
// listener) over a real FmApiServer with a scripted FM backend: auth and
// sessions, the resource tree, chunks and connections issuing 5604h/5605h,
// CXL return codes as Redfish errors, bad input, and the SSE stream with
// Last-Event-ID resume and its client cap.
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FmError } from '../../src/fmapi/index.js';
import { hashPassword, loadUsers, Northbound } from '../../src/http/index.js';
import { REGION_BASE } from '../helpers/fmapi-backend.js';
import { BASIC, fakeNorthbound, makeCert, sse, USERS } from '../helpers/northbound.js';
import { tempDir } from '../helpers/pool.js';

const MiB = 2 ** 20;
const CHUNKS = '/redfish/v1/Chassis/fakepool/MemoryDomains/fakepool/MemoryChunks';
const CONNS = '/redfish/v1/Fabrics/CXL/Connections';
const PCIE = '/redfish/v1/Chassis/fakepool/PCIeDevices/fakepool';
const tagOf = (chunk: { Oem: { CxlMhd: { Tag: string } } }) => chunk.Oem.CxlMhd.Tag;
const auth = { authorization: BASIC };
const ep = (h: number) => ({ '@odata.id': `/redfish/v1/Fabrics/CXL/Endpoints/head${h}` });

function errorOf(body: string): { code: string; message: string; info: { MessageId: string; Message: string }[] } {
  const e = JSON.parse(body).error;
  return { code: e.code, message: e.message, info: e['@Message.ExtendedInfo'] };
}

describe('Redfish service (in process)', () => {
  it('opens ServiceRoot to all and asks everything else for credentials', async () => {
    const { nb } = await fakeNorthbound();
    const root = await nb.app.inject({ url: '/redfish/v1/' });
    expect(root.statusCode).toBe(200);
    expect(root.headers['odata-version']).toBe('4.0');
    const body = root.json();
    for (const k of ['Chassis', 'Fabrics', 'EventService', 'SessionService']) expect(body[k]['@odata.id']).toBe(`/redfish/v1/${k}`);
    const denied = await nb.app.inject({ url: '/redfish/v1/Chassis' });
    expect(denied.statusCode).toBe(401);
    expect(denied.headers['www-authenticate']).toMatch(/^Basic/);
    expect(errorOf(denied.body).info[0]?.MessageId).toBe('Base.1.22.NoValidSession');
    const wrong = await nb.app.inject({
      url: '/redfish/v1/Chassis',
      headers: { authorization: `Basic ${Buffer.from('admin:nope').toString('base64')}` },
    });
    expect(wrong.statusCode).toBe(401);
    expect((await nb.app.inject({ url: '/', headers: {} })).statusCode).toBe(401);
    const head = await nb.app.inject({ method: 'HEAD', url: '/redfish/v1/EventService/SSE', headers: auth });
    expect([head.statusCode, head.headers['content-type']]).toEqual([200, 'text/event-stream']);
    const ok = await nb.app.inject({ url: '/redfish/v1/Chassis', headers: auth });
    expect(ok.json()).toMatchObject({ 'Members@odata.count': 1, Members: [{ '@odata.id': '/redfish/v1/Chassis/fakepool' }] });
  });

  it('sessions: login gives X-Auth-Token and Location, the token works, DELETE ends it', async () => {
    const { nb } = await fakeNorthbound();
    const login = await nb.app.inject({
      method: 'POST',
      url: '/redfish/v1/SessionService/Sessions',
      payload: { UserName: 'viewer', Password: 'p@ss:word' },
    });
    expect(login.statusCode).toBe(201);
    const token = login.headers['x-auth-token'] as string;
    const loc = login.headers.location as string;
    expect(loc).toMatch(/^\/redfish\/v1\/SessionService\/Sessions\/[0-9a-f-]{36}$/);
    expect((await nb.app.inject({ url: '/redfish/v1/Fabrics/CXL', headers: { 'x-auth-token': token } })).statusCode).toBe(200);
    expect((await nb.app.inject({ method: 'DELETE', url: loc, headers: { 'x-auth-token': token } })).statusCode).toBe(204);
    expect((await nb.app.inject({ url: '/redfish/v1/Fabrics/CXL', headers: { 'x-auth-token': token } })).statusCode).toBe(401);
    const bad = await nb.app.inject({
      method: 'POST',
      url: '/redfish/v1/SessionService/Sessions',
      payload: { UserName: 'viewer', Password: 'x' },
    });
    expect(bad.statusCode).toBe(401);
  });

  it('walks the tree: chassis, domain, LDs, endpoints, static windows as chunks and connections', async () => {
    const { nb } = await fakeNorthbound();
    const get = async (url: string) => {
      const r = await nb.app.inject({ url, headers: auth });
      expect(r.statusCode, url).toBe(200);
      return r.json();
    };
    const ch = await get('/redfish/v1/Chassis/fakepool');
    expect(ch).toMatchObject({
      Id: 'fakepool',
      '@odata.type': expect.stringMatching(/^#Chassis\.v1_/),
      Oem: { CxlMhd: { HeadCount: 3, FmldOwner: 0 } },
    });
    const lds = await get('/redfish/v1/Chassis/fakepool/PCIeDevices/fakepool/CXLLogicalDevices');
    expect(lds['Members@odata.count']).toBe(3);
    await get('/redfish/v1/Chassis/fakepool/PCIeDevices/fakepool/CXLLogicalDevices/2');
    const e0 = await get('/redfish/v1/Fabrics/CXL/Endpoints/head0');
    expect(e0.Oem.CxlMhd).toMatchObject({ Attached: true, QemuPid: 1000, FmldOwner: true });
    const chunks = await get(CHUNKS);
    expect(chunks.Members).toEqual([{ '@odata.id': `${CHUNKS}/0M-256M` }]);
    const conns = await get(CONNS);
    expect(conns.Members).toEqual([{ '@odata.id': `${CONNS}/window-0M-256M` }]);
    const w = await get(`${CONNS}/window-0M-256M`);
    expect(w.Links.InitiatorEndpoints).toEqual([ep(0), ep(1)]);
    expect((await nb.app.inject({ url: '/redfish/v1/Fabrics/CXL/Endpoints/head3', headers: auth })).statusCode).toBe(404);
  });

  it('a chunk and a two-head connection issue enable-shared 5604h per head; DELETE issues 5605h', async () => {
    const { nb, fake, dir } = await fakeNorthbound();
    const c = await nb.app.inject({
      method: 'POST',
      url: CHUNKS,
      headers: auth,
      payload: { MemoryChunkSizeMiB: 256, AddressRangeOffsetMiB: 1024 },
    });
    expect(c.statusCode).toBe(201);
    expect(c.headers.location).toBe(`${CHUNKS}/1024M-256M`);
    expect(fake.calls.filter((x) => x.method.startsWith('initiate'))).toEqual([]);
    const conn = await nb.app.inject({
      method: 'POST',
      url: CONNS,
      headers: auth,
      payload: {
        ConnectionType: 'Memory',
        MemoryChunkInfo: [{ MemoryChunk: { '@odata.id': c.headers.location } }],
        Links: { InitiatorEndpoints: [ep(1), ep(2)] },
      },
    });
    expect(conn.statusCode, conn.body).toBe(201);
    const adds = fake.calls
      .filter((x) => x.method === 'initiateAdd')
      .map((x) => x.req as { hostId: number; selectionPolicy: number; extents: { startDpa: number; len: number }[]; tag: string });
    expect(adds.map((a) => [a.hostId, a.selectionPolicy, a.extents[0]?.startDpa, a.extents[0]?.len])).toEqual([
      [1, 3, REGION_BASE + 1024 * MiB, 256 * MiB],
      [2, 3, REGION_BASE + 1024 * MiB, 256 * MiB],
    ]);
    expect(adds[0]?.tag).toBe(adds[1]?.tag);
    const loc = conn.headers.location as string;
    const body = (await nb.app.inject({ url: loc, headers: auth })).json();
    expect(body).toMatchObject({
      ConnectionType: 'Memory',
      Links: { InitiatorEndpoints: [ep(1), ep(2)] },
      Oem: { CxlMhd: { Shared: true } },
    });
    // The chunk cannot go while it is connected.
    expect((await nb.app.inject({ method: 'DELETE', url: c.headers.location as string, headers: auth })).statusCode).toBe(409);
    expect((await nb.app.inject({ method: 'DELETE', url: loc, headers: auth })).statusCode).toBe(204);
    expect(fake.calls.filter((x) => x.method === 'initiateRelease').map((x) => (x.req as { hostId: number }).hostId)).toEqual([1, 2]);
    expect((await nb.app.inject({ url: loc, headers: auth })).statusCode).toBe(404);
    expect((await nb.app.inject({ method: 'DELETE', url: c.headers.location as string, headers: auth })).statusCode).toBe(204);
    // Chunk definitions persist in a 0600 file.
    await nb.ctx.store.flush();
    expect(statSync(join(dir, 'northbound.json')).mode & 0o777).toBe(0o600);
    // A later run of the northbound (a backend restart) finds the chunks defined before.
    await nb.app.inject({ method: 'POST', url: CHUNKS, headers: auth, payload: { MemoryChunkSizeMiB: 512, AddressRangeOffsetMiB: 2048 } });
    await nb.ctx.store.flush();
    const again = new Northbound({ deps: nb.ctx.deps, users: USERS, stateFile: join(dir, 'northbound.json') });
    const listed = (await again.app.inject({ url: CHUNKS, headers: auth })).json();
    expect(listed.Members).toContainEqual({ '@odata.id': `${CHUNKS}/2048M-512M` });
    await again.close();
  });

  it('maps CXL return codes: Resources Exhausted 409, Invalid Input 400, unbound (owner detached) 503; nothing stays added', async () => {
    const { nb, fake, bound } = await fakeNorthbound();
    const c = await nb.app.inject({
      method: 'POST',
      url: CHUNKS,
      headers: auth,
      payload: { MemoryChunkSizeMiB: 256, AddressRangeOffsetMiB: 2048 },
    });
    const body = {
      ConnectionType: 'Memory',
      MemoryChunkInfo: [{ MemoryChunk: { '@odata.id': c.headers.location } }],
      Links: { InitiatorEndpoints: [ep(1), ep(2)] },
    };
    // Head 1 accepts, head 2 is refused: head 1's add is undone.
    let n = 0;
    const orig = fake.initiateAdd.bind(fake);
    fake.initiateAdd = async (req) => {
      if (n++ === 1) throw new FmError(0x1d);
      return orig(req);
    };
    const r409 = await nb.app.inject({ method: 'POST', url: CONNS, headers: auth, payload: body });
    expect(r409.statusCode).toBe(409);
    expect(errorOf(r409.body).message).toMatch(/Resources Exhausted \(0x1d\)/);
    expect(fake.calls.filter((x) => x.method === 'initiateRelease').map((x) => (x.req as { hostId: number }).hostId)).toEqual([1]);
    expect([...fake.extents.values()].flat()).toEqual([]);
    fake.initiateAdd = async () => {
      throw new FmError(0x02);
    };
    const r400 = await nb.app.inject({ method: 'POST', url: CONNS, headers: auth, payload: body });
    expect(r400.statusCode).toBe(400);
    expect(errorOf(r400.body).message).toMatch(/Invalid Input \(0x02\)/);
    bound.value = false;
    const r503 = await nb.app.inject({ method: 'POST', url: CONNS, headers: auth, payload: body });
    expect(r503.statusCode).toBe(503);
    expect(errorOf(r503.body).message).toMatch(/Unsupported Mailbox \(0x15\).*lease owner is detached/);
    expect((await nb.app.inject({ url: CONNS, headers: auth })).json()['Members@odata.count']).toBe(1);
  });

  it('bad input gets Redfish errors and claims nothing', async () => {
    const { nb, fake } = await fakeNorthbound();
    const post = (url: string, payload: string, ct = 'application/json') =>
      nb.app.inject({ method: 'POST', url, headers: { ...auth, 'content-type': ct }, payload });
    const cases: [string, string, number, string][] = [
      [CHUNKS, '{"MemoryChunkSizeMiB": 256,', 400, 'MalformedJSON'],
      [CHUNKS, '{"MemoryChunkSizeMiB":256,"AddressRangeOffsetMiB":0,"Bogus":1}', 400, 'PropertyUnknown'],
      [CHUNKS, '{"MemoryChunkSizeMiB":3,"AddressRangeOffsetMiB":0}', 400, 'PropertyValueIncorrect'],
      [CHUNKS, '{"MemoryChunkSizeMiB":256,"AddressRangeOffsetMiB":4096}', 400, 'PropertyValueOutOfRange'],
      [CHUNKS, '{"MemoryChunkSizeMiB":"256","AddressRangeOffsetMiB":0}', 400, 'PropertyValueTypeError'],
      [CHUNKS, '{"AddressRangeOffsetMiB":0}', 400, 'PropertyMissing'],
      [CHUNKS, '{"__proto__":{"x":1},"MemoryChunkSizeMiB":256,"AddressRangeOffsetMiB":0}', 400, ''],
      [
        CONNS,
        '{"ConnectionType":"Memory","MemoryChunkInfo":[{"MemoryChunk":{"@odata.id":"/nope"}}],"Links":{"InitiatorEndpoints":[{"@odata.id":"/redfish/v1/Fabrics/CXL/Endpoints/head1"}]}}',
        400,
        'ResourceMissingAtURI',
      ],
      [
        CONNS,
        `{"ConnectionType":"Memory","MemoryChunkInfo":[{"MemoryChunk":{"@odata.id":"${CHUNKS}/0M-256M"}}],"Links":{"InitiatorEndpoints":[{"@odata.id":"/redfish/v1/Fabrics/CXL/Endpoints/head7"}]}}`,
        400,
        'ResourceMissingAtURI',
      ],
      [CONNS, '{"ConnectionType":"Storage","MemoryChunkInfo":[],"Links":{"InitiatorEndpoints":[]}}', 400, ''],
      [CHUNKS, 'MemoryChunkSizeMiB=256', 415, ''],
    ];
    for (const [url, payload, status, id] of cases) {
      const r = await post(url, payload, status === 415 ? 'text/plain' : 'application/json');
      expect(r.statusCode, payload).toBe(status);
      const e = errorOf(r.body);
      expect(e.info[0]?.Message).toBeTruthy();
      if (id) expect(e.code, payload).toBe(`Base.1.22.${id}`);
    }
    const big = await post(CHUNKS, JSON.stringify({ MemoryChunkSizeMiB: 256, AddressRangeOffsetMiB: 0, Name: 'x'.repeat(MiB) }));
    expect(big.statusCode).toBe(413);
    expect(errorOf(big.body).info).toHaveLength(1);
    const overlapA = await post(CHUNKS, '{"MemoryChunkSizeMiB":512,"AddressRangeOffsetMiB":1024}');
    expect(overlapA.statusCode).toBe(201);
    const overlapB = await post(CHUNKS, '{"MemoryChunkSizeMiB":256,"AddressRangeOffsetMiB":1280}');
    expect(overlapB.statusCode).toBe(409);
    expect(fake.calls.filter((x) => x.method.startsWith('initiate'))).toEqual([]);
    expect((await nb.app.inject({ method: 'PATCH', url: '/redfish/v1/Chassis/fakepool', headers: auth })).statusCode).toBe(405);
  });

  it('serve --http refuses a readable users file, a remote address, a missing users file: one line, nothing started', () => {
    const dir = tempDir();
    const file = join(dir, 'users');
    writeFileSync(file, 'admin:secret\n', { mode: 0o640 });
    chmodSync(file, 0o640);
    const good = join(dir, 'users-ok');
    writeFileSync(good, `admin:secret\nhashed:${hashPassword('x', 2 ** 10)}\n`, { mode: 0o600 });
    const { cert, key } = makeCert(dir);
    const openKey = join(dir, 'open.key');
    writeFileSync(openKey, readFileSync(key), { mode: 0o644 });
    chmodSync(openKey, 0o644);
    const serve = (...args: string[]) =>
      spawnSync(
        process.execPath,
        ['dist/src/cli/main.js', 'serve', '--pool', 'nbcli', '--run-dir', join(dir, 'run'), '--state-dir', join(dir, 'state'), ...args],
        {
          encoding: 'utf8',
        },
      );
    const cases: [string[], RegExp][] = [
      [
        ['--http', '127.0.0.1:0', '--http-users', file],
        /^cxl-mhd: --http-users \S+ is mode 0640; it holds passwords and must be 0600 \(chmod 600 \S+\)\n$/,
      ],
      [
        ['--http', '0.0.0.0:8080', '--http-users', file],
        /^cxl-mhd: --http 0.0.0.0:8080 is not a loopback address; pass --http-allow-remote to listen on it\n$/,
      ],
      [['--http', '127.0.0.1:0'], /^cxl-mhd: --http needs --http-users FILE/],
      [['--http', 'localhost', '--http-users', file], /^cxl-mhd: --http "localhost" must be ADDR:PORT/],
      [['--http-users', file], /^cxl-mhd: --http-users, --http-allow-remote, --http-tls-cert\/-key and --http-aggregator need --http/],
      [
        ['--http', '127.0.0.1:0', '--http-users', good, '--http-tls-cert', cert],
        /^cxl-mhd: --http-tls-cert and --http-tls-key go together/,
      ],
      [
        ['--http', '127.0.0.1:0', '--http-users', good, '--http-tls-cert', cert, '--http-tls-key', openKey],
        /^cxl-mhd: --http-tls-key \S+ is mode 0644; it is a private key and must be 0600 \(chmod 600 \S+\)\n$/,
      ],
      [
        ['--http', '127.0.0.1:0', '--http-users', good, '--http-tls-cert', good, '--http-tls-key', key],
        /^cxl-mhd: --http-tls-cert \S+ holds no PEM certificate\n$/,
      ],
      [
        ['--http', '127.0.0.1:0', '--http-users', good, '--http-aggregator', 'ftp://x'],
        /^cxl-mhd: --http-aggregator ftp:\/\/x must be an http/,
      ],
      [
        ['--http', '127.0.0.1:0', '--http-users', good, '--http-aggregator', 'http://u:p@127.0.0.1:9'],
        /^cxl-mhd: --http-aggregator \S+ must be an http:\/\/ or https:\/\/ URL without credentials\n$/,
      ],
      [
        ['--http', '127.0.0.1:0', '--http-users', good, '--http-aggregator', 'http://127.0.0.1:9'],
        /^cxl-mhd: --http-aggregator reads with the user aggregator, which \S+ does not name\n$/,
      ],
      [
        ['--http', '127.0.0.1:0', '--http-users', good, '--http-aggregator', 'http://127.0.0.1:9', '--http-aggregator-user', 'hashed'],
        /^cxl-mhd: --http-aggregator hands hashed's password to the aggregator: \S+ must keep it in clear, not as a hash\n$/,
      ],
      [
        ['--http', '127.0.0.1:0', '--http-users', good, '--http-aggregator-user', 'admin'],
        /^cxl-mhd: --http-aggregator-user needs --http-aggregator URL\n$/,
      ],
    ];
    for (const [args, want] of cases) {
      const r = serve(...args);
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stderr).toMatch(want);
    }
    // Refused before anything was made: no run dir, no pool.
    expect(existsSync(join(dir, 'run'))).toBe(false);
  });

  it('users file: must be 0600; plain and scrypt lines; one clear line otherwise', async () => {
    const dir = tempDir();
    const file = join(dir, 'users');
    writeFileSync(file, `# operators\nalice:plain pw\nbob:${hashPassword('hunter2', 1024)}\n`, { mode: 0o644 });
    chmodSync(file, 0o644);
    expect(() => loadUsers(file)).toThrow(/mode 0644.*must be 0600 \(chmod 600/);
    chmodSync(file, 0o600);
    expect([...loadUsers(file).keys()]).toEqual(['alice', 'bob']);
    writeFileSync(file, 'carol\n', { mode: 0o600 });
    expect(() => loadUsers(file)).toThrow(/line 1: expected user:password/);
    const { Auth } = await import('../../src/http/auth.js');
    writeFileSync(file, `bob:${hashPassword('hunter2', 1024)}\n`, { mode: 0o600 });
    const a = new Auth(loadUsers(file));
    expect(await a.check('bob', 'hunter2')).toBe(true);
    expect(await a.check('bob', 'hunter3')).toBe(false);
    a.close();
    // Guessing is throttled: past the per-second budget a wrong guess costs no scrypt, a verified password still works.
    const t = new Auth(loadUsers(file), { maxHashChecksPerSecond: 3 });
    expect(await t.check('bob', 'hunter2')).toBe(true);
    for (let i = 0; i < 5; i++) expect(await t.check('bob', `guess${i}`)).toBe(false);
    expect(await t.check('bob', 'hunter2')).toBe(true);
    t.close();
  });
});

describe('SSE event stream', () => {
  it('publishes backend events with the CxlMhd registry and resumes from Last-Event-ID without loss', async () => {
    const { nb, emit } = await fakeNorthbound({ limits: { maxSseClients: 2 } });
    const url = await nb.listen('127.0.0.1', 0);
    const a = await sse(`${url}/redfish/v1/EventService/SSE`, { authorization: BASIC });
    expect(a.status).toBe(200);
    emit({ kind: 'head-detached', head: 2, pid: 1002, reason: 'QEMU disconnected' });
    const [f1] = await a.next(1);
    const ev = JSON.parse((f1 as string).split('data: ')[1] as string);
    expect(ev.Events[0]).toMatchObject({
      MessageId: 'CxlMhd.1.0.HeadDetached',
      MessageArgs: ['2', 'QEMU disconnected'],
      OriginOfCondition: { '@odata.id': '/redfish/v1/Fabrics/CXL/Endpoints/head2' },
    });
    expect(ev.Events[1]).toMatchObject({ MessageId: 'ResourceEvent.1.4.ResourceChanged' });
    a.close();
    emit({ kind: 'lease-released', head: 0, epoch: 1 });
    emit({ kind: 'lease-acquired', head: 1, epoch: 2 });
    const b = await sse(`${url}/redfish/v1/EventService/SSE`, { authorization: BASIC, 'last-event-id': '1' });
    const got = await b.next(2);
    expect(got.map((f) => /^id: (\d+)/.exec(f)?.[1])).toEqual(['2', '3']);
    expect(got[1]).toContain('CxlMhd.1.0.LeaseAcquired');
    const c = await sse(`${url}/redfish/v1/EventService/SSE`, { authorization: BASIC });
    // A connection made over Redfish: its CapacityAdded names the connection, which is created.
    const chunk = await nb.app.inject({
      method: 'POST',
      url: CHUNKS,
      headers: auth,
      payload: { MemoryChunkSizeMiB: 256, AddressRangeOffsetMiB: 512 },
    });
    const made = await nb.app.inject({
      method: 'POST',
      url: CONNS,
      headers: auth,
      payload: {
        ConnectionType: 'Memory',
        MemoryChunkInfo: [{ MemoryChunk: { '@odata.id': chunk.headers.location } }],
        Links: { InitiatorEndpoints: [ep(2)] },
      },
    });
    expect(made.statusCode).toBe(201);
    const frames = await c.next(2);
    expect(frames[0]).toContain(`"OriginOfCondition":{"@odata.id":"${CHUNKS}/512M-256M"}`);
    const added = JSON.parse((frames[1] as string).split('data: ')[1] as string).Events;
    expect(
      added.map((r: { MessageId: string; OriginOfCondition: { '@odata.id': string } }) => [r.MessageId, r.OriginOfCondition['@odata.id']]),
    ).toEqual([
      ['CxlMhd.1.0.CapacityAdded', `${CONNS}/c1`],
      ['ResourceEvent.1.4.ResourceCreated', `${CONNS}/c1`],
      ['Fabric.1.0.ConnectionCreated', `${CONNS}/c1`],
      ['ResourceEvent.1.4.ResourceCreated', `${PCIE}/CXLLogicalDevices/2/MemoryRegions/tag-${tagOf(chunk.json())}`],
      // The chunk defined just before, now held.
      ['ResourceEvent.1.4.ResourceChanged', `${CHUNKS}/512M-256M`],
      ['ResourceEvent.1.4.ResourceChanged', '/redfish/v1/Fabrics/CXL/Endpoints/head2'],
      ['ResourceEvent.1.4.ResourceChanged', '/redfish/v1/Chassis/fakepool/PCIeDevices/fakepool/CXLLogicalDevices/2'],
      ['ResourceEvent.1.4.ResourceChanged', '/redfish/v1/Chassis/fakepool'],
    ]);
    expect(JSON.parse((frames[1] as string).split('data: ')[1] as string).Events[2].MessageArgs).toEqual(['c1', 'CXL']);
    expect(made.headers.location).toBe(`${CONNS}/c1`);
    const d = await sse(`${url}/redfish/v1/EventService/SSE`, { authorization: BASIC });
    expect(d.status).toBe(503);
    b.close();
    c.close();
    // `cxl-mhd events` with --url and --user (password from the environment), one JSON Event per line.
    // Asynchronously: the server answering it lives in this process.
    const events = (env: Record<string, string>, ...args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          ['dist/src/cli/main.js', 'events', '--pool', 'fakepool', '--url', url, '--user', 'viewer', ...args],
          { env: { ...process.env, ...env }, timeout: 30_000 },
          (e, stdout, stderr) => resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        );
      });
    const follow = await events({ CXL_MHD_PASSWORD: 'p@ss:word' }, '--json', '--last-event-id', '1', '--count', '2');
    expect(follow.stderr).toBe('');
    const ids = follow.stdout
      .trim()
      .split('\n')
      .map((l: string) => JSON.parse(l).Events[0].MessageId);
    expect(ids).toEqual(['CxlMhd.1.0.LeaseReleased', 'CxlMhd.1.0.LeaseAcquired']);
    const wrongPw = await events({ CXL_MHD_PASSWORD: 'nope' });
    expect([wrongPw.code, wrongPw.stderr]).toEqual([
      1,
      'cxl-mhd: the event stream answered 401: There is no valid session established with the implementation.\n',
    ]);
    const denied = await sse(`${url}/redfish/v1/EventService/SSE`, {});
    expect(denied.status).toBe(401);
    denied.close();
    d.close();
  });
});
