// The run and state directories as another user could have prepared them:
// writable by others, reached through a link into such a directory, or made
// group-writable. The backend refuses each before it puts a socket or a
// journal there (src/pool/safedir.ts); a private directory inside a sticky
// one (as /tmp) is fine. The uid-switching forms are rundir-root.test.ts.
import { chmodSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkSafeDir, defaultRunDir, Pool } from '../../src/pool/index.js';
import { tempDir, uniquePoolName } from '../helpers/pool.js';
import { cli } from '../helpers/qemu.js';

function refusal(dir: string): string {
  try {
    checkSafeDir(dir, 'run directory');
    return '';
  } catch (e) {
    return (e as Error).message;
  }
}

describe('run and state directories', () => {
  it('a directory writable by others, or by its group, is refused; a private one inside a sticky one is fine', () => {
    const base = tempDir();
    const open = join(base, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    expect(refusal(join(open, 'cxl-mhd'))).toMatch(
      /: .*\/open is writable by others \(mode 0777\) without the sticky bit; refusing to use it/,
    );
    const group = join(base, 'group');
    mkdirSync(group);
    chmodSync(group, 0o770);
    expect(refusal(group)).toMatch(/group is writable by its group \(mode 0770\)/);
    const sticky = join(base, 'sticky');
    mkdirSync(sticky);
    chmodSync(sticky, 0o1777);
    const mine = join(sticky, 'mine');
    mkdirSync(mine, { mode: 0o700 });
    expect(refusal(join(mine, 'cxl-mhd'))).toBe('');
  });

  it('a link of ours into a directory writable by others is judged by where it leads', () => {
    const base = tempDir();
    const open = join(base, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    symlinkSync(open, join(base, 'link'));
    expect(refusal(join(base, 'link', 'cxl-mhd'))).toMatch(/open is writable by others/);
  });

  it('serve refuses such a run dir before it listens, and a state dir writable by others before it journals', () => {
    const base = tempDir();
    const open = join(base, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const name = uniquePoolName('rd');
    const r = cli(['serve', '--pool', name, '--capacity', '256M', '--heads', '1', '--run-dir', open, '--state-dir', join(base, 'state')]);
    expect([r.code, r.stderr.trim().split('\n').length]).toEqual([1, 1]);
    expect(r.stderr).toMatch(/run directory .*open is writable by others/);
    Pool.destroy({ name, stateDir: join(base, 'state'), force: true });
    const c = cli([
      'pool',
      'create',
      '--pool',
      uniquePoolName('rd'),
      '--capacity',
      '256M',
      '--heads',
      '1',
      '--state-dir',
      join(open, 'state'),
    ]);
    expect([c.code, c.stderr]).toEqual([1, expect.stringMatching(/state directory .*open is writable by others/)]);
  });

  it('the default run dir without XDG_RUNTIME_DIR is /tmp/cxl-mhd-UID for a user, /run/cxl-mhd for root (docs/operations.md)', () => {
    const uid = process.getuid?.() ?? 0;
    expect(defaultRunDir({})).toBe(uid === 0 ? '/run/cxl-mhd' : `/tmp/cxl-mhd-${uid}`);
  });
});
