// The users of the northbound (`serve --http-users FILE`) as an attacker sees
// them: a removed user or a changed password must lose Basic and session
// access when the file changes (or on SIGHUP); an unknown user name must cost
// the same work as a wrong password, so timing does not tell names apart;
// password checks run off the event loop. The flood's effect on FM-API
// latency is a benchmark (bench/guessflood.ts), not a test.
import { statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Auth, hashPassword, loadUsers } from '../../src/http/auth.js';
import { tempDir } from '../helpers/pool.js';
import { eventually } from '../helpers/qemu.js';

const opened: Auth[] = [];
afterEach(() => {
  for (const a of opened.splice(0)) a.close();
});

function auth(file: string, log: string[] = []): Auth {
  const a = new Auth(loadUsers(file), { usersFile: file, log: (m) => log.push(m) });
  opened.push(a);
  return a;
}

const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });

describe('the users file', () => {
  it('a user removed from the file loses Basic access and its sessions when the file changes', async () => {
    const file = join(tempDir(), 'users');
    const alice = `alice:${hashPassword('wonder', 1024)}\n`;
    writeFileSync(file, `${alice}bob:${hashPassword('hunter2', 1024)}\n`, { mode: 0o600 });
    const log: string[] = [];
    const a = auth(file, log);
    expect(await a.identify(basic('bob', 'hunter2'))).toBe('bob');
    const kept = a.openSession('alice');
    const s = a.openSession('bob');
    expect(await a.identify({ 'x-auth-token': s?.token })).toBe('bob');
    writeFileSync(file, alice, { mode: 0o600 });
    await eventually(() => log.some((l) => /^users file changed: .*; access ended for bob$/.test(l)), 'the reload', 100, 50);
    expect(await a.identify({ 'x-auth-token': s?.token })).toBeNull();
    expect(await a.identify(basic('bob', 'hunter2'))).toBeNull();
    // Alice, unchanged, keeps her session.
    expect(a.listSessions().map((x) => x.user)).toEqual(['alice']);
    expect(await a.identify({ 'x-auth-token': kept?.token })).toBe('alice');
  });

  it('on SIGHUP an old password stops working at once; a file that no longer loads keeps the users before it', async () => {
    const file = join(tempDir(), 'users');
    writeFileSync(file, `carol:${hashPassword('old', 1024)}\n`, { mode: 0o600 });
    const stamp = 1_700_000_000; // a whole second, so putting it back is exact
    utimesSync(file, stamp, stamp);
    const log: string[] = [];
    const a = auth(file, log);
    expect(await a.identify(basic('carol', 'old'))).toBe('carol');
    const s = a.openSession('carol');
    // Same size, and the old mtime put back: the file poll cannot see this change, so only SIGHUP can
    // (under load the poll's overdue timer otherwise runs before the signal and takes the reload first).
    const before = statSync(file);
    writeFileSync(file, `carol:${hashPassword('new', 1024)}\n`, { mode: 0o600 });
    utimesSync(file, stamp, stamp);
    expect([statSync(file).size, statSync(file).mtimeMs]).toEqual([before.size, before.mtimeMs]);
    process.kill(process.pid, 'SIGHUP');
    await eventually(() => log.some((l) => /^SIGHUP: .*access ended for carol/.test(l)), 'the SIGHUP reload', 100, 20);
    expect(await a.identify(basic('carol', 'old'))).toBeNull();
    expect(await a.identify({ 'x-auth-token': s?.token })).toBeNull();
    expect(await a.identify(basic('carol', 'new'))).toBe('carol');
    writeFileSync(file, 'garbage\n', { mode: 0o600 });
    process.kill(process.pid, 'SIGHUP');
    await eventually(() => log.some((l) => /keeping the users read before/.test(l)), 'the refused reload', 100, 20);
    expect(await a.identify(basic('carol', 'new'))).toBe('carol');
  });
});

describe('guessing', () => {
  it('an unknown user, a wrong scrypt password and a wrong plain password each cost one scrypt with the same parameters', async () => {
    const file = join(tempDir(), 'users');
    writeFileSync(file, `dave:${hashPassword('right', 4096)}\nerin:plain-pw\n`, { mode: 0o600 });
    const a = auth(file);
    const cost = async (user: string, password: string) => {
      const before = a.scrypt.runs.length;
      expect(await a.check(user, password)).toBe(false);
      return a.scrypt.runs.slice(before);
    };
    const one = [{ N: 4096, r: 8, p: 1, keylen: 32 }];
    expect(await cost('dave', 'wrong')).toEqual(one);
    expect(await cost('nobody-by-this-name', 'wrong')).toEqual(one);
    expect(await cost('erin', 'wrong')).toEqual(one);
    // A file of plain passwords only: no check costs a scrypt, known user or not.
    writeFileSync(file, 'erin:plain-pw\n', { mode: 0o600 });
    const plain = auth(file);
    expect(await plain.check('nobody-by-this-name', 'x')).toBe(false);
    expect(await plain.check('erin', 'x')).toBe(false);
    expect(await plain.check('erin', 'plain-pw')).toBe(true);
    expect(plain.scrypt.runs).toEqual([]);
  });

  it('password checks do not hold up the event loop', async () => {
    const file = join(tempDir(), 'users');
    // N = 2^16: a check takes tens of milliseconds of CPU.
    writeFileSync(file, `frank:${hashPassword('x', 65536)}\n`, { mode: 0o600 });
    const a = auth(file);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    const guesses = await Promise.all([1, 2, 3].map((i) => a.check('frank', `guess${i}`)));
    clearInterval(timer);
    expect(guesses).toEqual([false, false, false]);
    // Timers ran while scrypt worked: the checks ran elsewhere (scryptSync on the loop would leave this at 0 or 1).
    expect(ticks).toBeGreaterThan(3);
  });
});
