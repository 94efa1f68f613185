// ReplaceCertificate failing half-way: the certificate file is already
// renamed into place when the key file cannot be replaced (it is made
// immutable, `chattr +i`, which needs root). The old certificate must be
// put back on disk and still be served, and no temporary file left.
import { execFile, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { newCert, peerFingerprint } from '../helpers/certs.js';
import { BASIC, fakeNorthbound } from '../helpers/northbound.js';
import { tempDir } from '../helpers/pool.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const CERT = '/redfish/v1/Managers/cxl-mhd/NetworkProtocol/HTTPS/Certificates/1';
const REPLACE = '/redfish/v1/CertificateService/Actions/CertificateService.ReplaceCertificate';

const chattr = (flag: string, file: string) =>
  new Promise<void>((resolve, reject) => execFile('chattr', [flag, file], (e) => (e ? reject(e) : resolve())));

describe('ReplaceCertificate, a failure after the certificate file moved', () => {
  it.skipIf(!isRoot)(
    'puts the old certificate back on disk, keeps serving it, answers 500 in one line (needs root for chattr +i)',
    async () => {
      const dir = tempDir('cxl-mhd-cert-root-');
      const first = newCert(dir, 'first');
      const next = newCert(dir, 'next');
      const { nb } = await fakeNorthbound({ tls: { cert: first.cert, key: first.key } });
      const port = Number(new URL(await nb.listen('127.0.0.1', 0)).port);
      const served = await peerFingerprint(port);
      const replace = () =>
        nb.app.inject({
          method: 'POST',
          url: REPLACE,
          headers: { authorization: BASIC },
          payload: { CertificateString: next.pem + next.keyPem, CertificateType: 'PEM', CertificateUri: { '@odata.id': CERT } },
        });
      const keyBefore = readFileSync(first.key, 'utf8');
      await chattr('+i', first.key);
      try {
        const r = await replace();
        expect(r.statusCode).toBe(500);
        expect(r.json().error.code).toBe('Base.1.22.InternalError');
        expect(r.json().error.message).toMatch(/could not be put in place \(EPERM.*the old one is still served and on disk/);
      } finally {
        await chattr('-i', first.key);
      }
      expect(readFileSync(first.cert, 'utf8')).toBe(first.pem);
      expect(readFileSync(first.key, 'utf8')).toBe(keyBefore);
      expect(readdirSync(dir).filter((f) => f.endsWith('.new'))).toEqual([]);
      expect(await peerFingerprint(port)).toBe(served);
      const shown = (await nb.app.inject({ url: CERT, headers: { authorization: BASIC } })).json();
      expect(shown.CertificateString).toBe(first.pem);
      // With the key file writable again, the same request goes through.
      const again = await replace();
      expect(again.statusCode).toBe(200);
      expect(await peerFingerprint(port)).not.toBe(served);
      expect(spawnSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256', '-in', first.cert], { encoding: 'utf8' }).stdout).toBe(
        `sha256 Fingerprint=${again.json().Fingerprint}\n`,
      );
    },
  );
});
