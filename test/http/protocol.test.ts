// The rules DMTF's Redfish Service Validator and Protocol Validator check,
// each asserted here against the service in process (the validators
// themselves run outside CI; docs/redfish.md records their counts): every
// GET payload against the property lists of its type (ajv) and its
// Oem.CxlMhd against the OEM JSON Schema the service publishes, links that
// resolve, $metadata and the OEM CSDL, the headers (OData-Version,
// Cache-Control, Link rel=describedby, ETag, Allow), 405/501/412, roles and
// accounts with If-Match, and HTTPS.
import { readFileSync, statSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Northbound } from '../../src/http/index.js';
import { BASIC, fakeNorthbound, makeCert } from '../helpers/northbound.js';
import { tempDir } from '../helpers/pool.js';
import { checkPayload, oemValidator } from '../helpers/redfish-props.js';

const auth = { authorization: BASIC };
const basic = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
const ACCOUNTS = '/redfish/v1/AccountService/Accounts';
const CHUNKS = '/redfish/v1/Chassis/fakepool/MemoryDomains/fakepool/MemoryChunks';
const CONNS = '/redfish/v1/Fabrics/CXL/Connections';

/** Every @odata.id a body links to. */
function linksOf(v: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(v)) for (const x of v) linksOf(x, out);
  else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      if (k === '@odata.id' && typeof x === 'string') out.add(x.replace(/\/$/, '') || '/');
      else linksOf(x, out);
    }
  }
  return out;
}

async function withConnection(nb: Northbound): Promise<Record<string, unknown>> {
  const chunk = await nb.app.inject({
    method: 'POST',
    url: CHUNKS,
    headers: auth,
    payload: { MemoryChunkSizeMiB: 256, AddressRangeOffsetMiB: 1024 },
  });
  expect(chunk.statusCode).toBe(201);
  const conn = await nb.app.inject({
    method: 'POST',
    url: CONNS,
    headers: auth,
    payload: {
      ConnectionType: 'Memory',
      MemoryChunkInfo: [{ MemoryChunk: { '@odata.id': chunk.headers.location } }],
      Links: {
        InitiatorEndpoints: [
          { '@odata.id': '/redfish/v1/Fabrics/CXL/Endpoints/head1' },
          { '@odata.id': '/redfish/v1/Fabrics/CXL/Endpoints/head2' },
        ],
      },
    },
  });
  expect(conn.statusCode).toBe(201);
  return conn.json();
}

describe('Redfish protocol rules (what the DMTF validators check)', () => {
  it('standard URIs are open; $metadata is XML, has the EntityContainer and references every schema a payload names', async () => {
    const { nb } = await fakeNorthbound();
    await withConnection(nb);
    for (const url of ['/redfish', '/redfish/v1/', '/redfish/v1/odata', '/redfish/v1/$metadata', '/redfish/v1/Schemas/CxlMhd_v1.xml']) {
      const r = await nb.app.inject({ url });
      expect(r.statusCode, url).toBe(200);
    }
    const md = await nb.app.inject({ url: '/redfish/v1/$metadata' });
    expect(md.headers['content-type']).toMatch(/^application\/xml/);
    expect(md.body).toMatch(/<EntityContainer Name="Service" Extends="ServiceRoot\.v1_\d+_\d+\.ServiceContainer"\/>/);
    const included = new Set([...md.body.matchAll(/<edmx:Include Namespace="([^"]+)"/g)].map((m) => m[1]));
    // Crawl and collect every @odata.type namespace (and version) a payload claims.
    const seen = new Set<string>();
    const todo = ['/redfish/v1'];
    const done = new Set<string>();
    while (todo.length > 0) {
      const url = todo.pop() as string;
      if (done.has(url)) continue;
      done.add(url);
      const r = await nb.app.inject({ url, headers: auth });
      if (r.headers['content-type']?.toString().startsWith('application/json') !== true) continue;
      const body = r.json();
      const type = /^#([A-Za-z]+)(?:\.(v\d+_\d+_\d+))?\./.exec(String(body['@odata.type'] ?? ''));
      if (type) {
        seen.add(type[1] as string);
        if (type[2]) seen.add(`${type[1]}.${type[2]}`);
      }
      for (const l of linksOf(body)) if (l.startsWith('/redfish/v1') && !l.includes('#')) todo.push(l);
    }
    for (const ns of seen) expect(included.has(ns), `$metadata includes ${ns}`).toBe(true);
    expect(included.has('CxlMhd.v1_0_0')).toBe(true);
    const csdl = (await nb.app.inject({ url: '/redfish/v1/Schemas/CxlMhd_v1.xml' })).body;
    expect(csdl).toMatch(/<ComplexType Name="Chassis" BaseType="Resource.OemObject">/);
  });

  it.each(['plain HTTP', 'HTTPS'])(
    'every GET payload fits its type, every Oem.CxlMhd fits the published OEM schema, every link resolves, every header is there (%s)',
    async (mode) => {
      const { nb } = await fakeNorthbound(mode === 'HTTPS' ? { tls: makeCert(tempDir('cxl-mhd-tls-')) } : {});
      await withConnection(nb);
      // MetricReports holds the periodic report once it has been made, and test reports.
      nb.ctx.telemetry.generate();
      const test = await nb.app.inject({
        method: 'POST',
        url: '/redfish/v1/TelemetryService/Actions/TelemetryService.SubmitTestMetricReport',
        headers: auth,
        payload: { MetricReportName: 'Probe', GeneratedMetricReportValues: [{ MetricId: 'PoolFreeBytes', MetricValue: '1' }] },
      });
      expect(test.statusCode, test.body).toBe(204);
      const schema = (await nb.app.inject({ url: '/redfish/v1/JsonSchemas/CxlMhd.v1_0_0.json' })).json();
      const checkOem = oemValidator(schema);
      const todo = ['/redfish/v1'];
      const done = new Set<string>();
      let oems = 0;
      while (todo.length > 0) {
        const url = todo.pop() as string;
        if (done.has(url)) continue;
        done.add(url);
        const r = await nb.app.inject({ url, headers: auth });
        expect(r.statusCode, url).toBe(200);
        if (url.endsWith('/SSE')) continue;
        expect(r.headers['odata-version'], url).toBe('4.0');
        expect(r.headers['cache-control'], url).toBeDefined();
        expect(r.headers.allow, url).toMatch(/^GET, HEAD/);
        expect(r.headers.etag, url).toMatch(/^W\/"[^"]+"$/);
        const body = r.json();
        expect(checkPayload(body), url).toEqual([]);
        expect(r.headers.link, url).toMatch(
          /^<https?:\/\/redfish\.dmtf\.org\/schemas\/v1\/[A-Za-z]+(\.v\d+_\d+_\d+)?\.json>; rel=describedby$/,
        );
        const oem = (body.Oem as { CxlMhd?: Record<string, unknown> } | undefined)?.CxlMhd;
        if (oem) {
          oems++;
          expect(checkOem(oem), url).toEqual([]);
        }
        for (const l of linksOf(body)) if (l.startsWith('/redfish/v1')) todo.push(l);
      }
      // The crawl reached the resources this issue is about.
      expect([...done].some((u) => /\/CXLLogicalDevices\/1\/MemoryRegions\/tag-/.test(u))).toBe(true);
      expect(done.has('/redfish/v1/AccountService/Roles/ReadOnly')).toBe(true);
      expect(done.has('/redfish/v1/Managers/cxl-mhd/NetworkProtocol')).toBe(true);
      expect(done.has('/redfish/v1/CertificateService/CertificateLocations')).toBe(true);
      // The served certificate is reached both ways: from the Manager's HTTPS protocol and from CertificateLocations.
      expect(done.has('/redfish/v1/Managers/cxl-mhd/NetworkProtocol/HTTPS/Certificates/1')).toBe(mode === 'HTTPS');
      for (const r of [
        'MetricDefinitions/HeadSharedBytes',
        'MetricReportDefinitions/PoolUsage',
        'MetricReports/PoolUsage',
        'MetricReports/Probe',
      ])
        expect(done.has(`/redfish/v1/TelemetryService/${r}`), r).toBe(true);
      expect(oems).toBeGreaterThan(8);
      // HEAD has the same headers, without a body.
      const head = await nb.app.inject({ method: 'HEAD', url: '/redfish/v1/', headers: auth });
      expect(head.headers.link).toMatch(/rel=describedby/);
      expect(head.body).toBe('');
    },
  );

  it('memory regions: one per grant, with the chunk tag on each extent; the connection names them in MemoryRegionInfo', async () => {
    const { nb, fake } = await fakeNorthbound();
    const made = await withConnection(nb);
    const chunk = (await nb.app.inject({ url: `${CHUNKS}/1024M-256M`, headers: auth })).json();
    const tag = chunk.Oem.CxlMhd.Tag as string;
    // 5603h's view (the FM-API backend's extent list) carries the same tag.
    expect((fake.extents.get(1) ?? []).map((e) => e.tag)).toEqual([tag]);
    const regions = (
      await nb.app.inject({ url: '/redfish/v1/Chassis/fakepool/PCIeDevices/fakepool/CXLLogicalDevices/1/MemoryRegions', headers: auth })
    ).json();
    const ids = regions.Members.map((m: { '@odata.id': string }) => m['@odata.id'].split('/').pop());
    expect(ids).toEqual(['window-0M-256M', `tag-${tag}`]);
    const r = (await nb.app.inject({ url: regions.Members[1]['@odata.id'], headers: auth })).json();
    expect(r).toMatchObject({
      RegionType: 'Dynamic',
      RegionBaseOffsetMiB: 1024,
      RegionSizeMiB: 256,
      BlockSizeMiB: 2,
      ShareableRegion: true,
      ExtentsCount: 1,
      MemoryExtents: [{ ExtentOffsetMiB: 0, ExtentSizeMiB: 256, Tag: tag, SequenceNumber: 0 }],
      MemoryChunks: [{ ChunkOffsetMiB: 0, ChunkLink: { '@odata.id': `${CHUNKS}/1024M-256M` } }],
    });
    const w = (await nb.app.inject({ url: regions.Members[0]['@odata.id'], headers: auth })).json();
    expect(w).toMatchObject({ RegionType: 'Static', RegionBaseOffsetMiB: 0, RegionSizeMiB: 256, ExtentsCount: 0, MemoryExtents: [] });
    const conn = (await nb.app.inject({ url: `${CONNS}/c1`, headers: auth })).json();
    expect(conn.MemoryRegionInfo.map((m: { MemoryRegion: { '@odata.id': string } }) => m.MemoryRegion['@odata.id']).sort()).toEqual(
      [1, 2].map((h) => `/redfish/v1/Chassis/fakepool/PCIeDevices/fakepool/CXLLogicalDevices/${h}/MemoryRegions/tag-${tag}`),
    );
    // The 201 answer already names the same regions.
    expect(made.MemoryRegionInfo).toEqual(conn.MemoryRegionInfo);
  });

  it('405 with Allow, 501 for an unknown method, 412 for another OData-Version, Redfish error bodies with MessageSeverity', async () => {
    const { nb } = await fakeNorthbound();
    const patch = await nb.app.inject({ method: 'PATCH', url: '/redfish/v1/Chassis/fakepool', headers: auth, payload: {} });
    expect(patch.statusCode).toBe(405);
    expect(patch.headers.allow).toBe('GET, HEAD');
    const info = patch.json().error['@Message.ExtendedInfo'][0];
    expect(info).toMatchObject({ MessageId: 'Base.1.22.OperationNotAllowed', MessageSeverity: 'Warning' });
    expect(info).not.toHaveProperty('Severity');
    const v41 = await nb.app.inject({ url: '/redfish/v1/', headers: { 'odata-version': '4.1' } });
    expect(v41.statusCode).toBe(412);
    expect(v41.json().error.code).toBe('Base.1.22.PreconditionFailed');
    expect((await nb.app.inject({ url: '/redfish/v1/', headers: { 'odata-version': '4.0' } })).statusCode).toBe(200);
    // A method Node's parser does not know never reaches a route: the answer is still Redfish.
    const url = new URL(await nb.listen('127.0.0.1', 0));
    const raw = await new Promise<string>((resolve) => {
      const s = connect(Number(url.port), '127.0.0.1', () => s.write('FAKEMETHODFORTEST /redfish/v1/ HTTP/1.1\r\nHost: x\r\n\r\n'));
      let got = '';
      s.on('data', (d) => {
        got += d;
      });
      s.on('close', () => resolve(got));
    });
    expect(raw).toMatch(/^HTTP\/1\.1 501 Not Implemented\r\n/);
    expect(JSON.parse(raw.split('\r\n\r\n')[1] as string).error.code).toBe('Base.1.22.OperationNotAllowed');
    // The registry's messages carry MessageSeverity, not the deprecated Severity.
    const reg = (await nb.app.inject({ url: '/redfish/v1/Registries/CxlMhd.1.0/Registry', headers: auth })).json();
    for (const m of Object.values(reg.Messages) as Record<string, unknown>[]) {
      expect(m).toHaveProperty('MessageSeverity');
      expect(m).not.toHaveProperty('Severity');
    }
  });

  it('sessions: POST to Members logs in; a user sees and ends only its own sessions unless it may ConfigureManager', async () => {
    const { nb } = await fakeNorthbound({ users: { admin: 'secret', reader: { password: 'reader-pw', role: 'ReadOnly' } } });
    const login = async (u: string, p: string, url = '/redfish/v1/SessionService/Sessions/Members') => {
      const r = await nb.app.inject({ method: 'POST', url, payload: { UserName: u, Password: p } });
      expect(r.statusCode).toBe(201);
      return { token: r.headers['x-auth-token'] as string, at: r.headers.location as string };
    };
    const a = await login('admin', 'secret');
    const b = await login('reader', 'reader-pw', '/redfish/v1/SessionService/Sessions');
    const list = async (token: string) =>
      (await nb.app.inject({ url: '/redfish/v1/SessionService/Sessions', headers: { 'x-auth-token': token } }))
        .json()
        .Members.map((m: { '@odata.id': string }) => m['@odata.id']);
    expect(await list(b.token)).toEqual([b.at]);
    expect((await list(a.token)).sort()).toEqual([a.at, b.at].sort());
    expect((await nb.app.inject({ method: 'DELETE', url: a.at, headers: { 'x-auth-token': b.token } })).statusCode).toBe(404);
    expect((await nb.app.inject({ method: 'DELETE', url: b.at, headers: { 'x-auth-token': b.token } })).statusCode).toBe(204);
  });

  it('a ReadOnly user gets 403 InsufficientPrivilege on every write route, and changes nothing', async () => {
    const { nb, fake } = await fakeNorthbound({ users: { admin: 'secret', reader: { password: 'reader-pw', role: 'ReadOnly' } } });
    await withConnection(nb);
    await nb.app.ready();
    const before = JSON.stringify([...fake.extents]);
    const conns = (await nb.app.inject({ url: CONNS, headers: auth })).body;
    const writes = nb.app.redfishRoutes.filter((r) => r.allowed && r.method !== 'GET' && r.method !== 'HEAD');
    const tried: string[] = [];
    for (const r of writes) {
      // Open routes (logging in) and routes on one's own account/session are not writes to others' state.
      if (r.privilege === 'None' || r.privilege === 'ConfigureSelf') continue;
      const url = r.url
        .replace(':user', 'admin')
        .replace(':id', 'c1')
        .replace(/:[a-z]+/g, 'x');
      const res = await nb.app.inject({ method: r.method as 'POST', url, headers: basic('reader', 'reader-pw'), payload: {} });
      // A session of another user is not even visible to a ReadOnly user.
      expect([403, 404], `${r.method} ${url}`).toContain(res.statusCode);
      if (res.statusCode === 403) expect(res.json().error.code).toBe('Base.1.22.InsufficientPrivilege');
      tried.push(`${r.method} ${r.url}`);
    }
    expect(tried).toEqual(
      expect.arrayContaining([
        `POST ${CHUNKS}`,
        `POST ${CONNS}`,
        `DELETE ${CONNS}/:id`,
        `POST ${ACCOUNTS}`,
        `DELETE ${ACCOUNTS}/:user`,
        'POST /redfish/v1/CertificateService/Actions/CertificateService.ReplaceCertificate',
        'PATCH /redfish/v1/TelemetryService/MetricReportDefinitions/:id',
        'POST /redfish/v1/TelemetryService/Actions/TelemetryService.SubmitTestMetricReport',
      ]),
    );
    // ConfigureSelf routes on another user's resources are refused too.
    const other = await nb.app.inject({
      method: 'PATCH',
      url: `${ACCOUNTS}/admin`,
      headers: basic('reader', 'reader-pw'),
      payload: { Password: 'xxxxxxxxxx' },
    });
    expect(other.statusCode).toBe(403);
    expect(JSON.stringify([...fake.extents])).toBe(before);
    expect((await nb.app.inject({ url: CONNS, headers: auth })).body).toBe(conns);
  });

  it('accounts: create, PATCH with If-Match (412 on a stale ETag), mixed and empty PATCHes, delete; the users file is rewritten 0600 with scrypt', async () => {
    const dir = tempDir('cxl-mhd-acct-');
    const file = join(dir, 'users');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(file, '# operators\nadmin:secret\n', { mode: 0o600 });
    const { nb } = await fakeNorthbound({ users: file });
    const admin = basic('admin', 'secret');
    const made = await nb.app.inject({
      method: 'POST',
      url: ACCOUNTS,
      headers: admin,
      payload: { UserName: 'ops', Password: 'first-password', RoleId: 'Operator' },
    });
    expect(made.statusCode).toBe(201);
    expect(made.headers.location).toBe(`${ACCOUNTS}/ops`);
    expect((await nb.app.inject({ url: '/redfish/v1/Chassis', headers: basic('ops', 'first-password') })).statusCode).toBe(200);
    expect(readFileSync(file, 'utf8')).toMatch(/^# operators\nadmin:secret\nops:scrypt\$16384\$8\$1\$[^:]+:Operator\n$/);
    expect(statSync(file).mode & 0o777).toBe(0o600);

    const got = await nb.app.inject({ url: `${ACCOUNTS}/ops`, headers: admin });
    expect(got.json()).toMatchObject({
      UserName: 'ops',
      RoleId: 'Operator',
      Password: null,
      Links: { Role: { '@odata.id': '/redfish/v1/AccountService/Roles/Operator' } },
    });
    const etag = got.headers.etag as string;
    const stale = await nb.app.inject({
      method: 'PATCH',
      url: `${ACCOUNTS}/ops`,
      headers: { ...admin, 'if-match': `${etag}x` },
      payload: { Password: 'second-password' },
    });
    expect(stale.statusCode).toBe(412);
    const mixed = await nb.app.inject({
      method: 'PATCH',
      url: `${ACCOUNTS}/ops`,
      headers: { ...admin, 'if-match': etag },
      payload: { Password: 'second-password', BogusProp: 'x' },
    });
    expect(mixed.statusCode).toBe(200);
    expect(mixed.json()['@Message.ExtendedInfo'][0].MessageId).toBe('Base.1.22.PropertyUnknown');
    expect((await nb.app.inject({ url: '/redfish/v1/Chassis', headers: basic('ops', 'first-password') })).statusCode).toBe(401);
    expect((await nb.app.inject({ url: '/redfish/v1/Chassis', headers: basic('ops', 'second-password') })).statusCode).toBe(200);
    const bogus = await nb.app.inject({ method: 'PATCH', url: `${ACCOUNTS}/ops`, headers: admin, payload: { BogusProp: 'x' } });
    expect([bogus.statusCode, bogus.json().error.code]).toEqual([400, 'Base.1.22.PropertyUnknown']);
    const annotations = await nb.app.inject({
      method: 'PATCH',
      url: `${ACCOUNTS}/ops`,
      headers: admin,
      payload: { '@odata.id': `${ACCOUNTS}/ops/` },
    });
    expect([annotations.statusCode, annotations.json().error.code]).toEqual([400, 'Base.1.22.NoOperation']);
    // The predefined roles cannot be changed; the last Administrator cannot go.
    expect(
      (
        await nb.app.inject({
          method: 'PATCH',
          url: '/redfish/v1/AccountService/Roles/ReadOnly',
          headers: admin,
          payload: { AssignedPrivileges: ['Login'] },
        })
      ).statusCode,
    ).toBe(405);
    expect((await nb.app.inject({ method: 'DELETE', url: `${ACCOUNTS}/admin`, headers: admin })).statusCode).toBe(409);
    expect((await nb.app.inject({ method: 'DELETE', url: `${ACCOUNTS}/ops`, headers: admin })).statusCode).toBe(204);
    expect(readFileSync(file, 'utf8')).toBe('# operators\nadmin:secret\n');
    expect((await nb.app.inject({ url: '/redfish/v1/Chassis', headers: basic('ops', 'second-password') })).statusCode).toBe(401);
  });

  it('HTTPS: --http-tls-cert/-key serve TLS with that certificate; plain HTTP on the port gets only a 308 to https', async () => {
    const dir = tempDir('cxl-mhd-tls-');
    const { cert, key } = makeCert(dir);
    const { nb } = await fakeNorthbound({ tls: { cert, key } });
    const url = await nb.listen('127.0.0.1', 0);
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const body = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest(`${url}/redfish/v1/Chassis`, { headers: auth, ca: readFileSync(cert) }, (res) => {
        let b = '';
        res.on('data', (d) => {
          b += d;
        });
        res.on('end', () => resolve(b));
      });
      req.on('error', reject);
      req.end();
    });
    expect(JSON.parse(body)['Members@odata.count']).toBe(1);
    const port = Number(new URL(url).port);
    const plain = await new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1', () => s.write('GET /redfish/v1/ HTTP/1.1\r\nHost: x\r\n\r\n'));
      let got = '';
      s.on('data', (d) => {
        got += d;
      });
      s.on('error', () => resolve(got));
      s.on('close', () => resolve(got));
    });
    // Plain HTTP is moved to TLS (308 to the same path over https), with nothing of the service in the answer.
    expect(plain).toMatch(/^HTTP\/1\.1 308 /);
    expect(plain).toMatch(new RegExp(`\\r\\nlocation: ${url}/redfish/v1/\\r\\n`, 'i'));
    expect(plain).toMatch(/content-length: 0/i);
    expect(plain).not.toContain('RedfishVersion');
    // The same socket path still speaks TLS right after (the peeked byte goes back to the handshake).
    const again = await new Promise<number>((resolve, reject) => {
      const req = httpsRequest(`${url}/redfish/v1/`, { ca: readFileSync(cert) }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(again).toBe(200);
    const open = join(dir, 'open.key');
    const { copyFileSync, chmodSync } = await import('node:fs');
    copyFileSync(key, open);
    chmodSync(open, 0o640);
    expect(() => new Northbound({ deps: nb.ctx.deps, users: { a: 'b' }, stateFile: null, tls: { cert, key: open } })).toThrow(
      /--http-tls-key \S+ is mode 0640; it is a private key and must be 0600/,
    );
  });
});
