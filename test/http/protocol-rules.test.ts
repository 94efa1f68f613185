// The rules the Protocol Validator could not test before (docs/redfish.md,
// "Conformance"), each asserted here: PasswordChangeRequired (log in, read
// and change only the own account, 403 PasswordChangeRequired elsewhere,
// kept in the users file), the SSE stream refusing a request that does not
// accept text/event-stream, the query parameters (`only`; 501 for any other
// `$` parameter; unknown others ignored) and ProtocolFeaturesSupported,
// and the OpenAPI document; and that what the request path now remembers
// (a verified Basic header, the pool model) goes stale as soon as it must;
// the TLS port: a silent client cut off, plain HTTP only redirected.
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { BASIC, fakeNorthbound, makeCert } from '../helpers/northbound.js';
import { tempDir } from '../helpers/pool.js';

const auth = { authorization: BASIC };
const basic = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
const ACCOUNTS = '/redfish/v1/AccountService/Accounts';
const SESSIONS = '/redfish/v1/SessionService/Sessions';
const messageIds = (body: {
  error?: { '@Message.ExtendedInfo': { MessageId: string }[] };
  '@Message.ExtendedInfo'?: { MessageId: string }[];
}) => (body.error?.['@Message.ExtendedInfo'] ?? body['@Message.ExtendedInfo'] ?? []).map((m) => m.MessageId);

describe('protocol rules', () => {
  it('PasswordChangeRequired: login says so, only the own account and logout are open, changing the password clears it; the users file keeps it', async () => {
    const dir = tempDir('cxl-mhd-pcr-');
    const file = join(dir, 'users');
    writeFileSync(file, 'admin:secret\n', { mode: 0o600 });
    const { nb } = await fakeNorthbound({ users: file });
    const made = await nb.app.inject({
      method: 'POST',
      url: ACCOUNTS,
      headers: auth,
      payload: { UserName: 'newop', Password: 'first password', RoleId: 'Operator', PasswordChangeRequired: true },
    });
    expect(made.statusCode).toBe(201);
    expect(made.json().PasswordChangeRequired).toBe(true);
    expect(readFileSync(file, 'utf8')).toMatch(/^newop:scrypt\$[^\n]*:Operator:PasswordChangeRequired$/m);
    const me = basic('newop', 'first password');
    // Logging in works and says what must happen first.
    const login = await nb.app.inject({ method: 'POST', url: SESSIONS, payload: { UserName: 'newop', Password: 'first password' } });
    expect(login.statusCode).toBe(201);
    expect(messageIds(login.json())).toEqual(['Base.1.22.PasswordChangeRequired']);
    const token = { 'x-auth-token': login.headers['x-auth-token'] as string };
    // Everything else is 403 PasswordChangeRequired, reads included.
    for (const [method, url] of [
      ['GET', SESSIONS],
      ['GET', '/redfish/v1/Chassis'],
      ['GET', `${ACCOUNTS}/admin`],
      ['PATCH', `${ACCOUNTS}/admin`],
      ['POST', '/redfish/v1/Fabrics/CXL/Connections'],
    ] as const) {
      const r = await nb.app.inject({ method, url, headers: me, ...(method === 'GET' ? {} : { payload: {} }) });
      expect(r.statusCode, `${method} ${url}`).toBe(403);
      expect(messageIds(r.json()), `${method} ${url}`).toEqual(['Base.1.22.PasswordChangeRequired']);
    }
    expect((await nb.app.inject({ url: '/redfish/v1/', headers: me })).statusCode).toBe(200); // open URIs stay open
    // Its own account it may read, and change its password.
    const own = await nb.app.inject({ url: `${ACCOUNTS}/newop`, headers: token });
    expect(own.statusCode).toBe(200);
    expect(own.json().PasswordChangeRequired).toBe(true);
    // It may not lift the requirement without changing the password.
    const lift = await nb.app.inject({
      method: 'PATCH',
      url: `${ACCOUNTS}/newop`,
      headers: me,
      payload: { PasswordChangeRequired: false },
    });
    expect(lift.statusCode).toBe(403);
    const changed = await nb.app.inject({
      method: 'PATCH',
      url: `${ACCOUNTS}/newop`,
      headers: me,
      payload: { Password: 'second password' },
    });
    expect(changed.statusCode).toBe(200);
    expect(changed.json().PasswordChangeRequired).toBe(false);
    expect(readFileSync(file, 'utf8')).toMatch(/^newop:scrypt\$[^\n]*:Operator$/m);
    expect((await nb.app.inject({ url: '/redfish/v1/Chassis', headers: basic('newop', 'second password') })).statusCode).toBe(200);
    // An administrator sets it again on an existing account; the file says so and a restart reads it back.
    const set = await nb.app.inject({
      method: 'PATCH',
      url: `${ACCOUNTS}/newop`,
      headers: auth,
      payload: { PasswordChangeRequired: true },
    });
    expect(set.json().PasswordChangeRequired).toBe(true);
    const again = await fakeNorthbound({ users: file, dir });
    const r = await again.nb.app.inject({ url: '/redfish/v1/Chassis', headers: basic('newop', 'second password') });
    expect(r.statusCode).toBe(403);
    // A session of such a user can still log out.
    const s2 = await again.nb.app.inject({ method: 'POST', url: SESSIONS, payload: { UserName: 'newop', Password: 'second password' } });
    const out = await again.nb.app.inject({
      method: 'DELETE',
      url: s2.headers.location as string,
      headers: { 'x-auth-token': s2.headers['x-auth-token'] as string },
    });
    expect(out.statusCode).toBe(204);
    // A wrong type is refused.
    const bad = await again.nb.app.inject({
      method: 'PATCH',
      url: `${ACCOUNTS}/newop`,
      headers: auth,
      payload: { PasswordChangeRequired: 'yes' },
    });
    expect(bad.statusCode).toBe(400);
  });

  it('the SSE stream refuses a request that does not accept text/event-stream with a JSON Redfish error (406)', async () => {
    const { nb } = await fakeNorthbound();
    for (const accept of ['application/json', 'application/json, text/event-stream;q=0']) {
      const r = await nb.app.inject({ url: '/redfish/v1/EventService/SSE', headers: { ...auth, accept } });
      expect(r.statusCode, accept).toBe(406);
      expect(r.headers['content-type']).toMatch(/^application\/json/);
      expect(r.json().error).toMatchObject({ code: 'Base.1.22.GeneralError', message: expect.stringContaining('text/event-stream') });
    }
    const { acceptsEventStream } = await import('../../src/http/routes/event-service/index.js');
    for (const ok of [
      undefined,
      '',
      'text/event-stream',
      'text/event-stream;charset=utf-8',
      '*/*',
      'text/*',
      'application/json, */*;q=0.1',
    ]) {
      expect(acceptsEventStream(ok), String(ok)).toBe(true);
    }
  });

  it('query parameters: ServiceRoot says only is supported; ?only answers the one member; $ parameters are 501, others ignored', async () => {
    const { nb } = await fakeNorthbound();
    const root = (await nb.app.inject({ url: '/redfish/v1/' })).json();
    expect(root.ProtocolFeaturesSupported).toMatchObject({
      OnlyMemberQuery: true,
      SelectQuery: false,
      FilterQuery: false,
      ExcerptQuery: false,
    });
    // One chassis: ?only is that chassis, with its own ETag and Link.
    const only = await nb.app.inject({ url: '/redfish/v1/Chassis?only', headers: auth });
    const chassis = await nb.app.inject({ url: '/redfish/v1/Chassis/fakepool', headers: auth });
    expect(only.statusCode).toBe(200);
    expect(only.json()).toEqual(chassis.json());
    expect(only.headers.etag).toBe(chassis.headers.etag);
    expect(only.headers.link).toBe(chassis.headers.link);
    // Three endpoints: the collection as it is.
    const many = (await nb.app.inject({ url: '/redfish/v1/Fabrics/CXL/Endpoints?only', headers: auth })).json();
    expect(many['Members@odata.count']).toBe(3);
    expect((await nb.app.inject({ url: '/redfish/v1/Chassis?only=foo', headers: auth })).statusCode).toBe(400);
    for (const q of ['$rpvunknown', '$select=Id', '$expand=.', '$filter=Id eq 1', '$top=1', '$skip=1']) {
      const r = await nb.app.inject({ url: `/redfish/v1/?${q}` });
      expect(r.statusCode, q).toBe(501);
      expect(messageIds(r.json()), q).toEqual(['Base.1.22.QueryNotSupported']);
    }
    expect((await nb.app.inject({ url: '/redfish/v1/?rpvunknown' })).statusCode).toBe(200);
  });

  it('openapi.yaml: open, application/yaml, every Redfish URI with its methods and request bodies', async () => {
    const { nb } = await fakeNorthbound();
    const r = await nb.app.inject({ url: '/redfish/v1/openapi.yaml', headers: { accept: 'application/yaml' } });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toMatch(/^application\/yaml/);
    const doc = parse(r.body);
    expect(doc.openapi).toBe('3.0.3');
    const post = doc.paths['/redfish/v1/Fabrics/CXL/Connections'].post;
    expect(post.requestBody.content['application/json'].schema.properties).toHaveProperty('MemoryRegionInfo');
    expect(Object.keys(doc.paths['/redfish/v1/AccountService/Accounts/{user}']).sort()).toEqual(['delete', 'get', 'patch']);
    // Every URI it names is served (the stream aside: it never ends).
    const plain = Object.keys(doc.paths).filter((p) => !p.includes('{') && doc.paths[p].get && !p.endsWith('/SSE'));
    expect(plain.length).toBeGreaterThan(15);
    for (const path of plain) expect((await nb.app.inject({ url: path, headers: auth })).statusCode, path).toBe(200);
  });

  it('what the request path remembers goes stale at once: a changed password ends the remembered Basic header, a pool change the cached model', async () => {
    const { nb, attached, emit } = await fakeNorthbound();
    const old = basic('viewer', 'p@ss:word');
    expect((await nb.app.inject({ url: '/redfish/v1/Chassis', headers: old })).statusCode).toBe(200);
    expect((await nb.app.inject({ url: '/redfish/v1/Chassis', headers: old })).statusCode).toBe(200);
    const changed = await nb.app.inject({
      method: 'PATCH',
      url: `${ACCOUNTS}/viewer`,
      headers: auth,
      payload: { Password: 'a new password' },
    });
    expect(changed.statusCode).toBe(200);
    expect((await nb.app.inject({ url: '/redfish/v1/Chassis', headers: old })).statusCode).toBe(401);
    expect((await nb.app.inject({ url: '/redfish/v1/Chassis', headers: basic('viewer', 'a new password') })).statusCode).toBe(200);
    // The model: read, change the pool (with its event, as the backend does), read again at once.
    const ep = () => nb.app.inject({ url: '/redfish/v1/Fabrics/CXL/Endpoints/head2', headers: auth }).then((r) => r.json());
    expect((await ep()).Status.State).toBe('Enabled');
    attached.delete(2);
    emit({ kind: 'head-detached', head: 2, pid: 1002, reason: 'test' });
    expect((await ep()).Status.State).toBe('Absent');
    // A store change (a chunk defined) shows on the next read too, with no event.
    const before = (await nb.app.inject({ url: '/redfish/v1/Chassis/fakepool/MemoryDomains/fakepool/MemoryChunks', headers: auth })).json();
    const made = await nb.app.inject({
      method: 'POST',
      url: '/redfish/v1/Chassis/fakepool/MemoryDomains/fakepool/MemoryChunks',
      headers: auth,
      payload: { MemoryChunkSizeMiB: 2, AddressRangeOffsetMiB: 2048 },
    });
    expect(made.statusCode).toBe(201);
    const after = (await nb.app.inject({ url: '/redfish/v1/Chassis/fakepool/MemoryDomains/fakepool/MemoryChunks', headers: auth })).json();
    expect(after['Members@odata.count']).toBe(before['Members@odata.count'] + 1);
  });

  it('the TLS port cuts off a client that connects and sends nothing, and still serves plain HTTP only a 308', async () => {
    const dir = tempDir('cxl-mhd-tls-idle-');
    const { cert, key } = makeCert(dir);
    const { nb } = await fakeNorthbound({ tls: { cert, key }, limits: { headersTimeoutMs: 300 } });
    const url = await nb.listen('127.0.0.1', 0);
    const port = Number(new URL(url).port);
    const silent = connect(port, '127.0.0.1');
    let got = '';
    silent.on('data', (d) => {
      got += d;
    });
    await new Promise<void>((resolve) => silent.on('close', () => resolve()));
    expect(got).toBe('');
    const plain = await new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1', () => s.write('GET /redfish/v1/Chassis HTTP/1.1\r\nHost: evil.example\r\n\r\n'));
      let b = '';
      s.on('data', (d) => {
        b += d;
      });
      s.on('close', () => resolve(b));
    });
    // The Location names the service's own address, never the Host header's.
    expect(plain).toMatch(new RegExp(`^HTTP/1\\.1 308 [^]*\\r\\nlocation: ${url}/redfish/v1/Chassis\\r\\n`, 'i'));
    expect(plain).not.toContain('evil.example');
  });
});
