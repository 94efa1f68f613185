// Security defaults of the running backend that another user must run into
// (root switches to uid 65534): socket and shm modes, --socket-group and the
// peer-uid gate. Needs root, so it lives outside `make unit`.
import { spawn } from 'node:child_process';
import { chmodSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { eventually, makeTestPool, startBackend, type TestPool } from '../helpers/qemu.js';

const NOBODY = 65534;

/** The test's private temp dirs (0700) must let the group member walk down to the run dir. */
function traversable(pool: TestPool): void {
  chmodSync(dirname(pool.runDir), 0o711);
}

function sock(pool: TestPool, name: string): string {
  return join(pool.runDir, pool.name, name);
}

/** Connects to `path` as uid/gid 65534 and reports what happened. */
function connectAsNobody(path: string): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [
        '-e',
        `const s = require('net').connect(${JSON.stringify(path)});
         s.on('connect', () => { s.on('close', () => { console.log('closed-by-peer'); process.exit(0); }); setTimeout(() => { console.log('still-open'); process.exit(0); }, 3000); });
         s.on('error', (e) => { console.log(e.code); process.exit(0); });`,
      ],
      // cwd /: the checkout may sit in a directory this uid cannot enter.
      { cwd: '/', uid: NOBODY, gid: NOBODY, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.on('exit', () => resolve(out.trim()));
  });
}

describe('security defaults against another uid', () => {
  it('head sockets, fm.sock, shm objects and the journal are private to the backend user by default', async () => {
    const pool = makeTestPool('sec');
    const backend = await startBackend(pool, ['--capacity', '512M', '--heads', '2', '--fm-socket']);
    for (const name of ['head0.sock', 'head1.sock', 'fm.sock']) expect(statSync(sock(pool, name)).mode & 0o777).toBe(0o600);
    expect(statSync(join(pool.runDir, pool.name)).mode & 0o777).toBe(0o700);
    for (const suffix of ['mem', 'state']) expect(statSync(`/dev/shm/cxl-mhd.${pool.name}.${suffix}`).mode & 0o777).toBe(0o600);
    expect(statSync(join(pool.stateDir, pool.name, 'journal.jsonl')).mode & 0o777).toBe(0o600);
    // Another user cannot even reach the socket.
    expect(await connectAsNobody(sock(pool, 'head0.sock'))).toBe('EACCES');
    await backend.stop();
  });

  it('--socket-group widens head sockets to 0660; the uid gate still refuses a uid not allowed', async () => {
    const pool = makeTestPool('sec');
    traversable(pool);
    const backend = await startBackend(pool, ['--capacity', '512M', '--heads', '2', '--socket-group', String(NOBODY)]);
    const st = statSync(sock(pool, 'head0.sock'));
    expect(st.mode & 0o777).toBe(0o660);
    expect(st.gid).toBe(NOBODY);
    // The group member gets through the file mode, then SO_PEERCRED turns it away.
    expect(await connectAsNobody(sock(pool, 'head0.sock'))).toBe('closed-by-peer');
    await eventually(() => /connection from uid 65534 .* refused: not an allowed uid/.test(backend.stderr()), 'the refusal in the log');
    await backend.stop();
  });

  it('--allow-uid admits that uid (it gets a QMP session attempt, not a hang-up)', async () => {
    const pool = makeTestPool('sec');
    traversable(pool);
    const backend = await startBackend(pool, [
      '--capacity',
      '512M',
      '--heads',
      '2',
      '--socket-group',
      String(NOBODY),
      '--allow-uid',
      String(NOBODY),
    ]);
    // Not a QEMU: it sends no greeting, so the backend waits (the QMP greeting timeout is 10 s).
    expect(await connectAsNobody(sock(pool, 'head0.sock'))).toBe('still-open');
    await backend.stop();
  });
});
