// The HTTPS identity the northbound serves: the certificate and key files
// given with --http-tls-cert/--http-tls-key, what Redfish shows of that
// certificate (read with node:crypto's X509Certificate), and replacing it
// while serving (CertificateService.ReplaceCertificate): a replacement is
// checked whole before anything changes, written to both files atomically
// (temporary file renamed over each, the key 0600), and switched into the
// live listener so that new connections get it and open ones keep theirs.
// A failure part-way puts the old files back: nothing is left half-done.
import { createPrivateKey, type KeyObject, randomBytes, sign, verify, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { chmod, open, readFile, rename, rm, stat } from 'node:fs/promises';
import type { Server as HttpsServer } from 'node:https';
import { createSecureContext } from 'node:tls';
import { UsageError } from '../errors/index.js';

/**
 * Whether a signature made with the key verifies with the certificate.
 * X509Certificate.checkPrivateKey (and OpenSSL's own check when a TLS
 * context is made) compares the public half a key file carries; a damaged
 * private half passes them and then fails every handshake.
 */
function pairWorks(leaf: X509Certificate, key: KeyObject): boolean {
  const probe = randomBytes(32);
  const alg = ['ed25519', 'ed448'].includes(key.asymmetricKeyType ?? '') ? null : 'sha256';
  try {
    return verify(alg, probe, leaf.publicKey, sign(alg, probe, key));
  } catch {
    return false;
  }
}

/** The certificate and key for HTTPS; a key others can read is refused in one line. */
export function readTls(files: { cert: string; key: string }): { cert: Buffer; key: Buffer } {
  const read = (flag: string, path: string) => {
    try {
      return { buf: readFileSync(path), mode: statSync(path).mode };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new UsageError(`${flag} ${path}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
  };
  const key = read('--http-tls-key', files.key);
  if ((key.mode & 0o077) !== 0) {
    throw new UsageError(
      `--http-tls-key ${files.key} is mode ${(key.mode & 0o777).toString(8).padStart(4, '0')}; it is a private key and must be 0600 (chmod 600 ${files.key})`,
    );
  }
  const cert = read('--http-tls-cert', files.cert);
  if (!cert.buf.includes('-----BEGIN CERTIFICATE-----')) throw new UsageError(`--http-tls-cert ${files.cert} holds no PEM certificate`);
  if (!key.buf.includes('PRIVATE KEY-----')) throw new UsageError(`--http-tls-key ${files.key} holds no PEM private key`);
  try {
    createSecureContext({ cert: cert.buf, key: key.buf });
  } catch (e) {
    throw new UsageError(
      `--http-tls-cert ${files.cert} and --http-tls-key ${files.key} do not make a TLS identity: ${(e as Error).message}`,
    );
  }
  if (!pairWorks(new X509Certificate(cert.buf), createPrivateKey(key.buf))) {
    throw new UsageError(`--http-tls-key ${files.key} does not sign what --http-tls-cert ${files.cert} verifies (the key is damaged)`);
  }
  return { cert: cert.buf, key: key.buf };
}

/** A replacement the service refuses, with the sentence saying why (the route makes it a 400). */
export class CertificateRejected extends Error {}

/** A replacement that was valid but could not be put in place; the old certificate is still served and on disk. */
export class CertificateNotStored extends Error {}

/** What the Certificate resource shows, in Redfish terms (DSP8010 Certificate). */
export interface CertificateFacts {
  pem: string;
  type: 'PEM' | 'PEMchain';
  subject: Record<string, unknown>;
  issuer: Record<string, unknown>;
  validNotBefore: string;
  validNotAfter: string;
  serialNumber: string;
  fingerprint: string;
  keyUsage: string[];
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g;
const KEY_BLOCKS = new Set(['PRIVATE KEY', 'EC PRIVATE KEY', 'RSA PRIVATE KEY']);

/** `AB:CD:…`, the form Redfish's SerialNumber and Fingerprint take. */
function colonHex(hex: string): string {
  const even = hex.length % 2 === 1 ? `0${hex}` : hex;
  return (even.match(/../g) ?? []).join(':').toUpperCase();
}

/** The certificate blocks of a PEM text, and at most one unencrypted private key. */
function splitPem(text: string): { certs: string[]; key: string | null } {
  const certs: string[] = [];
  let key: string | null = null;
  for (const m of text.matchAll(PEM_BLOCK)) {
    const [block, label, body] = m as unknown as [string, string, string];
    if (label === 'CERTIFICATE') certs.push(`${block}\n`);
    else if (label === 'ENCRYPTED PRIVATE KEY' || (KEY_BLOCKS.has(label) && body.includes('ENCRYPTED'))) {
      throw new CertificateRejected('the private key is encrypted; send it unencrypted (the service keeps it in a 0600 file)');
    } else if (KEY_BLOCKS.has(label)) {
      if (key !== null) throw new CertificateRejected('it holds more than one private key');
      key = `${block}\n`;
    } else if (label !== 'EC PARAMETERS') {
      throw new CertificateRejected(`it holds a PEM block of type ${label}, which is neither a certificate nor a private key`);
    }
  }
  return { certs, key };
}

// X.509 KeyUsage (RFC 5280 §4.2.1.3), bit 0 first; node:crypto shows only the extended key usages.
const KEY_USAGE_BITS = [
  'DigitalSignature',
  'NonRepudiation',
  'KeyEncipherment',
  'DataEncipherment',
  'KeyAgreement',
  'KeyCertSign',
  'CRLSigning',
  'EncipherOnly',
  'DecipherOnly',
];
const EXT_KEY_USAGES: Record<string, string> = {
  '1.3.6.1.5.5.7.3.1': 'ServerAuthentication',
  '1.3.6.1.5.5.7.3.2': 'ClientAuthentication',
  '1.3.6.1.5.5.7.3.3': 'CodeSigning',
  '1.3.6.1.5.5.7.3.4': 'EmailProtection',
  '1.3.6.1.5.5.7.3.8': 'Timestamping',
  '1.3.6.1.5.5.7.3.9': 'OCSPSigning',
};
// The DER of the extension's OID, id-ce-keyUsage (2.5.29.15).
const KEY_USAGE_OID = Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x0f]);

/** The KeyUsage bits a certificate's DER states; none when it has no such extension (or it does not read as one). */
function keyUsageBits(der: Buffer): string[] {
  let i = der.indexOf(KEY_USAGE_OID);
  if (i < 0) return [];
  i += KEY_USAGE_OID.length;
  if (der[i] === 0x01) i += 3; // critical: BOOLEAN
  // OCTET STRING { BIT STRING { unused-bits, bytes… } }
  if (der[i] !== 0x04 || der[i + 2] !== 0x03) return [];
  const len = der[i + 3] as number;
  const bytes = der.subarray(i + 5, i + 4 + len);
  return KEY_USAGE_BITS.filter((_, bit) => (((bytes[bit >> 3] ?? 0) >> (7 - (bit & 7))) & 1) === 1);
}

/** An X.509 time (whole seconds) as Redfish's date-time, without the fraction toISOString adds. */
const isoSeconds = (t: string) => new Date(t).toISOString().replace(/\.000Z$/, 'Z');

/** A distinguished name as Redfish's Identifier. */
function identifier(x: X509Certificate, which: 'subject' | 'issuer'): Record<string, unknown> {
  const dn = x.toLegacyObject()[which] as unknown as Record<string, string | string[] | undefined>;
  const first = (k: string) => [dn[k]].flat()[0];
  const out: Record<string, unknown> = {
    CommonName: first('CN'),
    Organization: first('O'),
    OrganizationalUnit: first('OU'),
    City: first('L'),
    State: first('ST'),
    Country: first('C'),
    Email: first('emailAddress'),
    DisplayString: x[which].split('\n').join(', '),
  };
  if (which === 'subject' && x.subjectAltName) {
    out.AlternativeNames = x.subjectAltName.split(', ').map((n) => n.replace(/^(DNS|IP Address|email|URI):/, ''));
  }
  return Object.fromEntries(Object.entries(out).filter(([, v]) => v !== undefined));
}

export function describe(certPem: string): CertificateFacts {
  const { certs } = splitPem(certPem);
  const x = new X509Certificate(certs[0] as string);
  return {
    pem: certs.join(''),
    type: certs.length > 1 ? 'PEMchain' : 'PEM',
    subject: identifier(x, 'subject'),
    issuer: identifier(x, 'issuer'),
    validNotBefore: isoSeconds(x.validFrom),
    validNotAfter: isoSeconds(x.validTo),
    serialNumber: colonHex(x.serialNumber),
    fingerprint: x.fingerprint256,
    keyUsage: [...keyUsageBits(x.raw), ...(x.keyUsage ?? []).flatMap((oid) => EXT_KEY_USAGES[oid] ?? [])],
  };
}

/** Writes `data` to a fresh temporary file beside `path` (synced, `mode`); returns its name. */
async function writeTemp(path: string, data: string | Buffer, mode: number): Promise<string> {
  const tmp = `${path}.new`;
  await rm(tmp, { force: true });
  const f = await open(tmp, 'wx', mode);
  try {
    await f.writeFile(data);
    await f.sync();
  } finally {
    await f.close();
  }
  await chmod(tmp, mode);
  return tmp;
}

export class TlsIdentity {
  private certPem: string;
  private keyPem: string;
  private facts: CertificateFacts;
  private server: HttpsServer | null = null;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly files: { cert: string; key: string }) {
    const { cert, key } = readTls(files);
    this.certPem = cert.toString('utf8');
    this.keyPem = key.toString('utf8');
    try {
      this.facts = describe(this.certPem);
    } catch (e) {
      throw new UsageError(`--http-tls-cert ${files.cert}: ${(e as Error).message}`);
    }
  }

  /** What the listener is created with. */
  get options(): { cert: string; key: string } {
    return { cert: this.certPem, key: this.keyPem };
  }

  /** The listener whose TLS context a replacement switches. */
  attach(server: HttpsServer): void {
    this.server = server;
  }

  /** The certificate being served now. */
  get current(): CertificateFacts {
    return this.facts;
  }

  /**
   * Replaces the certificate (and the key, if `pem` carries one after it;
   * otherwise the certificate must fit the key in use). Replacements run
   * one at a time.
   */
  replace(pem: string, type: 'PEM' | 'PEMchain'): Promise<CertificateFacts> {
    const run = this.queue.then(() => this.replaceNow(pem, type));
    this.queue = run.catch(() => {});
    return run;
  }

  private async replaceNow(pem: string, type: 'PEM' | 'PEMchain'): Promise<CertificateFacts> {
    const { cert, key } = check(pem, type, this.keyPem);
    // The certificate keeps its file's mode; the key is 0600 whatever it was.
    const certMode = (await stat(this.files.cert).catch(() => ({ mode: 0o644 }))).mode & 0o777;
    const writes = [{ path: this.files.cert, data: cert, mode: certMode }];
    if (key !== null) writes.push({ path: this.files.key, data: key, mode: 0o600 });
    const old: Buffer[] = [];
    const temps: string[] = [];
    const moved: number[] = [];
    try {
      // What is on disk now, to put back if a later step fails.
      for (const w of writes) old.push(await readFile(w.path));
      for (const w of writes) temps.push(await writeTemp(w.path, w.data, w.mode));
      for (const [i, w] of writes.entries()) {
        await rename(temps[i] as string, w.path);
        moved.push(i);
      }
      this.server?.setSecureContext({ cert, key: key ?? this.keyPem });
    } catch (e) {
      for (const i of moved) {
        const w = writes[i] as (typeof writes)[number];
        // Best effort: the reason reported is the first failure, not one of putting things back.
        await writeTemp(w.path, old[i] as Buffer, w.mode)
          .then((t) => rename(t, w.path))
          .catch(() => {});
      }
      await Promise.all(temps.map((t) => rm(t, { force: true })));
      throw new CertificateNotStored(
        `the new certificate could not be put in place (${(e as Error).message}); the old one is still served and on disk`,
      );
    }
    this.certPem = cert;
    if (key !== null) this.keyPem = key;
    this.facts = describe(cert);
    return this.facts;
  }
}

/** The certificate (and key) of a replacement, checked whole: one sentence saying what is wrong otherwise. */
function check(pem: string, type: 'PEM' | 'PEMchain', currentKey: string): { cert: string; key: string | null } {
  const { certs, key } = splitPem(pem);
  if (certs.length === 0) throw new CertificateRejected('it holds no PEM certificate');
  if (type === 'PEM' && certs.length > 1) {
    throw new CertificateRejected(`CertificateType PEM is one certificate, and it holds ${certs.length} (send them as PEMchain)`);
  }
  let chain: X509Certificate[];
  try {
    chain = certs.map((c) => new X509Certificate(c));
  } catch (e) {
    throw new CertificateRejected(`a certificate in it does not parse (${(e as Error).message})`);
  }
  const leaf = chain[0] as X509Certificate;
  const now = Date.now();
  if (new Date(leaf.validTo).getTime() <= now) throw new CertificateRejected(`the certificate expired on ${leaf.validTo}`);
  if (new Date(leaf.validFrom).getTime() > now) throw new CertificateRejected(`the certificate is not valid before ${leaf.validFrom}`);
  for (let i = 0; i + 1 < chain.length; i++) {
    const [cert, issuer] = [chain[i] as X509Certificate, chain[i + 1] as X509Certificate];
    if (!cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) {
      throw new CertificateRejected(`certificate ${i + 2} of the chain did not issue certificate ${i + 1}`);
    }
  }
  // A self-signed certificate carries its own proof: a client checks it, so does this service.
  const last = chain[chain.length - 1] as X509Certificate;
  if (last.checkIssued(last) && !last.verify(last.publicKey)) {
    throw new CertificateRejected('its signature does not verify against its own public key');
  }
  let keyObj: KeyObject;
  try {
    keyObj = createPrivateKey(key ?? currentKey);
  } catch (e) {
    throw new CertificateRejected(`the private key does not parse (${(e as Error).message})`);
  }
  if (!leaf.checkPrivateKey(keyObj)) {
    throw new CertificateRejected(
      key === null
        ? 'the certificate does not fit the private key in use (send the new key after the certificate)'
        : 'the certificate does not fit the private key sent with it',
    );
  }
  if (!pairWorks(leaf, keyObj)) {
    throw new CertificateRejected('a signature made with the private key does not verify with the certificate (the key is damaged)');
  }
  const keyPem = key === null ? null : (keyObj.export({ type: 'pkcs8', format: 'pem' }) as string);
  const certPem = certs.join('');
  try {
    createSecureContext({ cert: certPem, key: keyPem ?? currentKey });
  } catch (e) {
    throw new CertificateRejected(`TLS does not accept it (${(e as Error).message})`);
  }
  return { cert: certPem, key: keyPem };
}
