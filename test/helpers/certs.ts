// Certificates for the HTTPS tests, made by the openssl CLI in a temp dir:
// self-signed for 127.0.0.1, with a fresh key or for a key given, with
// extra extensions, or valid only in the past (through `openssl ca`, since
// OpenSSL 3.0's req has no dates).
import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';

/** Runs the openssl CLI (in `cwd`, with `input` on stdin); its stdout, or one line of why it failed. */
export function openssl(args: string[], cwd?: string, input?: string): string {
  const r = spawnSync('openssl', args, { encoding: 'utf8', ...(cwd ? { cwd } : {}), ...(input !== undefined ? { input } : {}) });
  if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
  return r.stdout;
}

export interface Made {
  cert: string;
  key: string;
  /** The certificate's PEM text. */
  pem: string;
  /** The key's PEM text. */
  keyPem: string;
}

/** A self-signed certificate for 127.0.0.1 in `dir`, named `name`.crt/.key (key 0600). */
export function newCert(dir: string, name: string, opts: { key?: string; ext?: string[]; cn?: string; expired?: boolean } = {}): Made {
  const cert = join(dir, `${name}.crt`);
  const key = opts.key ?? join(dir, `${name}.key`);
  const keyArgs = opts.key ? ['-key', opts.key] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key];
  const subj = ['-subj', `/CN=${opts.cn ?? '127.0.0.1'}`];
  const ext = ['-addext', 'subjectAltName=IP:127.0.0.1', ...(opts.ext ?? []).flatMap((e) => ['-addext', e])];
  if (opts.expired) {
    const csr = join(dir, `${name}.csr`);
    openssl(['req', '-new', ...keyArgs, ...subj, '-out', csr]);
    const cnf = join(dir, `${name}.cnf`);
    writeFileSync(
      cnf,
      `[ca]\ndefault_ca = c\n[c]\ndatabase = ${name}.idx\nnew_certs_dir = .\nserial = ${name}.serial\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n`,
    );
    writeFileSync(join(dir, `${name}.idx`), '');
    writeFileSync(join(dir, `${name}.serial`), '01\n');
    openssl(
      [
        'ca',
        '-batch',
        '-config',
        cnf,
        '-selfsign',
        '-keyfile',
        key,
        '-in',
        csr,
        '-startdate',
        '20200101000000Z',
        '-enddate',
        '20200102000000Z',
        '-notext',
        '-out',
        cert,
      ],
      dir,
    );
  } else {
    openssl(['req', '-x509', ...keyArgs, '-days', '2', ...subj, ...ext, '-out', cert]);
  }
  chmodSync(key, 0o600);
  return { cert, key, pem: readFileSync(cert, 'utf8'), keyPem: readFileSync(key, 'utf8') };
}

/** The SHA-256 fingerprint of the certificate a new TLS connection to 127.0.0.1:`port` is shown. */
export function peerFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.end();
    });
    s.on('error', reject);
  });
}
