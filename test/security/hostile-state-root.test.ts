// Pool objects another user made first (root switches to uid 65534): /dev/shm
// empties at reboot while root's journal stays, so anyone may create
// cxl-mhd.POOL.{mem,state} before root's `serve` does. Root must refuse them,
// saying whose they are, and `fsck` must not call them clean. Needs root.
import { chmodSync, chownSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { native } from '../../src/native/index.js';
import { Pool } from '../../src/pool/index.js';
import { carryCli, runCli, runProblems } from '../helpers/cli-run.js';
import { tempDir, uniquePoolName } from '../helpers/pool.js';

const NOBODY = 65534;
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

describe('pool objects pre-created by another user', () => {
  it.skipIf(!isRoot)("root's serve refuses them naming their owner; fsck is not clean; destroy --force clears them", async () => {
    const name = uniquePoolName('hsr');
    const root = tempDir('cxl-mhd-hsr-');
    chmodSync(root, 0o755);
    const stateDir = join(root, 'state');
    const theirs = join(root, 'theirs');
    mkdirSync(theirs);
    chownSync(theirs, NOBODY, NOBODY);
    Pool.create({ name, stateDir, capacityBytes: 256 * 2 ** 20, blockBytes: 2 * 2 ** 20, headCount: 2 }).close();
    for (const s of ['mem', 'state']) native.shmUnlink(`/cxl-mhd.${name}.${s}`); // the reboot

    const nobody = { cwd: '/', uid: NOBODY, gid: NOBODY, cli: carryCli(), env: { ...process.env, XDG_RUNTIME_DIR: theirs } };
    for (const mode of ['600', '666']) {
      const made = await runCli(
        ['pool', 'create', '--pool', name, '--capacity', '256M', '--heads', '2', '--state-dir', theirs, '--mode', mode],
        nobody,
      );
      expect(made.code, made.stderr).toBe(0);

      const served = await runCli([
        'serve',
        '--pool',
        name,
        '--capacity',
        '256M',
        '--heads',
        '2',
        '--state-dir',
        stateDir,
        '--run-dir',
        join(root, 'run'),
      ]);
      expect(runProblems(served)).toEqual([]);
      expect(served.stdout).not.toMatch(/ready/);
      expect(served.stderr).toMatch(
        new RegExp(`shm object /dev/shm/cxl-mhd\\.${name}\\.state belongs to uid ${NOBODY}, not to uid 0 that runs this`),
      );

      const checked = await runCli(['fsck', '--pool', name, '--state-dir', stateDir]);
      expect(checked.code, checked.stdout + checked.stderr).not.toBe(0);
      expect(checked.stdout + checked.stderr).toMatch(mode === '666' ? /more open than the pool's 0600/ : /belongs to another pool/);

      const destroyed = await runCli(['pool', 'destroy', '--pool', name, '--state-dir', theirs, '--force']);
      expect(destroyed.code, destroyed.stderr).toBe(0);
      expect(Pool.exists(name)).toBe(false);
    }
  });
});
