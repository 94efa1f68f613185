// The service as a Manager and its HTTPS certificate as a Redfish resource
// that CertificateService.ReplaceCertificate replaces while serving: the
// new certificate reaches new TLS connections (seen by node's tls and by
// curl), open connections keep theirs, the files are rewritten (key 0600),
// and every refusal leaves the old certificate served and the files as
// they were.
import { execFile } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { Northbound } from '../../src/http/index.js';
import { newCert, openssl, peerFingerprint } from '../helpers/certs.js';
import { BASIC, fakeNorthbound } from '../helpers/northbound.js';
import { tempDir } from '../helpers/pool.js';

const auth = { authorization: BASIC };
const basic = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
const MANAGER = '/redfish/v1/Managers/cxl-mhd';
const PROTO = `${MANAGER}/NetworkProtocol`;
const CERT = `${PROTO}/HTTPS/Certificates/1`;
const REPLACE = '/redfish/v1/CertificateService/Actions/CertificateService.ReplaceCertificate';
const USERS = {
  admin: 'secret',
  ops: { password: 'operator-pw', role: 'Operator' as const },
  reader: { password: 'reader-pw', role: 'ReadOnly' as const },
};

const fingerprintOf = (pem: string) => openssl(['x509', '-noout', '-fingerprint', '-sha256'], undefined, pem);

async function started(dir: string) {
  const first = newCert(dir, 'first');
  const { nb } = await fakeNorthbound({ users: USERS, tls: { cert: first.cert, key: first.key } });
  const url = await nb.listen('127.0.0.1', 0);
  return { nb, first, url, port: Number(new URL(url).port) };
}

const replaceBody = (pem: string, extra: Record<string, unknown> = {}) => ({
  CertificateString: pem,
  CertificateType: 'PEM',
  CertificateUri: { '@odata.id': CERT },
  ...extra,
});

describe('Managers and the HTTPS certificate', () => {
  it('one Manager, the service itself: ServiceRoot UUID as ServiceEntryPointUUID, HTTPS on the real port, HTTP only redirects, no SSDP', async () => {
    const { nb, port, first } = await started(tempDir('cxl-mhd-cert-'));
    const root = (await nb.app.inject({ url: '/redfish/v1/' })).json();
    expect(root.Managers).toEqual({ '@odata.id': '/redfish/v1/Managers' });
    expect(root.CertificateService).toEqual({ '@odata.id': '/redfish/v1/CertificateService' });
    const managers = (await nb.app.inject({ url: '/redfish/v1/Managers', headers: auth })).json();
    expect(managers.Members).toEqual([{ '@odata.id': MANAGER }]);
    const m = (await nb.app.inject({ url: MANAGER, headers: auth })).json();
    expect(m).toMatchObject({ ManagerType: 'Service', ServiceEntryPointUUID: root.UUID, NetworkProtocol: { '@odata.id': PROTO } });
    expect(m.UUID).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(m.UUID).not.toBe(root.UUID);
    const p = (await nb.app.inject({ url: PROTO, headers: auth })).json();
    expect(p).toMatchObject({
      HTTPS: { ProtocolEnabled: true, Port: port, Certificates: { '@odata.id': `${PROTO}/HTTPS/Certificates` } },
      HTTP: { ProtocolEnabled: false },
      SSDP: { ProtocolEnabled: false },
    });
    // What the resource says is what a TLS client is shown.
    const c = (await nb.app.inject({ url: CERT, headers: auth })).json();
    expect(c.CertificateString).toBe(first.pem);
    expect(`sha256 Fingerprint=${c.Fingerprint}\n`).toBe(fingerprintOf(first.pem));
    expect(c.Fingerprint).toBe(await peerFingerprint(port));
    const serial = openssl(['x509', '-noout', '-serial'], undefined, first.pem).trim().replace('serial=', '');
    expect(c.SerialNumber.replaceAll(':', '')).toBe(serial.padStart(serial.length + (serial.length % 2), '0'));
    const end = openssl(['x509', '-noout', '-enddate'], undefined, first.pem).trim().replace('notAfter=', '');
    expect(c.ValidNotAfter).toBe(new Date(end).toISOString().replace('.000Z', 'Z'));
    expect(c).toMatchObject({
      CertificateType: 'PEM',
      CertificateUsageTypes: ['Web'],
      FingerprintHashAlgorithm: 'TPM_ALG_SHA256',
      Subject: { CommonName: '127.0.0.1', AlternativeNames: ['127.0.0.1'], DisplayString: 'CN=127.0.0.1' },
      Issuer: { CommonName: '127.0.0.1' },
      // openssl req's default certificate has no key usage extension: none is claimed.
      KeyUsage: [],
    });
    const loc = (await nb.app.inject({ url: '/redfish/v1/CertificateService/CertificateLocations', headers: auth })).json();
    expect(loc.Links.Certificates).toEqual([{ '@odata.id': CERT }]);
    const svc = (await nb.app.inject({ url: '/redfish/v1/CertificateService', headers: auth })).json();
    expect(svc.Actions['#CertificateService.ReplaceCertificate'].target).toBe(REPLACE);
  });

  it('ReplaceCertificate with a new certificate and key: new connections get it at once, an open one keeps the old, the files are rewritten (key 0600), curl trusts it only after', async () => {
    const dir = tempDir('cxl-mhd-cert-');
    const { nb, first, url, port } = await started(dir);
    const next = newCert(dir, 'next', {
      ext: ['keyUsage=critical,digitalSignature,keyEncipherment', 'extendedKeyUsage=serverAuth'],
      cn: 'cxl-mhd.test',
    });
    // curl runs beside this process (the service answers it from this event loop, so never spawnSync).
    const curl = () =>
      new Promise<{ status: number; stdout: string }>((resolve) => {
        const args = ['-sS', '-m', '20', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', next.cert, '-u', 'admin:secret'];
        execFile('curl', [...args, `${url}/redfish/v1/Chassis`], (e, stdout) =>
          resolve({ status: e ? Number((e as { code?: number }).code) : 0, stdout }),
        );
      });
    const before = await curl();
    expect(before.status).toBe(60); // curl: the peer's certificate is not trusted
    // A keep-alive connection opened before the replacement.
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: readFileSync(first.cert) });
    const get = () =>
      new Promise<{ status: number; fingerprint: string; reused: boolean }>((resolve, reject) => {
        const req = httpsRequest(`${url}/redfish/v1/`, { agent }, (res) => {
          // Read while the response still holds the socket (at its end the socket goes back to the agent).
          const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, fingerprint, reused: req.reusedSocket }));
        });
        req.on('error', reject);
        req.end();
      });
    const old = await get();
    expect(old.fingerprint).toBe(await peerFingerprint(port));

    const r = await nb.app.inject({ method: 'POST', url: REPLACE, headers: auth, payload: replaceBody(next.pem + next.keyPem) });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.headers.location).toBe(CERT);
    // DSP8010: a private key sent in CertificateString is never part of an answer.
    expect(r.body).not.toContain('PRIVATE KEY');
    const fp = `sha256 Fingerprint=${r.json().Fingerprint}\n`;
    expect(fp).toBe(fingerprintOf(next.pem));

    // New connections: node's tls and curl see the new certificate.
    expect(await peerFingerprint(port)).toBe(r.json().Fingerprint);
    const after = await curl();
    expect([after.status, after.stdout]).toEqual([0, '200']);
    // The connection opened before still works, with the certificate it was opened with.
    const kept = await get();
    expect(kept).toEqual({ status: 200, fingerprint: old.fingerprint, reused: true });
    agent.destroy();

    // The files: the new certificate, the new key (as PKCS#8), 0600.
    expect(readFileSync(first.cert, 'utf8')).toBe(next.pem);
    const onDisk = createPrivateKey(readFileSync(first.key));
    expect(onDisk.export({ format: 'jwk' })).toEqual(createPrivateKey(next.keyPem).export({ format: 'jwk' }));
    expect(statSync(first.key).mode & 0o777).toBe(0o600);
    // The resource shows the new one, with the key usages its extensions state.
    const c = (await nb.app.inject({ url: CERT, headers: auth })).json();
    expect(c).toMatchObject({
      CertificateString: next.pem,
      Subject: { CommonName: 'cxl-mhd.test' },
      KeyUsage: ['DigitalSignature', 'KeyEncipherment', 'ServerAuthentication'],
    });
    expect(JSON.stringify(c)).not.toContain('PRIVATE KEY');
  });

  it('a certificate alone must fit the key in use: then only the certificate file changes', async () => {
    const dir = tempDir('cxl-mhd-cert-');
    const { nb, first, port } = await started(dir);
    const keyBefore = readFileSync(first.key);
    const same = newCert(dir, 'samekey', { key: first.key, cn: 'renewed' });
    const r = await nb.app.inject({ method: 'POST', url: REPLACE, headers: auth, payload: replaceBody(same.pem) });
    expect(r.statusCode, r.body).toBe(200);
    expect(await peerFingerprint(port)).toBe(r.json().Fingerprint);
    expect(readFileSync(first.cert, 'utf8')).toBe(same.pem);
    expect(readFileSync(first.key)).toEqual(keyBefore);
  });

  it('refused whole, in one line, with the old certificate still served and the files untouched: wrong key, expired, garbage, encrypted key, two certs as PEM, other parameters; ReadOnly and Operator get 403', async () => {
    const dir = tempDir('cxl-mhd-cert-');
    const { nb, first, port } = await started(dir);
    const other = newCert(dir, 'other');
    const expired = newCert(dir, 'expired', { expired: true });
    const encrypted = openssl(['pkey', '-in', other.key, '-aes256', '-passout', 'pass:xyzzy']);
    const files = () => [readFileSync(first.cert, 'utf8'), readFileSync(first.key, 'utf8'), statSync(first.key).mtimeMs];
    const before = files();
    const served = await peerFingerprint(port);
    const cases: [string, Record<string, unknown>, string, RegExp][] = [
      ['cert alone, not for the key in use', replaceBody(other.pem), 'ActionParameterValueError', /does not fit the private key in use/],
      [
        'cert with a key not its own',
        replaceBody(other.pem + first.keyPem),
        'ActionParameterValueError',
        /does not fit the private key sent/,
      ],
      ['expired', replaceBody(expired.pem + expired.keyPem), 'ActionParameterValueError', /expired on Jan {2}2 00:00:00 2020 GMT/],
      ['garbage', replaceBody('hello'), 'ActionParameterValueError', /holds no PEM certificate/],
      [
        'a certificate block that is not DER',
        replaceBody('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'),
        'ActionParameterValueError',
        /does not parse/,
      ],
      ['encrypted key', replaceBody(other.pem + encrypted), 'ActionParameterValueError', /private key is encrypted/],
      [
        'two certificates as PEM',
        replaceBody(other.pem + first.pem),
        'ActionParameterValueError',
        /CertificateType PEM is one certificate/,
      ],
      ['PKCS12', replaceBody(other.pem, { CertificateType: 'PKCS12' }), 'ActionParameterValueNotInList', /CertificateType/],
      [
        'another URI',
        replaceBody(other.pem, { CertificateUri: { '@odata.id': '/redfish/v1/x' } }),
        'ActionParameterValueError',
        /CertificateUri/,
      ],
      ['no CertificateUri', { CertificateString: other.pem, CertificateType: 'PEM' }, 'ActionParameterMissing', /CertificateUri/],
      ['unknown parameter', replaceBody(other.pem, { Bogus: 1 }), 'ActionParameterUnknown', /Bogus/],
      ['a password', replaceBody(other.pem, { Password: 'x' }), 'ActionParameterNotSupported', /Password/],
      ['not a string', replaceBody(other.pem, { CertificateString: 5 }), 'PropertyValueTypeError', /CertificateString/],
    ];
    for (const [what, payload, id, text] of cases) {
      const r = await nb.app.inject({ method: 'POST', url: REPLACE, headers: auth, payload });
      expect(r.statusCode, what).toBe(400);
      const e = r.json().error;
      expect(e.code, what).toBe(`Base.1.22.${id}`);
      expect(e.message, what).toMatch(text);
      expect(e.message, what).not.toContain('\n');
    }
    for (const [user, pw] of [
      ['reader', 'reader-pw'],
      ['ops', 'operator-pw'],
    ] as const) {
      const r = await nb.app.inject({
        method: 'POST',
        url: REPLACE,
        headers: basic(user, pw),
        payload: replaceBody(other.pem + other.keyPem),
      });
      expect([r.statusCode, r.json().error.code], user).toEqual([403, 'Base.1.22.InsufficientPrivilege']);
    }
    expect(files()).toEqual(before);
    expect(await peerFingerprint(port)).toBe(served);
    expect((await nb.app.inject({ url: CERT, headers: auth })).json().CertificateString).toBe(first.pem);
  });

  it('fuzz: a valid certificate and key with one base64 character changed or cut short is taken or refused in one line, never half-done', async () => {
    const dir = tempDir('cxl-mhd-cert-');
    const { nb, port } = await started(dir);
    const next = newCert(dir, 'next');
    const valid = next.pem + next.keyPem;
    let seed = 0x5eed;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const counts = { 200: 0, 400: 0 };
    for (let i = 0; i < 150; i++) {
      let pem = valid;
      if (i % 5 === 4) pem = valid.slice(0, rand(valid.length));
      else {
        let at = rand(valid.length);
        while (!B64.includes(valid[at] as string)) at = (at + 1) % valid.length;
        pem = valid.slice(0, at) + B64[rand(64)] + valid.slice(at + 1);
      }
      const before = (await nb.app.inject({ url: CERT, headers: auth })).json().Fingerprint;
      const r = await nb.app.inject({ method: 'POST', url: REPLACE, headers: auth, payload: replaceBody(pem) });
      expect([200, 400], `case ${i}: ${r.body}`).toContain(r.statusCode);
      counts[r.statusCode as 200 | 400]++;
      const served = await peerFingerprint(port);
      if (r.statusCode === 200) {
        expect(served).toBe(r.json().Fingerprint);
      } else {
        expect(r.json().error.message).not.toContain('\n');
        expect(served).toBe(before);
      }
    }
    // Most changes break the certificate or the key; one in a field nobody checks (a PEM line's padding) may not.
    expect(counts[400]).toBeGreaterThan(100);
  });

  it('a key whose private half is damaged (its public half intact) is refused, at start and as a replacement: it would fail every handshake', async () => {
    const dir = tempDir('cxl-mhd-cert-');
    const { nb, first } = await started(dir);
    const next = newCert(dir, 'next');
    // PKCS#8 of a P-256 key: the private scalar follows 02 01 01 04 20; the public point comes after it, untouched.
    const der = createPrivateKey(next.keyPem).export({ type: 'pkcs8', format: 'der' });
    const at = der.indexOf(Buffer.from([0x02, 0x01, 0x01, 0x04, 0x20])) + 5;
    der[at + 7] = (der[at + 7] as number) ^ 0x01;
    const damaged = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }) as string;
    const r = await nb.app.inject({ method: 'POST', url: REPLACE, headers: auth, payload: replaceBody(next.pem + damaged) });
    expect([r.statusCode, r.json().error.message]).toEqual([400, expect.stringMatching(/the key is damaged/)]);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(`${dir}/damaged.key`, damaged, { mode: 0o600 });
    expect(
      () => new Northbound({ deps: nb.ctx.deps, users: { a: 'b' }, stateFile: null, tls: { cert: next.cert, key: `${dir}/damaged.key` } }),
    ).toThrow(/--http-tls-key \S+ does not sign what --http-tls-cert \S+ verifies \(the key is damaged\)/);
    expect(readFileSync(first.cert, 'utf8')).toBe(first.pem);
  });

  it('a chain (PEMchain): leaf first, each issued by the next; the listener serves the chain', async () => {
    const dir = tempDir('cxl-mhd-cert-');
    const { nb, port } = await started(dir);
    const ca = newCert(dir, 'ca', { cn: 'test CA', ext: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign'] });
    const leafKey = `${dir}/leaf.key`;
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', leafKey]);
    openssl(['req', '-new', '-key', leafKey, '-subj', '/CN=leaf', '-out', `${dir}/leaf.csr`]);
    openssl([
      'x509',
      '-req',
      '-in',
      `${dir}/leaf.csr`,
      '-CA',
      ca.cert,
      '-CAkey',
      ca.key,
      '-CAcreateserial',
      '-days',
      '2',
      '-out',
      `${dir}/leaf.crt`,
    ]);
    const leaf = readFileSync(`${dir}/leaf.crt`, 'utf8');
    const key = readFileSync(leafKey, 'utf8');
    const wrongOrder = await nb.app.inject({
      method: 'POST',
      url: REPLACE,
      headers: auth,
      payload: replaceBody(ca.pem + leaf + key, { CertificateType: 'PEMchain' }),
    });
    expect(wrongOrder.statusCode).toBe(400);
    const r = await nb.app.inject({
      method: 'POST',
      url: REPLACE,
      headers: auth,
      payload: replaceBody(leaf + ca.pem + key, { CertificateType: 'PEMchain' }),
    });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json()).toMatchObject({ CertificateType: 'PEMchain', Subject: { CommonName: 'leaf' }, Issuer: { CommonName: 'test CA' } });
    // A client that trusts only the CA accepts the service now.
    const ok = await new Promise<boolean>((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca: ca.pem, checkServerIdentity: () => undefined }, () => {
        resolve(s.authorized);
        s.end();
      });
      s.on('error', () => resolve(false));
    });
    expect(ok).toBe(true);
  });

  it('without TLS: HTTP is the protocol, no certificate collection, no ReplaceCertificate offered, and a POST to it says why', async () => {
    const { nb } = await fakeNorthbound({ users: USERS });
    const p = (await nb.app.inject({ url: PROTO, headers: auth })).json();
    expect(p).toMatchObject({ HTTP: { ProtocolEnabled: true }, HTTPS: { ProtocolEnabled: false }, SSDP: { ProtocolEnabled: false } });
    expect(p.HTTPS).not.toHaveProperty('Certificates');
    expect((await nb.app.inject({ url: `${PROTO}/HTTPS/Certificates`, headers: auth })).statusCode).toBe(404);
    const svc = (await nb.app.inject({ url: '/redfish/v1/CertificateService', headers: auth })).json();
    expect(svc).not.toHaveProperty('Actions');
    const loc = (await nb.app.inject({ url: '/redfish/v1/CertificateService/CertificateLocations', headers: auth })).json();
    expect(loc.Links.Certificates).toEqual([]);
    const r = await nb.app.inject({ method: 'POST', url: REPLACE, headers: auth, payload: replaceBody('x') });
    expect(r.statusCode).toBe(400);
    expect(r.json().error.code).toBe('Base.1.22.ActionNotSupported');
    expect(r.json().error.message).toMatch(/plain HTTP .*--http-tls-cert/);
  });
});
