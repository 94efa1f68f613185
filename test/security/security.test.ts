// Security defaults of the running backend, checked from outside, that need
// no second user: stale-object recovery, a squatted socket, a second backend,
// and pool destroy while in use. Modes, --socket-group and the peer-uid gate
// (which switch uid) are in test/security/security-root.test.ts.
import { existsSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, makeTestPool, startBackend, type TestPool } from '../helpers/qemu.js';

function sock(pool: TestPool, name: string): string {
  return join(pool.runDir, pool.name, name);
}

describe('security defaults', () => {
  it('stale sockets of a crashed backend are replaced; a non-socket in their place is never clobbered', async () => {
    const pool = makeTestPool('sec');
    const b1 = await startBackend(pool, ['--capacity', '512M', '--heads', '2']);
    await b1.stop('SIGKILL');
    expect(existsSync(sock(pool, 'head0.sock'))).toBe(true); // left behind by the crash
    const b2 = await startBackend(pool);
    const code = await b2.stop();
    // Read after the stop: its stderr is then all there (startBackend).
    expect(b2.stderr()).not.toMatch(/error/i);
    expect([code, existsSync(sock(pool, 'head0.sock'))]).toEqual([0, false]); // a clean stop removes them
    writeFileSync(sock(pool, 'head1.sock'), 'not a socket');
    const r = cli(['serve', '--pool', pool.name, ...pool.dirArgs]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/head1\.sock exists and is not a socket; refusing to replace it/);
    expect(existsSync(sock(pool, 'head1.sock'))).toBe(true);
  });

  it('a live foreign listener on a head socket is not stolen', async () => {
    const pool = makeTestPool('sec');
    expect(cli(['pool', 'create', '--pool', pool.name, '--capacity', '512M', '--heads', '1', ...pool.dirArgs]).code).toBe(0);
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(pool.runDir, pool.name), { recursive: true, mode: 0o700 });
    const squatter = createServer(() => {});
    await new Promise<void>((r) => squatter.listen(sock(pool, 'head0.sock'), r));
    try {
      const r = cli(['serve', '--pool', pool.name, ...pool.dirArgs]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/head0\.sock is served by another process/);
    } finally {
      squatter.close();
    }
  });

  it('pool destroy refuses while a backend serves the pool, then removes everything', async () => {
    const pool = makeTestPool('sec');
    const backend = await startBackend(pool, ['--capacity', '512M', '--heads', '2']);
    const r = cli(['pool', 'destroy', '--pool', pool.name, ...pool.dirArgs]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/in use by another writer/);
    await backend.stop();
    expect(cli(['pool', 'destroy', '--pool', pool.name, ...pool.dirArgs]).code).toBe(0);
    for (const suffix of ['mem', 'state']) expect(existsSync(`/dev/shm/cxl-mhd.${pool.name}.${suffix}`)).toBe(false);
    expect(existsSync(join(pool.stateDir, pool.name))).toBe(false);
  });
});
